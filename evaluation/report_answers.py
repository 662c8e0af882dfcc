"""The evaluation report's sections on answers: right, declined and wrong on XQuAD and the
news-style set, the runtime against its reference, and follow-ups in a conversation."""

from __future__ import annotations

from collections.abc import Callable

from evaluation.goals import GOALS, Goal
from evaluation.metrics import contained, paired_interval
from evaluation.shortfall import pairs_apart, refusals, right_missed, wrong_replies


def _of_given(figures: dict) -> str:
    """Confident and wrong among the answers given, and how many were (a run before this was kept: ?)."""
    if "answered" not in figures:
        return "?"
    return f"{figures['wrong_of_answered']:.3f} of {figures['answered']}"


def _sureness_chosen(chosen: dict | None) -> list[str]:
    """The sureness check's lever: where its threshold came from."""
    if not chosen:
        return []
    if "replies" not in chosen:
        return [
            f"Sureness check (scored as a lever; qa/sureness.py) at {chosen['threshold']}, as the XQuAD stage chose it.",
            "",
        ]
    return [
        f"Sureness check (scored as a lever: the model's least likely word of its own, qa/sureness.py) "
        f"chosen on {chosen['replies']} replies to questions of the calibration half: of the answers the "
        f"calibrated rule let stand, {chosen['right']} right and {chosen['wrong']} wrong, threshold "
        f"{chosen['threshold']} withdrew {chosen['right_withdrawn']} of the right and {chosen['wrong_withdrawn']} "
        f"of the wrong there; its rule is scored beside the others below.",
        "",
    ]


def answers_section(x: dict, goals: list, stage: str) -> list[str]:
    title = "XQuAD" if stage == "xquad" else "the news-style set"
    g = x["gate"]
    lines = [
        f"## Answers and refusals: {title} through `ask`",
        "",
        f"Corpus: {x['corpus']}. Questions (calibration half, report half): {x['questions']}; the model answered "
        f"a sample of the {x.get('asked_from', 'report')} half: {x['sampled']}"
        + (
            "; none of them among the XQuAD stage's (no public set here asks questions of news articles)."
            if stage == "news"
            else "."
        ),
        "",
        f"Relevance gate chosen on the calibration half's retrieval evidence (every question, no model): decline "
        f"when the dense similarity < {g['min_relevance']} and the BM25 evidence < {g['min_lexical']}. Support "
        f"and answer-check thresholds of the calibrated rules: {x.get('checks_from', 'not recorded')}.",
        "",
        *_sureness_chosen(x.get("sureness")),
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
            f"grounding {t['grounding']} (closeness weight {t.get('similarity', 0)}, near {t.get('near', 1.0)}), sureness {t.get('sure', 0.0)} | {a.get('right', 0):.3f} / {a.get('declined', 0):.3f} / "
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
                      ((cw, replies, GOALS["confident_wrong"], True),), wrong_replies(records, "calibrated")))  # fmt: skip
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
                          ((off, off_topic.get("questions", 0), GOALS["off_topic_declined"]), (over, answerable, 0.05, True)),
                          refusals(records, "calibrated", "off_topic", g["min_relevance"])))  # fmt: skip
        goals.append(Goal("on-topic declined >= 0.80 at <= 0.10 answerable declined", f"{on:.3f} at {over:.3f}",
                          on >= GOALS["on_topic_declined"] and over <= 0.10,
                          ((on, on_topic.get("questions", 0), GOALS["on_topic_declined"]), (over, answerable, 0.10, True)),
                          refusals(records, "calibrated", "on_topic", g["min_relevance"])))  # fmt: skip
        if ref:
            lines += runtimes_section(x, goals)
    return lines


def runtimes_section(x: dict, goals: list) -> list[str]:
    """The run's runtime beside the reference runtime on the same XQuAD questions: what the
    quantised model costs in quality (a loss over 2 points on any figure fails the goal)."""
    ref, ours = x["reference"], x["reference"]["of"]
    pick = {
        "right (the checked answer holds the gold)": lambda s: s["answerable"]["right"],
        "answerable answered": lambda s: 1 - s["answerable"]["declined"],
        "on-topic declined": lambda s: s.get("on_topic", {}).get("declined", 0.0),
        "off-topic declined": lambda s: s.get("off_topic", {}).get("declined", 0.0),
    }
    # The same figures question by question: (the group it counts, whether it counts for it).
    each: dict[str, tuple[str, Callable[[dict, str], bool]]] = {
        "right (the checked answer holds the gold)": ("answerable", lambda r, rule: r["outcome"][rule] == "answered"
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


def followups_section(f: dict, goals: list, _: str) -> list[str]:
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
