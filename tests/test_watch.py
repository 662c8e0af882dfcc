"""A watched folder: files added, changed, removed (and added back) reach the index through the
normal incremental build, from `docqa index --watch` and from a server given --docs."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from embeddings import store
from embeddings.builder import build
from embeddings.config import Config
from embeddings.index import Index
from embeddings.watch import Relevant, follow
from qa.service import Empty, Service
from tests.conftest import ROOT
from tests.fakes import FakeEmbedder, FakeGenerator

LIMIT = 90  # seconds to wait for the watch to act before the test fails; never a measure of speed


def wait_for(condition: Callable[[], bool], events: queue.Queue | None = None) -> None:
    deadline = time.monotonic() + LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {LIMIT} s")
        if events is not None:
            with contextlib.suppress(queue.Empty):
                events.get(timeout=1)
        else:
            time.sleep(0.2)


def test_only_changes_that_can_change_the_index_count(tmp_path):
    relevant = Relevant(tmp_path / "docs", tmp_path / "docs/index")
    assert relevant(None, str(tmp_path / "docs/notes/a.pdf")) and relevant(None, str(tmp_path / "docs/notes"))
    for path in ("docs/.hidden/a.txt", "docs/.a.txt.swp", "docs/index/chunks.sqlite", "docs/image.png"):
        assert not relevant(None, str(tmp_path / path)), path


def test_a_folder_with_a_dot_in_its_name_counts(tmp_path):
    (tmp_path / "docs/v1.2").mkdir(parents=True)
    assert Relevant(tmp_path / "docs", tmp_path / "index")(None, str(tmp_path / "docs/v1.2"))


@pytest.fixture
def watched(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "talks.txt").write_text("The meeting in Tehran was mediated by Ismail Khan.")
    config = Config(docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4)
    embedder = FakeEmbedder()
    build(config, embedder, progress=False, log=lambda m: None)
    builds, logs, stop = queue.Queue(), [], threading.Event()

    def rebuild() -> None:
        builds.put(build(config, embedder, progress=False, log=lambda m: None))

    thread = threading.Thread(
        target=follow, args=(docs, config.index_dir, rebuild, logs.append, stop), daemon=True
    )
    thread.start()
    wait_for(lambda: not builds.empty())  # the watch runs: its first build catches up with the folder
    yield docs, config, embedder, builds, logs
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive(), "setting the stop event ends the watch"


def texts(config: Config, embedder: FakeEmbedder) -> dict[str, str]:
    index = Index.open(config.index_dir, embedder)
    return {d.id: index.document_text(d.id) for d in index.documents()}


def test_added_changed_removed_and_added_back_files_reach_the_index(watched):
    docs, config, embedder, builds, logs = watched
    (docs / "notes").mkdir()
    (docs / "notes/rice.md").write_text("Rice harvests in Bengal doubled.")
    wait_for(lambda: "notes/rice.md" in texts(config, embedder), builds)
    assert any(m.startswith("noticed added notes") for m in logs), "the new folder (or its file) was noticed"
    (docs / "notes/rice.md").write_text("Rice harvests in Bengal tripled.")
    wait_for(
        lambda: texts(config, embedder).get("notes/rice.md") == "Rice harvests in Bengal tripled.", builds
    )
    (docs / "notes/rice.md").unlink()
    wait_for(lambda: "notes/rice.md" not in texts(config, embedder), builds)
    (docs / "notes/rice.md").write_text("Rice is back.")
    wait_for(lambda: texts(config, embedder).get("notes/rice.md") == "Rice is back.", builds)
    assert set(texts(config, embedder)) == {"talks.txt", "notes/rice.md"}


def test_a_folder_outside_linked_while_watching_is_watched_from_then_on(watched, tmp_path):
    docs, config, embedder, builds, logs = watched
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "rice.md").write_text("Rice harvests in Bengal doubled.")
    (docs / "linked").symlink_to(outside, target_is_directory=True)
    wait_for(lambda: "linked/rice.md" in texts(config, embedder), builds)
    wait_for(lambda: any("the linked folder linked, now watched" in m for m in logs))
    (outside / "rice.md").write_text("Rice harvests in Bengal tripled.")
    wait_for(
        lambda: texts(config, embedder).get("linked/rice.md") == "Rice harvests in Bengal tripled.", builds
    )


def test_a_folder_with_a_dot_in_its_name_moved_away_leaves_the_index(watched, tmp_path):
    docs, config, embedder, builds, logs = watched
    (docs / "v1.2").mkdir()
    (docs / "v1.2/notes.txt").write_text("Release notes for version one point two.")
    wait_for(lambda: "v1.2/notes.txt" in texts(config, embedder), builds)
    (docs / "v1.2").rename(tmp_path / "v1.2")
    wait_for(lambda: "v1.2/notes.txt" not in texts(config, embedder), builds)


def test_a_change_made_while_another_build_holds_the_index_is_indexed_once_it_is_done(watched):
    docs, config, embedder, builds, logs = watched
    with store.build_lock(config.index_dir):
        (docs / "talks.txt").write_text("The meeting in Tehran ended early.")
        wait_for(lambda: any("another docqa build" in m and "trying again" in m for m in logs))
    wait_for(lambda: texts(config, embedder)["talks.txt"] == "The meeting in Tehran ended early.", builds)


def test_a_documents_folder_replaced_while_watched_is_watched_anew(watched, tmp_path):
    docs, config, embedder, builds, logs = watched
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "talks.txt").write_text("The talks moved to Doha.")
    docs.rename(tmp_path / "old")
    fresh.rename(docs)
    wait_for(lambda: texts(config, embedder).get("talks.txt") == "The talks moved to Doha.", builds)
    wait_for(lambda: any("replaced" in m for m in logs))
    (docs / "wheat.txt").write_text("India sent wheat.")
    wait_for(lambda: "wheat.txt" in texts(config, embedder), builds)


def test_a_single_watched_file_saved_by_renaming_over_it_is_indexed_each_time(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Monday: the council met.")
    config = Config(docs=notes, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4)
    embedder, builds, stop = FakeEmbedder(), queue.Queue(), threading.Event()
    rebuild = lambda: builds.put(build(config, embedder, progress=False, log=lambda m: None))  # noqa: E731
    thread = threading.Thread(target=follow, args=(notes, config.index_dir, rebuild, lambda m: None, stop),
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        wait_for(lambda: not builds.empty())
        for day in ("Tuesday", "Wednesday"):  # as an editor saves: a new file, renamed over the old
            (tmp_path / "notes.txt.tmp").write_text(f"{day}: the council met.")
            os.replace(tmp_path / "notes.txt.tmp", notes)
            wait_for(lambda day=day: texts(config, embedder).get("notes.txt", "").startswith(day), builds)
    finally:
        stop.set()
        thread.join(30)


def test_a_build_that_fails_is_reported_and_the_watch_goes_on(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    builds, logs, stop = queue.Queue(), [], threading.Event()

    def rebuild() -> None:
        builds.put("build")
        if builds.qsize() == 1:
            raise FileNotFoundError(2, "No such file or directory", str(docs / "gone.txt"))

    thread = threading.Thread(
        target=follow, args=(docs, tmp_path / "index", rebuild, logs.append, stop), daemon=True
    )
    thread.start()
    try:
        wait_for(lambda: builds.qsize() == 1)
        (docs / "a.txt").write_text("A new file.")
        wait_for(lambda: builds.qsize() == 2)
        assert any(m.startswith("the index was not updated: ") and "gone.txt" in m for m in logs), logs
    finally:
        stop.set()
        thread.join(timeout=30)


def test_a_server_given_docs_answers_from_the_index_after_each_change(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "talks.txt").write_text("The meeting in Tehran was mediated by Ismail Khan.")
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    service = Service(config, FakeGenerator("Kettleby. [1]"), FakeEmbedder()).start(
        background=False, watch=True
    )
    try:
        version = service.version()
        (docs / "festival.txt").write_text("The Zorblat festival is held every March in Kettleby.")
        wait_for(lambda: any(d.id == "festival.txt" for d in service.documents()))
        assert service.version() != version, "the page sees that the index moved on"
        assert (
            service.assistant.ask("Where is the Zorblat festival held?").passages[0].doc_id == "festival.txt"
        )
        (docs / "festival.txt").unlink()
        wait_for(lambda: all(d.id != "festival.txt" for d in service.documents()))
    finally:
        service.stop()


def read_until(lines: queue.Queue, seen: list[str], prefix: str) -> None:
    """Take the command's output lines into `seen` until one starts with `prefix`."""
    while not any(line.startswith(prefix) for line in seen):
        seen.append(lines.get(timeout=LIMIT))


