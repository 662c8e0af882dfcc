"""reports/eval.json and a readable reports/eval.md with plots."""

from __future__ import annotations

import json
from pathlib import Path

REFERENCE = {"bm25": 0.686, "dense": 0.645, "hybrid": 0.717}  # measured here with plain BM25/MiniLM/RRF


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    plots = _plots(results, out)
    (out / "eval.md").write_text(markdown(results, plots))
    return out / "eval.json", out / "eval.md"


def markdown(r: dict, plots: list[str]) -> str:
    run = r["run"]
    lines = [
        "# docqa evaluation",
        "",
        f"Run {run['date']} on {run['machine']['cpu']} ({run['machine']['cores']} cores, {run['machine']['platform']}), "
        f"{run['seconds'] / 60:.0f} minutes. Embeddings {run['models']['embedding']}, generator "
        f"{run['models']['generator']}. Seed {run['seed']}. Command: `{run['command']}`.",
        "",
    ]
    if run.get("missing"):
        lines += ["**Missing data:** " + "; ".join(run["missing"]), ""]
    if "retrieval" in r:
        s = r["retrieval"]
        lines += [
            f"## Retrieval: SciFact ({s['queries']} test queries, {s['documents']} documents, {s['chunks']} chunks)",
            "",
            "| method | nDCG@10 | recall@100 | measured before docqa |",
            "|---|---|---|---|",
        ]
        for name, m in s["methods"].items():
            lines.append(
                f"| {name} | {m['ndcg@10']:.3f} | {m['recall@100']:.3f} | {REFERENCE.get(name, '')} |"
            )
        lines += ["", "Target for the hybrid that `ask` uses: above 0.717; goal 0.75.", ""]
    if "xquad" in r:
        x = r["xquad"]
        a, f = x["answers"], x["refusals"]
        k = next(key for key in a if key.startswith("hit@"))
        sp = x["split"]
        lines += [
            "## Answers: XQuAD through `ask`",
            "",
            f"{sp['indexed_paragraphs']} paragraphs indexed, each a document; {sp['held_out_articles']} articles and "
            f"{sp['held_out_paragraphs']} paragraphs of the others held out for the refusal tests. Sampled "
            f"questions: {sp['sampled']} (of {sp['questions']}).",
            "",
            f"| questions | exact match | F1 | gold answer contained | answered | gold paragraph {k} | gold paragraph cited | s/answer |",
            "|---|---|---|---|---|---|---|---|",
            f"| {a['questions']} | {a['exact_match']:.3f} | {a['f1']:.3f} | {a['contained']:.3f} | {a['answered']:.3f} "
            f"| {a[k]:.3f} | {a['cited_gold']:.3f} | {a['seconds_per_answer']:.1f} |",
            "",
            "Exact match is low by design: docqa answers in a full sentence with a citation, not a bare span.",
            "",
            "## Refusals",
            "",
            f"Retrieval score alone separates off-topic questions with AUC {f['retrieval_auc']['off_topic']:.3f} "
            f"and on-topic ones with AUC {f['retrieval_auc']['on_topic']:.3f}.",
            "",
            "| rule (reported on the held-back half) | off-topic declined | on-topic declined | answerable declined |",
            "|---|---|---|---|",
        ]
        c, ac = f["calibrated"], f["as_configured"]
        rows = [
            (f"calibrated: relevance < {c['min_relevance']}, support < {c['min_support']}, or the model declines",
             c["on_report_half"]),
            (f"as configured: relevance < {ac['min_relevance']}, support < {ac['min_support']}, or the model declines",
             ac["on_report_half"]),
            ("as configured, on all the sampled questions (both halves)", ac["on_all_sampled"]),
            ("the model's own judgement only", f["model_alone"]),
        ]  # fmt: skip
        for name, v in rows:
            lines.append(f"| {name} | {v['off_topic']:.3f} | {v['on_topic']:.3f} | {v['over_refusal']:.3f} |")
        lines += [
            "",
            "Goals: off-topic >= 0.97 declined at <= 0.05 answerable declined; on-topic >= 0.80 at <= 0.10. "
            "Thresholds are calibrated on one half of the questions and reported on the other: the "
            "relevance threshold is the highest that declines at most 2.5% of the calibration half's "
            "answerable questions by retrieval score (all of them, not only those sampled), the support "
            "threshold the highest that declines at most 2.5% of the sampled answerable ones there.",
            "",
        ]
    if "summaries" in r:
        lines += [
            "## Summaries",
            "",
            "| set | articles | docqa R1 / R2 / RL | lead baseline R1 / R2 / RL | summary sentences supported | s/summary |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in r["summaries"].items():
            lead = next(v for key, v in s.items() if key.startswith("lead-"))
            lead_name = next(key for key in s if key.startswith("lead-"))
            d = s["docqa"]
            lines.append(
                f"| {name} | {s['articles']} | {d['rouge1']:.3f} / {d['rouge2']:.3f} / {d['rougeL']:.3f} | "
                f"{lead_name}: {lead['rouge1']:.3f} / {lead['rouge2']:.3f} / {lead['rougeL']:.3f} | "
                f"{s['supported_sentences']:.3f} | {s['seconds_per_summary']:.1f} |"
            )
        lines += [
            "",
            "ROUGE F1 against the best-matching reference (SummEval has 11 per article, XSum one).",
            "",
        ]
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["", f"Sample sizes: {run['sizes']}. Settings: `{json.dumps(run['settings'])}`.", ""]
    return "\n".join(lines)


def _plots(r: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if "retrieval" in r:
        methods = r["retrieval"]["methods"]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(list(methods), [m["ndcg@10"] for m in methods.values()], color=["#888", "#888", "#2a6"])
        ax.axhline(0.717, ls="--", color="k", lw=0.8, label="RRF measured before (0.717)")
        ax.set_ylabel("nDCG@10")
        ax.set_title("SciFact retrieval")
        ax.set_ylim(0.5, 0.8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "eval-retrieval.png", dpi=110)
        plt.close(fig)
        names.append("eval-retrieval.png")
    if "xquad" in r:
        curve = r["xquad"]["refusals"]["curve"]
        support = r["xquad"]["refusals"]["as_configured"]["min_support"]
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for key, style in (("retrieval_only", "--"), ("with_model", "-")):
            xs = [p[key]["over_refusal"] for p in curve]
            for group, color in (("off_topic", "#c33"), ("on_topic", "#36c")):
                label = f"{group.replace('_', '-')}, {'score only' if key == 'retrieval_only' else f'+ model + support < {support}'}"
                ax.plot(xs, [p[key][group] for p in curve], style, color=color, marker=".", label=label)
        ax.set_xlabel("answerable questions declined")
        ax.set_ylabel("unanswerable questions declined")
        ax.set_title("Refusal trade-off as the relevance threshold moves")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "eval-refusals.png", dpi=110)
        plt.close(fig)
        names.append("eval-refusals.png")
    return names
