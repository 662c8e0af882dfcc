"""The evaluation report's sections on what needs no model: retrieval on SciFact, the support
check's contradiction set, and the check that an answer answers the question."""

from __future__ import annotations

from collections.abc import Callable

from evaluation.goals import GOALS, Goal


def retrieval_section(s: dict, goals: list, _: str) -> list[str]:
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


def contradictions_section(c: dict, goals: list, _: str) -> list[str]:
    rep = c["report_half"]
    lines = [
        "## Support check: the contradiction set",
        "",
        f"Built from XQuAD: each sentence that holds a gold answer, supported (paraphrased) and contradicted "
        f"(perturbed). Threshold {c['threshold']} chosen on the {c['chosen_on']}. The supported rate is the "
        "reworded paraphrases' (a synonym or several swapped in, a small number in words or in digits, a date "
        "written the other way round, a negation contracted or spelt out, an opening phrase moved to the end: "
        "what reaches the check's rules on names, numbers, negation and clauses); the passage's own words (the sentence verbatim, after a "
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
                       (rep["supported_flagged"], rep["supported"], GOALS["supported_flagged"], True))))  # fmt: skip
    return lines


def asked_section(a: dict, goals: list, _: str) -> list[str]:
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
