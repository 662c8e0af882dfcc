"""Does an answer answer the question asked? Pure text logic, no model.

A small model handed passages about something close to the question often copies a fluent
sentence from one of them ("which Russian author is viral on TikTok?" answered with a sentence
about another novelist's book). Every word of it is in a passage, so the support check passes.
This check asks three things the support check does not: the passage text the answer rests on
(its aligned windows, with a sentence of context either side, and the titles) must hold the
question's own terms; the answer must say something the question does not; and a question that
asks for a number or a date must get one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from qa.words import MONTHS, SCALES, WORD, content, key_words, norm, number, surfaces, words

# words, other words -> each word's closeness in meaning to the closest of the others (a cosine)
Alike = Callable[[list[str], list[str]], list[float]]

# Words a question asks with, which the passage that answers it need not repeat.
ASKING = frozenset(
    [
        "name",
        "named",
        "call",
        "called",
        "type",
        "kind",
        "sort",
        "happen",
        "happened",
        "mean",
        "means",
        "meant",
        "refer",
        "refers",
        "term",
        "example",
        "describe",
        "described",
        "consider",
        "considered",
        "year",
        "date",
        "time",
        "percent",
        "percentage",
        "number",
        "amount",
        "many",
        "much",
        "long",
        "far",
        "old",
        "big",
        "large",
        "tall",
        "high",
        "often",
    ]
)
ASKING_STEMS = frozenset(content(" ".join(ASKING)))
_NUMBER_Q = re.compile(
    r"\bhow\s+(?:many|much|long|far|old|big|large|high|tall|wide|deep|heavy|fast|often)\b"
    r"|\bwhat\s+(?:percentage|percent|proportion|number|fraction|amount)\b",
    re.IGNORECASE,
)
_DATE_Q = re.compile(
    r"\b(?:what|which|in\s+what|in\s+which)\s+(?:year|century|decade|date|month)\b", re.IGNORECASE
)
_WHEN_Q = re.compile(
    r"\bwhen\s+(?:did|was|were|is|are|does|do|had|has|will|would|could|can)\b", re.IGNORECASE
)
_TIME_WORDS = frozenset(
    [
        "century",
        "centuries",
        "decade",
        "decades",
        "year",
        "years",
        "ago",
        "age",
        "era",
        "period",
        "reign",
        "spring",
        "summer",
        "autumn",
        "fall",
        "winter",
        "morning",
        "afternoon",
        "evening",
        "night",
        "today",
        "yesterday",
        "after",
        "before",
        "during",
        "until",
        "since",
        "early",
        "late",
        "mid",
        "war",
        "dynasty",
        "times",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "when",
        "whenever",
        "while",
        "once",
        # the days of the week and the times of a day answer "when" as a date does
        *(
            d + s
            for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
            for s in ("", "s")
        ),
        "weekend",
        "weekends",
        "dawn",
        "daybreak",
        "sunrise",
        "noon",
        "midday",
        "dusk",
        "sunset",
        "nightfall",
        "midnight",
        "tonight",
        "tomorrow",
        "hour",
        "hours",
    ]
)
_AMOUNT_WORDS = frozenset(
    [
        "few",
        "several",
        "dozen",
        "dozens",
        "half",
        "none",
        "majority",
        "minority",
        "twice",
        "once",
        "thrice",
        "hundreds",
        "thousands",
        "millions",
        "billions",
        "all",
        "most",
        "rarely",
        "seldom",
        "often",
        "always",
        "never",
        "usually",
        "sometimes",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "annually",
    ]
)
_ORDINAL_WORD = re.compile(r"^\w+(?:teenth|tieth|ieth)$")


@dataclass(frozen=True)
class Relevance:
    held: float  # share of the question's terms (key words double) the answer's passages hold around it
    new: bool  # the answer says something the question does not
    kind: str | None  # what the question asks for ("number", "date", "time"), None: anything
    kind_found: bool
    closeness: float = 0.0  # the question's cosine similarity to that passage text (the index's embedder)
    weight: float = 0.0  # what closeness counts beside the terms held (Config.grounding_similarity)
    near: float = 1.0  # a term counts as held by a word this close to it in meaning (1: itself only)

    @property
    def grounding(self) -> float:
        """How far the passages around the answer are about the question: the terms they hold,
        plus their closeness in meaning at its weight."""
        return round(self.held + self.weight * self.closeness, 3)

    def holds(self, threshold: float) -> bool:
        return self.grounding >= threshold and self.new and self.kind_found

    @property
    def problem(self) -> str:
        if not self.new:
            return "the answer only repeats the question"
        if not self.kind_found:
            return f"the question asks for a {self.kind} and the answer gives none"
        meaning = f", closeness in meaning {self.closeness:.2f}" if self.weight else ""
        alike = " or words close to them" if self.near < 1 else ""
        return (
            "the passages it rests on are about something else (they hold "
            f"{self.held:.0%} of the question's terms{alike}{meaning})"
        )


def kind(question: str) -> str | None:
    """What sort of answer the question asks for, where that can be told from its words."""
    if _NUMBER_Q.search(question):
        return "number"
    if _DATE_Q.search(question):
        return "date"
    if _WHEN_Q.search(question):
        return "time"
    return None


def terms(question: str) -> dict[str, float]:
    """The question's terms with their weights: key words (names, numbers) count double."""
    keys = key_words(question)
    return {w: 2.0 if w in keys else 1.0 for w in content(question) if w not in ASKING_STEMS}


