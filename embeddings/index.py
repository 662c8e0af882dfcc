"""An opened index: dense and BM25 search over the live chunks of its segments, and the documents
behind them. Rows number the chunks of the whole index: segment after segment, in manifest order."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings import store
from embeddings.embedder import Embedder
from embeddings.errors import IndexCorrupt, IndexMismatch, QuestionError
from embeddings.lexical import Lexical, Part
from embeddings.scope import Scope, Selection
from embeddings.segment import Segment
from embeddings.table import Chunk, DocumentInfo


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass
class View:
    """One segment as this index sees it: where its rows start, and what is deleted from it."""

    segment: Segment
    base: int
    deleted: frozenset[str]
    dead: np.ndarray  # its rows of deleted documents


class Index:
    def __init__(
        self, folder: Path, manifest: dict, segments: list[Segment], embedder: Embedder | None = None
    ):
        """An index over `segments` (opened, and handed over) as `manifest` lists them."""
        self.folder, self.manifest = folder, manifest
        self.views, base = [], 0
        for entry, segment in zip(manifest["segments"], segments, strict=True):
            deleted = frozenset(entry.get("deleted", []))
            dead = np.array(segment.table.rows_of(deleted) if deleted else [], dtype=np.int64)
            self.views.append(View(segment, base, deleted, dead))
            base += len(segment)
        self.table = Chunks(self.views)
        self.vectors = LiveVectors(self.views)
        self.bm25 = Lexical([Part(v.segment.terms, v.base, _alive(v)) for v in self.views])
        self._embedder = embedder
        self._close = weakref.finalize(self, _release, [v.segment for v in self.views])
        if embedder is not None:
            self._check(embedder)

    @classmethod
    def open(cls, index_dir: Path | str, embedder: Embedder | None = None) -> Index:
        """The live generation at `index_dir`; `embedder` must be the one it was built with."""
        return _open(Path(index_dir), embedder, {})

    def reopen(self, embedder: Embedder | None = None) -> Index:
        """The live generation now, sharing this index's segments that it still lists (they are
        not opened twice); this index stays usable until it is closed or dropped."""
        return _open(
            self.folder.parent, embedder or self._embedder, {v.segment.name: v.segment for v in self.views}
        )

    def _check(self, embedder: Embedder) -> None:
        built = self.manifest["embedding"]
        if embedder.fingerprint != built["fingerprint"]:
            raise IndexMismatch(
                f"the index in {self.folder.parent} was built with embedding model {built['model']} "
                f"({built['fingerprint']}), not {embedder.name} ({embedder.fingerprint}): rebuild it "
                f"with `docqa index --model {embedder.name}`, or search it with {built['model']}"
            )

    @property
    def embedder(self) -> Embedder:
        """The model that made the vectors, loaded on first dense search."""
        if self._embedder is None:
            embedder = Embedder.load(self.manifest["embedding"]["model"])
            self._check(embedder)
            self._embedder = embedder
        return self._embedder

    @property
    def segments(self) -> list[Segment]:
        return [v.segment for v in self.views]

    def __len__(self) -> int:
        return len(self.vectors)

    def documents(self) -> list[DocumentInfo]:
        return self.table.documents()

    def document(self, doc_id: str) -> DocumentInfo | None:
        return self.table.document(doc_id)

    def document_text(self, doc_id: str) -> str | None:
        return self.table.document_text(doc_id)

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        return self.table.document_chunks(doc_id)

    def select(self, scope: Scope) -> Selection:
        """Which rows of each segment are in `scope` (live documents only)."""
        allowed, documents, found = [], 0, set()
        for view in self.views:
            catalog = view.segment.table.catalog()
            keep = np.array(
                [d not in view.deleted and scope.admits(d, s, t)
                 for d, s, t in zip(catalog.ids, catalog.sources, catalog.dates, strict=True)],
                dtype=bool,
            )  # fmt: skip
            documents += int(keep.sum())
            found.update(d for d, k in zip(catalog.ids, keep.tolist(), strict=True) if k)
            allowed.append(keep[catalog.owners] if len(catalog.owners) else np.zeros(0, dtype=bool))
        return Selection(allowed, documents, sorted(scope.doc_ids - found))

    def within(self, scope: Scope) -> Selection:
        """`select(scope)`, or a QuestionError that says why the scope holds no document."""
        selection = self.select(scope)
        if selection.unknown:
            names = ", ".join(repr(d) for d in selection.unknown)
            raise QuestionError(
                f"no document {names} in the index (removed since, or not its id): pick from the documents "
                f"listed (`docqa documents` on the command line)"
            )
        if selection.empty:
            raise QuestionError(
                f"no indexed document matches the scope ({scope.describe()}): widen it, or leave it out "
                "to ask all documents"
            )
        return selection

    def dense(self, query: str, k: int = 10, scope: Scope | None = None) -> list[Hit]:
        """Chunks nearest in meaning (within `scope`); scores are cosine similarities."""
        return self.dense_vectors(self.embedder.embed([query]), k, self.select(scope) if scope else None)[0]

    def dense_vectors(
        self, queries: np.ndarray, k: int = 10, within: Selection | None = None
    ) -> list[list[Hit]]:
        """Dense search for already-embedded queries, one list of hits per query."""
        scores, rows = self.vectors.search(queries, k, within)
        return [
            self._hits(list(zip(r.tolist(), s.tolist(), strict=True)))
            for s, r in zip(scores, rows, strict=True)
        ]

    def lexical(self, query: str, k: int = 10, scope: Scope | None = None) -> list[Hit]:
        """Chunks sharing the query's words (BM25, within `scope`); none when no word is in the index."""
        within = self.select(scope) if scope else None
        return self._hits(self.bm25.search(query, k, within.allowed if within else None))

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        ranked = [(r, s) for r, s in ranked if r >= 0]  # FAISS pads with -1 when short
        chunks = self.table.chunks([r for r, _ in ranked])
        return [Hit(c, s) for c, (_, s) in zip(chunks, ranked, strict=True)]

    def close(self) -> None:
        """Let go of the segments (those another index shares stay open for it). An index that
        is dropped unclosed is closed when it is collected."""
        self._close()


