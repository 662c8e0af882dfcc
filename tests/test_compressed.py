"""Very large segments: IVF-PQ codes with an exact rerank, built in shards (embeddings/compressed.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.query import clustered_vectors
from embeddings import compressed, store
from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ConfigError
from embeddings.index import Index
from embeddings.vectors import Vectors
from embeddings.verify import verify
from tests.fakes import FakeEmbedder

N, DIM = 16_000, 384


@pytest.fixture(scope="module")
def collection() -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors shaped like embeddings, and queries drawn the same way."""
    vectors = clustered_vectors(N, DIM, np.random.default_rng(3), clusters=400)
    queries = clustered_vectors(60, DIM, np.random.default_rng(4), clusters=400)
    return vectors, queries


@pytest.fixture(scope="module")
def saved(collection, tmp_path_factory) -> Path:
    flat = Vectors.empty(DIM)
    flat.add(collection[0])
    path = tmp_path_factory.mktemp("compressed") / "vectors.faiss"
    flat.settle(compress_above=10_000).save(path)
    return path


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found, truth, strict=True)]))


def test_a_segment_past_the_limit_finds_what_exact_search_finds(collection, saved):
    vectors, queries = collection
    index = Vectors.load(saved)
    assert index.compressed and index.approximate
    exact = Vectors.empty(DIM)
    exact.add(vectors)
    truth = exact.search(queries, 10)[1]
    scores, found = index.search(queries, 10)
    assert _recall(found, truth) >= 0.95, "recall@10 against exact search"
    assert np.allclose(scores, np.sum(queries[:, None, :] * vectors[found], axis=2), atol=1e-5), (
        "scores are exact inner products (the rerank), not code distances"
    )
    assert np.array_equal(index.get(np.array([7, 15_001])), vectors[[7, 15_001]]), "vectors kept exactly"
    assert saved.stat().st_size > N * DIM * 4, "the exact vectors are in the file, mapped when opened"


def test_deleted_rows_and_scopes_are_honoured(collection, saved):
    _, queries = collection
    index = Vectors.load(saved)
    best = index.search(queries[:1], 10)[1][0]
    again = index.search(queries[:1], 10, excluded=best[:3])[1][0]
    assert not set(best[:3]) & set(again) and set(best[3:]) <= set(again)
    allowed = np.zeros(N, dtype=bool)
    allowed[::7] = True
    within = index.search_within(queries[:4], 10, allowed)[1]
    assert (within >= 0).all() and allowed[within].all()


def test_shards_encoded_apart_and_merged_equal_one_pass():
    vectors = clustered_vectors(12_000, 64, np.random.default_rng(5), clusters=200)
    queries = clustered_vectors(20, 64, np.random.default_rng(6), clusters=200)
    flat = Vectors.empty(64)
    flat.add(vectors)
    calls: list[int] = []

    def counting(encode, trained, shards):
        out = compressed.local_map(encode, trained, shards)
        calls.append(len(out))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compressed, "SHARD", 5_000)
        sharded = flat.settle(compress_above=10_000, shard_map=counting)
        mp.setattr(compressed, "SHARD", 50_000)
        whole = flat.settle(compress_above=10_000)
    assert calls == [3]
    assert np.array_equal(sharded.search(queries, 10)[1], whole.search(queries, 10)[1])


def test_a_build_past_the_limit_keeps_a_compressed_segment_that_answers_and_checks(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(1_100):  # about 11,000 chunks of 16 tokens
        words = " ".join(f"w{(i * 37 + j) % 5_000}" for j in range(150))
        (docs / f"d{i:04d}.txt").write_text(f"Report {i}\n{words} harvest{i}.")
    config = Config(docs=docs, index_dir=tmp_path / "index", chunk_tokens=16, chunk_overlap=0,
                    compress_above=10_000)  # fmt: skip
    embedder = FakeEmbedder(dim=64)
    build(config, embedder, progress=False, log=lambda m: None)
    index = Index.open(config.index_dir, embedder)
    assert len(index) > 10_000 and index.vectors.approximate
    hit = index.dense("Report 421 harvest421", 1)[0]
    assert hit.chunk.doc_id == "d0421.txt"
    assert verify(config.index_dir, embedder, sample=30).ok
    (docs / "d0421.txt").unlink()
    build(config, embedder, progress=False, log=lambda m: None)
    again = Index.open(config.index_dir, embedder)
    assert all(h.chunk.doc_id != "d0421.txt" for h in again.dense("Report 421 harvest421", 20))
    assert store.current(config.index_dir) is not None


def test_the_limit_has_a_floor():
    with pytest.raises(ConfigError, match="at least 10000"):
        Config(compress_above=500)
