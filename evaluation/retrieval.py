"""SciFact retrieval through docqa's own index: nDCG@10 and recall@100 for the baselines (dense
alone, BM25 alone) and the hybrid ranking `ask` uses, all measured in the same run, and the
levers of the fusion (its constant, the weight of each ranking, the depth taken from each).
Chunks are ranked; a document ranks where its best chunk does."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tqdm import tqdm

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from evaluation import data
from evaluation.metrics import ndcg_at_k, recall_at_k
from qa.retriever import fuse

DEPTH = 300  # chunks taken from each ranking, enough for 100 distinct documents
# Fusion levers measured beside the hybrid: (rrf constant, (dense weight, BM25 weight), depth).
LEVERS = {
    "rrf k=60": (60, (1.0, 1.0), DEPTH),
    "rrf k=10": (10, (1.0, 1.0), DEPTH),
    "dense weight 1.5": (20, (1.5, 1.0), DEPTH),
    "bm25 weight 1.5": (20, (1.0, 1.5), DEPTH),
    "depth 50": (20, (1.0, 1.0), 50),
    "depth 100": (20, (1.0, 1.0), 100),
}


def _documents(rows: list[int], doc_of: list[str]) -> list[str]:
    return list(dict.fromkeys(doc_of[r] for r in rows))


def run(folder: Path, work: Path, config: Config, embedder: Embedder, queries_limit: int | None = None,
        seed: int = 13) -> dict:  # fmt: skip
    corpus, queries, qrels = data.scifact(folder)
    ids = sorted(queries)
    if queries_limit:
        ids = random.Random(seed).sample(ids, queries_limit)
        corpus = _subset(corpus, {d for q in ids for d in qrels[q]}, work, seed)
    started = time.perf_counter()
    index_config = Config(docs=corpus, index_dir=work / "scifact-index", chunk_tokens=config.chunk_tokens,
                          chunk_overlap=config.chunk_overlap, embedding_model=config.embedding_model)  # fmt: skip
    report = build(index_config, embedder, progress=True)
    index = Index.open(index_config.index_dir, embedder)
    doc_of = [""] * len(index)
    for d in index.documents():
        for c in index.document_chunks(d.id):
            doc_of[c.row] = d.id
    rankings: dict[str, list[list[str]]] = {"dense": [], "bm25": [], "hybrid": []}
    rankings |= {name: [] for name in LEVERS}
    for qid in tqdm(ids, desc="scifact queries", unit="query"):
        text = queries[qid]
        vector = embedder.embed([text])
        _, rows = index.vectors.search(vector, DEPTH)
        dense = [int(r) for r in rows[0] if r >= 0]
        lexical = [r for r, _ in index.bm25.search(text, DEPTH)]
        rankings["dense"].append(_documents(dense, doc_of))
        rankings["bm25"].append(_documents(lexical, doc_of))
        # The hybrid with `ask`'s fusion constant (deep enough for recall@100), then each lever.
        fused = fuse([dense, lexical], [1.0, 1.0], config.rrf_k)
        rankings["hybrid"].append(_documents([r for r, _ in fused], doc_of))
        for name, (k, weights, depth) in LEVERS.items():
            fused = fuse([dense[:depth], lexical[:depth]], list(weights), k)
            rankings[name].append(_documents([r for r, _ in fused], doc_of))
    methods = {
        name: {
            "ndcg@10": round(
                sum(ndcg_at_k(r, qrels[q]) for r, q in zip(ranked, ids, strict=True)) / len(ids), 4
            ),
            "recall@100": round(
                sum(recall_at_k(r, qrels[q]) for r, q in zip(ranked, ids, strict=True)) / len(ids), 4
            ),
        }
        for name, ranked in rankings.items()
    }
    return {
        "queries": len(ids),
        "documents": report.documents,
        "chunks": report.chunks,
        "index_seconds": round(report.seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "methods": methods,
    }


def _subset(corpus: Path, keep: set[str], work: Path, seed: int, extra: int = 100) -> Path:
    """The judged documents plus a fixed random sample of others, for a quick run."""
    lines = corpus.read_text().splitlines()
    rng = random.Random(seed)
    chosen = [line for line in lines if json.loads(line)["_id"] in keep] + rng.sample(lines, extra)
    out = work / "scifact-sample" / "corpus.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(dict.fromkeys(chosen)) + "\n")
    return out
