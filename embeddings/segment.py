"""One immutable part of an index: chunks in SQLite, their vectors in FAISS, their term counts for
BM25. A build writes one small segment for what changed and marks the documents it replaces as
deleted in older ones; now and then it merges small segments into one and rewrites a segment that
is mostly deleted, so each chunk is rewritten a few times in its life, not at every build."""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np

from embeddings.chunker import Span
from embeddings.lexical import Terms
from embeddings.readers import Document
from embeddings.table import Table
from embeddings.vectors import Vectors

Settle = Callable[[Vectors], Vectors]  # a finished segment's vectors -> the index to keep

MERGE_FACTOR = 4  # this many segments of one size class (a power of 4 in live chunks) merge into one
MOSTLY_DELETED = 0.3  # a segment with more of its chunks deleted than this is rewritten


class Segment:
    """An open segment; shared by the indexes that list it, closed when the last lets go."""

    def __init__(self, folder: Path, table: Table, vectors: Vectors | None, terms: Terms | None) -> None:
        self.folder, self.name = folder, folder.name
        self.table, self.terms = table, terms
        self._vectors = vectors
        self._users, self._lock = 1, threading.Lock()

    @classmethod
    def open(cls, folder: Path, terms: bool = True, vectors: bool = True) -> Segment:
        """`terms=False` for a generation of format 1, which kept its BM25 data another way.
        `vectors=False` leaves the vectors on disk until they are first used: a build reads only
        the tables of the segments it does not merge (at a million chunks an HNSW graph takes
        seconds to read)."""
        table = Table.open(folder / "chunks.sqlite")
        try:
            return cls(
                folder,
                table,
                Vectors.load(folder / "vectors.faiss") if vectors else None,
                Terms.open(folder / "terms") if terms else None,
            )
        except BaseException:
            table.close()
            raise

    @property
    def vectors(self) -> Vectors:
        with self._lock:
            if self._vectors is None:
                self._vectors = Vectors.load(self.folder / "vectors.faiss")
            return self._vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def share(self) -> Segment:
        with self._lock:
            self._users += 1
        return self

    def close(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
        self.table.close()
        if self.terms is not None:
            self.terms.close()


class SegmentWriter:
    """Fills a new segment folder: documents with their vectors, then its BM25 data and index."""

    def __init__(self, folder: Path, dim: int) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self.table = Table.create(folder / "chunks.sqlite")
        self.vectors = Vectors.empty(dim)

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, doc: Document, spans: Sequence[Span], vectors: np.ndarray, indexed_at: str) -> None:
        self.table.add(doc, spans, len(self.vectors), indexed_at)
        self.vectors.add(vectors)

    def carry(self, source: Segment, gone: Collection[str]) -> None:
        """Every document of `source` but those in `gone`, with its vectors, as it is."""
        rows = self.table.copy_from(source.folder / "chunks.sqlite", gone, len(self.vectors))
        for start in range(0, len(rows), 65_536):  # in slices: no second copy of every vector at once
            self.vectors.add(source.vectors.get(np.array(rows[start : start + 65_536])))

    def finish(self, with_titles: bool, settle: Settle = Vectors.settle) -> dict | None:
        """Write the vectors (the index `settle` picks for their number) and BM25 data beside the
        table; the segment's manifest entry, or None (and no folder) when it holds nothing."""
        self.table.commit()
        documents, chunks = self.table.count()
        if chunks == 0:
            self.table.close()
            shutil.rmtree(self.folder)
            return None
        settle(self.vectors).save(self.folder / "vectors.faiss")
        Terms.write(self.table.texts(with_titles=with_titles), self.folder / "terms")
        self.table.close()
        return {"name": self.folder.name, "documents": documents, "chunks": chunks, "deleted": [],
                "deleted_chunks": 0}  # fmt: skip


def plan(segments: Sequence[dict]) -> list[list[int]]:
    """Positions of the manifest's segments to rewrite, each group as one new segment: a segment
    mostly deleted on its own, and MERGE_FACTOR or more of one size class together."""
    groups: list[list[int]] = []
    classes: dict[int, list[int]] = {}
    for i, s in enumerate(segments):
        live = s["chunks"] - s["deleted_chunks"]
        if live <= 0 or s["deleted_chunks"] > MOSTLY_DELETED * s["chunks"] or s.get("legacy"):
            groups.append([i])
        else:
            classes.setdefault(int(math.log(live, MERGE_FACTOR)), []).append(i)
    groups += [members for members in classes.values() if len(members) >= MERGE_FACTOR]
    return sorted(groups)
