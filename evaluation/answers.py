"""Questions end to end through `ask`, on a set of indexed passages: right answers, refusals and
confident wrong answers. Two sets use it: XQuAD (its paragraphs indexed, a fifth of the articles
and a fifth of the other articles' paragraphs held out) and a news-style set (thousands of news
passages from XSum and SummEval indexed beside the XQuAD paragraphs of the report half, whose
questions are asked as they are: some with their paragraph indexed, some held out).

Every threshold the run chooses is chosen on the calibration half (even-numbered articles) and
every rate is reported on the other: the relevance gate from the retrieval evidence of every question in the
calibration half (no model), the support and grounding thresholds by their own stages
(evaluation/contradictions.py, evaluation/asked.py). The model answers questions of the report
half only.

Quality across runtimes: with a `reference` generator (the same model under another runtime, as
`make eval` runs the transformers one beside the int4 default on a CPU), the same sampled
questions are asked of it too, with the same retrieval and the calibrated rule, after the main
pass so that neither times the other; its scores are the "reference" rule."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from embeddings.config import Config
from embeddings.index import Index
from evaluation import data, sureness
from evaluation.metrics import contained, f1
from evaluation.sureness import SURE
from qa.answer import Checks, abstention, interpret
from qa.assistant import Assistant
from qa.generator import Generator, engine
from qa.models import min_sureness
from qa.sureness import sureness as sureness_of

REL_GRID = [round(0.01 * i, 2) for i in range(71)]
LEX_GRID = [round(0.05 * i, 2) for i in range(21)] + [1.01]  # 1.01: lexical evidence unused
GROUPS = ("answerable", "on_topic", "off_topic")


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


def groups(questions: list[data.Question], held_articles: set[str], held_paragraphs: set[str]) -> dict:
    return {
        "answerable": [
            q for q in questions if q.article not in held_articles and q.paragraph not in held_paragraphs
        ],
        "on_topic": [q for q in questions if q.paragraph in held_paragraphs],
        "off_topic": [q for q in questions if q.article in held_articles],
    }


def gate(evidence: dict[str, dict[str, tuple[float, float]]], budget: float = 0.01) -> dict:
    """The relevance thresholds (dense, lexical) that decline the most unanswerable questions of
    `evidence` (group -> question id -> (dense, lexical)) while declining at most `budget` of the
    answerable ones. A question is declined when both its scores are below their thresholds."""

    def rates(rel: float, lex: float) -> dict[str, float]:
        return {
            g: round(sum(d < rel and x < lex for d, x in scores.values()) / max(len(scores), 1), 4)
            for g, scores in evidence.items()
        }

    best, best_key = (0.0, 1.01), (-1.0, 0.0)
    for rel in REL_GRID:
        for lex in LEX_GRID:
            r = rates(rel, lex)
            if r["answerable"] <= budget:
                key = ((r["off_topic"] + r["on_topic"]) / 2, -rel)
                if key > best_key:
                    best, best_key = (rel, lex), key
    return {"min_relevance": best[0], "min_lexical": best[1], "rates": rates(*best)}


def declined_rates(evidence: dict, rel: float, lex: float) -> dict[str, float]:
    return {
        g: round(sum(d < rel and x < lex for d, x in scores.values()) / max(len(scores), 1), 4)
        for g, scores in evidence.items()
    }


def run(name: str, index: Index, generator: Generator, config: Config, calibration: dict, report: dict,
        sizes: dict[str, int], seed: int, checks: Checks, gate_questions: int | None = None,
        reference: Generator | None = None, asked_from: str = "report",
        levers: dict[str, Checks] | None = None, sure_sizes: dict[str, int] | None = None,
        sure: float | None = None, apart_from: dict[str, int] | None = None) -> dict:  # fmt: skip
    """`calibration` and `report`: group -> questions of each half. Thresholds: the gate is
    chosen here on the calibration half (on `gate_questions` of each group, every one when
    None); `checks` come from their own stages. The model answers a sample of the report half,
    or of the calibration half (`asked_from`) to try a change without looking at the report half.
    `levers`: other checks scored on the same replies under the calibrated gate, each its own
    rule, so a check's part in the outcome is measured beside it. The sureness check is such a
    lever (SURE), beside the shipped value the configured rule uses: at `sure`, or at the threshold chosen on the model's replies
    to `sure_sizes` questions of the calibration half, by group, asked first (evaluation/sureness.py).
    `apart_from`: the sizes of another stage's sample of the same halves with the same seed (the
    news-style set asks XQuAD's questions against news): those questions are not asked again."""
    started = time.perf_counter()
    assistant = Assistant(index, generator, config)
    halves = [calibration, report]
    asked = 0 if asked_from == "calibration" else 1
    sample = {g: _sample(qs, sizes[g], seed, (apart_from or {}).get(g, 0)) for g, qs in halves[asked].items()}
    sure_sizes = sure_sizes if asked == 1 else None  # replies of the calibration half choose it
    pick = random.Random(seed + 2)
    to_choose = {
        g: pick.sample(calibration[g], min(n, len(calibration[g]))) for g, n in (sure_sizes or {}).items()
    }
    if gate_questions:
        pick = random.Random(seed + 1)
        halves = [
            _thinned(half, sample if i == asked else to_choose, gate_questions, pick)
            for i, half in enumerate(halves)
        ]
    evidence = [_evidence(assistant, half) for half in halves]
    chosen = gate(evidence[0])
    calibrated = (chosen["min_relevance"], chosen["min_lexical"], checks)
    chose = None
    if sure_sizes:
        jobs = [(g, q) for g, qs in to_choose.items() for q in qs]
        with ThreadPoolExecutor(config.generator_batch) as pool:
            asking = pool.map(lambda job: _ask(assistant, job[1], job[0], evidence[0][job[0]][job[1].id],
                                               {"calibrated": calibrated}), jobs)  # fmt: skip
            replies = list(tqdm(asking, total=len(jobs), desc=f"{name} (sureness)", unit="question"))
        chose = sureness.choose(replies, "calibrated")
        if chose["right"] + chose["wrong"]:  # a runtime that measures no sureness leaves no lever
            sure = chose["threshold"]
        else:
            chose = None
    rules = {
        "calibrated": calibrated,
        "as configured": (config.min_relevance, config.min_lexical,
                          Checks(config.support_threshold, config.min_grounding, config.grounding_similarity,
                                 config.term_closeness, min_sureness(config.min_sureness, generator.name, engine(generator)))),
    }  # fmt: skip
    if sure is not None:
        rules[SURE] = (chosen["min_relevance"], chosen["min_lexical"], replace(checks, sure=sure))
    rules |= {name: (chosen["min_relevance"], chosen["min_lexical"], c) for name, c in (levers or {}).items()}
    # Asked as several users would ask: the generator decodes up to generator_batch together.
    jobs = [(g, q) for g, qs in sample.items() for q in qs]
    with ThreadPoolExecutor(config.generator_batch) as pool:
        asking = pool.map(
            lambda job: _ask(assistant, job[1], job[0], evidence[asked][job[0]][job[1].id], rules), jobs
        )
        records = list(tqdm(asking, total=len(jobs), desc=name, unit="question"))
    scores = {rule: outcome_scores(records, rule) for rule in rules}
    thresholds = {k: {"min_relevance": r, "min_lexical": x, "support": c.support, "grounding": c.grounding,
                      "similarity": c.similarity, "near": c.near, "sure": c.sure} for k, (r, x, c) in rules.items()}  # fmt: skip
    compared = {}
    if reference is not None:
        other = Assistant(index, reference, config)
        with ThreadPoolExecutor(config.generator_batch) as pool:
            asking = pool.map(lambda r: _ask_reference(other, r, rules["calibrated"]), records)
            list(tqdm(asking, total=len(records), desc=f"{name} ({reference.runtime})", unit="question"))
        scores["reference"] = outcome_scores(records, "reference")
        thresholds["reference"] = thresholds["calibrated"]
        compared = {"runtime": reference.runtime, "dtype": reference.dtype,
                    "of": {"runtime": generator.runtime, "dtype": generator.dtype}}  # fmt: skip
    return {
        "questions": {g: [len(halves[0][g]), len(halves[1][g])] for g in GROUPS},
        "sampled": {g: len(qs) for g, qs in sample.items()},
        "asked_from": asked_from,
        "asked_together": config.generator_batch,
        "gate": {
            **chosen,
            "calibration_half": declined_rates(evidence[0], chosen["min_relevance"], chosen["min_lexical"]),
            "report_half": declined_rates(evidence[1], chosen["min_relevance"], chosen["min_lexical"]),
            "dense_only_report_half": declined_rates(evidence[1], _dense_only(evidence[0]), 1.01),
        },
        "thresholds": thresholds,
        "sureness": chose or ({"threshold": sure} if sure is not None else None),
        "scores": scores,
        "reference": compared,
        "records": records,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _dense_only(evidence: dict) -> float:
    """The dense threshold alone (no lexical evidence) chosen the same way, for comparison."""
    best, key = 0.0, -1.0
    for rel in REL_GRID:
        r = declined_rates(evidence, rel, 1.01)
        if r["answerable"] <= 0.01 and (r["off_topic"] + r["on_topic"]) / 2 > key:
            best, key = rel, (r["off_topic"] + r["on_topic"]) / 2
    return best


def _thinned(half: dict, keep: dict, most: int, pick: random.Random) -> dict:
    """`half` with `most` questions of each group drawn by `pick`, beside the questions `keep`
    holds (the model's sample, when it is asked from this half), each question once."""
    return {
        g: list({q.id: q for q in [*keep.get(g, []), *pick.sample(qs, min(most, len(qs)))]}.values())
        for g, qs in half.items()
    }


def _evidence(assistant: Assistant, questions: dict) -> dict[str, dict[str, tuple[float, float]]]:
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for g, qs in questions.items():
        found = {}
        for q in qs:
            vector = assistant.index.embedder.embed([q.text])
            _, dense, lexical = assistant.retriever.rank(q.text, vector, assistant.retriever.candidates)
            found[q.id] = (round(dense, 4), lexical)
        out[g] = found
    return out


def _ask(
    assistant: Assistant, q: data.Question, group: str, evidence: tuple[float, float], rules: dict
) -> dict:
    """One question, the model asked once; each rule's outcome from the same reply."""
    dense, lexical = evidence
    passes = {k: dense >= r or lexical >= x for k, (r, x, _) in rules.items()}
    record = {"id": q.id, "group": group, "question": q.text, "gold": list(q.answers), "paragraph": q.paragraph,
              "dense": dense, "lexical": lexical, "outcome": {}, "answer": {}}  # fmt: skip
    if not any(passes.values()):
        for k in rules:
            record["outcome"][k], record["answer"][k] = "declined: retrieval", ""
        return record
    started = time.perf_counter()
    messages, shown = assistant.prompt(q.text, assistant.search(q.text))
    pieces = list(assistant.generator.stream(messages, assistant.config.answer_tokens))
    raw, sure = "".join(pieces), sureness_of(q.text, pieces)
    record.update(raw=raw, seconds=round(time.perf_counter() - started, 2), sureness=sure,
                  passages=[p.doc_id for p in shown], prompt_tokens=assistant.count(messages))  # fmt: skip
    for k, (_, _, checks) in rules.items():
        answer = (
            interpret(
                q.text,
                raw,
                shown,
                assistant.generator.name,
                checks,
                assistant.similarity,
                assistant.alike,
                sure,
            )
            if passes[k]
            else None
        )
        if answer is None:
            answer = abstention(q.text, shown, "retrieval", assistant.generator.name)
            outcome = "declined: retrieval"
        elif answer.abstained:
            outcome = "declined: model" if not answer.withdrawn else f"declined: {_kind(answer.reason or '')}"
        else:
            outcome = "answered"
        record["outcome"][k], record["answer"][k] = outcome, "" if answer.abstained else answer.text
        if k == "calibrated":
            record["cited"] = sorted({c.doc_id for c in answer.citations if c.supported})
            record["reason"] = answer.reason
    return record


def _ask_reference(assistant: Assistant, record: dict, rule: tuple[float, float, Checks]) -> None:
    """The question of `record` asked of the reference generator under `rule`, with the
    passages the main pass showed; its outcome and answer are stored as the "reference" rule."""
    min_relevance, min_lexical, checks = rule
    if not (record["dense"] >= min_relevance or record["lexical"] >= min_lexical):
        record["outcome"]["reference"], record["answer"]["reference"] = "declined: retrieval", ""
        return
    messages, shown = assistant.prompt(record["question"], assistant.search(record["question"]))
    started = time.perf_counter()
    raw = assistant.generator.generate(messages, assistant.config.answer_tokens)
    record["reference_seconds"] = round(time.perf_counter() - started, 2)
    answer = interpret(record["question"], raw, shown, assistant.generator.name, checks, assistant.similarity,
                       assistant.alike)  # fmt: skip
    if answer.abstained:
        outcome = "declined: model" if not answer.withdrawn else f"declined: {_kind(answer.reason or '')}"
    else:
        outcome = "answered"
    record["reference_raw"] = raw
    record["reference_cited"] = sorted({c.doc_id for c in answer.citations if c.supported})
    record["outcome"]["reference"] = outcome
    record["answer"]["reference"] = "" if answer.abstained else answer.text


def _kind(reason: str) -> str:
    if "unsure of its answer" in reason:
        return "sureness check"
    return "question check" if "does not answer the question" in reason else "support check"


def outcome_scores(records: list[dict], rule: str) -> dict:
    """Per group: right, declined (and by what), confident and wrong; and overall."""
    cited, seconds = ("reference_cited", "reference_seconds") if rule == "reference" else ("cited", "seconds")
    raw = "reference_raw" if rule == "reference" else "raw"
    out: dict = {}
    for g in GROUPS:
        rs = [r for r in records if r["group"] == g]
        if not rs:
            continue
        n = len(rs)
        answered = [r for r in rs if r["outcome"][rule] == "answered"]
        right = [r for r in answered if g == "answerable" and contained(r["answer"][rule], r["gold"])]
        declined = [r["outcome"][rule] for r in rs if r["outcome"][rule] != "answered"]
        out[g] = {
            "questions": n,
            "right": round(len(right) / n, 4),
            "declined": round(len(declined) / n, 4),
            "confident_wrong": round((len(answered) - len(right)) / n, 4),
            "declined_by": {k: declined.count(k) for k in sorted(set(declined))},
        }
        if g == "answerable":
            out[g]["f1"] = round(sum(f1(r["answer"][rule], r["gold"]) for r in rs) / n, 4)
            out[g]["gold_passage_shown"] = round(
                sum(r["paragraph"] in r.get("passages", []) for r in rs) / n, 4
            )
            out[g]["gold_passage_cited"] = round(sum(r["paragraph"] in r.get(cited, []) for r in rs) / n, 4)
            out[g]["model_declined"] = round(declined.count("declined: model") / n, 4)
            # What retrieval and the model gave before any check: the unchecked reply holds the gold answer.
            out[g]["contained"] = round(sum(contained(r.get(raw) or "", r["gold"]) for r in rs) / n, 4)
            # The cost of declining: questions declined although the model's unchecked reply held
            # the gold answer (the rest of the declined replies were wrong ones caught).
            withheld = [
                r for r in rs if r["outcome"][rule] != "answered" and contained(r.get(raw) or "", r["gold"])
            ]
            out[g]["declined_right"] = round(len(withheld) / n, 4)
    n = len(records)
    wrong = sum(
        r["outcome"][rule] == "answered"
        and not (r["group"] == "answerable" and contained(r["answer"][rule], r["gold"]))
        for r in records
    )
    given = sum(r["outcome"][rule] == "answered" for r in records)
    # Of all replies, declines included (the goal's reading), and of the answers given alone: the
    # first depends on how many questions of each group were asked, the second does not.
    out["all"] = {"questions": n, "confident_wrong": round(wrong / max(n, 1), 4), "answered": given,
                  "wrong_of_answered": round(wrong / max(given, 1), 4)}  # fmt: skip
    timed = [r[seconds] for r in records if seconds in r]
    out["seconds_per_model_answer"] = round(sum(timed) / len(timed), 2) if timed else 0.0
    return out


def halves_of(questions: dict[str, list[data.Question]], articles: list[str]) -> tuple[dict, dict]:
    half = data.halves(articles)
    return tuple({g: [q for q in qs if half[q.article] == h] for g, qs in questions.items()} for h in (0, 1))  # type: ignore[return-value]


def xquad_corpus(folder: Path, out: Path) -> tuple[Path, dict, dict, dict]:
    """The XQuAD corpus as .jsonl (the indexed paragraphs), and the questions of each half."""
    import json

    paragraphs, questions = data.xquad(folder)
    held_articles, held_paragraphs = split(paragraphs)
    indexed = [p for p in paragraphs if p.article not in held_articles and p.id not in held_paragraphs]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "".join(json.dumps({"id": p.id, "title": p.article, "text": p.text}) + "\n" for p in indexed)
    )
    calibration, report = halves_of(
        groups(questions, held_articles, held_paragraphs), [p.article for p in paragraphs]
    )
    info = {"held_out_articles": len(held_articles), "held_out_paragraphs": len(held_paragraphs),
            "indexed_paragraphs": len(indexed)}  # fmt: skip
    return out, calibration, report, info


