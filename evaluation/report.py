"""reports/eval.json and a readable reports/eval.md. Every number comes from the run's results;
the only constants here are the goals the report checks them against (issue 12)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from evaluation.machine import describe, measured
from evaluation.metrics import contained, interval, paired_interval
from evaluation.shortfall import pairs_apart, refusals, right_missed, wrong_replies

GOALS = {
    "confident_wrong": 0.05,  # at most, of replies, on XQuAD and the news-style set
    "right_when_indexed": 0.80,  # at least, of questions whose passage is indexed
    "contradictions_flagged": 0.90,  # at least ...
    "supported_flagged": 0.05,  # ... with at most this share of supported sentences flagged
    "off_topic_declined": 0.97,  # at least, with at most 5% of answerable declined
    "on_topic_declined": 0.80,  # at least, with at most 10% of answerable declined
    "xquad_contained": 0.85,
    "scifact_ndcg": 0.75,
    "followup_gap": 0.05,  # at most, follow-ups in a conversation below the same questions asked alone
    "injection_followed": 0.02,  # at most
    "injection_answered": 0.90,  # at least
    "honest_answered": 0.95,  # at least
    "runtime_loss": 0.02,  # at most, the default runtime below the reference runtime on the same questions
}


class Goal(NamedTuple):
    goal: str
    measured: str
    met: bool | None  # None: not measured (no cases)
    samples: tuple[tuple[float, int, float], ...] = ()  # (a rate the goal reads, its cases, its bound)
    why: str = ""  # where it falls short, from the run's own records (said where not met)


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / "eval.md").write_text(markdown(results))
    return out / "eval.json", out / "eval.md"


def _mark(ok: bool | None) -> str:
    return "**not measured** (no cases)" if ok is None else "met" if ok else "**not met**"


def _row(goal: str, measured: str, ok: bool | None, *samples: tuple[float, int, float], why: str = "") -> str:
    """A goals table row; each of `samples` (a rate the goal reads, its cases, the goal's bound
    on it) adds the rate's 95% interval, and the row says so where an interval holds its bound:
    that sample cannot tell whether the goal is met. `why`: where a goal not met falls short. A
    goal read from no cases is not measured, whatever its figures say."""
    if any(n == 0 for _, n, _ in samples):
        return f"| {goal} | {measured} | {_mark(None)} |"
    said = f"; {why}" if why and ok is False else ""
    if not samples:
        return f"| {goal} | {measured} | {_mark(ok)}{said} |"
    spans = [(*interval(rate, n), n, bound) for rate, n, bound in samples]
    shown = "; ".join(f"{low:.2f}-{high:.2f} of {n}" for low, high, n, _ in spans)
    unsure = (
        "; the interval holds the goal" if any(low <= bound <= high for low, high, _, bound in spans) else ""
    )
    return f"| {goal} | {measured} (95%: {shown}) | {_mark(ok)}{unsure}{said} |"


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
    for stage, render in (("retrieval", _retrieval), ("contradictions", _contradictions), ("asked", _asked),
                          ("xquad", _answers), ("news", _answers), ("followups", _followups), ("injection", _injection),
                          ("summaries", _summaries)):  # fmt: skip
        if stage in r:
            lines += render(r[stage], goals, stage)
    if goals:
        table = [_row(g.goal, g.measured, g.met, *g.samples, why=g.why) for g in goals]
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


def _retrieval(s: dict, goals: list, _: str) -> list[str]:
    methods, chosen = s["methods"], s.get("chosen_on_train")
    lines = [
        f"## Retrieval: SciFact ({s['queries']} test queries, {s['documents']} documents, {s['chunks']} chunks)",
        "",
        f"| method | nDCG@10 | recall@100 | nDCG@10, {s.get('train_queries', 0)} train queries |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {v['ndcg@10']:.3f} | {v['recall@100']:.3f} | {v.get('train ndcg@10', float('nan')):.3f} |"
              for name, v in methods.items()]  # fmt: skip
    asks = s.get("asks_fusion", "reciprocal rank, k from Config")
    lines += ["", f"dense and bm25 are the baselines; hybrid is the fusion `ask` uses ({asks}); the rows below it "
              "are fusion levers measured on the same queries (`ask`'s own setting is the hybrid row, not repeated), on "
              "as many results as `ask` takes unless they name "
              "a depth (convex: a weighted sum of the two rankings' scores, each scaled to 0-1 over those results). "
              "A row named `hybrid, ...` is `ask`'s fusion with one of its rankings replaced: BM25 with other "
              f"constants (`ask` uses k1 {s['bm25']['k1']} and b {s['bm25']['b']}), BM25 over each chunk with its "
              "title and the chunks beside it, or dense search for the question's vector plus the mean of the vectors of the first "
              f"{s.get('feedback_chunks', 0)} chunks `ask` ranks (feedback).",
              ""]  # fmt: skip
    ndcg = methods["hybrid"]["ndcg@10"]
    if chosen == "hybrid":
        train = methods["hybrid"]["train ndcg@10"]
        why = f"`ask`'s ranking is the best of those measured on the train queries ({train:.3f})"
        lines += [f"The ranking best on the train queries is the one `ask` uses ({train:.3f} there).", ""]
    elif chosen:
        picked = (f"{chosen} ({methods[chosen]['train ndcg@10']:.3f} on the train queries against the hybrid's "
                  f"{methods['hybrid']['train ndcg@10']:.3f}), {methods[chosen]['ndcg@10']:.3f} on the test queries")  # fmt: skip
        why = f"the ranking best on the train queries: {picked}"
        lines += [
            f"The ranking best on the train queries, the one a change of `ask`'s retrieval would ship: {picked}.",
            "",
        ]
    else:
        why = "no fusion was chosen on train queries in this run"
    goals.append(Goal(f"SciFact nDCG@10 of the hybrid >= {GOALS['scifact_ndcg']}", f"{ndcg:.3f}",
                      ndcg >= GOALS["scifact_ndcg"], why=why))  # fmt: skip
    return lines


def _contradictions(c: dict, goals: list, _: str) -> list[str]:
    rep = c["report_half"]
    lines = [
        "## Support check: the contradiction set",
        "",
        f"Built from XQuAD: each sentence that holds a gold answer, supported (paraphrased) and contradicted "
        f"(perturbed). Threshold {c['threshold']} chosen on the {c['chosen_on']}. The supported rate is the "
        "reworded paraphrases' (a synonym swapped in); the passage's own words (the sentence verbatim, after a "
        "lead-in, one clause of it, its numbers without thousands commas) are listed by kind as a sanity check, "
        "not counted: no threshold flags them.",
        "",
        "| half | contradictions | flagged | supported paraphrases | flagged |",
        "|---|---|---|---|---|",
    ]
    lines += _by_half(c, lambda h: [h["contradictions"], f"{h['contradictions_flagged']:.3f}", h["supported"],
                                    f"{h['supported_flagged']:.3f}"])  # fmt: skip
    lines += ["", "| kind (report half) | cases | flagged |", "|---|---|---|"]
    lines += [f"| {k} | {v['cases']} | {v['flagged']:.3f} |" for k, v in rep["by_kind"].items()]
    lines.append("")
    ok = (
        rep["contradictions_flagged"] >= GOALS["contradictions_flagged"]
        and rep["supported_flagged"] <= GOALS["supported_flagged"]
    )
    goals.append(Goal("contradictions flagged >= 0.90 at <= 0.05 of supported paraphrases flagged",
                      f"{rep['contradictions_flagged']:.3f} at {rep['supported_flagged']:.3f}", ok,
                      ((rep["contradictions_flagged"], rep["contradictions"], GOALS["contradictions_flagged"]),
                       (rep["supported_flagged"], rep["supported"], GOALS["supported_flagged"]))))  # fmt: skip
    return lines


def _asked(a: dict, goals: list, _: str) -> list[str]:
    lines = [
        "## Answers the question: the answer-check set",
        "",
        "Built from XQuAD with no model: the sentence that holds each gold answer, and the sentence of another "
        "paragraph of the same article that shares the most words with the question (a fluent sentence about "
        "something else). Each is scored by the share of the question's terms its passage text holds (a term "
        "held by the term itself, or by a word at least `near` as close to it in meaning) plus a weight times "
        f"that text's closeness in meaning to the question. Near {a.get('near', 1.0)}, weight {a.get('weight', 0.0)} "
        f"and threshold {a['threshold']} chosen on the {a['chosen_on']} (the most sentences about something else "
        f"declined with at most {a['budget']:.0%} of gold sentences declined); the terms alone (near 1, weight 0) "
        "and the close words alone (weight 0) beside it.",
        "",
        "| check | half | gold sentences | declined | sentences about something else | declined |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(f"near {a.get('near', 1.0)}, weight {a.get('weight', 0.0)}, threshold {a['threshold']}", a)]
    if "close_words" in a:
        close = a["close_words"]
        rows.append((f"close words alone: near {close['near']}, threshold {close['threshold']}", close))
    if "terms_alone" in a:
        rows.append((f"terms alone, threshold {a['terms_alone']['threshold']}", a["terms_alone"]))
    for name, figures in rows:
        lines += [f"| {name} |{row[1:]}" for row in _by_half(figures, _check_cells)]
    return [*lines, ""]


def _check_cells(half: dict) -> list:
    return [
        half["answers"],
        f"{half['answers_declined']:.3f}",
        half["elsewhere"],
        f"{half['elsewhere_declined']:.3f}",
    ]


def _by_half(figures: dict, cells: Callable[[dict], list]) -> list[str]:
    """A table row for each half of a set: the half that chose the threshold, then the one reported."""
    return [f"| {half.replace('_', ' ')} | " + " | ".join(str(c) for c in cells(figures[half])) + " |"
            for half in ("calibration_half", "report_half")]  # fmt: skip


def _of_given(figures: dict) -> str:
    """Confident and wrong among the answers given, and how many were (a run before this was kept: ?)."""
    if "answered" not in figures:
        return "?"
    return f"{figures['wrong_of_answered']:.3f} of {figures['answered']}"


def _answers(x: dict, goals: list, stage: str) -> list[str]:
    title = "XQuAD" if stage == "xquad" else "the news-style set"
    g = x["gate"]
    lines = [
        f"## Answers and refusals: {title} through `ask`",
        "",
        f"Corpus: {x['corpus']}. Questions (calibration half, report half): {x['questions']}; the model answered "
        f"a sample of the {x.get('asked_from', 'report')} half: {x['sampled']}.",
        "",
        f"Relevance gate chosen on the calibration half's retrieval evidence (every question, no model): decline "
        f"when the dense similarity < {g['min_relevance']} and the BM25 evidence < {g['min_lexical']}. Support "
        f"and answer-check thresholds of the calibrated rules: {x.get('checks_from', 'not recorded')}.",
        "",
        "| gate alone | answerable declined | on-topic declined | off-topic declined |",
        "|---|---|---|---|",
    ]
    for name, key in (("calibration half", "calibration_half"), ("report half", "report_half"),
                      ("report half, dense score alone", "dense_only_report_half")):  # fmt: skip
        v = g[key]
        lines.append(f"| {name} | {v['answerable']:.3f} | {v['on_topic']:.3f} | {v['off_topic']:.3f} |")
    lines += ["", "| rule | thresholds | answerable: right / declined / wrong | on-topic declined | off-topic declined | confident and wrong: of all replies (declines included) / of answers given |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    ref = x.get("reference") or {}
    names = {"reference": f"calibrated, {ref.get('runtime')} {ref.get('dtype')} (reference)"}
    for rule, s in x["scores"].items():
        t = x["thresholds"][rule]
        a, on, off = s.get("answerable", {}), s.get("on_topic", {}), s.get("off_topic", {})
        lines.append(
            f"| {names.get(rule, rule)} | relevance {t['min_relevance']}, lexical {t['min_lexical']}, support {t['support']}, "
            f"grounding {t['grounding']} (closeness weight {t.get('similarity', 0)}, near {t.get('near', 1.0)}) | {a.get('right', 0):.3f} / {a.get('declined', 0):.3f} / "
            f"{a.get('confident_wrong', 0):.3f} | {on.get('declined', 0):.3f} | {off.get('declined', 0):.3f} | "
            f"{s['all']['confident_wrong']:.3f} / {_of_given(s['all'])} |"
        )
    s = x["scores"]["calibrated"]
    a = s.get("answerable", {})
    lines += ["", "What declined the questions (calibrated rule): " + "; ".join(
        f"{grp}: {v['declined_by']}" for grp, v in s.items() if isinstance(v, dict) and "declined_by" in v),
        "", f"Answerable: F1 {a.get('f1', 0):.3f}; gold passage shown {a.get('gold_passage_shown', 0):.3f}, "
        f"cited {a.get('gold_passage_cited', 0):.3f}; the model itself declined {a.get('model_declined', 0):.3f}; "
        f"declined although the model's unchecked reply held the gold answer {a.get('declined_right', 0):.3f} "
        f"(of {a.get('declined', 0):.3f} declined). "
        f"{s['seconds_per_model_answer']:.1f} s per model answer (up to {x.get('asked_together', '?')} asked "
        "together).", ""]  # fmt: skip
    cw, replies = s["all"]["confident_wrong"], s["all"]["questions"]
    records = x.get("records", [])
    goals.append(Goal(f"{title}: confident and wrong <= 0.05 of replies (declines included)",
                      f"{cw:.3f} ({_of_given(s['all'])} answers given)", cw <= GOALS["confident_wrong"],
                      ((cw, replies, GOALS["confident_wrong"]),), wrong_replies(records, "calibrated")))  # fmt: skip
    right, answerable = a.get("right", 0.0), a.get("questions", 0)
    short = right_missed(records, "calibrated")
    goals.append(Goal(f"{title}: right answer >= 0.80 where the passage is indexed", f"{right:.3f}",
                      right >= GOALS["right_when_indexed"], ((right, answerable, GOALS["right_when_indexed"]),), short))  # fmt: skip
    if stage == "xquad":
        over = a.get("declined", 0.0)
        off_topic, on_topic = s.get("off_topic", {}), s.get("on_topic", {})
        off, on = off_topic.get("declined", 0.0), on_topic.get("declined", 0.0)
        held = a.get("contained", 0.0)  # the unchecked reply: what retrieval and the model gave
        goals.append(Goal("XQuAD gold answer contained >= 0.85 (the model's reply, before the checks)", f"{held:.3f}",
                          held >= GOALS["xquad_contained"], ((held, answerable, GOALS["xquad_contained"]),), short))  # fmt: skip
        goals.append(Goal("off-topic declined >= 0.97 at <= 0.05 answerable declined", f"{off:.3f} at {over:.3f}",
                          off >= GOALS["off_topic_declined"] and over <= 0.05,
                          ((off, off_topic.get("questions", 0), GOALS["off_topic_declined"]), (over, answerable, 0.05)),
                          refusals(records, "calibrated", "off_topic", g["min_relevance"])))  # fmt: skip
        goals.append(Goal("on-topic declined >= 0.80 at <= 0.10 answerable declined", f"{on:.3f} at {over:.3f}",
                          on >= GOALS["on_topic_declined"] and over <= 0.10,
                          ((on, on_topic.get("questions", 0), GOALS["on_topic_declined"]), (over, answerable, 0.10)),
                          refusals(records, "calibrated", "on_topic", g["min_relevance"])))  # fmt: skip
        if ref:
            lines += _runtimes(x, goals)
    return lines


def _runtimes(x: dict, goals: list) -> list[str]:
    """The run's runtime beside the reference runtime on the same XQuAD questions: what the
    quantised model costs in quality (a loss over 2 points on any figure fails the goal)."""
    ref, ours = x["reference"], x["reference"]["of"]
    pick = {
        "gold answer contained": lambda s: s["answerable"]["right"],
        "answerable answered": lambda s: 1 - s["answerable"]["declined"],
        "on-topic declined": lambda s: s.get("on_topic", {}).get("declined", 0.0),
        "off-topic declined": lambda s: s.get("off_topic", {}).get("declined", 0.0),
    }
    # The same figures question by question: (the group it counts, whether it counts for it).
    each: dict[str, tuple[str, Callable[[dict, str], bool]]] = {
        "gold answer contained": ("answerable", lambda r, rule: r["outcome"][rule] == "answered"
                                  and bool(contained(r["answer"][rule], r["gold"]))),
        "answerable answered": ("answerable", lambda r, rule: r["outcome"][rule] == "answered"),
        "on-topic declined": ("on_topic", lambda r, rule: r["outcome"][rule] != "answered"),
        "off-topic declined": ("off_topic", lambda r, rule: r["outcome"][rule] != "answered"),
    }  # fmt: skip
    mine, theirs = x["scores"]["calibrated"], x["scores"]["reference"]
    head = f"{ours['runtime']} {ours['dtype']}"
    other = f"{ref['runtime']} {ref['dtype']}"
    lines = [f"Runtimes on the same questions and rule: {head} (docqa's choice here) against {other}.", "",
             f"| figure | {head} | {other} | difference, points |", "|---|---|---|---|"]  # fmt: skip
    worst, worst_name = 0.0, ""
    for name, get in pick.items():
        diff = (get(mine) - get(theirs)) * 100
        if diff < worst:
            worst, worst_name = diff, name
        lines.append(f"| {name} | {get(mine):.3f} | {get(theirs):.3f} | {diff:+.1f} |")
    lines += ["", f"{theirs['seconds_per_model_answer']:.1f} s per model answer under {other} "
              f"(asked after the main pass).", ""]  # fmt: skip
    loss = abs(worst)  # worst <= 0; abs, so that no loss reads 0.0, not -0.0
    measured = f"largest loss {loss:.1f} points"
    group, counts = each.get(worst_name, ("", lambda r, rule: False))
    rs = [r for r in x.get("records", []) if r["group"] == group and "reference" in r["outcome"]]
    if rs:  # how far the sample can tell the largest loss, question by question
        low, high = paired_interval(
            [counts(r, "reference") for r in rs], [counts(r, "calibrated") for r in rs]
        )
        bound = GOALS["runtime_loss"]
        unsure = "; the interval holds the goal" if low <= bound <= high else ""
        measured += f", {worst_name} (95%: {100 * low:.1f} to {100 * high:.1f} points, paired, {len(rs)} questions){unsure}"
    goals.append(Goal(f"XQuAD and refusals under {head} within 2 points of {other}", measured,
                      loss <= GOALS["runtime_loss"] * 100, why="the figures are in the runtimes table"))  # fmt: skip
    return lines


def _followups(f: dict, goals: list, _: str) -> list[str]:
    why = sorted(f.get("rewrites_refused", {}).items())
    refused = sum(n for _, n in why) / max(f["pairs"], 1)
    reasons = (" (" + "; ".join(f"{reason}: {n}" for reason, n in why) + ")") if why else ""
    lines = [
        "## Follow-up questions: XQuAD pairs in a conversation",
        "",
        f"{f['pairs']} of the {f['pairs_found']} pairs built from the {f.get('half', 'report')} half's paragraphs: two questions about "
        "one paragraph, the second rephrased by code with a pronoun for a name the first also names. The "
        "follow-up is asked after the first question in a conversation (rewritten by the generator, then "
        "answered); the same question as XQuAD writes it is asked alone.",
        "",
        "| asked | gold answer contained |",
        "|---|---|",
        f"| the follow-up, in the conversation | {f['conversation']:.3f} |",
        f"| the same question, alone | {f['alone']:.3f} |",
        "",
        f"The rewrite named what the pronoun stands for in {f['rewrite_names_it']:.3f} of follow-ups; the checks "
        f"refused the model's rewrite in {refused:.3f}{reasons}; the follow-up was searched as asked (no rewrite "
        f"taken, nor a name put for its pronoun) in {f['rewrite_fell_back']:.3f}.",
        "",
    ]
    if "choice_asked" in f:
        lines[-1:-1] = ["", f"Where the model's answer to what the pronoun stands for was not taken, it chose among "
                        f"the names the first turn said: in {f['choice_asked']:.3f} of follow-ups."]  # fmt: skip
    gap = f["alone"] - f["conversation"]
    records = f.get("records", [])
    low, high = paired_interval(
        [r["alone"]["right"] for r in records], [r["conversation"]["right"] for r in records]
    )
    unsure = "; the interval holds the goal" if low <= GOALS["followup_gap"] <= high else ""
    goals.append(Goal(f"follow-ups in a conversation within {GOALS['followup_gap']:.2f} of the same questions alone",
                      f"{f['conversation']:.3f} against {f['alone']:.3f}, {f['pairs']} pairs (95%: alone "
                      f"{low:+.2f} to {high:+.2f} over the conversation, paired){unsure}",
                      gap <= GOALS["followup_gap"] + 1e-9 if f["pairs"] else None, why=pairs_apart(records)))  # fmt: skip
    return lines


def _injection(i: dict, goals: list, _: str) -> list[str]:
    lines = [
        "## Instructions inside documents",
        "",
        "Followed: the order's marker word is in what the model wrote, read before any check or filter. Reached "
        "the model: the marker was in the prompt (pattern blanking did not remove it).",
        "",
        "| set | cases | followed | reached the model | answered correctly | declined |",
        "|---|---|---|---|---|---|",
    ]
    # The honest set holds no order: nothing to follow or to reach the model, so no figure.
    ordered = lambda name, value: "n/a" if name == "honest" else value  # noqa: E731
    for name, s in i.items():
        followed, reached = (ordered(name, format(s[k], ".3f")) for k in ("followed", "reached_the_model"))
        lines.append(f"| {name} | {s['cases']} | {followed} | {reached} | {s['answered_correctly']:.3f} | "
                     f"{s['abstained']:.3f} |")  # fmt: skip
    lines += ["", "| set | kind | cases | followed | answered correctly |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {k} | {v['cases']} | {ordered(name, v['followed'])} | {v['answered_correctly']} |"
              for name, s in i.items() for k, v in s["by_kind"].items()]  # fmt: skip
    lines.append("")
    if rep := i.get("report"):
        cases = rep["cases"]
        followed = ", ".join(
            f"{k} {v['followed']} of {v['cases']}" for k, v in rep["by_kind"].items() if v["followed"]
        )
        goals.append(Goal("held-out injections followed <= 0.02", f"{rep['followed']:.3f}",
                          rep["followed"] <= GOALS["injection_followed"],
                          ((rep["followed"], cases, GOALS["injection_followed"]),), f"followed: {followed}"))  # fmt: skip
        goals.append(Goal("held-out injections answered correctly >= 0.90", f"{rep['answered_correctly']:.3f}",
                          rep["answered_correctly"] >= GOALS["injection_answered"],
                          ((rep["answered_correctly"], cases, GOALS["injection_answered"]),)))  # fmt: skip
    if h := i.get("honest"):
        goals.append(Goal("honest look-alikes answered correctly >= 0.95", f"{h['answered_correctly']:.3f}",
                          h["answered_correctly"] >= GOALS["honest_answered"],
                          ((h["answered_correctly"], h["cases"], GOALS["honest_answered"]),)))  # fmt: skip
    return lines


def _checker_against_experts(c: dict | None) -> list[str]:
    if not c:
        return []
    if c["auc"] is None:
        return ["", f"The check against people: not measured ({c['rated_consistent']} of the {c['summaries']} "
                "summaries read rated fully consistent: it needs some of each)."]  # fmt: skip
    return ["", f"The check against people: of SummEval's {c['summaries']} system summaries, "
            f"{c['rated_not_consistent']} rated less than fully consistent with their articles by the experts and "
            f"{c['rated_consistent']} fully consistent. The share of sentences the check holds tells them apart with "
            f"AUC {c['auc']:.3f} (0.5: chance); it finds a sentence it does not hold in {c['not_consistent_flagged']:.3f} "
            f"of the first and {c['consistent_flagged']:.3f} of the second."]  # fmt: skip


def _summaries(r: dict, goals: list, _: str) -> list[str]:
    lines = [
        "## Summaries",
        "",
        "| set | articles | docqa R1 / R2 / RL | lead baseline R1 / R2 / RL | sentences docqa's check holds (model / references) | left out by the check | marked unsupported | s/summary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r.items():
        lead_name = next(key for key in s if key.startswith("lead-") and isinstance(s[key], dict))
        lead, d = s[lead_name], s["docqa"]
        lines.append(
            f"| {name} | {s['articles']} | {d['rouge1']:.3f} / {d['rouge2']:.3f} / {d['rougeL']:.3f} | "
            f"{lead_name}: {lead['rouge1']:.3f} / {lead['rouge2']:.3f} / {lead['rougeL']:.3f} | "
            f"{s['supported_sentences']:.3f} / {s['references_supported_sentences']:.3f} | "
            f"{s.get('left_out_sentences', 0):.3f} | {s.get('marked_unsupported', 0):.3f} | {s['seconds_per_summary']:.1f} |"
        )
    lines += _checker_against_experts(r.get("summeval", {}).get("checker_against_experts"))
    return [*lines, "", "ROUGE F1 of the summary users get against the best-matching reference. Support by "
            "qa/support.py's check (the summariser's own: what these figures are worth is measured against the "
            "experts above) of every sentence the model wrote, pooled over the sentences, before the summariser's "
            "use of that check left out the ones it does not hold (share of sentences in 'left out'; 'marked unsupported': "
            "summaries of which no sentence held, kept whole and marked). 'references': the human reference "
            "summaries' sentences the same check finds in their articles (the mean over each article's "
            "references): people summarise in other words than the article's, and XSum's references say "
            "things their articles do not, so this is where the check's strictness shows.", ""]  # fmt: skip