@pytest.mark.parametrize("empty", [False, True])
def test_docqa_index_watch_updates_the_index_and_stops_cleanly_on_ctrl_c(tmp_path, empty):
    """Also from a folder with nothing in it yet: the first build fails, said so, and the watch goes on."""
    docs = tmp_path / "docs"
    docs.mkdir()
    if not empty:
        (docs / "talks.txt").write_text("The meeting in Tehran was mediated by Ismail Khan.")
    command = [
        sys.executable,
        "-m",
        "qa.cli",
        "index",
        str(docs),
        "--index",
        str(tmp_path / "index"),
        "--watch",
        "--quiet",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        seen: list[str] = []
        read_until(lines, seen, "Watching")
        (docs / "rice.md").write_text("Rice harvests in Bengal doubled.")
        read_until(lines, seen, f"Indexed {'1 document' if empty else '2 documents'}")
        assert not empty or any(
            "the index was not updated: no readable documents" in line for line in seen
        ), seen
        assert any(line.startswith("noticed added rice.md; updating the index") for line in seen), seen
        assert any("1 added, 0 changed, 0 removed" in line for line in seen)
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=LIMIT) == 0
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.5)
            while not lines.empty():
                seen.append(lines.get())
            raise AssertionError(f"still watching {LIMIT} s after Ctrl-C: {seen}") from None
        time.sleep(0.5)  # let the readers take the last lines
        while not lines.empty():
            seen.append(lines.get())
        assert any("stopped watching" in line for line in seen), seen
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def test_a_server_started_on_an_empty_folder_answers_once_documents_are_added(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    service = Service(config, FakeGenerator("Kettleby. [1]"), FakeEmbedder()).start(
        background=False, watch=True
    )
    try:
        status = service.status()
        assert status.state == "empty" and str(docs) in status.message and "upload" in status.message
        with pytest.raises(Empty, match="Nothing indexed yet: no readable documents"):
            service.ask("Where is the Zorblat festival held?")
        assert service.documents() == []
        (docs / "festival.txt").write_text("The Zorblat festival is held every March in Kettleby.")
        wait_for(lambda: service.status().state == "ready")
        assert (
            service.assistant.ask("Where is the Zorblat festival held?").passages[0].doc_id == "festival.txt"
        )
    finally:
        service.stop()