def _sample(questions: list[data.Question], n: int, seed: int, before: int = 0) -> list[data.Question]:
    """`n` of `questions`, none of the `before` that the same seed drew first for another stage."""
    drawn = {q.id for q in random.Random(seed).sample(questions, min(before, len(questions)))}
    rest = [q for q in questions if q.id not in drawn]
    return random.Random(seed).sample(rest, min(n, len(rest)))


def news_corpus(folder: Path, out: Path, limit: int | None = None) -> tuple[Path, dict, dict, dict]:
    """News passages (XSum's 1,000 articles and SummEval's 100) beside the XQuAD paragraphs that
    XQuAD indexes, as .jsonl; the XQuAD questions of each half asked against them (those the
    XQuAD stage does not ask: see `run`'s `apart_from`)."""
    import json

    paragraphs, questions = data.xquad(folder)
    held_articles, held_paragraphs = split(paragraphs)
    indexed = [p for p in paragraphs if p.article not in held_articles and p.id not in held_paragraphs]
    news = (data.xsum(folder) + data.summeval(folder))[:limit]
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": a.id, "title": a.text.split(". ")[0][:80], "text": a.text} for a in news]
    rows += [{"id": p.id, "title": p.article, "text": p.text} for p in indexed]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calibration, report = halves_of(
        groups(questions, held_articles, held_paragraphs), [p.article for p in paragraphs]
    )
    return out, calibration, report, {"news_articles": len(news), "xquad_paragraphs": len(indexed)}


def settings(config: Config, corpus: Path, index_dir: Path) -> Config:
    return replace(config, docs=corpus, index_dir=index_dir)
