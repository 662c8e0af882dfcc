"""Question -> passages: dense and BM25 results fused into one ranking (by reciprocal rank, or
by their scores scaled and summed), the overlap between chunks of one document cut away, every
passage scored by its cosine similarity to the question."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from embeddings.config import Config
from embeddings.embedder import use_one_core
from embeddings.index import Index
from embeddings.pages import PAGE_KEYS, page_label, page_range
from embeddings.scope import Selection
from embeddings.table import Chunk
from qa.question import ASKING
from qa.words import STOP, words

# From this many rows on, a question is embedded and searched densely on a thread of its own, on
# one core, while BM25 searches on the other. Below, encoding on every core in turn is faster.
# make bench (reports/bench.md, AMD EPYC, 2 cores), p50 shipped against the other way: 3,318
# chunks 12.18 in turn against 16.78 beside; 100,000 27.68 beside against 33.11; 1,000,000 17.91
# against 19.33. Where the two cross, timed with this class on synthetic collections (200
# questions): 10,000 chunks 14.6 beside against 14.0 in turn; 30,000 17.6 against 19.3.
BESIDE = 20_000


@cache
def _one_core() -> ThreadPoolExecutor:
    """The thread that embeds questions beside BM25's search (one at a time: each is short)."""
    return ThreadPoolExecutor(1, thread_name_prefix="docqa-embed", initializer=use_one_core)


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    start: int  # character offsets into the document's text
    end: int
    text: str
    score: float  # cosine similarity to the question, the number thresholds are set on
    metadata: dict[str, object] = field(default_factory=dict)
    page: int | None = None  # the page (or slide) it begins on, in documents that have pages
    page_label: str | None = None  # where to find it, as a reader says it: "p. 12", "pp. 12–13", "slide 3"


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]  # best first
    top_score: float  # the best cosine similarity of any chunk; 0 when the index is empty
    seconds: float
    # How much of the question the best BM25 chunk holds: its score over the score of an average
    # chunk holding every question word once (capped at 1). A code or a rare name that only BM25
    # matches shows here, not in `top_score`.
    lexical: float = 0.0


