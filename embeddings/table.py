"""The chunk table: documents and chunks in SQLite, row i of `chunks` is vector i of the index."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


_CHUNK_SELECT = (
    "SELECT c.row, c.doc_id, d.title, c.start, c.end, c.text, d.metadata "
    "FROM chunks c JOIN documents d ON d.id = c.doc_id"
)
_DOC_SELECT = "SELECT id, title, source, hash, chunks, indexed_at, metadata FROM documents"


class Table:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        self._lock = threading.Lock()  # one connection shared by the UI's worker threads

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

    def copy_from(self, old: Table, doc_id: str, first_row: int) -> list[int]:
        """Carry one unchanged document over from an older table; returns its old rows."""
        doc = old.db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
        rows = old.db.execute(
            "SELECT row, start, end, tokens, text FROM chunks WHERE doc_id = ? ORDER BY row", (doc_id,)
        ).fetchall()
        with self._lock:
            self.db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", doc)
            self.db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                [(first_row + i, doc_id, *r[1:]) for i, r in enumerate(rows)],
            )
        return [r[0] for r in rows]

    def commit(self) -> None:
        self.db.commit()

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """The chunks at `rows`, in the order asked."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        with self._lock:
            found = self.db.execute(f"{_CHUNK_SELECT} WHERE c.row IN ({marks})", list(rows)).fetchall()
        by_row = {r[0]: Chunk(*r[:6], metadata=json.loads(r[6])) for r in found}
        return [by_row[r] for r in rows if r in by_row]

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        with self._lock:
            found = self.db.execute(
                f"{_CHUNK_SELECT} WHERE c.doc_id = ? ORDER BY c.row", (doc_id,)
            ).fetchall()
        return [Chunk(*r[:6], metadata=json.loads(r[6])) for r in found]

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

    def count(self) -> tuple[int, int]:
        """(documents, chunks)."""
        with self._lock:
            docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return docs, chunks
