"""BM25 search skips most of the postings of common words (MaxScore); what it returns must be
what scoring every chunk returns, on collections where a few words are in nearly every chunk."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from embeddings import lexical
from embeddings.lexical import Lexical, Part, Scores, Terms


def zipf_texts(rng: np.random.Generator, n: int, words: int = 30) -> list[str]:
    """Chunks of Zipf-distributed words: w0 in nearly all of them, w500 in few."""
    ids = np.minimum(rng.zipf(1.3, size=(n, words)) - 1, 2000)
    return [" ".join(f"w{i}" for i in row) for row in ids]


def every_chunk_scored(
    texts: list[list[str]], alive: list[np.ndarray], query: list[str], k1: float, b: float
):
    """BM25 of `query` over every live chunk, the statistics of all live chunks: {row: score}."""
    live = [(row, words) for row, words, is_live in _rows(texts, alive) if is_live]
    average, n = sum(len(t) for _, t in live) / len(live), len(live)
    held = [(row, Counter(words), len(words)) for row, words in live]
    df = {word: sum(1 for _, counts, _ in held if counts[word]) for word in set(query)}
    scores = {}
    for row, counts, length in held:
        total = 0.0
        for word, times in Counter(query).items():
            if counts[word]:
                idf = math.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))
                total += times * idf * counts[word] / (counts[word] + k1 * (1 - b + b * length / average))
        if total > 0:
            scores[row] = total
    return scores


def _rows(texts, alive):
    base = 0
    for part, mask in zip(texts, alive, strict=True):
        for i, words in enumerate(part):
            yield base + i, words, bool(mask[i])
        base += len(part)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Three segments of Zipf text, one with removed chunks."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("bm25")
    texts, parts, base = [], [], 0
    for i, n in enumerate((400, 250, 150)):
        part_texts = zipf_texts(rng, n)
        Terms.write(part_texts, folder / f"s{i}")
        alive = None if i != 1 else rng.random(n) > 0.2
        parts.append(Part(Terms.open(folder / f"s{i}"), base, alive))
        texts.append([t.split() for t in part_texts])
        base += n
    return texts, parts


@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (1.2, 0.75), (0.0, 0.75)])
def test_bm25_returns_what_scoring_every_chunk_returns(collection, k1, b):
    texts, parts = collection
    alive = [np.ones(len(t), bool) if p.alive is None else p.alive for t, p in zip(texts, parts, strict=True)]
    bm25 = Lexical(parts, k1, b)
    rng = np.random.default_rng(5)
    for query in zipf_texts(rng, 40, words=6) + ["w0 w1", "w0", "w1999 w0", "nothing here"]:
        truth = every_chunk_scored(texts, alive, query.split(), k1, b)
        best = sorted(truth.values(), reverse=True)
        for k in (1, 5, 40):
            found = bm25.search(query, k)
            assert len(found) == min(k, len(truth)), query
            assert [s for _, s in found] == pytest.approx(best[:k], rel=1e-5), query
            assert all(truth[row] == pytest.approx(s, rel=1e-5) for row, s in found), query


def test_bm25_ranks_only_the_allowed_chunks_with_every_chunks_statistics(collection):
    texts, parts = collection
    alive = [np.ones(len(t), bool) if p.alive is None else p.alive for t, p in zip(texts, parts, strict=True)]
    bm25 = Lexical(parts)
    allowed = [np.arange(len(t)) % 3 == 0 for t in texts]
    rows_allowed = {row for row, _, ok in _rows(texts, allowed) if ok}
    for query in zipf_texts(np.random.default_rng(9), 20, words=5):
        truth = {
            r: s
            for r, s in every_chunk_scored(texts, alive, query.split(), 1.5, 0.75).items()
            if r in rows_allowed
        }
        found = bm25.search(query, 10, allowed)
        assert [s for _, s in found] == pytest.approx(sorted(truth.values(), reverse=True)[:10], rel=1e-5)
        assert {row for row, _ in found} <= rows_allowed


def test_bm25_keeps_common_words_counts_within_its_budget_and_returns_the_same(collection, monkeypatch):
    """A common word's counts are kept for the next questions (lexical.KEEP_BYTES); with room
    for only one word's, the words evict each other and every result stays exact."""
    texts, parts = collection
    alive = [np.ones(len(t), bool) if p.alive is None else p.alive for t, p in zip(texts, parts, strict=True)]
    monkeypatch.setattr(lexical, "KEEP_BYTES", 1)
    bm25 = Lexical(parts)
    queries = zipf_texts(np.random.default_rng(12), 30, words=6)
    for query in queries + queries:  # the second time, some counts are kept from the first
        truth = sorted(every_chunk_scored(texts, alive, query.split(), 1.5, 0.75).values(), reverse=True)
        assert [s for _, s in bm25.search(query, 20)] == pytest.approx(truth[:20], rel=1e-5), query
        assert len(bm25._kept) <= 1
    assert bm25._kept, "no common word was looked up: the collection does not test keeping"


@pytest.mark.parametrize("size", [1000, 100_000])
@pytest.mark.parametrize("sizes", [(3, 400), (400, 3), (150, 200), (0, 50)])
def test_partial_scores_add_up_row_by_row(sizes, size):
    """Scores.plus sums two sets of partial scores, whether one is much smaller or not, and
    whether they are many for the rows there are (`size`) or few."""
    rng = np.random.default_rng(sum(sizes))
    sets = [np.sort(rng.choice(1000, n, replace=False)) for n in sizes]
    parts = [Scores(rows.astype(np.int64), rng.random(len(rows)) + 0.1) for rows in sets]
    summed = parts[0].plus(parts[1], size)
    truth = Counter()
    for p in parts:
        truth.update(dict(zip(p.rows.tolist(), p.scores.tolist(), strict=True)))
    assert summed.rows.tolist() == sorted(truth)
    assert summed.scores.tolist() == pytest.approx([truth[r] for r in sorted(truth)])


def test_term_counts_written_a_few_texts_at_a_time_are_those_written_at_once(tmp_path):
    texts = [
        f"Report {i} says the wheat harvest in Herat {'rose' if i % 3 else 'fell'} by {i} percent."
        for i in range(50)
    ]
    texts += ["", "wheat " * 40]
    Terms.write(texts, tmp_path / "once", batch=1_000)
    Terms.write(iter(texts), tmp_path / "parts", batch=7)  # a segment's texts stream from its table
    once, parts = Terms.open(tmp_path / "once"), Terms.open(tmp_path / "parts")
    assert np.array_equal(once.lengths, parts.lengths) and len(once.rows) == len(parts.rows)
    for term in ["wheat", "harvest", "herat", "rose", "fell", "report", "17", "missing"]:
        for a, b in zip(once.postings(term), parts.postings(term), strict=True):
            assert np.array_equal(a, b), term
