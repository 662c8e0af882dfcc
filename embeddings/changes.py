"""What a build reads: the documents of the folder and the uploads, scanned, and each sorted into
those the live index holds as they are, those to read (new, changed, or read again since their
reader changed) and those left out by hand."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from embeddings.generation import Live
from embeddings.library import UPLOAD_PREFIX, Library
from embeddings.readers import Pending, Skipped, scan
from embeddings.rereading import Rereading
from embeddings.scanned import Scanned

if TYPE_CHECKING:
    from embeddings.builder import BuildReport


def scan_all(docs: Path, library: Library, known: Scanned, index_dir: Path) -> list[Pending | Skipped]:
    """The folder's documents (not those of an index kept inside it), then the uploads stored
    beside the index."""
    seen: set[str] = set()
    found = list(scan(docs, seen=seen, known=known, skip=index_dir))
    known.save()
    if library.uploads_dir.is_dir():
        found += scan(library.uploads_dir, UPLOAD_PREFIX, library.names(), seen)
    return found


_collection_paused = 0
_collection_lock = threading.Lock()


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a scan makes an object or more per file: at 100,000
    files its passes over them took a fifth of a build that adds one document. Nothing made
    here holds a cycle; concurrent builds (a server's uploads) share one pause."""
    global _collection_paused
    with _collection_lock:
        counted = _collection_paused > 0 or gc.isenabled()  # not turned on if the caller had it off
        if counted:
            _collection_paused += 1
            gc.disable()
    try:
        yield
    finally:
        if counted:
            with _collection_lock:
                _collection_paused -= 1
                if _collection_paused == 0:
                    gc.enable()


def sort(found: list[Pending | Skipped], live: Live, excluded: Mapping[str, str | None], report: BuildReport,
          rereading: Rereading) -> tuple[list[Pending], list[Pending], list[str]]:  # fmt: skip
    """The documents found that the live index holds as they are, those new or changed, and those
    left out by hand (as they were when left out: one written anew since is new). The skipped files
    go into `report`, with the documents the last build could not read that are as they were then
    (read again, they would fail again, after the embedding model was loaded for them). A .jsonl
    record moved to another file, same id and content, is changed: its source (what a scope's
    folder matches) is the new file's. A document as it was that `rereading` has due (its reader
    changed since) is read again and counted so. One pass: at a million chunks, every pass over
    the folder counts."""
    keep: list[Pending] = []
    fresh: list[Pending] = []
    left_out: list[str] = []
    unreadable = live.manifest.get("unreadable", {})
    for item in found:
        if isinstance(item, Skipped):
            report.skipped.append(item)
        elif item.id in excluded and excluded[item.id] in (None, item.hash):
            left_out.append(item.id)
        elif (failed := unreadable.get(item.id)) and failed[0] == item.hash:  # as it was: it fails again,
            if rereading.due(item):  # unless it is read otherwise now
                fresh.append(item)
                report.read_again += 1
            else:
                report.skipped.append(Skipped(item.source, failed[1], item.id))
        else:
            old = live.docs.get(item.id)
            same = old is not None and old[0] == item.hash
            if same and item.line_offset is not None:  # a record: is it still in the same file?
                same = _file(live.sources().get(item.id, "")) == _file(item.source)
            if same and rereading.due(item):
                same = False
                report.read_again += 1
            (keep if same else fresh).append(item)
    return keep, fresh, left_out


def _file(record_source: str) -> str:
    """The file of a .jsonl record's source, `file:line`."""
    return record_source.rpartition(":")[0]
