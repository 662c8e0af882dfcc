"""The CPU runtime's weights moved onto 2 MiB pages once its session is made.

A decoding step streams every weight of the model through the CPU: about 1 GB a token for the
default model, 250,000 pages of 4 KiB, each needing an address translation that misses the TLB;
on 2 MiB pages they are 500. Linux gives a process huge pages only where it asks for them
(transparent_hugepage set to `madvise`, the common default), and ONNX Runtime does not ask. So
the address ranges that appeared while a session was made (its weights, unpacked into buffers
of its own) are collapsed into huge pages afterwards with `madvise(MADV_COLLAPSE)` (Linux 6.1
and later): about 2 s of one core for the default model, and no more memory: only whole 2 MiB
pages of ranges at least LEAST long are collapsed, and weights use every byte of theirs. Where
the kernel cannot (an older kernel, huge pages turned off, memory too fragmented) the pages
stay as they were: slower, never wrong. bench.pages measures the gain.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from pathlib import Path

HUGE = 2 << 20  # bytes in a huge page on x86-64 (and arm64's default granule)
LEAST = 32 << 20  # smaller new ranges are the session's small buffers, not its weights
MADV_COLLAPSE = 25  # <linux/mman.h>

Range = tuple[int, int]  # [start, end) of an address range


def anonymous(maps: str) -> list[Range]:
    """The writable ranges of memory backed by no file in a `/proc/<pid>/maps` listing: the
    program's heap (where malloc puts what it does not map on its own) and anonymous mappings."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5 or fields[4] != "0" or not fields[1].startswith("rw"):
            continue
        if len(fields) == 6 and fields[5].strip() not in ("", "[heap]"):  # a file, [stack] ...
            continue
        start, end = fields[0].split("-")
        ranges.append((int(start, 16), int(end, 16)))
    return ranges


def added(before: list[Range], after: list[Range], least: int = LEAST) -> list[Range]:
    """The parts of `after` that `before` did not hold (the kernel joins a new range to an old
    one beside it), trimmed to whole huge pages, of at least `least` bytes."""
    out = []
    for start, end in after:
        pieces = [(start, end)]
        for old_start, old_end in (r for r in before if r[0] < end and r[1] > start):
            pieces = [
                part
                for s, e in pieces
                for part in ((s, min(e, old_start)), (max(s, old_end), e))
                if part[0] < part[1]
            ]
        for s, e in pieces:
            s, e = -(-s // HUGE) * HUGE, e // HUGE * HUGE
            if e - s >= least:
                out.append((s, e))
    return out


def mapped() -> list[Range]:
    """This process's anonymous ranges now ([] where there is no /proc, as on macOS)."""
    try:
        return anonymous(Path("/proc/self/maps").read_text())
    except OSError:
        return []


def collapse(ranges: list[Range], tries: int = 3) -> int:
    """Move `ranges` onto huge pages; the bytes moved (counted, not told: 0 where it cannot).

    One huge page at a time: the kernel leaves the rest of a range as it was once it cannot
    allocate one huge page (a test run has seen 132 of 310 MiB moved), and passes over small
    pages that are busy; so each page is asked for on its own, and those refused are asked for
    again, up to `tries` times in all."""
    if not ranges:
        return 0
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    before = resident()
    pages = [start for first, end in ranges for start in range(first, end, HUGE)]
    refused(pages, lambda start: madvise(start, HUGE, MADV_COLLAPSE) == 0, tries)
    return max(resident() - before, 0)


def refused(pages: list[int], move: Callable[[int], bool], tries: int, pause: float = 0.05) -> list[int]:
    """The pages `move` still refuses after asking each up to `tries` times, all of them once
    before any again, pausing a little longer each round (for reclaim and compaction)."""
    for attempt in range(tries):
        if not pages:
            break
        time.sleep(pause * attempt)
        pages = [start for start in pages if not move(start)]
    return pages


def resident() -> int:
    """Bytes of this process on transparent huge pages now (0 where Linux does not say)."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
