"""Where a SIGKILL lands in a build. Installed in the process that builds, it writes a mark to a
file as the build enters and leaves each step, so the crash test can say where every kill landed;
asked to, the process kills itself at one step of the commit, so kills land inside the short
write-and-rename window as often as the test needs, not once in a hundred.

    python -m stress.killpoints MARKS KILL_AT -- index DOCS --index INDEX --quiet

runs `docqa index ...` so; KILL_AT is "before:STEP", "after:STEP" or "-" (no kill of its own)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from embeddings import changes, embedder, generation, ingest, library, segment, store

# The steps of a build, in order. The commit (entered before the steps inside it, left after them
# all) seals the new files (fsync and hash them), writes the manifest, moves the new segments into
# place, renames the workspace into a generation, writes the new pointer and swaps it in for CURRENT
# (the moment the new generation is live), then removes old generations.
STEPS = ["store upload", "scan", "read index", "load model", "embed", "write segment", "merge", "commit", "commit: manifest",
         "commit: move segments", "commit: rename generation", "commit: write pointer",
         "commit: swap pointer", "collect", "done"]  # fmt: skip
WINDOW = STEPS[STEPS.index("commit") : STEPS.index("commit: swap pointer") + 1]


class _Marks:
    def __init__(self, path: Path, kill_at: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.kill_at = kill_at

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._mark("enter", name)
        yield
        self._mark("left", name)

    def _mark(self, when: str, name: str) -> None:
        # One write per mark, straight to the kernel: it outlives a SIGKILL right after it.
        os.write(self.fd, f"{when} {name}\n".encode())
        if self.kill_at == f"{'before' if when == 'enter' else 'after'}:{name}":
            os.kill(os.getpid(), signal.SIGKILL)


class _Os:
    """The os module as store.py sees it, with its renames marked."""

    def __init__(self, marks: _Marks) -> None:
        self._marks = marks

    def __getattr__(self, name: str):
        return getattr(os, name)

    def replace(self, src, dst) -> None:
        dst = Path(dst)
        if dst.parent.name == store.SEGMENTS:
            step = "commit: move segments"
        elif dst.name.startswith("gen-"):
            step = "commit: rename generation"
        elif dst.name == "CURRENT":
            step = "commit: swap pointer"
        else:
            return os.replace(src, dst)
        with self._marks.step(step):
            os.replace(src, dst)


def install(marks_file: Path, kill_at: str | None = None) -> None:
    """Mark every step of builds in this process in `marks_file`; kill it at `kill_at`."""
    marks = _Marks(marks_file, kill_at)

    def marked(owner, attribute: str, step: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            with marks.step(step):
                return original(*args, **kwargs)

        setattr(owner, attribute, wrapper)

    marked(library.Library, "store", "store upload")
    marked(changes, "scan_all", "scan")
    marked(generation.Live, "read", "read index")
    marked(embedder.Embedder, "load", "load model")
    marked(ingest.Ingest, "__call__", "embed")
    marked(segment.SegmentWriter, "finish", "write segment")
    marked(generation.Live, "next_segments", "merge")
    marked(store, "commit", "commit")
    marked(store, "_collect", "collect")
    write_synced = store._write_synced

    def _write_synced(path: Path, text: str) -> None:
        with marks.step("commit: manifest" if path.name == store.MANIFEST else "commit: write pointer"):
            write_synced(path, text)

    store._write_synced = _write_synced
    store.os = _Os(marks)


def landed(marks_file: Path) -> str:
    """Where the build was when it ended: the last step entered ("enter X"), or left ("left X")."""
    with contextlib.suppress(OSError):
        lines = marks_file.read_text().splitlines()
        if lines:
            return lines[-1]
    return "before any step"


def in_window(mark: str) -> bool:
    """Whether a kill at `mark` fell between sealing the new generation and making it live."""
    when, _, step = mark.partition(" ")
    return step in WINDOW and not (when == "left" and step in ("commit", WINDOW[-1]))


def main(argv: list[str]) -> int:
    marks_file, kill_at, separator, *command = argv
    assert separator == "--", __doc__
    install(Path(marks_file), None if kill_at == "-" else kill_at)
    from qa.cli import main as docqa

    status = docqa(command)
    os.write(os.open(marks_file, os.O_WRONLY | os.O_APPEND), b"left done\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
