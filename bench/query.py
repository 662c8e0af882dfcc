"""Retrieval latency as `ask` runs it (encode, dense, BM25, fusion, reading the chunks) against
the bare path (query encode plus one FAISS search), at SciFact size and on synthetic
collections of 100k and 1M chunks; the approximate index's recall against exact search; and on
the same collections, what adding one small document and opening the index cost."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from pathlib import Path

import faiss
import numpy as np

from embeddings import compressed, store
from embeddings.builder import build, settings
from embeddings.chunker import Span
from embeddings.config import Config
from embeddings.embedder import Description, Embedder, SentenceEmbedder
from embeddings.errors import DocqaError
from embeddings.index import Index, LiveVectors
from embeddings.library import Library
from embeddings.readers import Document
from embeddings.segment import SegmentWriter
from embeddings.vectors import Vectors
from qa.retriever import Retriever


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def latency(index: Index, embedder: SentenceEmbedder, questions: list[str], config: Config) -> dict:
    """Per-question timings of both paths, interleaved so machine noise hits both alike, each
    first in turn: the second to search pages of a mapped index that the first has just read in
    (at 1M chunks, a cold search costs ten times a warm one). Beside them, docqa with the question
    embedded the other way (beside BM25's search where docqa embeds it in turn, and the reverse:
    `qa.retriever.BESIDE`) and docqa's BM25 search alone (the part of docqa's path that the bare
    path has nothing like)."""
    retriever = Retriever.of(index, config)
    beside = retriever.embeds_beside
    other = Retriever.of(index, config)
    other.beside = 2**62 if beside else 0  # the other way
    candidates = config.candidates
    for q in questions[:5]:  # warm caches and the model
        retriever(q)
        other(q)
        embedder.model.encode([q])
    ours, bare, theirs, lexical = [], [], [], []

    def docqa(q: str) -> None:
        started = time.perf_counter()
        retriever(q)
        ours.append(time.perf_counter() - started)

    def baseline(q: str) -> None:
        started = time.perf_counter()
        vector = embedder.model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        for segment in index.segments:  # one search of each FAISS index the index holds
            segment.vectors.index.search(np.asarray(vector, dtype=np.float32), candidates)
        bare.append(time.perf_counter() - started)

    def other_way(q: str) -> None:
        started = time.perf_counter()
        other(q)
        theirs.append(time.perf_counter() - started)

    def bm25(q: str) -> None:
        started = time.perf_counter()
        index.bm25.search(q, candidates)
        lexical.append(time.perf_counter() - started)

    runs = [docqa, baseline, other_way]
    for i, q in enumerate(questions):
        for run in runs[i % 3 :] + runs[: i % 3]:
            run(q)
        bm25(q)
    docqa, baseline = percentiles(ours), percentiles(bare)
    return {
        "chunks": len(index),
        "index": "HNSW" if index.vectors.approximate else "exact",
        "questions": len(questions),
        "docqa": docqa,
        "embedding": "beside BM25" if beside else "in turn",
        "bare": baseline,
        "other_way": {"embedding": "in turn" if beside else "beside BM25", **percentiles(theirs)},
        "bm25": percentiles(lexical),
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
    """The index (folder/index) of a synthetic collection (folder/docs) of `chunks` chunks, ten to a
    file: Zipf-distributed words over a 50k vocabulary and clustered unit vectors, written with
    docqa's own segment writer as `docqa index` would record it, so that builds and uploads
    update it like any other. Returns the index folder."""
    index_dir, docs = folder / "index", folder / "docs"
    recipe = {"chunks": chunks, "seed": seed, "words": words, "version": 3}
    with contextlib.suppress(DocqaError, OSError, ValueError):  # the same recipe built before: reuse it
        if json.loads((folder / "recipe.json").read_text()) == recipe and store.open_current(index_dir):
            return index_dir
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    workspace = store.new_workspace(index_dir)
    writer = SegmentWriter(workspace / store.SEGMENTS / store.new_segment_name(), embedder.dim)
    vectors = clustered_vectors(chunks, embedder.dim, np.random.default_rng(seed + 1))
    per_doc = 10
    for d in range(0, chunks, per_doc):
        ids = np.minimum(rng.zipf(1.3, size=(min(per_doc, chunks - d), words)) - 1, len(vocab) - 1)
        lines = [" ".join(vocab[w]) + "." for w in ids]
        doc = _write_document(docs, d // per_doc, lines)
        spans, start = [], len(doc.title) + 1
        for line in lines:
            spans.append(Span(start, start + len(line), words))
            start += len(line) + 1
        writer.add(doc, spans, vectors[d : d + len(lines)], "synthetic")
    del vectors
    entry = writer.finish(with_titles=True)
    counts = {"documents": entry["documents"], "chunks": entry["chunks"]}
    manifest = {"counts": counts, "segments": [entry], "files": {}, "synthetic": recipe,
                **settings(Config(docs=docs, index_dir=index_dir), Description.of(embedder))}  # fmt: skip
    store.commit(index_dir, workspace, manifest)
    (folder / "recipe.json").write_text(json.dumps(recipe))
    return index_dir


def _write_document(docs: Path, number: int, lines: list[str]) -> Document:
    relative = f"{number // 1000:03d}/doc-{number:06d}.txt"
    title = f"Document {number}"
    text = title + "\n" + "\n".join(lines) + "\n"
    path = docs / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Document(relative, title, text, hashlib.sha256(text.encode()).hexdigest(), relative)


def synthetic_questions(n: int, seed: int = 11) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{w}" for w in np.minimum(rng.zipf(1.3, size=6) - 1, 49_999)) for _ in range(n)]


def approximate_recall(vectors: Vectors | LiveVectors, queries: np.ndarray, k: int = 10) -> dict:
    """recall@k of the approximate index against exact search over the same vectors."""
    exact = faiss.IndexFlatIP(vectors.dim)
    for start in range(0, len(vectors), 100_000):
        exact.add(vectors.get(np.arange(start, min(start + 100_000, len(vectors)))))
    _, truth = exact.search(queries, k)
    started = time.perf_counter()
    _, found = vectors.search(queries, k)
    approx_ms = (time.perf_counter() - started) / len(queries) * 1000
    started = time.perf_counter()
    exact.search(queries, k)
    exact_ms = (time.perf_counter() - started) / len(queries) * 1000
    recall = np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found, strict=True)])
    return {f"recall@{k}": round(float(recall), 4), "approx_ms_per_query": round(approx_ms, 3),
            "exact_ms_per_query": round(exact_ms, 3), "goal": ">= 0.95"}  # fmt: skip


def compressed_recall(vectors: Vectors | LiveVectors, queries: np.ndarray, k: int = 10) -> dict:
    """The same vectors as one IVF-PQ segment with an exact rerank (what a segment past
    Config.compress_above keeps): build seconds, recall@k against exact search, memory per chunk."""
    flat = Vectors.empty(vectors.dim)
    for start in range(0, len(vectors), 100_000):
        flat.add(vectors.get(np.arange(start, min(start + 100_000, len(vectors)))))
    started = time.perf_counter()
    built = flat.settle(compress_above=compressed.SMALLEST)
    seconds = time.perf_counter() - started
    ivf = faiss.extract_index_ivf(built.index)
    in_memory = ivf.code_size + 8  # a code and its id per chunk; the exact vectors stay on disk
    return {**approximate_recall(built, queries, k), "build_s": round(seconds, 1), "lists": ivf.nlist,
            "probes": compressed.PROBES, "rerank": compressed.RERANK, "bytes_per_chunk_in_memory": in_memory}  # fmt: skip


NOTE = ("Field notes, {stamp}. The expedition reached the northern glacier on 4 March and counted 112 "
        "seals on the ice. Two of the team stayed behind to mend the sledges.")  # fmt: skip


def add_one_document(index_dir: Path, embedder: SentenceEmbedder) -> dict:
    """One small document added to the synthetic collection of `index_dir` (see synthetic_index),
    as `make index` adds it (a new file, then a build) and as an upload does (stored beside the
    index, a build, the served index reopened). The goal is the seconds beyond the document's
    own embedding; the added documents are taken out again afterwards (not timed). Timed from
    where a user's last build leaves a collection: one build first, not timed (a synthetic index
    is written without one, so nothing has recorded what the scan of its folder found)."""
    docs, stamp = index_dir.parent / "docs", time.strftime("%Y%m%d-%H%M%S")
    config = Config(docs=docs, index_dir=index_dir)
    embedder.embed(["warm up the model"])
    build(config, embedder, progress=False, log=lambda m: None)
    served = Index.open(index_dir, embedder)
    chunks = len(served)
    added = docs / f"added-{stamp}.txt"
    added.write_text(NOTE.format(stamp=stamp))
    report = build(config, embedder, progress=False, log=lambda m: None)
    make_index = _cost(report.seconds, report)
    source = index_dir.parent / "upload.txt"
    source.write_text(NOTE.format(stamp=f"upload {stamp}"))
    library = Library(index_dir)
    started = time.perf_counter()
    upload = library.store("field-notes.txt", source, 50_000_000)
    report = build(config, embedder, progress=False, log=lambda m: None)
    reopened = served.reopen(embedder)
    uploaded = _cost(time.perf_counter() - started, report)
    segments = len(reopened.segments)
    served.close()
    reopened.close()
    added.unlink()
    library.delete(upload.stored)
    build(config, embedder, progress=False, log=lambda m: None)
    return {"chunks": chunks, "segments": segments, "make_index": make_index, "upload": uploaded,
            "goal": "<= 2"}  # fmt: skip


def _cost(seconds: float, report) -> dict:
    return {"seconds": round(seconds, 3), "embed_seconds": round(report.embed_seconds, 3),
            "embedded_chunks": report.embedded, "beyond_embedding_s": round(seconds - report.embed_seconds, 3)}  # fmt: skip


def open_cost(index_dir: Path, embedder: SentenceEmbedder, question: str = "w1 w20 w300") -> dict:
    """Opening the index for a question: seconds, and the bytes read (read system calls; mapped
    files count only as they are touched) against the index's size. Goal: a small share."""
    manifest = store.open_current(index_dir)[1]
    size = sum(f["bytes"] for f in manifest["files"].values())
    embedder.embed([question])
    before, started = _bytes_read(), time.perf_counter()
    index = Index.open(index_dir, embedder)
    opened, read = time.perf_counter() - started, _bytes_read() - before
    started = time.perf_counter()
    Retriever.of(index, Config())(question)
    first = time.perf_counter() - started
    index.close()
    return {"chunks": manifest["counts"]["chunks"], "open_s": round(opened, 3), "first_question_s": round(first, 3),
            "bytes_read": read, "index_bytes": size, "share_read": round(read / size, 4), "goal": "<= 0.2"}  # fmt: skip


def _bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0
