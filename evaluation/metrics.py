"""Scores, each a pure function: ranking (nDCG, recall), SQuAD answers, refusal trade-offs."""

from __future__ import annotations

import math
import random
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from breame.spelling import get_american_spelling

_ASCII_PUNCTUATION = frozenset(string.punctuation)  # with symbols such as $ and +, as SQuAD's script


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    gains = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return gains / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's official normalisation: lower case, no punctuation, articles or extra spaces.
    Punctuation is every script's, not ASCII's alone: "100–150" (an en dash, as XQuAD's gold
    answers write ranges) is "100-150"."""
    text = "".join(
        ch
        for ch in text.lower()
        if ch not in _ASCII_PUNCTUATION and not unicodedata.category(ch).startswith("P")
    )
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    def one(gold: str) -> float:
        p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
        common = sum((Counter(p) & Counter(g)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(p), common / len(g)
        return 2 * precision * recall / (precision + recall)

    return max(one(g) for g in golds)


def contained(prediction: str, golds: Sequence[str]) -> float:
    """Whether the prediction holds a gold answer as whole words ("funding" does not hold "fund",
    nor "1990" "1"), normalised as SQuAD does, or with dashes read as spaces: "black and yellow"
    holds "black-and-yellow" (SQuAD's normalisation would join the gold's words into
    "blackandyellow"). A gold answer with no words left once normalised holds nothing."""
    return float(
        any(
            _holds(normalize_answer(_words(prediction)), normalize_answer(_words(g)))
            or _holds(_dashes_apart(_words(prediction)), _dashes_apart(_words(g)))
            or _holds(_american(prediction), _american(g))
            for g in golds
        )
    )


def _american(text: str) -> str:
    """`text` normalised as SQuAD does, each word spelt the American way: "kilometers" holds
    "kilometres" (the words stay whole)."""
    return " ".join(get_american_spelling(w) for w in normalize_answer(_words(text)).split())


def _words(text: str) -> str:
    """`text` with citation marks apart from the words they follow ("1990[1]") and a possessive's
    "'s" apart from its name, so that whole words can be matched."""
    return re.sub(r"['’]s\b", " s", re.sub(r"\[[^\]]*\]", " ", text))


def _holds(text: str, words: str) -> bool:
    return bool(words) and f" {words} " in f" {text} "


def _dashes_apart(text: str) -> str:
    return normalize_answer("".join(" " if unicodedata.category(ch) == "Pd" else ch for ch in text))


def interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% at z = 1.96) of a rate measured on `n` cases: where the rate
    of the whole population may lie, given this sample. 30 questions at 0.667 give 0.49-0.81."""
    if n <= 0:
        return 0.0, 1.0
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_interval(
    a: Sequence[bool], b: Sequence[bool], rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The 95% interval of mean(a) - mean(b), where a[i] and b[i] are two outcomes of case i (one
    question asked two ways): the cases drawn again with replacement `rounds` times, a fixed seed
    making it the same each run. 25 pairs apart in 1 give about -0.12 to 0.00."""
    n = len(a)
    if n == 0:
        return -1.0, 1.0
    draw = random.Random(seed)
    gaps = sorted(sum(a[i] - b[i] for i in (draw.randrange(n) for _ in range(n))) / n for _ in range(rounds))
    return gaps[int(0.025 * rounds)], gaps[int(0.975 * rounds) - 1]


def auc(negatives: Sequence[float], positives: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting half: how well a score separates."""
    if not negatives or not positives:
        return 0.0
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def refusal_rates(
    declined_unanswerable: Sequence[bool], declined_answerable: Sequence[bool]
) -> dict[str, float]:
    right = sum(declined_unanswerable) / len(declined_unanswerable) if declined_unanswerable else 0.0
    wrong = sum(declined_answerable) / len(declined_answerable) if declined_answerable else 0.0
    return {"right_refusals": round(right, 4), "over_refusal": round(wrong, 4)}