def relevance(
    question: str,
    answer: str,
    context: str,
    closeness: float = 0.0,
    weight: float = 0.0,
    alike: Alike | None = None,
    near: float = 1.0,
) -> Relevance:
    """`context`: the passage text the answer rests on (its windows with a sentence either side,
    and the titles of those passages); `closeness`: the question's similarity to it in meaning,
    counted at `weight` beside the share of the question's terms it holds. With `near` below 1, a
    term the text does not hold counts as held where `alike` finds one of its words at least that
    close to the term in meaning ("Egyptian" for "Egypt", "won" for "win")."""
    if near < 1 and alike is None:
        raise ValueError("holding a term by a word close to it needs `alike` to measure closeness")
    wanted = terms(question)
    held = set(content(context))
    proper = {norm(w) for w in WORD.findall(question) if w[:1].isupper()}  # names, not words at large
    held |= {t for t in wanted if t in proper and t not in held and any(_derived(w, t) for w in held)}
    missing = [t for t in wanted if t not in held]
    if missing and near < 1 and alike is not None:
        spelled, written = surfaces(question), surfaces(context)
        close = (
            alike([spelled[t] for t in missing], list(written.values())) if written else [0.0] * len(missing)
        )
        held |= {t for t, c in zip(missing, close, strict=True) if c >= near}
    share = sum(w for t, w in wanted.items() if t in held) / sum(wanted.values()) if wanted else 1.0
    asked = set(content(question))
    said = [w for w in content(answer) if w not in asked]
    expected = kind(question)
    found = _gives(expected, answer, asked)
    return Relevance(round(share, 3), bool(said), expected, found, round(closeness, 3), weight, near)


# Endings that make a people's or a language's word from a name: "Indian" holds "India", "Kenyan"
# "Kenya", "Egyptian" "Egypt", "Japanese" "Japan" (stemmed "japanes"), "Pakistani" "Pakistan".
_DERIVING = ("an", "ian", "ese", "es", "i", "ish")


def _derived(word: str, term: str) -> bool:
    """Whether `word` is the name `term` with an ending of _DERIVING, or "n" after its final "a"
    (both as `content` gives them): not "Steven" for "Steve" (though "Milan" for "Mila")."""
    if len(term) < 4 or not word.startswith(term):
        return False
    ending = word[len(term) :]
    return ending in _DERIVING or (ending == "n" and term.endswith("a"))


def _gives(expected: str | None, answer: str, asked: set[str]) -> bool:
    if expected is None:
        return True
    fresh = [w for w in words(answer) if (number(w) or w) not in asked]
    numbers = any(number(w) is not None or w in SCALES or _ORDINAL_WORD.match(w) for w in fresh)
    if expected == "number":
        return numbers or any(w in _AMOUNT_WORDS or w in _TIME_WORDS for w in fresh)
    dates = numbers or any(w in MONTHS for w in fresh)
    if expected == "date":
        return dates
    return dates or any(w in _TIME_WORDS for w in fresh)
