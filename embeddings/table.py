"""The chunk table of one segment: documents and chunks in SQLite; row i of `chunks` is vector i
of the segment. Chunks read from it carry their row in the whole index (the segment's base + i)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.chunker import Span
from embeddings.errors import IndexCorrupt
from embeddings.readers import Document

_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, hash TEXT NOT NULL,
    metadata TEXT NOT NULL, text TEXT NOT NULL, chunks INTEGER NOT NULL, indexed_at TEXT NOT NULL
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id),
    start INTEGER NOT NULL, end INTEGER NOT NULL, tokens INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks(doc_id, row);
CREATE INDEX documents_hashes ON documents(id, hash);  -- every build reads these, not the texts
"""


@dataclass(frozen=True)
class Chunk:
    row: int
    doc_id: str
    title: str
    start: int  # character offsets into the document's text
    end: int
    text: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    title: str
    source: str
    hash: str
    chunks: int
    indexed_at: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """What a scope looks at in each document of a table, and the document of each chunk row."""

    ids: list[str]
    sources: list[str]
    dates: list[str | None]
    owners: np.ndarray  # (rows,) the position in `ids` of each row's document


_CHUNK_SELECT = (
    "SELECT c.row, c.doc_id, d.title, c.start, c.end, c.text, d.metadata "
    "FROM chunks c JOIN documents d ON d.id = c.doc_id"
)
_DOC_SELECT = "SELECT id, title, source, hash, chunks, indexed_at, metadata FROM documents"


