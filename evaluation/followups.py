"""Follow-up questions: pairs of XQuAD questions about one paragraph, the second rephrased by code
with a pronoun for a name that the first question also names ("How many points did the Broncos
score?" after "Who lost to the Broncos?" becomes "How many points did they score?"). The
follow-up asked in a conversation, after the first question, is scored by gold answer contained
against the same question asked alone as XQuAD writes it; the goal is to lose at most 5 points.

Pairs come from the report half's paragraphs that the index holds (qa/assistant.py's relevance
gate and checks as configured, or as this run's stages chose them)."""

from __future__ import annotations

import random
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from evaluation import data
from evaluation.metrics import contained
from qa.assistant import Assistant
from qa.words import STOP

# subject, object, possessive
PRONOUNS = {"he": ("he", "him", "his"), "she": ("she", "her", "her"), "it": ("it", "it", "its"),
            "they": ("they", "them", "their")}  # fmt: skip
_SPAN = re.compile(
    r"\b(?:the\s+)?[A-Z][\w.-]*(?:\s+(?:(?:of|de|du|la|von|van|der|al|bin)\s+)*[A-Z][\w.-]*)*(?:['’]s\b)?"
)
_VERB_AFTER = frozenset(
    ["did", "does", "do", "can", "could", "would", "will", "should", "has", "have", "had"]
)
_PLACE_AFTER = frozenset(["in", "at", "from", "near", "around", "within", "into", "across"])
# Words that make a name part of a longer noun ("southern California"): a pronoun cannot stand
# for the name alone there ("the lone MLS team of southern it").
_MODIFIERS = frozenset(["northern", "southern", "eastern", "western", "central", "upper", "lower", "greater",
                        "ancient", "modern", "medieval", "early", "late", "colonial", "imperial"])  # fmt: skip
_NOT_AFTER = frozenset(["a", "an", "this", "that", "these", "those"])  # "a Lama": not one thing named
_SUBJECT_AFTER = frozenset(
    [
        "is",
        "was",
        "were",
        "are",
        "am",
        "be",
        "been",
        "did",
        "does",
        "do",
        "has",
        "had",
        "have",
        "can",
        "could",
        "would",
        "will",
        "should",
        "may",
        "might",
        "must",
        "when",
        "where",
        "why",
        "how",
        "what",
        "which",
        "who",
        "whose",
        "whom",
        "that",
    ]
)  # a name after these is the subject of the clause
_PERSON = {"he": re.compile(r"\b(?:he|him|his)\b", re.I), "she": re.compile(r"\b(?:she|her|hers)\b", re.I)}


@dataclass(frozen=True)
class Pair:
    first: data.Question
    second: data.Question
    followup: str  # the second question with a pronoun for `name`
    name: str


def pronoun_class(name: str, question: str, paragraph: str) -> str:
    """Which pronoun stands for `name` in `question`: it for a place (after in, at, from ...),
    they for a plural, it for "the ...", else he or she when the paragraph says so at least
    twice (and more often than the other), else it."""
    before = question[: question.find(name)].split()
    if before and before[-1].lower() in _PLACE_AFTER:
        return "it"
    if name.endswith("s") and not name.endswith(("ss", "us", "is", "as")):  # the Broncos, Huguenots
        return "they"
    if name.lower().startswith("the "):
        return "it"
    counts = Counter({kind: len(p.findall(paragraph)) for kind, p in _PERSON.items()})
    person = max(("he", "she"), key=lambda kind: counts[kind])
    return person if counts[person] >= 2 else "it"


def with_pronoun(question: str, name: str, kind: str) -> str | None:
    """`question` with its first mention of `name` replaced by the pronoun of `kind` in the form
    its place asks for (possessive before 's, subject after a verb or a question word or at the
    start, object elsewhere); None when the name is not in it."""
    at = question.find(name)
    if at < 0:
        return None
    end = at + len(name)
    possessive = question[end : end + 2] in ("'s", "’s")
    before = question[:at].split()
    if possessive:
        form, end = PRONOUNS[kind][2], end + 2
    elif not before or before[-1].lower() in _SUBJECT_AFTER:
        form = PRONOUNS[kind][0]
    else:
        form = PRONOUNS[kind][1]
    if not before:
        form = form.capitalize()
    return question[:at] + form + question[end:]


