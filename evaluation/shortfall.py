"""Where a goal falls short, read from a run's own records: one line per goal, counted from the
questions the model was asked, so that a goal not met says what to work on (the generator,
retrieval, a check, or the size of the sample). Every function reads records only."""

from __future__ import annotations

from collections import Counter

from evaluation.metrics import contained


def _right(record: dict, rule: str) -> bool:
    return record["outcome"][rule] == "answered" and contained(record["answer"][rule], record["gold"])


def right_missed(records: list[dict], rule: str) -> str:
    """Answerable questions: how often the model's unchecked reply held the gold answer (what no
    check can raise), how often the gold passage was shown, and how many right replies the
    checks withheld."""
    asked = [r for r in records if r["group"] == "answerable"]
    if not asked:
        return ""
    gated = sum(r["outcome"][rule] == "declined: retrieval" for r in asked)
    held = [r for r in asked if contained(r.get("raw") or "", r["gold"])]
    shown = sum(r["paragraph"] in r.get("passages", []) for r in asked)
    withheld = sum(not _right(r, rule) for r in held)
    return (
        f"the model's unchecked replies held the gold answer for {len(held)} of {len(asked)} (its passage shown "
        f"for {shown}, {gated} declined by the retrieval gate before the model); the checks withheld {withheld} of those"
    )


def wrong_replies(records: list[dict], rule: str) -> str:
    """The confident wrong replies by the kind of question they answered."""
    if not records:
        return ""
    wrong = [r for r in records if r["outcome"][rule] == "answered" and not _right(r, rule)]
    answerable = [r for r in wrong if r["group"] == "answerable"]
    shown = sum(r["paragraph"] in r.get("passages", []) for r in answerable)
    on, off = (sum(r["group"] == g for r in wrong) for g in ("on_topic", "off_topic"))
    return (
        f"{len(wrong)} of {len(records)} replies wrong: {len(answerable)} to answerable questions (the gold passage "
        f"shown for {shown} of them), {on} to on-topic and {off} to off-topic questions the documents do not answer"
    )


def refusals(records: list[dict], rule: str, group: str, min_relevance: float) -> str:
    """Questions the documents do not answer that were answered, and which retrieval evidence let
    them past the gate (the dense score, or the BM25 evidence alone) before the checks held them."""
    asked = [r for r in records if r["group"] == group]
    if not asked:
        return ""
    answered = [r for r in asked if r["outcome"][rule] == "answered"]
    dense = sum(r["dense"] >= min_relevance for r in answered)
    answerable = [r for r in records if r["group"] == "answerable"]
    declined = Counter(
        r["outcome"][rule].removeprefix("declined: ") for r in answerable if r["outcome"][rule] != "answered"
    )
    by = ", ".join(
        f"{n} by the {what.replace('retrieval', 'retrieval gate')}" for what, n in sorted(declined.items())
    )
    through = (
        f", the checks holding the reply: {dense} let past the gate by the dense score, "
        f"{len(answered) - dense} by the BM25 evidence alone"
        if answered
        else ""
    )
    return (
        f"{len(answered)} of {len(asked)} answered{through}; {sum(declined.values())} of "
        f"{len(answerable)} answerable questions declined{': ' + by if by else ''}"
    )


def pairs_apart(records: list[dict]) -> str:
    """Follow-up pairs whose two askings differ: right only alone, right only in the conversation."""
    if not records:
        return ""
    alone = sum(r["alone"]["right"] and not r["conversation"]["right"] for r in records)
    chat = sum(r["conversation"]["right"] and not r["alone"]["right"] for r in records)
    unnamed = sum(
        r["alone"]["right"] and not r["conversation"]["right"] and not r["rewrite_names_it"] for r in records
    )
    return (
        f"{alone} of {len(records)} pairs right only alone ({unnamed} of them with a rewrite that did not name "
        f"what the pronoun stands for), {chat} right only in the conversation"
    )