class Table:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        self._lock = threading.Lock()  # one connection shared by the UI's worker threads
        self._catalog: Catalog | None = None

    @classmethod
    def create(cls, path: Path) -> Table:
        db = sqlite3.connect(path, check_same_thread=False)
        db.executescript(_SCHEMA)
        return cls(db)

    @classmethod
    def open(cls, path: Path) -> Table:
        # A committed generation never changes, so SQLite may skip locking and journals.
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            db.execute(
                "SELECT d.id, c.row FROM documents d JOIN chunks c ON c.doc_id = d.id LIMIT 1"
            ).fetchone()
        except sqlite3.DatabaseError as e:
            db.close()
            raise IndexCorrupt(f"the chunk table {path} cannot be read ({e}); run `docqa index`") from None
        return cls(db)

    def close(self) -> None:
        self.db.close()

    def add(self, doc: Document, spans: Sequence[Span], first_row: int, indexed_at: str) -> None:
        metadata = json.dumps(doc.metadata, ensure_ascii=False, default=str)
        with self._lock:
            self.db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, doc.title, doc.source, doc.hash, metadata, doc.text, len(spans), indexed_at),
            )
            self.db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (first_row + i, doc.id, s.start, s.end, s.tokens, doc.text[s.start : s.end])
                    for i, s in enumerate(spans)
                ],
            )

    def copy_from(self, old: Path, gone: Collection[str], first_row: int) -> list[int]:
        """Carry every document of the table at `old` but those in `gone`, rows numbered on
        from `first_row`; returns the old rows carried, in order (their vectors go along)."""
        with self._lock:
            db = self.db
            db.commit()  # ATTACH runs outside a transaction
            db.execute("ATTACH DATABASE ? AS old", (str(old),))
            try:
                db.execute("CREATE TEMP TABLE gone (id TEXT PRIMARY KEY)")
                db.executemany("INSERT INTO gone VALUES (?)", [(d,) for d in gone])
                db.execute(
                    "INSERT INTO documents SELECT * FROM old.documents WHERE id NOT IN gone ORDER BY rowid"
                )
                kept = "FROM old.chunks WHERE doc_id NOT IN gone"
                db.execute(
                    f"INSERT INTO chunks SELECT ? + ROW_NUMBER() OVER (ORDER BY row) - 1, doc_id, start, end, "
                    f"tokens, text {kept} ORDER BY row",
                    (first_row,),
                )
                rows = [r for (r,) in db.execute(f"SELECT row {kept} ORDER BY row")]
                db.execute("DROP TABLE gone")
                db.commit()
            except BaseException:
                db.rollback()
                raise
            finally:
                db.execute("DETACH DATABASE old")
        return rows

    def commit(self) -> None:
        self.db.commit()

    def chunks(self, rows: Sequence[int], base: int = 0) -> list[Chunk]:
        """The chunks at `rows` (this table's), in the order asked."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        with self._lock:
            found = self.db.execute(f"{_CHUNK_SELECT} WHERE c.row IN ({marks})", list(rows)).fetchall()
        by_row = {r[0]: _chunk(r, base) for r in found}
        return [by_row[r] for r in rows if r in by_row]

    def document_chunks(self, doc_id: str, base: int = 0) -> list[Chunk]:
        with self._lock:
            found = self.db.execute(
                f"{_CHUNK_SELECT} WHERE c.doc_id = ? ORDER BY c.row", (doc_id,)
            ).fetchall()
        return [_chunk(r, base) for r in found]

    def rows_of(self, doc_ids: Collection[str]) -> list[int]:
        """The rows of the chunks of these documents."""
        with self._lock:
            found = []
            ids = list(doc_ids)
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                found += self.db.execute(f"SELECT row FROM chunks WHERE doc_id IN ({marks})", part).fetchall()
        return sorted(r for (r,) in found)

    def hashes(self) -> dict[str, str]:
        """Document id -> content hash, of every document here."""
        with self._lock:
            return dict(self.db.execute("SELECT id, hash FROM documents").fetchall())

    def sources(self) -> dict[str, str]:
        """Document id -> where it was read from, of every document here."""
        with self._lock:
            return dict(self.db.execute("SELECT id, source FROM documents").fetchall())

    def documents(self) -> list[DocumentInfo]:
        with self._lock:
            found = self.db.execute(f"{_DOC_SELECT} ORDER BY rowid").fetchall()
        return [DocumentInfo(*r[:6], metadata=json.loads(r[6])) for r in found]

    def document(self, doc_id: str) -> DocumentInfo | None:
        with self._lock:
            r = self.db.execute(f"{_DOC_SELECT} WHERE id = ?", (doc_id,)).fetchone()
        return DocumentInfo(*r[:6], metadata=json.loads(r[6])) if r else None

    def document_text(self, doc_id: str) -> str | None:
        with self._lock:
            r = self.db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return r[0] if r else None

    def texts(self, with_titles: bool = False, batch: int = 10_000) -> Iterator[str]:
        """Every chunk's text in row order, streamed; with its document's title on a line before."""
        cursor = self.db.execute(
            "SELECT d.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.row"
        )
        while rows := cursor.fetchmany(batch):
            yield from (f"{title}\n{text}" if with_titles else text for title, text in rows)

    def rows(self) -> list[int]:
        """Every chunk row, in order (0..n-1 in a sound table)."""
        with self._lock:
            return [r for (r,) in self.db.execute("SELECT row FROM chunks ORDER BY row")]

    def catalog(self) -> Catalog:
        """The table's Catalog, read on first use and kept (an opened table never changes)."""
        with self._lock:
            if self._catalog is None:
                docs = self.db.execute(
                    "SELECT rowid, id, source, json_extract(metadata, '$.date') FROM documents ORDER BY rowid"
                ).fetchall()
                rowids = np.array([d[0] for d in docs], dtype=np.int64)
                owner = np.fromiter(
                    (r for (r,) in self.db.execute(
                        "SELECT d.rowid FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.row"
                    )), dtype=np.int64,
                )  # fmt: skip
                dates = [d[3] if isinstance(d[3], str) else None for d in docs]
                owners = np.searchsorted(rowids, owner)
                self._catalog = Catalog([d[1] for d in docs], [d[2] for d in docs], dates, owners)
            return self._catalog

    def count(self) -> tuple[int, int]:
        """(documents, chunks)."""
        with self._lock:
            docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return docs, chunks


def _chunk(r: tuple, base: int) -> Chunk:
    return Chunk(base + r[0], *r[1:6], metadata=json.loads(r[6]))
