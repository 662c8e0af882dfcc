"""The CPU runtime's weights moved onto huge pages: which address ranges are the session's (pure,
from a /proc maps listing), and for real with the small packaged model: the weights move, and
the answers are the same token for token as on the pages ONNX Runtime leaves them on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qa import models
from qa.decoding import Scheduler
from qa.runtimes import hugepages, ort
from tests.test_runtimes import QUESTIONS, messages

MiB = 1 << 20
HUGE = hugepages.HUGE
MAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 fd:01 1312 /usr/bin/python3.11
55d0c2000000-55d0c4000000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0008000000 rw-p 00000000 00:00 0
7f0008000000-7f0009000000 ---p 00000000 00:00 0
7f0009000000-7f0010000000 r--p 00000000 00:00 0
7f0010000000-7f0018000000 rw-s 00000000 fd:01 2233 /dev/shm/segment
7f0020000000-7f0024000000 rw-p 00000000 fd:01 4455 /work/model.onnx.data
7ffc00000000-7ffc00100000 rw-p 00000000 00:00 0 [stack]
"""


def test_only_writable_memory_backed_by_no_file_is_read_from_the_maps_listing():
    """The heap and anonymous mappings; not files, shared memory, read-only or guard pages, stacks."""
    assert hugepages.anonymous(MAPS) == [(0x55D0C2000000, 0x55D0C4000000), (0x7F0000000000, 0x7F0008000000)]


def test_the_new_ranges_are_what_appeared_trimmed_to_whole_huge_pages():
    old = [(0, 64 * MiB)]
    # the kernel joined a new range to the old one beside it: only the new part is the session's
    assert hugepages.added(old, [(0, 200 * MiB)]) == [(64 * MiB, 200 * MiB)]
    assert hugepages.added(old, [(0, 64 * MiB)]) == [], "nothing new"
    # whole 2 MiB pages only: the ends are trimmed inwards
    assert hugepages.added([], [(MiB, 100 * MiB + MiB)]) == [(2 * MiB, 100 * MiB)]
    assert hugepages.added([], [(0, 31 * MiB)]) == [], "smaller than LEAST: a buffer, not weights"
    # an old range in the middle of a new one splits it
    assert hugepages.added([(100 * MiB, 102 * MiB)], [(0, 200 * MiB)]) == [
        (0, 100 * MiB),
        (102 * MiB, 200 * MiB),
    ]


def test_each_huge_page_is_asked_for_on_its_own_and_those_refused_again():
    """The kernel gives up on the rest of a range at a page it cannot move: one refusal must not
    cost the pages after it, and a page refused once (busy, no free huge page yet) is asked again."""
    asked: list[int] = []
    busy_once, never = {2 * HUGE}, {3 * HUGE}

    def move(start: int) -> bool:
        asked.append(start)
        if start in busy_once:
            busy_once.discard(start)
            return False
        return start not in never

    pages = [i * HUGE for i in range(5)]
    assert hugepages.refused(pages, move, tries=3, pause=0) == [3 * HUGE]
    assert asked[:5] == pages, "every page asked for in the first round, past those refused"
    assert asked.count(2 * HUGE) == 2 and asked.count(3 * HUGE) == 3 and asked.count(4 * HUGE) == 1


def kernel_collapses() -> bool:
    """Linux 6.1 or later (MADV_COLLAPSE) with transparent huge pages not turned off."""
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not setting.is_file() or "[never]" in setting.read_text():
        return False
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 1)


@pytest.mark.skipif(not kernel_collapses(), reason="this kernel cannot collapse memory into huge pages")
def test_the_weights_move_onto_huge_pages_and_every_answer_stays_the_same():
    from qa.generator import load

    small = load(models.SMALL, batch=4)
    folder = models.int4(models.SMALL)
    prompts = [
        small.tokenizer(small.render(messages(q)), add_special_tokens=False)["input_ids"] for q in QUESTIONS
    ]
    answers = {}
    for huge in (False, True):
        batch = ort.load(folder, capacity=2, prompt_chunk=256, huge_pages=huge)
        if huge:
            assert batch.moving is not None, "moved in a thread: loading does not wait for it"
            batch.moving.join(120)
            weights = (folder / "model.onnx.data").stat().st_size
            assert batch.huge_pages > weights / 2, "most of the weights are on huge pages"
            assert hugepages.resident() >= batch.huge_pages
        else:
            assert batch.moving is None and batch.huge_pages == 0
        answers[huge] = [list(Scheduler(batch).submit(p, 16, small.stop)) for p in prompts]
        del batch  # the next session is made alone, as docqa makes its one
    assert answers[True] == answers[False] and all(answers[True])
