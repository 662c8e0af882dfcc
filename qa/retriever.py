"""Question -> passages: dense and BM25 results fused by reciprocal rank, the overlap between
chunks of one document cut away, every passage scored by its cosine similarity to the question."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from embeddings.index import Index
from embeddings.table import Chunk


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    start: int  # character offsets into the document's text
    end: int
    text: str
    score: float  # cosine similarity to the question, the number thresholds are set on
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]  # best first
    top_score: float  # the best cosine similarity of any chunk; 0 when the index is empty
    seconds: float


def fuse(rankings: list[list[int]], weights: list[float], k: int = 60) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of ranked row lists: (row, fused score), best first."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def trim(chunks: list[tuple[Chunk, float]]) -> list[Passage]:
    """Chunks as passages, best first, with the text a better-ranked chunk of the same document
    already holds cut away (chunks overlap), so no sentence is shown to the model twice."""
    passages: list[Passage] = []
    for chunk, score in chunks:
        start, end = chunk.start, chunk.end
        for p in passages:
            if p.doc_id != chunk.doc_id or p.end <= start or end <= p.start:
                continue
            if p.start <= start:
                start = max(start, p.end)
            else:
                end = min(end, p.start)
        if end - start < 1 or not chunk.text[start - chunk.start : end - chunk.start].strip():
            continue
        text = chunk.text[start - chunk.start : end - chunk.start]
        lead = len(text) - len(text.lstrip())
        text = text.strip()
        passages.append(
            Passage(
                chunk.doc_id, chunk.title, start + lead, start + lead + len(text), text, score, chunk.metadata
            )
        )
    return passages


class Retriever:
    def __init__(self, index: Index, k: int = 5, candidates: int = 50, rrf_k: int = 60,
                 weights: tuple[float, float] = (1.0, 1.0)) -> None:  # fmt: skip
        self.index, self.k, self.candidates, self.rrf_k, self.weights = index, k, candidates, rrf_k, weights

    def __call__(self, question: str) -> Retrieval:
        started = time.perf_counter()
        query = self.index.embedder.embed([question])
        fused, best = self.rank(question, query, self.candidates)
        rows = [row for row, _ in fused[: self.k]]
        chunks = self.index.table.chunks(rows)  # only the chunks that are shown are read
        # Every passage gets a cosine score, also those only BM25 found.
        cosines = self.index.vectors.get(np.array(rows, dtype=np.int64)) @ query[0] if rows else []
        passages = trim([(c, float(s)) for c, s in zip(chunks, cosines, strict=True)])
        return Retrieval(passages, best, time.perf_counter() - started)

    def rank(self, question: str, query: np.ndarray, depth: int) -> tuple[list[tuple[int, float]], float]:
        """Fused (row, score) pairs best first from `depth` dense and `depth` BM25 results, and
        the best dense cosine similarity."""
        scores, rows = self.index.vectors.search(query, depth)
        dense = [int(r) for r in rows[0] if r >= 0]
        lexical = [row for row, _ in self.index.bm25.search(question, depth)]
        best = float(scores[0][0]) if dense else 0.0
        return fuse([dense, lexical], list(self.weights), self.rrf_k), best