def names(question: str) -> list[str]:
    """The capitalised spans of `question` (with a leading "the") that stand for a thing by
    themselves: not the opening word, not after "a", "this" or a word that makes it part of a
    longer noun ("southern California"), not a part of a longer name joined by "on" or "for"
    ("the European Convention on Human Rights"), and not a name that qualifies the noun after
    it ("the Amazon forest"), unless that word is the verb after "did" or "has"."""
    out = []
    for m in _SPAN.finditer(question):
        span, start = re.sub(r"['’]s$", "", m.group(0)), m.start()
        if start == 0:  # "What", "In" ...: drop the opening word, keep any name after it
            parts = span.split(maxsplit=1)
            if len(parts) < 2 or not parts[1][:1].isupper():
                continue
            span, start = parts[1], question.index(parts[1])
        before = question[:start].split()
        after = question[m.end() :].split()
        following = re.sub(r"\W+$", "", after[0]) if after else ""
        qualifies = following[:1].islower() and following not in STOP
        if before and before[-1].lower() in _NOT_AFTER | _MODIFIERS:
            continue
        if re.match(r"\s+(?:on|for)\s+[A-Z]", question[m.end() :]) or re.search(
            r"[A-Z][\w.-]*\s+(?:on|for)\s+(?:the\s+)?$", question[:start]
        ):
            continue  # "the European Convention on Human Rights": a part of a longer name
        if qualifies and not (before and before[-1].lower() in _VERB_AFTER and not span.startswith("the ")):
            continue
        if question[m.end() : m.end() + 1] not in ("", " ", "?", ",", ".", ";", ":", "!", ")"):
            continue  # "Sky+ HD": part of a longer name
        if len(span) >= 3:
            out.append(span)
    return out


def pairs(paragraphs: list[data.Paragraph], questions: list[data.Question]) -> list[Pair]:
    """For each paragraph, the first two questions (in XQuAD's order) where the later one names
    something the earlier one names too; the later one is rephrased with a pronoun for it."""
    by_paragraph: dict[str, list[data.Question]] = {}
    for q in questions:
        by_paragraph.setdefault(q.paragraph, []).append(q)
    text = {p.id: p.text for p in paragraphs}
    out = []
    for pid, qs in by_paragraph.items():
        found = _first_pair(qs, text.get(pid, ""))
        if found is not None:
            out.append(found)
    return out


def _first_pair(qs: list[data.Question], paragraph: str) -> Pair | None:
    for j, second in enumerate(qs):
        for first in qs[:j]:
            shared = sorted((n for n in names(second.text) if n in first.text), key=len, reverse=True)
            for name in shared:
                followup = with_pronoun(second.text, name, pronoun_class(name, second.text, paragraph))
                if followup and followup != second.text and first.text != second.text:
                    return Pair(first, second, followup, name)
    return None


def run(
    assistant: Assistant, paragraphs: list[data.Paragraph], report: dict, size: int | None, seed: int
) -> dict:
    """`report`: group -> questions of the report half (its answerable ones are paired), `size`
    pairs of them asked (all when None)."""
    started = time.perf_counter()
    found = pairs(paragraphs, report["answerable"])
    sample = random.Random(seed).sample(found, min(size or len(found), len(found)))
    with ThreadPoolExecutor(assistant.config.generator_batch) as pool:
        records = list(tqdm(pool.map(lambda p: _ask(assistant, p), sample), total=len(sample), desc="followups",
                            unit="pair"))  # fmt: skip
    n = max(len(records), 1)
    conversation = sum(r["conversation"]["right"] for r in records) / n
    alone = sum(r["alone"]["right"] for r in records) / n
    named = sum(r["rewrite_names_it"] for r in records) / n
    print(f"evaluation: followups: {len(records)} pairs: gold answer contained {conversation:.3f} in the "
          f"conversation, {alone:.3f} asked alone; the rewrite named it in {named:.3f}", file=sys.stderr)  # fmt: skip
    return {
        "pairs": len(records),
        "pairs_found": len(found),
        "conversation": round(conversation, 4),
        "alone": round(alone, 4),
        "difference": round(conversation - alone, 4),
        "rewrite_names_it": round(named, 4),
        "rewrite_fell_back": round(sum(r["rewrite_fell_back"] for r in records) / n, 4),
        "choice_asked": round(sum(bool(r["choose_reply"]) for r in records) / n, 4),
        "rewrites_refused": dict(Counter(r["rewrite_refused"] for r in records if r["rewrite_refused"])),
        "records": records,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ask(assistant: Assistant, pair: Pair) -> dict:
    alone = assistant.ask(pair.second.text)
    chat = assistant.chat()
    first = chat.ask(pair.first.text)
    followup = chat.ask(pair.followup)
    reply, refused = chat.last_rewrite
    gold = list(pair.second.answers)
    right = lambda a: bool(not a.abstained and contained(a.text, gold))  # noqa: E731
    return {
        "first": pair.first.text,
        "question": pair.second.text,
        "followup": pair.followup,
        "name": pair.name,
        "gold": gold,
        "first_answer": first.text,
        "standalone": followup.standalone,
        "rewrite_names_it": pair.name.lower() in (followup.standalone or "").lower(),
        "rewrite_fell_back": followup.standalone == pair.followup,
        "rewrite_reply": reply,
        "rewrite_refused": refused,
        "resolve_reply": chat.last_resolve,
        "choose_reply": chat.last_choice,
        "conversation": {"right": right(followup), "text": followup.text, "abstained": followup.abstained},
        "alone": {"right": right(alone), "text": alone.text, "abstained": alone.abstained},
    }
