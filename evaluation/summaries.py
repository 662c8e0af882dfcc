"""Summaries on SummEval (CNN/DailyMail) and XSum through `summarize`: ROUGE of what users get
against the references, beside the lead-3 / lead-1 baselines scored by the same code in the
same run; the share of the model's summary sentences the source supports, scored before the
summariser's own check leaves unsupported ones out (scored after it, by the same check, the
figure could not fail), and how many that check left out; the human reference summaries scored
by the same check, a figure it can fail (they are written in other words than their articles,
and XSum's say things their articles do not); seconds per summary. The check that scores them
is the summariser's own, so how far it can be trusted on summaries is measured apart: against
the experts' consistency ratings of SummEval's system summaries."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from embeddings.builder import build
from embeddings.chunker import sentences
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from evaluation import data
from evaluation.metrics import auc
from qa.assistant import Assistant
from qa.generator import Generator
from qa.support import support

ROUGE = ("rouge1", "rouge2", "rougeL")


def rouge(prediction: str, references: tuple[str, ...]) -> dict[str, float]:
    """ROUGE F1 against the best-matching reference, per variant."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(list(ROUGE), use_stemmer=True)
    scores = [scorer.score(ref, prediction) for ref in references]
    return {k: max(s[k].fmeasure for s in scores) for k in ROUGE}


def lead(text: str, n: int) -> str:
    return " ".join(text[s:e] for s, e in sentences(text)[:n])


def supported_share(summary: str, source: str, threshold: float) -> float:
    said = [summary[s:e] for s, e in sentences(summary)]
    return sum(support(s, source).holds(threshold) for s in said) / len(said) if said else 0.0


def checker_against_experts(folder: Path, threshold: float, limit: int | None = None) -> dict:
    """How far the support check's figures can be trusted on summaries: SummEval's 1,600 system
    summaries read by the check at `threshold`, against the experts' consistency ratings. The AUC
    of the share of sentences the check holds, for telling the summaries rated fully consistent
    from the rest (0.5: no better than chance), and the share of each with a sentence not held."""
    rated = data.summeval_rated(folder)[:limit]  # a smoke run's: the first articles' 16 each
    shares = [supported_share(r.summary, r.article, threshold) for r in rated]
    consistent = [s for s, r in zip(shares, rated, strict=True) if r.consistency == 5]
    not_consistent = [s for s, r in zip(shares, rated, strict=True) if r.consistency < 5]
    return {
        "summaries": len(rated),
        "rated_consistent": len(consistent),
        "rated_not_consistent": len(not_consistent),
        "auc": round(auc(not_consistent, consistent), 4) if consistent and not_consistent else None,
        "consistent_flagged": round(sum(s < 1 for s in consistent) / max(len(consistent), 1), 4),
        "not_consistent_flagged": round(sum(s < 1 for s in not_consistent) / max(len(not_consistent), 1), 4),
    }


def run(folder: Path, work: Path, config: Config, embedder: Embedder, generator: Generator,
        sizes: dict[str, int], seed: int = 13) -> dict:  # fmt: skip
    sets = {"summeval": (data.summeval(folder), 3), "xsum": (data.xsum(folder), 1)}
    results = {}
    for name, (articles, length) in sets.items():
        started = time.perf_counter()
        sample = random.Random(seed).sample(articles, min(sizes[name], len(articles)))
        corpus = work / f"summaries-{name}" / "articles.jsonl"
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text(
            "".join(json.dumps({"id": a.id, "title": a.id, "text": a.text}) + "\n" for a in sample)
        )
        settings = replace(
            config, docs=corpus, index_dir=work / f"summaries-{name}-index", summary_sentences=length
        )
        build(settings, embedder, progress=False)
        (settings.index_dir / "summaries.sqlite").unlink(missing_ok=True)  # time real work, not the cache
        assistant = Assistant(Index.open(settings.index_dir, embedder), generator, settings)
        rows = []
        for article in tqdm(sample, desc=f"summaries {name}", unit="article"):
            summary = assistant.summarize(article.id)
            # what the model wrote: what was kept, what the check left out and a sentence cut short
            left_out = [*summary.left_out, *([summary.unfinished] if summary.unfinished else [])]
            written = " ".join([summary.text, *left_out])
            baseline = lead(article.text, length)
            rows.append({
                "id": article.id, "summary": summary.text, "seconds": summary.seconds, "calls": summary.calls,
                "rouge": rouge(summary.text, article.references),
                "lead": rouge(baseline, article.references),
                "supported": supported_share(written, article.text, config.support_threshold),
                "left_out": len(left_out), "sentences": len(sentences(written)),
                "marked_unsupported": not summary.supported,
                "references_supported": sum(
                    supported_share(ref, article.text, config.support_threshold) for ref in article.references
                ) / len(article.references),
            })  # fmt: skip
        n = len(rows)
        results[name] = {
            "articles": n,
            "sentences_asked": length,
            "docqa": {k: round(sum(r["rouge"][k] for r in rows) / n, 4) for k in ROUGE},
            f"lead-{length}": {k: round(sum(r["lead"][k] for r in rows) / n, 4) for k in ROUGE},
            # pooled over every sentence written, as "left out" is
            "supported_sentences": round(
                sum(r["supported"] * r["sentences"] for r in rows)
                / max(sum(r["sentences"] for r in rows), 1),
                4,
            ),
            "left_out_sentences": round(
                sum(r["left_out"] for r in rows) / max(sum(r["sentences"] for r in rows), 1), 4
            ),
            "marked_unsupported": round(sum(r["marked_unsupported"] for r in rows) / n, 4),
            "references_supported_sentences": round(sum(r["references_supported"] for r in rows) / n, 4),
            "seconds_per_summary": round(sum(r["seconds"] for r in rows) / n, 2),
            "seconds": round(time.perf_counter() - started, 1),
            "records": rows,
        }
    results["summeval"]["checker_against_experts"] = checker_against_experts(
        folder, config.support_threshold, sizes.get("rated_summaries")
    )
    return results
