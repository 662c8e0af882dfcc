"""reports/eval.json and a readable reports/eval.md. Every number comes from the run's results;
the only constants are the goals they are checked against (evaluation/goals.py). Each stage's
section is written by report_checks, report_answers or report_documents."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.goals import Goal, row
from evaluation.machine import describe, measured
from evaluation.report_answers import answers_section, followups_section
from evaluation.report_checks import asked_section, contradictions_section, retrieval_section
from evaluation.report_documents import injection_section, summaries_section


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / "eval.md").write_text(markdown(results))
    return out / "eval.json", out / "eval.md"


def markdown(r: dict) -> str:
    run = r["run"]
    m = run["machine"]
    lines = [
        "# docqa evaluation",
        "",
        f"Run {run['date']} of {measured(run)} on {describe(m)}, {m['platform']}; {run['seconds'] / 60:.0f} minutes. "
        f"Embeddings {run['models']['embedding']}, generator {run['models']['generator']}. Seed {run['seed']}. "
        f"Command: `{run['command']}`.",
        "",
        "Every threshold this run chooses is chosen on the calibration half of its set (the even-numbered "
        "XQuAD articles in sorted order) and every rate is reported on the other half; rows marked 'as "
        "configured', the injection and the summary sections run docqa's shipped settings. Baselines are "
        "measured in this run.",
        "",
    ]
    if run.get("missing"):
        lines += ["**Missing data:** " + "; ".join(run["missing"]), ""]
    head = len(lines)  # the goals table goes here, before the stages' sections
    goals: list[Goal] = []
    sections = {
        "retrieval": retrieval_section, "contradictions": contradictions_section, "asked": asked_section,
        "xquad": answers_section, "news": answers_section, "followups": followups_section,
        "injection": injection_section, "summaries": summaries_section,
    }  # fmt: skip
    for stage, render in sections.items():
        if stage in r:
            lines += render(r[stage], goals, stage)
    if goals:
        table = [row(g.goal, g.measured, g.met, *g.samples, why=g.why) for g in goals]
        lines[head:head] = ["## Goals", "", "| goal | measured | |", "|---|---|---|", *table, "",
                            "A rate's 95% interval (Wilson) says where it may lie given how many cases measured it; "
                            "a difference between two ways of asking the same questions gets a paired one (the "
                            "questions drawn again with replacement, 2,000 times); where the interval holds the "
                            "goal, this sample cannot tell whether the goal is met.", ""]  # fmt: skip
    lines += [
        "",
        f"Sample sizes: `{json.dumps(run['sizes'])}`. Settings: `{json.dumps(run['settings'])}`.",
        "",
    ]
    return "\n".join(lines)
