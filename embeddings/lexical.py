"""BM25 over the same chunks as the vectors: English stemmer and stop words (bm25s's tokenizer),
Lucene's scoring (k1 1.5, b 0.75), as bm25s computes it.

Each segment keeps term counts, not scores, so a query is scored with the statistics of the
whole live index (document count, average length, document frequencies): a new segment of one
document scores like the million chunks beside it, and removed chunks drop out at once. Nothing
is rebuilt when a segment is added; opening one maps its arrays and reads none of them."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.errors import IndexCorrupt

K1, B = 1.5, 0.75
_ARRAYS = ("indptr", "rows", "counts", "lengths")


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(texts: Sequence[str]) -> tuple[list[list[int]], dict[str, int]]:
    """Each text as term ids, and the terms."""
    import bm25s

    tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
    return tokens.ids, tokens.vocab


@dataclass
class Terms:
    """One segment's term counts: term t occurs counts[i] times in local row rows[i], for i in
    indptr[t]:indptr[t + 1]; lengths[r] is row r's number of terms."""

    ids: sqlite3.Connection  # term -> id, looked up per query word; never loaded whole
    indptr: np.ndarray  # (terms + 1,) int64
    rows: np.ndarray  # int32
    counts: np.ndarray  # float32
    lengths: np.ndarray  # (rows,) float32
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def write(texts: Sequence[str], folder: Path) -> None:
        ids, vocab = words(texts)
        lengths = np.array([len(t) for t in ids], dtype=np.float32)
        flat = np.fromiter((t for doc in ids for t in doc), dtype=np.int64, count=int(lengths.sum()))
        doc = np.repeat(np.arange(len(ids), dtype=np.int64), lengths.astype(np.int64))
        pairs, counts = np.unique(flat * max(len(ids), 1) + doc, return_counts=True)  # sorted by term, row
        terms, rows = np.divmod(pairs, max(len(ids), 1))
        indptr = np.searchsorted(terms, np.arange(len(vocab) + 1)).astype(np.int64)
        folder.mkdir(parents=True)
        arrays = {"indptr": indptr, "rows": rows.astype(np.int32), "counts": counts.astype(np.float32),
                  "lengths": lengths}  # fmt: skip
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array, allow_pickle=False)
        db = sqlite3.connect(folder / "terms.sqlite")
        db.execute("CREATE TABLE terms (term TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID")
        db.executemany("INSERT INTO terms VALUES (?, ?)", vocab.items())
        db.commit()
        db.close()

    @classmethod
    def open(cls, folder: Path) -> Terms:
        try:
            arrays = [np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS]
            uri = f"{(folder / 'terms.sqlite').resolve().as_uri()}?mode=ro&immutable=1"
            ids = sqlite3.connect(uri, uri=True, check_same_thread=False)
            ids.execute("SELECT id FROM terms LIMIT 1").fetchall()
        except (OSError, ValueError, sqlite3.DatabaseError) as e:  # damaged, or not what docqa wrote
            raise IndexCorrupt(f"the BM25 data in {folder} cannot be read ({e}); run `docqa index`") from None
        terms = cls(ids, *arrays)
        if len(terms.indptr) < 1 or not int(terms.indptr[-1]) == len(terms.rows) == len(terms.counts):
            raise IndexCorrupt(f"the BM25 data in {folder} does not add up; run `docqa index`")
        return terms

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, counts) of the chunks holding `term`."""
        with self.lock:  # one connection, shared by the server's threads
            found = self.ids.execute("SELECT id FROM terms WHERE term = ?", (term,)).fetchone()
        if found is None or not 0 <= found[0] < len(self.indptr) - 1:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        start, end = int(self.indptr[found[0]]), int(self.indptr[found[0] + 1])
        return np.asarray(self.rows[start:end]), np.asarray(self.counts[start:end])

    def close(self) -> None:
        self.ids.close()


@dataclass
class Part:
    """One segment as BM25 sees it: its terms, where its rows start in the index, which are live."""

    terms: Terms
    base: int
    alive: np.ndarray | None  # None: every row is live


class Lexical:
    """BM25 over the live chunks of every segment; rows are the index's."""

    def __init__(self, parts: list[Part], k1: float = K1, b: float = B) -> None:
        self.parts = parts
        self.k1, self.b = k1, b  # Lucene's defaults; other values are levers the eval measures
        self.stemmer = _stemmer()
        live = [p.terms.lengths if p.alive is None else p.terms.lengths[p.alive] for p in parts]
        self.num_docs = sum(len(lengths) for lengths in live)
        self.average = float(sum(float(np.sum(x, dtype=np.float64)) for x in live)) / max(self.num_docs, 1)

    def search(self, query: str, k: int, allowed: list[np.ndarray] | None = None) -> list[tuple[int, float]]:
        """(row, score) of the best chunks, best first; none when no query word is indexed. With
        `allowed` (a boolean mask over each part's rows), only those rows are ranked; scores keep
        the statistics of the whole live index, so a chunk scores the same in a scope or out."""
        import bm25s

        if self.num_docs == 0 or self.average == 0:
            return []
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )
        scores: list[np.ndarray | None] = [None] * len(self.parts)
        for term, times in Counter(tokens[0]).items():  # a repeated query word counts each time
            found = [self._live(p, *p.terms.postings(term)) for p in self.parts]
            df = sum(len(rows) for rows, _ in found)
            if df == 0:
                continue
            idf = math.log(1 + (self.num_docs - df + 0.5) / (df + 0.5))
            for i, (part, (rows, counts)) in enumerate(zip(self.parts, found, strict=True)):
                if len(rows):
                    norm = self.k1 * (
                        1 - self.b + self.b * np.asarray(part.terms.lengths[rows]) / self.average
                    )
                    if scores[i] is None:
                        scores[i] = np.zeros(len(part.terms.lengths), dtype=np.float32)
                    scores[i][rows] += times * idf * counts / (counts + norm)  # rows are unique per term
        if allowed is not None:
            scores = [None if s is None else np.where(a, s, 0) for s, a in zip(scores, allowed, strict=True)]
        return _best(self.parts, scores, k)

    def ceiling(self, query: str) -> float:
        """The score of a chunk of average length that holds each query word once: what `search`
        scores are measured against to say how much of the query a chunk holds. A query word that
        no chunk holds counts at its highest weight, so the words of an off-topic question weigh."""
        import bm25s

        if self.num_docs == 0:
            return 0.0
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )
        total = 0.0
        for term in tokens[0]:
            df = sum(len(self._live(p, *p.terms.postings(term))[0]) for p in self.parts)
            total += math.log(1 + (self.num_docs - df + 0.5) / (df + 0.5)) / (1 + self.k1)
        return total

    @staticmethod
    def _live(part: Part, rows: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if part.alive is None:
            return rows, counts
        keep = part.alive[rows]
        return rows[keep], counts[keep]


def _best(parts: list[Part], scores: list[np.ndarray | None], k: int) -> list[tuple[int, float]]:
    hits: list[tuple[int, float]] = []
    for part, s in zip(parts, scores, strict=True):
        if s is None:
            continue
        rows = np.flatnonzero(s > 0)
        if len(rows) > k:
            rows = rows[np.argpartition(-s[rows], k - 1)[:k]]
        hits += [(part.base + int(r), float(s[r])) for r in rows]
    return sorted(hits, key=lambda h: (-h[1], h[0]))[:k]
