"""The dense side of the index: FAISS inner product over unit vectors (cosine similarity)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from embeddings.errors import IndexCorrupt

# Above this many vectors an index is searched approximately (HNSW): exact search grows linearly
# with the collection, HNSW stays near a millisecond. Chosen from `make bench` (reports/bench.md).
EXACT_LIMIT = 200_000
HNSW_NEIGHBOURS = 32
HNSW_BUILD_DEPTH = 80  # efConstruction
# efSearch: on 1M clustered synthetic vectors, recall@10 against exact search was 0.87 at 256,
# 0.94 at 512 and 0.98 at 1024, at about the same 6-7 ms for one query (reports/bench.md).
HNSW_SEARCH_DEPTH = 1024


class Vectors:
    def __init__(self, index: faiss.Index) -> None:
        self.index = index
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = HNSW_SEARCH_DEPTH

    @classmethod
    def empty(cls, dim: int) -> Vectors:
        return cls(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path) -> Vectors:
        try:
            return cls(faiss.read_index(str(path)))
        except RuntimeError as e:
            raise IndexCorrupt(f"{path} is not a readable FAISS index ({e}); run `docqa index`") from None

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @property
    def approximate(self) -> bool:
        return hasattr(self.index, "hnsw")

    def settle(self, exact_limit: int = EXACT_LIMIT) -> Vectors:
        """The index to keep: exact search up to `exact_limit` vectors, HNSW above."""
        if len(self) <= exact_limit or self.approximate:
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

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (len(queries), k'), best first; k' = min(k, len(self))."""
        k = min(k, len(self))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
