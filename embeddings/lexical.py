"""BM25 over the same chunks as the vectors: English stemmer and stop words (bm25s's tokenizer),
Lucene's scoring (k1 1.5, b 0.75), as bm25s computes it.

Each segment keeps term counts, not scores, so a query is scored with the statistics of the
whole live index (document count, average length, document frequencies): a new segment of one
document scores like the million chunks beside it, and removed chunks drop out at once. Nothing
is rebuilt when a segment is added; opening one maps its arrays and reads none of them. A query
reads all the postings of its rare words and, of its common words, only those of the chunks that
could still rank (`Lexical.search`)."""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.errors import IndexCorrupt

K1, B = 1.5, 0.75
# A common word's count in every row of a segment (a word in more than an eighth of its rows), one
# byte a row, kept for the next questions that hold it, up to this many bytes in all: looking it
# up for the rows still in reach then reads their counts instead of searching its postings.
KEEP_BYTES = 64 << 20
WRITE_BATCH = 10_000  # texts tokenized at a time when a segment's term counts are written
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
    def write(texts: Iterable[str], folder: Path, batch: int = WRITE_BATCH) -> None:
        """The term counts of `texts` (row i the i-th), read `batch` texts at a time: what is kept
        meanwhile is an array entry per (term, row) pair, not every text's tokens as Python lists
        (about eleven times the text's size)."""
        vocab: dict[str, int] = {}
        pairs, counts, lengths = [], [], []
        row = 0
        texts = iter(texts)
        while part := list(itertools.islice(texts, batch)):
            ids, local = words(part)
            found = np.empty(len(local), dtype=np.int64)  # the part's term ids -> the segment's
            for term, i in local.items():
                found[i] = vocab.setdefault(term, len(vocab))
            sizes = np.array([len(t) for t in ids], dtype=np.int64)
            flat = found[np.fromiter((t for doc in ids for t in doc), dtype=np.int64, count=int(sizes.sum()))]
            rows = np.repeat(np.arange(row, row + len(ids), dtype=np.int64), sizes)
            unique, n = np.unique((flat << 32) | rows, return_counts=True)  # a part's rows are its own
            pairs.append(unique)
            counts.append(n.astype(np.float32))
            lengths.append(sizes.astype(np.float32))
            row += len(ids)
        pair = np.concatenate(pairs) if pairs else np.zeros(0, np.int64)
        order = np.argsort(pair, kind="stable")  # by term, then row
        pair = pair[order]
        terms = pair >> 32
        indptr = np.searchsorted(terms, np.arange(len(vocab) + 1)).astype(np.int64)
        folder.mkdir(parents=True)
        arrays = {"indptr": indptr, "rows": (pair & 0xFFFFFFFF).astype(np.int32),
                  "counts": (np.concatenate(counts) if counts else np.zeros(0, np.float32))[order],
                  "lengths": np.concatenate(lengths) if lengths else np.zeros(0, np.float32)}  # fmt: skip
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
        self.size = max((p.base + len(p.terms.lengths) for p in parts), default=0)  # rows, dead ones too
        self.average = float(sum(float(np.sum(x, dtype=np.float64)) for x in live)) / max(self.num_docs, 1)
        self._kept: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()  # see KEEP_BYTES
        self._keeping = threading.Lock()

    def tokens(self, text: str) -> list[str]:
        """`text`'s words as BM25 indexes them (stemmed, stop words dropped)."""
        import bm25s

        return bm25s.tokenize([text], stopwords="en", stemmer=self.stemmer, return_ids=False,
                              show_progress=False)[0]  # fmt: skip

    def search(self, query: str, k: int, allowed: list[np.ndarray] | None = None) -> list[tuple[int, float]]:
        """(row, score) of the best chunks, best first; none when no query word is indexed. With
        `allowed` (a boolean mask over each part's rows), only those rows are ranked; scores keep
        the statistics of the whole live index, so a chunk scores the same in a scope or out.

        Exact, without scoring every posting (MaxScore): a chunk gets less than `bound` from a
        term, so the terms are added rarest-first until the k-th best score so far is out of reach
        of the bounds left; each common term left is then looked up only for the chunks still in
        reach, fewer with each (a word in many chunks from the counts kept for it: KEEP_BYTES). A
        word that most chunks hold costs little more than a rare one."""
        if self.num_docs == 0 or self.average == 0 or k < 1:
            return []
        terms = sorted(self._terms(self.tokens(query)), key=lambda t: -t.bound)
        found, rest = Scores.none(), []
        for n, term in enumerate(terms):
            found = found.plus(self._score(term, allowed), self.size)
            rest = terms[n + 1 :]
            left = sum(t.bound for t in rest)
            if np.count_nonzero(found.scores > left) >= k:  # a chunk none of these terms holds gets <= left
                break
        for n, term in enumerate(rest):  # each looked up for the rows it could still lift into the best k
            found = found.where(found.scores >= found.kth(k) - sum(t.bound for t in rest[n:]))
            found = Scores(found.rows, found.scores + self._lookup(term, found.rows))
        return found.best(k)

    def ceiling(self, query: str) -> float:
        """The score of a chunk of average length that holds each query word once: what `search`
        scores are measured against to say how much of the query a chunk holds. A query word that
        no chunk holds counts at its highest weight, so the words of an off-topic question weigh."""
        if self.num_docs == 0:
            return 0.0
        return sum(self._idf(self._df(self._postings(term))) / (1 + self.k1) for term in self.tokens(query))

    def _postings(self, term: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(local rows, counts) of `term` in each part, dead rows included; rows ascending."""
        return [p.terms.postings(term) for p in self.parts]

    def _df(self, postings: list[tuple[np.ndarray, np.ndarray]]) -> int:
        return sum(
            len(rows) if p.alive is None else int(np.count_nonzero(p.alive[rows]))
            for p, (rows, _) in zip(self.parts, postings, strict=True)
        )

    def _idf(self, df: int) -> float:
        return math.log(1 + (self.num_docs - df + 0.5) / (df + 0.5))

    def _terms(self, tokens: list[str]) -> list[Term]:
        terms = []
        for token, times in Counter(tokens).items():  # a repeated query word counts each time
            postings = self._postings(token)
            df = self._df(postings)
            if df:
                terms.append(Term(token, postings, times * self._idf(df)))
        return terms

    def _weights(self, term: Term, part: Part, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """What `term` adds to the score of each of `part`'s `rows` that hold it `counts` times."""
        # bound * counts / (counts + k1 (1 - b + b length / average)), in place: the arrays are as
        # long as a common word's postings
        counts = counts.astype(np.float64)
        norm = np.asarray(part.terms.lengths)[rows].astype(np.float64)
        norm *= self.k1 * self.b / self.average
        norm += self.k1 * (1 - self.b)
        norm += counts
        counts *= term.bound
        return np.divide(counts, norm, out=counts)

    def _score(self, term: Term, allowed: list[np.ndarray] | None) -> Scores:
        """`term`'s share of the score of every live (and allowed) row that holds it."""
        rows, weights = [], []
        for i, (part, (local, counts)) in enumerate(zip(self.parts, term.postings, strict=True)):
            local, counts = np.asarray(local), np.asarray(counts)
            keep = None if part.alive is None else part.alive[local]
            if allowed is not None:
                keep = allowed[i][local] if keep is None else keep & allowed[i][local]
            if keep is not None:
                local, counts = local[keep], counts[keep]
            rows.append(part.base + local.astype(np.int64))
            weights.append(self._weights(term, part, local, counts))
        rows, weights = np.concatenate(rows), np.concatenate(weights)
        if np.any(np.diff(rows) < 0):  # parts out of row order
            order = np.argsort(rows)
            rows, weights = rows[order], weights[order]
        return Scores(rows, weights)

    def _lookup(self, term: Term, rows: np.ndarray) -> np.ndarray:
        """`term`'s share of the score of each of `rows` (index rows, ascending)."""
        out = np.zeros(len(rows))
        for i, (part, (local, counts)) in enumerate(zip(self.parts, term.postings, strict=True)):
            lo, hi = np.searchsorted(rows, [part.base, part.base + len(part.terms.lengths)])
            if hi == lo or not len(local):
                continue
            wanted = rows[lo:hi] - part.base
            kept = self._counts(term, i) if len(local) * 8 > len(part.terms.lengths) else None
            if kept is not None:
                held = kept[wanted] > 0
                if held.any():
                    out[lo:hi][held] = self._weights(term, part, wanted[held], kept[wanted[held]])
                continue
            at = _positions(np.asarray(local), wanted)
            held = at >= 0
            if held.any():
                out[lo:hi][held] = self._weights(term, part, wanted[held], np.asarray(counts)[at[held]])
        return out

    def _counts(self, term: Term, i: int) -> np.ndarray | None:
        """How many times each row of part `i` holds `term` (0: not at all), one byte a row, kept
        (see KEEP_BYTES); None where a row holds it more than 255 times."""
        key = (term.token, i)
        with self._keeping:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        part, (local, counts) = self.parts[i], term.postings[i]
        if np.max(counts) > 255:
            return None
        every = np.zeros(len(part.terms.lengths), np.uint8)
        every[local] = counts
        with self._keeping:
            self._kept[key] = every
            while sum(c.nbytes for c in self._kept.values()) > KEEP_BYTES and len(self._kept) > 1:
                self._kept.popitem(last=False)
        return every


def _positions(held: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of `wanted` stands in `held` (ascending, unique), -1 where it is not there."""
    at = np.minimum(np.searchsorted(held, wanted), len(held) - 1)
    return np.where(held[at] == wanted, at, -1)


@dataclass(frozen=True)
class Term:
    """A query word as search weighs it: the word, its postings in each part, and `bound`, its
    weight (the repeats times its idf), which no chunk's share from it reaches."""

    token: str
    postings: list[tuple[np.ndarray, np.ndarray]]
    bound: float


@dataclass(frozen=True)
class Scores:
    """Partial BM25 scores: rows ascending and unique, each with its score so far (> 0)."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float64

    @classmethod
    def none(cls) -> Scores:
        return cls(np.zeros(0, np.int64), np.zeros(0))

    def plus(self, other: Scores, size: int) -> Scores:
        """Both summed, row by row; `size` bounds the rows. The rows of one much smaller than the
        other are each found in it, or put in place, by a binary search. Otherwise both are
        sorted, so a stable sort of the two after one another only merges them; where they are
        many, marking their rows in arrays of `size` costs less."""
        if not len(self.rows):
            return other
        small, large = sorted((self, other), key=lambda s: len(s.rows))
        if len(small.rows) * 16 < len(large.rows):  # a few rows into many: found, or put in place
            places = np.searchsorted(large.rows, small.rows)  # where each is, or would go
            held = large.rows[np.minimum(places, len(large.rows) - 1)] == small.rows
            scores = large.scores.copy()
            scores[places[held]] += small.scores[held]
            new = ~held
            rows = np.insert(large.rows, places[new], small.rows[new])
            return Scores(rows, np.insert(scores, places[new], small.scores[new]))
        if len(self.rows) + len(other.rows) > size // 8:
            held, summed = np.zeros(size, bool), np.zeros(size)
            held[self.rows] = held[other.rows] = True
            summed[self.rows] = self.scores
            summed[other.rows] += other.scores  # rows are unique within each
            merged = np.flatnonzero(held)
            return Scores(merged, summed[merged])
        rows = np.concatenate([self.rows, other.rows])
        order = np.argsort(rows, kind="stable")
        rows, weights = rows[order], np.concatenate([self.scores, other.scores])[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        return Scores(rows[starts], np.add.reduceat(weights, starts))

    def where(self, keep: np.ndarray) -> Scores:
        return Scores(self.rows[keep], self.scores[keep])

    def kth(self, k: int) -> float:
        """The k-th best score; there are at least k. Counting is cheap and selecting is not, so
        a threshold is narrowed until a few times k rows reach it, and only those are selected."""
        s = self.scores
        low, high = float(s.min()), float(s.max())  # at least k rows score `low` or more
        for _ in range(24):
            if np.count_nonzero(s >= low) <= 4 * k:
                break
            middle = (low + high) / 2
            if np.count_nonzero(s >= middle) >= k:
                low = middle
            else:
                high = middle
        top = s[s >= low]
        return float(np.partition(top, len(top) - k)[len(top) - k])

    def best(self, k: int) -> list[tuple[int, float]]:
        """The k best (row, score), best first; of rows that tie with the k-th, the first rows."""
        keep = np.flatnonzero(self.scores > 0)
        if len(keep) > k:
            kth = Scores(self.rows[keep], self.scores[keep]).kth(k)
            above, tied = keep[self.scores[keep] > kth], keep[self.scores[keep] == kth]
            keep = np.concatenate([above, tied[: k - len(above)]])
        hits = [(int(self.rows[i]), float(self.scores[i])) for i in keep]
        return sorted(hits, key=lambda h: (-h[1], h[0]))
