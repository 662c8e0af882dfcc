"""An opened index: dense and BM25 search over the same chunks, and the documents behind them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings import store
from embeddings.embedder import Embedder
from embeddings.errors import IndexMismatch
from embeddings.lexical import Lexical
from embeddings.table import Chunk, DocumentInfo, Table
from embeddings.vectors import Vectors


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


class Index:
    def __init__(self, folder: Path, manifest: dict, embedder: Embedder | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.table = Table.open(folder / "chunks.sqlite")
        self.vectors = Vectors.load(folder / "vectors.faiss")
        self.bm25 = Lexical.load(folder / "bm25")
        self._embedder = embedder
        if embedder is not None:
            self._check(embedder)

    @classmethod
    def open(cls, index_dir: Path | str, embedder: Embedder | None = None) -> Index:
        """The live generation at `index_dir`, checked; `embedder` must be the one it was built with."""
        folder, manifest = store.open_current(Path(index_dir))
        return cls(folder, manifest, embedder)

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

    def dense(self, query: str, k: int = 10) -> list[Hit]:
        """Chunks nearest in meaning; scores are cosine similarities."""
        return self.dense_vectors(self.embedder.embed([query]), k)[0]

    def dense_vectors(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Dense search for already-embedded queries, one list of hits per query."""
        scores, rows = self.vectors.search(queries, k)
        return [
            self._hits(list(zip(r.tolist(), s.tolist(), strict=True)))
            for s, r in zip(scores, rows, strict=True)
        ]

    def lexical(self, query: str, k: int = 10) -> list[Hit]:
        """Chunks sharing the query's words (BM25); none when no word is in the index."""
        return self._hits(self.bm25.search(query, k))

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        ranked = [(r, s) for r, s in ranked if r >= 0]  # FAISS pads with -1 when short
        chunks = self.table.chunks([r for r, _ in ranked])
        return [Hit(c, s) for c, (_, s) in zip(chunks, ranked, strict=True)]

    def close(self) -> None:
        self.table.close()
