"""SciFact retrieval through docqa's own index: nDCG@10 and recall@100 for the baselines (dense
alone, BM25 alone) and the hybrid ranking `ask` uses, all measured in the same run, and levers:
of the fusion (reciprocal rank with other constants, weights and depths; a weighted sum of
scores) and of what is fused (BM25's constants, BM25 over each chunk with its neighbours, the
question's vector moved toward the chunks first found). Every ranking is measured on the train
claims too: the one best there is the one a change of retrieval would ship, and its test figure
is reported as such (a lever picked by its test figure would be picked on the set it is reported
on). Chunks are ranked; a document ranks where its best chunk does."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from embeddings.lexical import K1, B, Lexical, Part, Terms
from evaluation import data
from evaluation.metrics import ndcg_at_k, recall_at_k
from qa.retriever import combine

DEPTH = 300  # chunks taken from each ranking, enough for 100 distinct documents
# BM25 with other constants (k1, b) than Lucene's, which `ask` uses
BM25_LEVERS = {
    "bm25 k1 0.9": (0.9, B),
    "bm25 k1 1.2": (1.2, B),
    "bm25 b 0.5": (K1, 0.5),
    "bm25 b 1.0": (K1, 1.0),
}
NEIGHBOURS = "bm25 with neighbours"  # each chunk's BM25 text: its title, the chunk and the chunks beside it
FEEDBACK = "dense with feedback"  # the question's vector plus the mean of ask's first FED chunks' vectors
FED = 3


@dataclass(frozen=True)
class Searched:
    """One query's dense and BM25 results, (row, score) best first, `DEPTH` of each."""

    dense: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    # rankings that stand in for one side in a lever: the BM25 levers for lexical, FEEDBACK for dense
    sides: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


Fusion = Callable[[Searched], list[int]]


def fusion(depth: int, fusion: str = "reciprocal-rank", k: int = 20, weights: tuple[float, float] = (1.0, 1.0),
           dense_share: float = 0.5) -> Fusion:  # fmt: skip
    """A fusion as `ask`'s retriever does it (qa.retriever.combine), on each ranking's first
    `depth` results (`ask` takes Config.candidates of each)."""
    return lambda s: [
        row for row, _ in combine(s.dense[:depth], s.lexical[:depth], depth, fusion, k, weights, dense_share)
    ]


def levers(depth: int) -> dict[str, Fusion]:
    """Fusion levers measured beside `ask`'s own: reciprocal rank's constant and weights, and the
    convex fusion's dense share, on `depth` results of each ranking (as many as `ask` takes),
    and both fusions again on 50, 100 and 300 (the depth is in the name where it is not `depth`)."""
    out: dict[str, Fusion] = {}
    for d in dict.fromkeys((depth, 50, 100, DEPTH)):
        at = "" if d == depth else f", depth {d}"
        out |= {f"rrf k={k}{at}": fusion(d, k=k) for k in (10, 20, 60)}
        out |= {
            f"convex, dense {share}{at}": fusion(d, "convex", dense_share=share)
            for share in (0.3, 0.4, 0.5, 0.6, 0.7)
        }
    out["dense weight 1.5"] = fusion(depth, weights=(1.5, 1.0))
    out["bm25 weight 1.5"] = fusion(depth, weights=(1.0, 1.5))
    return out


def _own(config: Config) -> str:
    """The name `levers` gives `ask`'s own fusion as configured."""
    return f"convex, dense {config.dense_share}" if config.fusion == "convex" else f"rrf k={config.rrf_k}"


def asks(config: Config) -> Fusion:
    """`ask`'s fusion as configured, on as many results of each ranking as it takes."""
    return fusion(config.candidates, config.fusion, config.rrf_k, dense_share=config.dense_share)


def side_levers(config: Config) -> dict[str, Fusion]:
    """`ask`'s fusion as configured with one of its rankings replaced by a lever's: BM25 with
    other constants or over neighbours (for BM25), the question moved by feedback (for dense)."""
    fused = asks(config)

    def swapped(name: str) -> Fusion:
        side = "dense" if name == FEEDBACK else "lexical"
        return lambda s: fused(replace(s, **{side: s.sides[name]}))

    return {f"hybrid, {name}": swapped(name) for name in (*BM25_LEVERS, NEIGHBOURS, FEEDBACK)}


def neighbour_texts(chunks: list[list[str]], titles: list[str]) -> list[str]:
    """Each chunk's text for BM25 with its neighbours: its document's title, then the chunk before
    it, itself and the one after (within its document), for each document's chunks in order."""
    return [
        "\n".join([title, *texts[max(i - 1, 0) : i + 2]])
        for texts, title in zip(chunks, titles, strict=True)
        for i in range(len(texts))
    ]


def _documents(rows: list[int], doc_of: list[str]) -> list[str]:
    return list(dict.fromkeys(doc_of[r] for r in rows))


