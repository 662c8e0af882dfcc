"""What the last scan of a documents folder found in each file, kept beside the index
(INDEX/scanned.sqlite): a build of a large folder then reads the size and time of each file that
has not changed, not its bytes. A file is read again when its size or times differ from the ones
recorded, or when it had changed so shortly before it was scanned that a second change within the
same clock tick would not have moved its time. The times are two: when its content was last
written (which a copy that keeps times, `cp -p` or `rsync -a`, sets back) and when the file last
changed at all (which nothing can set back)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from embeddings.readers import Pending, Skipped

_SAME_TICK_NS = 2_000_000_000  # wider than any file system's time resolution
_SCHEMA = """CREATE TABLE IF NOT EXISTS scanned (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, scanned_ns INTEGER NOT NULL, items TEXT NOT NULL)"""
Row = tuple[str, int, int, int, int, str]  # path, size, mtime_ns, ctime_ns, scanned_ns, what was found


class Scanned:
    def __init__(self, path: Path) -> None:
        """The record is read here, whole (a fifth of a second at 100,000 files). Not in a thread
        beside the folder's walk: both are Python work, and taking turns at the interpreter lock
        made the two together a third slower than one after the other."""
        self.path = path
        self._rows: dict[str, Row] = {}
        self._changed: dict[str, Row] = {}
        self._seen: set[str] = set()
        try:
            db = sqlite3.connect(self.path)
            try:
                db.execute(_SCHEMA)
                db.execute("DROP TABLE IF EXISTS files")  # an earlier record, without ctime_ns
                self._rows = {r[0]: r for r in db.execute("SELECT * FROM scanned")}
            finally:
                db.close()
        except sqlite3.DatabaseError:  # only a record of what was read: damaged, it is read afresh
            with contextlib.suppress(OSError):
                self.path.unlink()

    def get(self, path: str, stat: os.stat_result) -> list[Pending | Skipped] | None:
        """What the file at `path` (absolute) held when last scanned, if it cannot have changed."""
        self._seen.add(path)
        row = self._rows.get(path)
        if (
            row is None
            or row[1:4] != (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            or row[2] >= row[4] - _SAME_TICK_NS
        ):
            return None
        return _decode(row[5], path)

    def put(self, path: str, stat: os.stat_result, items: list[Pending | Skipped]) -> None:
        self._seen.add(path)
        self._changed[path] = (
            path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, time.time_ns(), _encode(items)
        )  # fmt: skip

    def save(self) -> None:
        """Record this scan: the files read afresh, and none of the files no longer there."""
        gone = self._rows.keys() - self._seen
        if not (self._changed or gone):
            return
        # A record that cannot be kept (a path that is not valid UTF-8, say) costs time only.
        with contextlib.suppress(sqlite3.DatabaseError, OSError, UnicodeEncodeError):
            db = sqlite3.connect(self.path)
            try:
                db.execute(_SCHEMA)
                db.executemany(
                    "INSERT OR REPLACE INTO scanned VALUES (?, ?, ?, ?, ?, ?)", self._changed.values()
                )
                db.executemany("DELETE FROM scanned WHERE path = ?", [(k,) for k in gone])
                db.commit()
            finally:
                db.close()


_SEP = "\x1f"  # a file of one document, the common case, is kept as its fields: JSON is slower


def _encode(items: list[Pending | Skipped]) -> str:
    if len(items) == 1 and isinstance(items[0], Pending) and items[0].line_offset is None:
        item = items[0]
        return _SEP.join([item.id, item.hash, item.source, item.name or ""])
    return json.dumps([
        [i.id, i.hash, i.source, i.line_offset, i.name] if isinstance(i, Pending) else [i.source, i.reason, i.id]
        for i in items
    ])  # fmt: skip


def _decode(text: str, path: str) -> list[Pending | Skipped]:
    if not text.startswith("["):
        doc_id, content, source, name = text.split(_SEP)
        return [Pending(doc_id, content, source, path, None, name or None)]
    return [
        Pending(e[0], e[1], e[2], path, e[3], e[4]) if len(e) == 5 else Skipped(*e) for e in json.loads(text)
    ]