def _open(index_dir: Path, embedder: Embedder | None, shared: dict[str, Segment]) -> Index:
    for _ in range(10):
        folder, manifest = store.open_current(index_dir)
        segments: list[Segment] = []
        try:
            for entry in manifest["segments"]:
                name = entry["name"]
                if name in shared:
                    segments.append(shared[name].share())
                else:
                    segments.append(Segment.open(store.segment_folder(index_dir, name)))
            return Index(folder, manifest, segments, embedder)
        except IndexCorrupt:
            _release(segments)
            if store.replaced(index_dir, folder):  # a build replaced it while it was opened
                continue
            raise
        except BaseException:
            _release(segments)
            raise
    raise IndexCorrupt(f"the index in {index_dir} keeps changing while it is opened; try again")


def _release(segments: list[Segment]) -> None:
    for segment in segments:
        segment.close()


def _alive(view: View) -> np.ndarray | None:
    if not len(view.dead):
        return None
    alive = np.ones(len(view.segment), dtype=bool)
    alive[view.dead] = False
    return alive


class Chunks:
    """The chunk tables of the segments read as one, in the index's rows; deleted documents are
    left out."""

    def __init__(self, views: list[View]) -> None:
        self.views = views
        self._starts = np.array([v.base for v in views], dtype=np.int64)
        self._lock = threading.Lock()

    def _view(self, doc_id: str) -> View | None:
        for view in reversed(self.views):  # the newest segment holding it
            if doc_id not in view.deleted and view.segment.table.document(doc_id) is not None:
                return view
        return None

    def chunks(self, rows: list[int]) -> list[Chunk]:
        """The chunks at `rows`, in the order asked."""
        found: dict[int, Chunk] = {}
        at = np.searchsorted(self._starts, np.asarray(rows, dtype=np.int64), side="right") - 1
        for i in sorted(set(at.tolist())):
            view = self.views[i]
            local = [r - view.base for r, a in zip(rows, at.tolist(), strict=True) if a == i]
            found |= {
                c.row: c for c in view.segment.table.chunks(local, view.base) if c.doc_id not in view.deleted
            }
        return [found[r] for r in rows if r in found]

    def documents(self) -> list[DocumentInfo]:
        return [d for v in self.views for d in v.segment.table.documents() if d.id not in v.deleted]

    def document(self, doc_id: str) -> DocumentInfo | None:
        view = self._view(doc_id)
        return view.segment.table.document(doc_id) if view else None

    def document_text(self, doc_id: str) -> str | None:
        view = self._view(doc_id)
        return view.segment.table.document_text(doc_id) if view else None

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        view = self._view(doc_id)
        return view.segment.table.document_chunks(doc_id, view.base) if view else []

    def count(self) -> tuple[int, int]:
        """(documents, chunks) that are live."""
        counts = [v.segment.table.count() for v in self.views]
        documents = sum(d for d, _ in counts) - sum(len(v.deleted) for v in self.views)
        return documents, sum(c for _, c in counts) - sum(len(v.dead) for v in self.views)


class LiveVectors:
    """The vectors of the segments searched as one; deleted chunks are never returned."""

    def __init__(self, views: list[View]) -> None:
        self.views = views
        self._starts = np.array([v.base for v in views], dtype=np.int64)

    def __len__(self) -> int:
        return sum(len(v.segment) - len(v.dead) for v in self.views)

    @property
    def dim(self) -> int:
        return self.views[0].segment.vectors.dim

    @property
    def approximate(self) -> bool:
        return any(v.segment.vectors.approximate for v in self.views)

    def search(
        self, queries: np.ndarray, k: int, within: Selection | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (len(queries), k), best first, padded with -1 rows when short;
        only rows `within` the selection, when one is given."""
        if within is None:
            parts = [v.segment.vectors.search(queries, k, v.dead) for v in self.views]
        else:
            parts = [
                v.segment.vectors.search_within(queries, k, allowed)
                for v, allowed in zip(self.views, within.allowed, strict=True)
            ]
        scores = np.concatenate([s for s, _ in parts] or [np.zeros((len(queries), 0))], axis=1)
        rows = np.concatenate(
            [np.where(r >= 0, r + v.base, -1) for (_, r), v in zip(parts, self.views, strict=True)]
            or [np.zeros((len(queries), 0), dtype=np.int64)],
            axis=1,
        )
        scores = np.where(rows >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        best_rows = np.take_along_axis(rows, order, axis=1).astype(np.int64)
        return np.where(best_rows >= 0, best_scores, -1.0).astype(np.float32), best_rows

    def get(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors at `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        at = np.searchsorted(self._starts, rows, side="right") - 1
        for i in set(at.tolist()):
            mask = at == i
            out[mask] = self.views[i].segment.vectors.get(rows[mask] - self.views[i].base)
        return out