def run(folder: Path, work: Path, config: Config, embedder: Embedder, queries_limit: int | None = None,
        seed: int = 13) -> dict:  # fmt: skip
    corpus, test, test_qrels = data.scifact(folder)
    _, train, train_qrels = data.scifact(folder, "train")
    splits = {"test": (sorted(test), test_qrels), "train": (sorted(train), train_qrels)}
    queries = test | train
    if queries_limit:
        splits = {name: (random.Random(seed).sample(ids, queries_limit), qrels)
                  for name, (ids, qrels) in splits.items()}  # fmt: skip
        judged = {d for ids, qrels in splits.values() for q in ids for d in qrels[q]}
        corpus = _subset(corpus, judged, work, seed)
    started = time.perf_counter()
    index_config = Config(docs=corpus, index_dir=work / "scifact-index", chunk_tokens=config.chunk_tokens,
                          chunk_overlap=config.chunk_overlap, embedding_model=config.embedding_model)  # fmt: skip
    report = build(index_config, embedder, progress=True)
    index = Index.open(index_config.index_dir, embedder)
    doc_of = [""] * len(index)
    rows_in_order, chunk_texts, titles = [], [], []
    for d in index.documents():
        chunks = index.document_chunks(d.id)
        for c in chunks:
            doc_of[c.row] = d.id
        rows_in_order += [c.row for c in chunks]
        chunk_texts.append([c.text for c in chunks])
        titles.append(d.title)
    lexicals = {name: Lexical(index.bm25.parts, k1, b) for name, (k1, b) in BM25_LEVERS.items()}
    lexicals[NEIGHBOURS] = _neighbours(index, rows_in_order, neighbour_texts(chunk_texts, titles), work)
    rankings: dict[str, Fusion] = {
        "dense": lambda s: [r for r, _ in s.dense],
        "bm25": lambda s: [r for r, _ in s.lexical],
        # `ask`'s fusion as configured, on as many results as it takes (its recall@100 is of those)
        "hybrid": asks(config),
        # the levers but the one that is `ask`'s own fusion, "hybrid" above
        **{name: f for name, f in levers(config.candidates).items() if name != _own(config)},
        **side_levers(config),
    }
    measured: dict[str, dict[str, dict[str, float]]] = {split: {} for split in splits}
    for split, (ids, qrels) in splits.items():
        ranked: dict[str, list[list[str]]] = {name: [] for name in rankings}
        for qid in tqdm(ids, desc=f"scifact {split} queries", unit="query"):
            searched = _search(index, embedder, queries[qid], lexicals, rankings["hybrid"])
            for name, rank in rankings.items():
                ranked[name].append(_documents(rank(searched), doc_of))
        for name, lists in ranked.items():
            measured[split][name] = {
                "ndcg@10": round(sum(ndcg_at_k(r, qrels[q]) for r, q in zip(lists, ids, strict=True)) / len(ids), 4),
                "recall@100": round(sum(recall_at_k(r, qrels[q]) for r, q in zip(lists, ids, strict=True)) / len(ids), 4),
            }  # fmt: skip
    methods = {
        name: {**measured["test"][name], "train ndcg@10": measured["train"][name]["ndcg@10"]}
        for name in rankings
    }
    return {
        "queries": len(splits["test"][0]),
        "train_queries": len(splits["train"][0]),
        "documents": report.documents,
        "chunks": report.chunks,
        "index_seconds": round(report.seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "methods": methods,
        "asks_fusion": asks_fusion(config),
        "bm25": {"k1": K1, "b": B},
        "feedback_chunks": FED,
        "chosen_on_train": chosen_on_train(methods),
    }


def asks_fusion(config: Config) -> str:
    """`ask`'s fusion as configured, in words."""
    how = (f"convex, dense {config.dense_share}" if config.fusion == "convex"
           else f"reciprocal rank, k {config.rrf_k}")  # fmt: skip
    return f"{how}, on the first {config.candidates} results of each ranking"


def chosen_on_train(methods: dict[str, dict[str, float]]) -> str:
    """The fused ranking (not a baseline alone) with the best nDCG@10 on the train queries."""
    return max(
        (name for name in methods if name not in ("dense", "bm25")), key=lambda n: methods[n]["train ndcg@10"]
    )


def _search(
    index: Index, embedder: Embedder, text: str, lexicals: dict[str, Lexical], asks: Fusion
) -> Searched:
    question = embedder.embed([text])
    searched = Searched(_dense(index, question), index.bm25.search(text, DEPTH))
    sides = {name: lexical.search(text, DEPTH) for name, lexical in lexicals.items()}
    first = asks(searched)[:FED]
    if first:
        moved = question[0] + index.vectors.get(np.array(first)).mean(axis=0)
        sides[FEEDBACK] = _dense(index, (moved / np.linalg.norm(moved))[None, :])
    else:
        sides[FEEDBACK] = searched.dense
    return Searched(searched.dense, searched.lexical, sides)


def _dense(index: Index, vectors: np.ndarray) -> list[tuple[int, float]]:
    scores, rows = index.vectors.search(np.asarray(vectors, dtype=np.float32), DEPTH)
    return [(int(r), float(v)) for r, v in zip(rows[0], scores[0], strict=True) if r >= 0]


def _neighbours(index: Index, rows: list[int], texts: list[str], work: Path) -> Lexical:
    """BM25 over `texts` (one per chunk row in `rows`), the index's rows kept."""
    folder = work / "scifact-neighbours"
    shutil.rmtree(folder, ignore_errors=True)
    by_row = [""] * len(index)
    for row, text in zip(rows, texts, strict=True):
        by_row[row] = text
    Terms.write(by_row, folder)
    return Lexical([Part(Terms.open(folder), 0, None)])


def _subset(corpus: Path, keep: set[str], work: Path, seed: int, extra: int = 100) -> Path:
    """The judged documents plus a fixed random sample of others, for a quick run."""
    lines = corpus.read_text().splitlines()
    rng = random.Random(seed)
    chosen = [line for line in lines if json.loads(line)["_id"] in keep] + rng.sample(lines, extra)
    out = work / "scifact-sample" / "corpus.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(dict.fromkeys(chosen)) + "\n")
    return out
