"""The dense side of the index: FAISS inner product over unit vectors (cosine similarity)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from embeddings import compressed
from embeddings.errors import IndexCorrupt

# Above this many vectors an index is searched approximately (HNSW): exact search grows linearly
# with the collection, HNSW stays near a millisecond. Chosen from `make bench` (reports/bench.md).
# Past Config.compress_above an IVF-PQ index with an exact rerank replaces HNSW (compressed.py).
EXACT_LIMIT = 200_000
HNSW_NEIGHBOURS = 32
HNSW_BUILD_DEPTH = 80  # efConstruction
# efSearch: on 1M clustered synthetic vectors, recall@10 against exact search was 0.87 at 256,
# 0.94 at 512 and 0.98 at 1024, at about the same 6-7 ms for one query (reports/bench.md).
HNSW_SEARCH_DEPTH = 1024
# A scope of up to this many chunks in an HNSW segment is searched exactly, over its own vectors:
# the graph search finds too few of a small scope's chunks among all the others.
EXACT_SCOPE = 50_000


class Vectors:
    def __init__(self, index: faiss.Index) -> None:
        self.index = index
        self.compressed = compressed.is_compressed(index)
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = HNSW_SEARCH_DEPTH
        elif self.compressed:
            self.index = compressed.prepared(index)

    @classmethod
    def empty(cls, dim: int) -> Vectors:
        return cls(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path) -> Vectors:
        """The index at `path`, its vectors mapped from the file rather than read (where this
        FAISS can): opening a segment reads none of them."""
        try:
            return cls(faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0)))
        except RuntimeError as e:
            raise IndexCorrupt(f"{path} is not a readable FAISS index ({e}); run `docqa index`") from None

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @property
    def approximate(self) -> bool:
        return hasattr(self.index, "hnsw") or self.compressed

    def settle(
        self,
        exact_limit: int | None = None,
        compress_above: int | None = None,
        shard_map: compressed.ShardMap = compressed.local_map,
    ) -> Vectors:
        """The index to keep: exact search up to `exact_limit` (EXACT_LIMIT) vectors, HNSW above,
        IVF-PQ with an exact rerank past `compress_above` (built in shards by `shard_map`)."""
        if self.approximate:
            return self
        if compress_above is not None and len(self) > max(compress_above, compressed.SMALLEST - 1):
            return Vectors(compressed.build(self.index, shard_map))
        if len(self) <= (EXACT_LIMIT if exact_limit is None else exact_limit):
            return self
        hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_BUILD_DEPTH
        for start in range(0, len(self), 100_000):  # copy in slices: no second full matrix in memory
            hnsw.add(self.get(np.arange(start, min(start + 100_000, len(self)))))
        return Vectors(hnsw)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def get(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors at `rows`, to carry unchanged documents into a new index."""
        return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def search(
        self, queries: np.ndarray, k: int, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (len(queries), k'), best first; k' = min(k, len(self)). Rows in
        `excluded` (deleted chunks) are never returned; FAISS pads with -1 when short."""
        k = min(k, len(self))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if excluded is None or not len(excluded):
            return self.index.search(queries, k)
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.asarray(excluded, dtype=np.int64)))
        return self.index.search(queries, k, params=self._parameters(selector, k))

    def _parameters(self, selector: faiss.IDSelector, k: int) -> faiss.SearchParameters:
        if self.compressed:
            return compressed.search_parameters(selector, k)
        if self.approximate:
            return faiss.SearchParametersHNSW(efSearch=max(HNSW_SEARCH_DEPTH, k), sel=selector)
        return faiss.SearchParameters(sel=selector)

    def search_within(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """As `search`, over the rows where the boolean mask `allowed` is True only; k' is at most
        their number, and every row returned is one of them."""
        rows = np.flatnonzero(allowed)
        k = min(k, len(rows))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.approximate and len(rows) <= EXACT_SCOPE:
            return self._exact(queries, rows, k)
        bits = np.packbits(allowed, bitorder="little")  # FAISS reads bit i of byte i >> 3; kept alive here
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        scores, found = self.index.search(queries, k, params=self._parameters(selector, k))
        if self.approximate and (found < 0).any():  # ran short inside the scope: search it exactly
            return self._exact(queries, rows, k)
        return scores, found

    def _exact(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner-product search over `rows`, their vectors read a slice at a time."""
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, len(rows), 65_536):
            part = rows[start : start + 65_536]
            scores = queries @ self.get(part).T
            best_scores = np.concatenate([best_scores, scores], axis=1)
            best_rows = np.concatenate([best_rows, np.broadcast_to(part, scores.shape)], axis=1)
            order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            best_rows = np.take_along_axis(best_rows, order, axis=1)
        return best_scores.astype(np.float32), best_rows.astype(np.int64)
