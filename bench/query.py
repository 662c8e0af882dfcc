"""Retrieval latency as `ask` runs it (encode, dense, BM25, fusion, reading the chunks) against
the bare path (query encode plus one FAISS search), at SciFact size and on synthetic
collections of 100k and 1M chunks; and the approximate index's recall against exact search."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import faiss
import numpy as np

from embeddings import store
from embeddings.embedder import Embedder
from embeddings.errors import DocqaError
from embeddings.index import Index
from embeddings.lexical import Lexical
from embeddings.readers import Document
from embeddings.table import Table
from embeddings.vectors import Vectors
from qa.retriever import Retriever


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def latency(index: Index, embedder: Embedder, questions: list[str], candidates: int, top_k: int) -> dict:
    """Per-question timings of both paths, interleaved so machine noise hits both alike."""
    retriever = Retriever(index, top_k, candidates)
    for q in questions[:5]:  # warm caches and the model
        retriever(q)
        embedder.model.encode([q])
    ours, bare = [], []
    for q in questions:
        started = time.perf_counter()
        retriever(q)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        vector = embedder.model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        index.vectors.index.search(np.asarray(vector, dtype=np.float32), candidates)
        bare.append(time.perf_counter() - started)
    docqa, baseline = percentiles(ours), percentiles(bare)
    return {
        "chunks": len(index),
        "index": "HNSW" if index.vectors.approximate else "exact",
        "questions": len(questions),
        "docqa": docqa,
        "bare": baseline,
        "ratio_p50": round(docqa["p50_ms"] / baseline["p50_ms"], 3),
        "ratio_p95": round(docqa["p95_ms"] / baseline["p95_ms"], 3),
    }


def clustered_vectors(
    n: int, dim: int, rng: np.random.Generator, intrinsic: int = 48, clusters: int = 5000
) -> np.ndarray:
    """Unit vectors shaped like real embeddings: clusters in a low-dimensional space, projected
    into `dim` dimensions with a little noise. (Uniform noise in 384 dimensions has no near
    neighbours to find, and says nothing about how HNSW does on embeddings.)"""
    centres = rng.standard_normal((clusters, intrinsic), dtype=np.float32)
    projection = np.random.default_rng(1).standard_normal((intrinsic, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        z = centres[rng.integers(0, clusters, stop - start)]
        z += 0.5 * rng.standard_normal(z.shape, dtype=np.float32)
        out[start:stop] = z @ projection + 0.5 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def synthetic_index(folder: Path, chunks: int, embedder: Embedder, seed: int = 7, words: int = 40) -> Path:
    """An index of `chunks` synthetic chunks: Zipf-distributed words over a 50k vocabulary and
    clustered unit vectors, written with docqa's own store, table and BM25."""
    recipe = {"chunks": chunks, "seed": seed, "words": words, "version": 2}
    with contextlib.suppress(DocqaError):  # the same recipe built before: reuse it
        if store.open_current(folder)[1].get("synthetic") == recipe:
            return folder
    rng = np.random.default_rng(seed)
    dim = embedder.dim
    shutil.rmtree(folder, ignore_errors=True)
    workspace = store.new_workspace(folder)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    ids = np.minimum(rng.zipf(1.3, size=(chunks, words)) - 1, len(vocab) - 1)
    table = Table.create(workspace / "chunks.sqlite")
    per_doc = 10
    for d in range(0, chunks, per_doc):
        n = min(per_doc, chunks - d)
        texts = [" ".join(vocab[ids[d + i]]) for i in range(n)]
        body, spans, offset = "", [], 0
        for t in texts:
            spans.append(_Span(offset, offset + len(t), words))
            body += t + "\n"
            offset += len(t) + 1
        table.add(
            Document(f"doc{d // per_doc}", f"Document {d // per_doc}", body, "-", "synthetic"), spans, d, "-"
        )
    table.commit()
    table.close()
    vectors = clustered_vectors(chunks, dim, rng)
    flat = Vectors.empty(dim)
    flat.add(vectors)
    del vectors
    flat.settle().save(workspace / "vectors.faiss")
    Lexical.build(list(Table.open(workspace / "chunks.sqlite").texts())).save(workspace / "bm25")
    embedding = {"model": embedder.name, "fingerprint": embedder.fingerprint, "dim": dim}
    store.commit(folder, workspace, {"embedding": embedding, "synthetic": recipe,
                                     "counts": {"documents": chunks // per_doc, "chunks": chunks}, "documents": {}})  # fmt: skip
    return folder


class _Span:
    def __init__(self, start: int, end: int, tokens: int) -> None:
        self.start, self.end, self.tokens = start, end, tokens


def synthetic_questions(n: int, seed: int = 11) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{w}" for w in np.minimum(rng.zipf(1.3, size=6) - 1, 49_999)) for _ in range(n)]


def approximate_recall(vectors: Vectors, queries: np.ndarray, k: int = 10) -> dict:
    """recall@k of the approximate index against exact search over the same vectors."""
    exact = faiss.IndexFlatIP(vectors.dim)
    for start in range(0, len(vectors), 100_000):
        exact.add(vectors.get(np.arange(start, min(start + 100_000, len(vectors)))))
    _, truth = exact.search(queries, k)
    started = time.perf_counter()
    _, found = vectors.index.search(queries, k)
    approx_ms = (time.perf_counter() - started) / len(queries) * 1000
    started = time.perf_counter()
    exact.search(queries, k)
    exact_ms = (time.perf_counter() - started) / len(queries) * 1000
    recall = np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found, strict=True)])
    return {f"recall@{k}": round(float(recall), 4), "approx_ms_per_query": round(approx_ms, 3),
            "exact_ms_per_query": round(exact_ms, 3), "goal": ">= 0.95"}  # fmt: skip
