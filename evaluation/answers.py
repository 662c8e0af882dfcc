"""XQuAD end to end through `ask`: answer quality on answerable questions, and refusals of
questions whose answer is not indexed, off-topic (a fifth of the articles held out) and
on-topic (a fifth of each remaining article's paragraphs held out). One index serves both."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from evaluation import data
from evaluation.metrics import auc, contained, exact_match, f1, refusal_rates
from qa.assistant import Assistant
from qa.generator import Generator

REL_GRID = [round(0.05 * i, 2) for i in range(13)]  # 0 .. 0.6, for the curve
FINE_GRID = [round(0.01 * i, 2) for i in range(61)]  # 0 .. 0.6, for calibrating
# The share of answerable questions each threshold may decline on the calibration half: half of
# the 5% goal each, since the few dozen replies there make the support threshold noisy.
BUDGET = 0.025


def split(paragraphs: list[data.Paragraph]) -> tuple[set[str], set[str]]:
    """(held-out articles, held-out paragraph ids): every fifth article by title, and in the
    others the paragraph at position 2 of every five."""
    titles = sorted({p.article for p in paragraphs})
    held_articles = {t for i, t in enumerate(titles) if i % 5 == 0}
    held_paragraphs, position = set(), {}
    for p in paragraphs:
        n = position[p.article] = position.get(p.article, -1) + 1
        if p.article not in held_articles and n % 5 == 2:
            held_paragraphs.add(p.id)
    return held_articles, held_paragraphs


def run(folder: Path, work: Path, config: Config, embedder: Embedder, generator: Generator,
        sizes: dict[str, int], seed: int = 13) -> dict:  # fmt: skip
    started = time.perf_counter()
    paragraphs, questions = data.xquad(folder)
    held_articles, held_paragraphs = split(paragraphs)
    corpus = work / "xquad" / "paragraphs.jsonl"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    indexed = [p for p in paragraphs if p.article not in held_articles and p.id not in held_paragraphs]
    corpus.write_text(
        "".join(json.dumps({"id": p.id, "title": p.article, "text": p.text}) + "\n" for p in indexed)
    )
    index_config = replace(config, docs=corpus, index_dir=work / "xquad-index")
    build(index_config, embedder, progress=True)
    # Always ask the model, so every refusal rule can be replayed on the same replies.
    probe = replace(config, index_dir=index_config.index_dir, min_relevance=0.0, min_support=0.0)
    assistant = Assistant(Index.open(probe.index_dir, embedder), generator, probe)

    groups = {
        "answerable": [
            q for q in questions if q.article not in held_articles and q.paragraph not in held_paragraphs
        ],
        "on_topic": [q for q in questions if q.paragraph in held_paragraphs],
        "off_topic": [q for q in questions if q.article in held_articles],
    }
    # Retrieval scores alone, for every question: cheap, and the baseline the model must beat.
    top = {q.id: assistant.retriever(q.text).top_score for qs in groups.values() for q in qs}
    rng = random.Random(seed)
    sample = {g: rng.sample(qs, min(sizes[g], len(qs))) for g, qs in groups.items()}
    records = []
    for group, qs in sample.items():
        for q in tqdm(qs, desc=f"xquad {group}", unit="question"):
            answer = assistant.ask(q.text)
            records.append({
                "id": q.id, "group": group, "question": q.text, "gold": list(q.answers), "paragraph": q.paragraph,
                "answer": answer.text, "model_refused": answer.abstained, "top_score": round(top[q.id], 4),
                "support": answer.support, "passages": [p.doc_id for p in answer.passages],
                "cited": sorted({c.doc_id for c in answer.citations if c.supported}),
                "seconds": answer.timings["total"],
            })  # fmt: skip
    scores = {g: [round(top[q.id], 4) for q in qs] for g, qs in groups.items()}
    return {
        "split": {
            "held_out_articles": len(held_articles),
            "held_out_paragraphs": len(held_paragraphs),
            "indexed_paragraphs": len(indexed),
            "questions": {g: len(q) for g, q in groups.items()},
            "sampled": {g: len(q) for g, q in sample.items()},
        },  # fmt: skip
        "answers": answer_scores([r for r in records if r["group"] == "answerable"], config),
        "refusals": refusal_scores(records, scores, config),
        "records": records,
        "top_scores": scores,
        "seconds": round(time.perf_counter() - started, 1),
    }


def declines(r: dict, min_relevance: float, min_support: float, use_model: bool = True) -> bool:
    """Whether docqa, with these thresholds, would say the documents do not hold the answer."""
    return (
        (use_model and r["model_refused"])
        or r["top_score"] < min_relevance
        or (not r["model_refused"] and r["support"] < min_support)
    )


def answer_scores(records: list[dict], config: Config) -> dict:
    n = len(records)
    if not n:
        return {}
    said = [("" if declines(r, config.min_relevance, config.min_support) else r["answer"]) for r in records]
    return {
        "questions": n,
        "exact_match": round(
            sum(exact_match(a, r["gold"]) for a, r in zip(said, records, strict=True)) / n, 4
        ),
        "f1": round(sum(f1(a, r["gold"]) for a, r in zip(said, records, strict=True)) / n, 4),
        "contained": round(sum(contained(a, r["gold"]) for a, r in zip(said, records, strict=True)) / n, 4),
        "answered": round(sum(bool(a) for a in said) / n, 4),
        f"hit@{config.top_k}": round(sum(r["paragraph"] in r["passages"] for r in records) / n, 4),
        "cited_gold": round(sum(r["paragraph"] in r["cited"] for r in records) / n, 4),
        "seconds_per_answer": round(sum(r["seconds"] for r in records) / n, 2),
    }


def refusal_scores(records: list[dict], scores: dict[str, list[float]], config: Config) -> dict:
    """Refusal rates of the sampled replies under each rule; `scores` are the retrieval scores
    of every question by group, for the score-only separation (AUC)."""
    by = {g: [r for r in records if r["group"] == g] for g in scores}
    # Calibrate on one half, report on the other; half 2 is all of them.
    halves = {g: (rs[0::2], rs[1::2], rs) for g, rs in by.items()}

    def rates(half: int, rel: float, sup: float, use_model: bool = True) -> dict:
        ans = [declines(r, rel, sup, use_model) for r in halves["answerable"][half]]
        out = {"over_refusal": refusal_rates([], ans)["over_refusal"]}
        for g in ("off_topic", "on_topic"):
            out[g] = refusal_rates([declines(r, rel, sup, use_model) for r in halves[g][half]], [])[
                "right_refusals"
            ]
        return out

    # The relevance threshold from the retrieval scores of every answerable question in the
    # calibration half (hundreds, not the few dozen the model answered), then the support
    # threshold from the model's replies, each the highest that keeps within its budget.
    answerable = scores["answerable"][0::2]
    rel = max(t for t in FINE_GRID if sum(s < t for s in answerable) / len(answerable) <= BUDGET)
    sup = max(t for t in FINE_GRID if rates(0, 0.0, t)["over_refusal"] <= BUDGET)
    best = (rel, sup)
    curve = [
        {
            "min_relevance": rel,
            "retrieval_only": rates(1, rel, 0.0, use_model=False),
            "with_model": rates(1, rel, config.min_support),
        }
        for rel in REL_GRID
    ]
    return {
        "retrieval_auc": {
            g: round(auc(scores[g], scores["answerable"]), 4) for g in ("off_topic", "on_topic")
        },
        "calibrated": {
            "min_relevance": best[0],
            "min_support": best[1],
            "on_calibration_half": rates(0, *best),
            "on_report_half": rates(1, *best),
        },  # fmt: skip
        "as_configured": {
            "min_relevance": config.min_relevance,
            "min_support": config.min_support,
            "on_report_half": rates(1, config.min_relevance, config.min_support),
            "on_all_sampled": rates(2, config.min_relevance, config.min_support),
        },  # fmt: skip
        "model_alone": rates(1, 0.0, 0.0),
        "curve": curve,
    }