def fuse(rankings: list[list[int]], weights: list[float], k: int = 60) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of ranked row lists: (row, fused score), best first."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def convex(
    rankings: list[list[tuple[int, float]]], weights: list[float], depth: int
) -> list[tuple[int, float]]:
    """Weighted sum of (row, score) rankings' scores, each scaled to 0-1 over its own results (a
    row a ranking did not return gets 0 from it): (row, fused score), best first. A ranking that
    was cut at `depth` is scaled from its last result up; one shorter than `depth` holds every
    row that scores at all on its side (BM25's hits), so it is scaled from 0 up, and its only or
    last hit still counts."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        low, high = min(v for _, v in ranking), max(v for _, v in ranking)
        if len(ranking) < depth:
            low = min(low, 0.0)
        for row, v in ranking:
            fused[row] = fused.get(row, 0.0) + weight * (v - low) / max(high - low, 1e-9)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def combine(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], depth: int,
            fusion: str = "reciprocal-rank", rrf_k: int = 60, weights: tuple[float, float] = (1.0, 1.0),
            dense_share: float = 0.5) -> list[tuple[int, float]]:  # fmt: skip
    """The dense and BM25 (row, score) results (up to `depth` of each), best first, as one ranking
    by `fusion`: by rank (`rrf_k`, `weights`) or by scaled scores (`dense_share` on the dense side)."""
    if fusion == "convex":
        return convex([dense, lexical], [dense_share, 1 - dense_share], depth)
    return fuse([[r for r, _ in dense], [r for r, _ in lexical]], list(weights), rrf_k)


def trim(chunks: list[tuple[Chunk, float]], reading: bool = False) -> list[Passage]:
    """Chunks as passages, best first, with the text another chunk of the same document already
    holds cut away (chunks overlap), so no sentence is shown to the model twice. The better-ranked
    chunk keeps it; with `reading`, the one that comes first in the document, so that questions
    which find the same chunks are shown the same texts, whichever chunk each ranked first (where
    the context budget then leaves that first chunk out of the prompt, the overlap goes with it)."""
    order = range(len(chunks))
    if reading:
        order = sorted(order, key=lambda i: (chunks[i][0].doc_id, chunks[i][0].start, i))
    kept: dict[int, Passage] = {}
    for i in order:
        chunk, score = chunks[i]
        start, end = chunk.start, chunk.end
        for p in kept.values():
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
        kept[i] = _passage(chunk, start + lead, text.strip(), score)
    return [kept[i] for i in sorted(kept)]


def _passage(chunk: Chunk, start: int, text: str, score: float) -> Passage:
    end = start + len(text)
    pages = page_range(chunk.metadata, start, end)
    metadata = {k: v for k, v in chunk.metadata.items() if k not in PAGE_KEYS}
    return Passage(chunk.doc_id, chunk.title, start, end, text, score, metadata,
                   pages[0] if pages else None, page_label(chunk.metadata, start, end))  # fmt: skip


class Retriever:
    def __init__(self, index: Index, k: int = 5, candidates: int = 50, rrf_k: int = 60,
                 weights: tuple[float, float] = (1.0, 1.0), fusion: str = "reciprocal-rank",
                 dense_share: float = 0.5, whole: int = 0, beside: int = BESIDE) -> None:  # fmt: skip
        """`weights` weigh the dense and BM25 ranks in reciprocal-rank fusion; `dense_share` the
        dense scores in convex fusion (BM25's get the rest); `whole`: a document of at most this
        many chunks that every chosen chunk comes from is shown whole (0: never); `beside`: from
        this many rows on, the question is embedded beside BM25's search (see BESIDE)."""
        self.index, self.k, self.candidates, self.rrf_k, self.weights = index, k, candidates, rrf_k, weights
        self.fusion, self.dense_share, self.whole, self.beside = fusion, dense_share, whole, beside

    @classmethod
    def of(cls, index: Index, config: Config) -> Retriever:
        """The retriever the settings describe (what `ask` searches with)."""
        c = config
        return cls(index, c.top_k, c.candidates, c.rrf_k, fusion=c.fusion, dense_share=c.dense_share,
                   whole=c.whole_document)  # fmt: skip

    def __call__(self, question: str, within: Selection | None = None, reading: bool = False) -> Retrieval:
        """The passages for `question`, from the chunks `within` a scope's selection when one is
        given; with `reading`, the overlap of two chunks shown with the first (see `trim`)."""
        started = time.perf_counter()
        query, fused, best, lexical = self._search(question, within)
        chosen = self._distinct([row for row, _ in fused])
        chunks = chosen + self._rest_of_document(chosen)
        # Every passage gets a cosine score, also those only BM25 found.
        rows = np.array([c.row for c in chunks], dtype=np.int64)
        cosines = self.index.vectors.get(rows) @ query[0] if len(rows) else []
        scored = [(c, float(s)) for c, s in zip(chunks, cosines, strict=True)]
        # The chunks chosen by rank first, then the rest of their document, the closest first.
        scored = scored[: len(chosen)] + sorted(scored[len(chosen) :], key=lambda cs: -cs[1])
        passages = trim(scored, reading)
        return Retrieval(passages, best, time.perf_counter() - started, lexical)

    def _distinct(self, rows: list[int]) -> list[Chunk]:
        """The first `k` chunks of `rows` whose texts differ: a text that two documents hold (a copy
        of a file, a page footer) is shown once, from the better-ranked. Only the chunks that are
        shown are read, and the next ones only where a text came twice."""
        chosen: list[Chunk] = []
        seen: set[str] = set()
        at = 0
        while len(chosen) < self.k and at < len(rows):
            wanted = self.k - len(chosen)
            for chunk in self.index.table.chunks(rows[at : at + wanted]):
                text = " ".join(chunk.text.split())
                if text not in seen:
                    seen.add(text)
                    chosen.append(chunk)
            at += wanted
        return chosen

    def _rest_of_document(self, chosen: list[Chunk]) -> list[Chunk]:
        """The other chunks of the one document that every chosen chunk comes from, when it has
        at most `whole` chunks: a short document that holds all a question found is shown whole
        (small-to-big retrieval), so every question about it gets the same passages."""
        docs = {c.doc_id for c in chosen}
        if len(docs) != 1 or self.whole <= 0:
            return []
        (doc_id,) = docs
        info = self.index.table.document(doc_id)
        if info is None or info.chunks > self.whole:
            return []
        rows = {c.row for c in chosen}
        return [c for c in self.index.table.document_chunks(doc_id) if c.row not in rows]

    def rank(
        self, question: str, query: np.ndarray, depth: int, within: Selection | None = None
    ) -> tuple[list[tuple[int, float]], float, float]:
        """Fused (row, score) pairs best first from `depth` dense and `depth` BM25 results, the
        best dense cosine similarity, and the lexical evidence (see Retrieval.lexical); both
        searches filter on `within` before they rank."""
        return self._fuse(self._dense(query, depth, within), *self._lexical(question, depth, within), depth)

    def _search(
        self, question: str, within: Selection | None
    ) -> tuple[np.ndarray, list[tuple[int, float]], float, float]:
        """The question's vector and `rank`'s results. In a large index the question is embedded
        and searched densely on a thread that uses one core while BM25 searches on this one."""
        depth = self.candidates
        if not self.embeds_beside:
            query = self.index.embedder.embed([question])
            return query, *self.rank(question, query, depth, within)
        dense = _one_core().submit(self._embedded, question, depth, within)
        lexical = self._lexical(question, depth, within)
        query, found = dense.result()
        return query, *self._fuse(found, *lexical, depth)

    @property
    def embeds_beside(self) -> bool:
        """Whether questions are embedded beside BM25's search in this index (see BESIDE)."""
        return self.index.bm25.size >= self.beside

    def _embedded(
        self, question: str, depth: int, within: Selection | None
    ) -> tuple[np.ndarray, list[tuple[int, float]]]:
        query = self.index.embedder.embed([question])
        return query, self._dense(query, depth, within)

    def _dense(self, query: np.ndarray, depth: int, within: Selection | None) -> list[tuple[int, float]]:
        scores, rows = self.index.vectors.search(query, depth, within)
        return [(int(r), float(v)) for r, v in zip(rows[0], scores[0], strict=True) if r >= 0]

    def _lexical(
        self, question: str, depth: int, within: Selection | None
    ) -> tuple[list[tuple[int, float]], float]:
        """BM25's (row, score) results and the lexical evidence."""
        allowed = within.allowed if within is not None else None
        hits = self.index.bm25.search(question, depth, allowed)
        return hits, self.lexical(question, allowed, hits) if hits else 0.0

    def _fuse(
        self, dense: list[tuple[int, float]], hits: list[tuple[int, float]], lexical: float, depth: int
    ) -> tuple[list[tuple[int, float]], float, float]:
        fused = combine(dense, hits, depth, self.fusion, self.rrf_k, self.weights, self.dense_share)
        return fused, dense[0][1] if dense else 0.0, lexical

    def lexical(
        self,
        question: str,
        allowed: list[np.ndarray] | None = None,
        hits: list[tuple[int, float]] | None = None,
    ) -> float:
        """How much of the question's own terms (not the words it asks with) the best BM25 chunk
        (among the `allowed` rows, if given) holds, from 0 to 1. `hits`: the question's own BM25
        ranking, which serves where it has no asking words to leave out."""
        bm25 = self.index.bm25
        terms = " ".join(w for w in words(question) if w not in STOP and w not in ASKING)
        ceiling = bm25.ceiling(terms)
        if ceiling <= 0:
            return 0.0
        if hits is None or sorted(bm25.tokens(terms)) != sorted(bm25.tokens(question)):
            hits = bm25.search(terms, 1, allowed)
        return round(min(hits[0][1] / ceiling, 1.0), 4) if hits else 0.0
