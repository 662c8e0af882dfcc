"""The answers-the-question check against a set the harness builds from XQuAD, with no model: for
each question, the sentence of its paragraph that holds the gold answer (an answer), and the
sentence of another paragraph of the same article that shares the most words with the question
and does not hold the gold answer (a fluent sentence about something else, the typical
confident wrong answer). Each is checked as `ask` checks a reply: against the passage text
around it and the article's title, the question's terms it holds and its closeness in meaning to
the question; a term it does not hold may count as held by a word close to it in meaning. How
close that word must be, the weight of the closeness and the threshold are chosen together on
one half of the articles and the rates reported on the other."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embeddings.chunker import sentences
from embeddings.embedder import Embedder
from evaluation import data
from qa.question import Alike, Relevance, relevance
from qa.support import around
from qa.words import content

WEIGHTS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # what closeness in meaning counts beside the terms held
NEARS = [1.0, 0.8, 0.75, 0.7, 0.65, 0.6]  # how close a word must be to hold a term (1: the term itself)


def grid(weight: float) -> list[float]:
    """The thresholds tried at `weight`: every hundredth up to the highest grounding possible."""
    return [round(0.01 * i, 2) for i in range(int(100 * (1 + weight)) + 1)]


@dataclass(frozen=True)
class Case:
    article: str
    question: str
    sentence: str
    context: str  # the sentence with one either side, and the title
    answers: bool  # the sentence holds the gold answer


def build(folder: Path) -> list[Case]:
    paragraphs, questions = data.xquad(folder)
    by_article: dict[str, list[data.Paragraph]] = {}
    for p in paragraphs:
        by_article.setdefault(p.article, []).append(p)
    text = {p.id: p.text for p in paragraphs}
    cases = []
    for q in questions:
        gold = _holding(text[q.paragraph], q.answers[0])
        if gold is None:
            continue
        cases.append(Case(q.article, q.text, gold[0], f"{gold[1]}\n{q.article}", True))
        asked = set(content(q.text))
        others = [
            (len(asked & set(content(p.text[s:e]))), p.text, s, e)
            for p in by_article[q.article]
            if p.id != q.paragraph
            for s, e in sentences(p.text)
            if not any(a.lower() in p.text[s:e].lower() for a in q.answers)
        ]
        if others:
            _, passage, s, e = max(others, key=lambda o: o[0])
            cases.append(
                Case(q.article, q.text, passage[s:e], f"{around(passage, s, e)}\n{q.article}", False)
            )
    return cases


def _holding(passage: str, answer: str) -> tuple[str, str] | None:
    at = passage.find(answer)
    for s, e in sentences(passage):
        if at >= 0 and s <= at < e:
            return passage[s:e], around(passage, s, e)
    return None


def score(cases: list[Case], checks: list[Relevance], threshold: float) -> dict:
    declined = [not r.holds(threshold) for r in checks]
    right = [d for c, d in zip(cases, declined, strict=True) if c.answers]
    wrong = [d for c, d in zip(cases, declined, strict=True) if not c.answers]
    return {
        "answers": len(right),
        "elsewhere": len(wrong),
        "answers_declined": round(sum(right) / max(len(right), 1), 4),
        "elsewhere_declined": round(sum(wrong) / max(len(wrong), 1), 4),
    }


def run(folder: Path, embedder: Embedder, budget: float = 0.03) -> dict:
    """Choose how close a word must be to hold a term, the weight of closeness in meaning and the
    grounding threshold on the calibration half: the three that decline the most sentences about
    something else while declining at most `budget` of the gold sentences (on a tie, the term
    itself and the smaller weight). The terms alone (the term itself, weight 0) and the close
    words alone (weight 0) are reported beside it."""
    cases = build(folder)
    halves = data.halves(sorted({c.article for c in cases}))
    parts = [[c for c in cases if halves[c.article] == h] for h in (0, 1)]
    closeness = [_closeness(embedder, part) for part in parts]
    alike = _alike(embedder)
    checks = {
        near: [
            [relevance(c.question, c.sentence, c.context, close, 0.0, alike, near) for c, close in zip(part, cl, strict=True)]
            for part, cl in zip(parts, closeness, strict=True)
        ]
        for near in NEARS
    }  # fmt: skip
    tried = {(near, w): _chosen(parts, [[replace(r, weight=w) for r in half] for half in checks[near]], w, budget)
             for near in NEARS for w in WEIGHTS}  # fmt: skip
    near, weight = max(tried, key=lambda k: (tried[k]["calibration_half"]["elsewhere_declined"], k[0], -k[1]))
    return {
        **tried[near, weight],
        "near": near,
        "weight": weight,
        "budget": budget,
        "chosen_on": "calibration half (even-numbered XQuAD articles)",
        "terms_alone": tried[1.0, 0.0] | {"near": 1.0, "weight": 0.0},
        "close_words": tried[near, 0.0] | {"near": near, "weight": 0.0},
        "weights": {
            f"near {n}, weight {w}": {k: t[k] for k in ("threshold", "calibration_half")}
            for (n, w), t in tried.items()
        },  # fmt: skip
    }


def _chosen(parts: list[list[Case]], checks: list[list[Relevance]], weight: float, budget: float) -> dict:
    curve = [{"threshold": t, **score(parts[0], checks[0], t)} for t in grid(weight)]
    within = [p for p in curve if p["answers_declined"] <= budget] or curve[:1]
    chosen = max(within, key=lambda p: (p["elsewhere_declined"], -p["threshold"]))["threshold"]
    return {
        "threshold": chosen,
        "calibration_half": score(parts[0], checks[0], chosen),
        "report_half": score(parts[1], checks[1], chosen),
        "curve": curve[::5],
    }


def _alike(embedder: Embedder) -> Alike:
    """`Assistant.alike` over `embedder`, each word embedded once however often it is asked."""
    vectors: dict[str, np.ndarray] = {}

    def alike(words: list[str], others: list[str]) -> list[float]:
        new = [w for w in dict.fromkeys([*words, *others]) if w not in vectors]
        if new:
            vectors.update(zip(new, embedder.embed(new), strict=True))
        mine, theirs = np.stack([vectors[w] for w in words]), np.stack([vectors[w] for w in others])
        return [float(v) for v in (mine @ theirs.T).max(axis=1)]

    return alike


def _closeness(embedder: Embedder, cases: list[Case]) -> list[float]:
    """Each case's question against its context: the cosine `ask` computes (Assistant.similarity)."""
    if not cases:
        return []
    questions = embedder.embed([c.question for c in cases])
    contexts = embedder.embed([c.context for c in cases])
    return [float(q @ k) for q, k in zip(questions, contexts, strict=True)]
