"""Generated answer -> its sentences and citation marks. Pure text logic, no model.

Each answer sentence is matched with the passage numbers it cites; numbers that name no given
passage are dropped from the text. Whether a passage holds a sentence is qa/support.py's
question; small models cite loosely, so `answer.interpret` keeps in the text only the marks that
hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from embeddings.chunker import NOT_AFTER_ABBREVIATION

# A citation mark: [1], [1, 3], [1-3], and with the prompt's own label or another before any
# number: [Document 1], [Doc 1, Doc 3].
_LABEL = r"(?:(?:documents?|docs?|passages?|sources?)\s+)?"
_CITED = rf"\[{_LABEL}(\d+(?:\s*(?:[,;]|[-–]|and)\s*{_LABEL}\d+)*)\]"
_MARK = re.compile(rf"\s*{_CITED}", re.IGNORECASE)
_LEADING_MARKS = re.compile(rf"(?:\s*{_CITED})+", re.IGNORECASE)
# A sentence ends at . ! or ? and a space, but not after an abbreviation or a list item's number
# ("1. The meeting ..."), and at every line break.
_SENTENCE_END = re.compile(rf"(?m)(?<!^\d\.)(?<!^\d\d\.)(?<=[.!?]){NOT_AFTER_ABBREVIATION}\s+(?=\S)|\n+")
# Markdown around a sentence: a list item's bullet or number, a heading's hashes, bold or italic.
_LIST_ITEM = re.compile(r"\A(?:[-*•+]|\d{1,2}[.)]|#{1,6})\s+")
_EMPHASIS = re.compile(r"\*\*|__")
_WORD = re.compile(r"\w+", re.UNICODE)
_SOURCES = r"\b(?:passages?|documents?|texts?|context|sources?|information\s+(?:given|provided))\b"
_GIVEN = r"(?:\s+(?:provided|given|above|you\s+gave))?"
# What follows "not in the text" where the words name a thing, not the passages ("not in the
# source code", "the text messages", "the document drawer", "the context of").
_NOT_THE_PASSAGES = r"(?!\s+(?:code|files?|folders?|of|messages?|drawers?|box(?:es)?|archives?|between)\b)"
# A source or a text that is a thing, not the passages: "the power source does not provide ...",
# "the primary source does not mention ...", "not found in the source water".
_A_THING = re.compile(
    r"\b(?:power|primary|secondary|energy|light|heat|water|food|news|data|main|single|reliable|original|funding"
    r"|income|revenue|error|legal|historical|ancient|anonymous|open|plain|binary|raw|hidden|alt|body|search)\s+"
    rf"{_SOURCES}|{_SOURCES}\s+(?:water|material|language|editor|field|area|book|column|image|version|window"
    r"|string|node|tree|map|box|code|files?)\b",
    re.IGNORECASE,
)
# The passages named as such before "do not say": "the documents", "both passages", "Documents
# provided" opening a sentence (not "court documents", "her sources").
_THE = (
    r"(?:(?:^|(?<=[,;:]))\s*|\b(?:the|these|those|this|your|any|both|all|two|three|four|five)\s+"
    r"(?:(?:provided|given|available|retrieved|above|supplied|relevant|attached|uploaded|excerpted|shared"
    r"|indexed|cited|following|current|search|other|same)\s+){0,2})"
)
_PASSAGES_NAMED = re.compile(
    rf"{_THE}{_SOURCES}{_GIVEN}(?!\s+of\b)", re.IGNORECASE
)  # not "the source of the funds"
# The model declining in so many words: about itself, or about the passages.
_DECLINES = re.compile(
    r"\bI\s+(?:do\s+not|don'?t|cannot|can'?t|could\s*(?:not|n't)|am\s+not\s+able\s+to|am\s+unable\s+to"
    r"|'m\s+unable\s+to|was\s+(?:not\s+able|unable)\s+to)\s+(?:know|find|answer|tell|say|determine|see)"
    r"|\bI(?:\s+a|')m\s+not\s+sure|\bI\s+(?:do\s+not|don'?t)\s+have\s+(?:enough\s+)?information"
    rf"|{_THE}{_SOURCES}{_GIVEN}\s+(?:does|do|did)\s*(?:not|n't)\s+(?:contain|mention|say|provide|include|specify|state"
    r"|answer|give|tell|have|name|identify|indicate|reveal|list|describe|explain|discuss)"
    rf"|{_THE}{_SOURCES}{_GIVEN}\s+(?:lacks?\s+(?:any\s+)?(?:information|details)|(?:is|are)\s+silent\s+on)"
    rf"|\b(?:none|neither)\s+of\s+the\s+{_SOURCES}{_GIVEN}\s+(?:contains?|mentions?|says?|provides?|includes?"
    r"|specif(?:y|ies)|states?|answers?)"
    rf"|\bneither\s+{_SOURCES}\s+(?:contains|mentions|says|provides|includes|specifies|states|answers)"
    rf"|(?:\bnot|n't)\s+(?:mentioned|stated|provided|specified|given|found|answered|available)\s+in\s+(?:the|any\s+of\s+the)"
    rf"\s+(?:provided\s+|given\s+)?{_SOURCES}{_NOT_THE_PASSAGES}"
    r"|\bno\s+relevant\s+information\b"
    rf"|\bnothing\s+in\s+the\s+(?:provided\s+|given\s+)?{_SOURCES}\s+(?:says|mentions|states|indicates|names)"
    rf"|(?:\bnot|n't)\s+(?:named|identified|listed|described|indicated)\s+in\s+the\s+(?:provided\s+|given\s+)?{_SOURCES}"
    rf"{_NOT_THE_PASSAGES}"
    # "not in the text" of the reply: not "not in the source code but ..." nor "the text messages"
    rf"|(?:\bnot|n't)\s+in\s+the\s+(?:provided\s+|given\s+)?{_SOURCES}{_NOT_THE_PASSAGES}",
    re.IGNORECASE,
)
# Words that decline when the model writes them alone, and state a fact when it cites a passage
# for them ("the cause of the crash cannot be determined [1]").
_GENERAL = re.compile(
    r"\b(?:(?:there\s+is\s+)?no\s+(?:information|mention|answer)\s+(?:about|on|regarding|of|to|in)"
    r"|(?:cannot|can'?t)\s+be\s+(?:determined|answered|found)"
    r"|(?:there\s+is\s+)?not\s+enough\s+information"
    r"|no\s+information\s+is\s+(?:given|provided)"
    r"|not\s+possible\s+to\s+(?:determine|say|tell|know|answer))",
    re.IGNORECASE,
)
# A quotation inside a sentence: what someone else said ("I don't know who fired"), not the model.
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”')
# Words a refusal may open with before it says so ("Unfortunately, the provided documents ..."),
# after a lead-in ("I'm sorry, but", "Based on the passages,").
_OPENING_WORDS = 3
_LEAD_IN = re.compile(
    rf"\A\W*(?:(?:I'm|I am)\s+sorry|sorry|unfortunately|however"
    rf"|(?:based\s+on|according\s+to)\s+(?:[\w'-]+\s+){{0,2}}(?:{_SOURCES}|information|search\s+results){_GIVEN})"
    r"\W*(?:but\s+)?",
    re.IGNORECASE,
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


@dataclass(frozen=True)
class CitedSentence:
    text: str  # the sentence without its citation marks and markdown (a list item's bullet, bold)
    numbers: tuple[int, ...]  # passage numbers it cites, 1-based, in order, no repeats
    start: int  # offsets in the answer of the sentence with its marks
    end: int


def _declines(sentence: str) -> re.Match | None:
    """Where `sentence` says the passages do not hold the answer (not a thing that is a source
    or a text, see _A_THING)."""
    return next(_of_the_passages(_DECLINES, sentence), None)


def _of_the_passages(pattern: re.Pattern, sentence: str) -> Iterator[re.Match]:
    """The matches of `pattern` in `sentence` that do not overlap a thing named a source or a
    text (_A_THING: "the power source", "the source water")."""
    things = [m.span() for m in _A_THING.finditer(sentence)]
    return (
        m for m in pattern.finditer(sentence) if not any(a < m.end() and m.start() < b for a, b in things)
    )


def declines(sentence: str) -> bool:
    """Whether `sentence` says the passages (or the model) do not hold what was asked, in so many
    words ("The documents do not say when it arrived.", "The passages give no information on
    who paid."); not words that state a fact about the world ("the cause cannot be determined")."""
    said = sentence.translate(_APOSTROPHES)
    named = next(_of_the_passages(_PASSAGES_NAMED, said), None)
    return _declines(said) is not None or bool(_GENERAL.search(said) and named)


def is_refusal(answer: str) -> bool:
    """The model said, in its first sentence, that the passages do not hold the answer (or it
    wrote no words at all, only citation marks)."""
    said = answer.translate(_APOSTROPHES).strip()
    words = _MARK.sub("", said)
    if not _WORD.search(words):
        return True
    first = _SENTENCE_END.split(words, maxsplit=1)[0]
    unquoted = _QUOTED.sub(" ", first)
    if _WORD.search(unquoted):  # a reply that is all one quotation is the model's own words
        first = unquoted
    opening, *rest = _SENTENCE_END.split(said, maxsplit=1)
    cited = _MARK.search(opening) or (rest and _LEADING_MARKS.match(rest[0]))  # "... determined. [1]"
    declines = _declines(first)
    # A sentence that cites a passage declines only where it opens by saying so: "the documents
    # do not contain a signature [1]" further in states a fact about documents.
    opening_words = _WORD.findall(_LEAD_IN.sub("", first[: declines.start()])) if declines else []
    if declines and (not cited or len(opening_words) <= _OPENING_WORDS):
        return True
    return bool(_GENERAL.search(first)) and not cited


def marked(answer: str) -> str:
    """The answer with a passage it names in words made a citation mark: in place where it
    stands apart, "... in 1932 (Document [1])." is "... in 1932 [1]."; at the end of its sentence
    where it leads in, "According to Document 1, the bridge opened in 1932." is "The bridge opened
    in 1932 [1]." (The prompt labels each passage "Document [n]".)"""
    out = answer
    for m in reversed(list(_NAMED_SOURCE.finditer(answer))):
        marks = "".join(f"[{_ORDINALS.get(n.lower(), n)}]" for n in _NAMED_NUMBER.findall(m.group()))
        before = out[: m.start()].rstrip(" \t")
        space = " " if before and before[-1] != "\n" else ""
        if m.group("apart"):  # "(Document 1)": the mark where it stands
            out = f"{before}{space}{marks}{out[m.end() :]}"
            continue
        stop = _stop(out, m.end())
        said = out[m.end() : stop].strip(" \t")
        if said and (not before or before[-1] in ".!?\n"):  # it opened the sentence: its words do now
            said = said[0].upper() + said[1:]
        out = f"{before}{space}{' '.join(p for p in (said, marks) if p)}{out[stop:]}"
    return out


def _stop(text: str, start: int) -> int:
    """Where the sentence around `start` ends: at its full stop (not an abbreviation's), or its line's end."""
    end = _SENTENCE_END.search(text, start)
    if end is None:
        tail = text.rstrip()
        return len(tail) - 1 if tail.endswith((".", "!", "?")) and len(tail) - 1 >= start else len(tail)
    return end.start() - 1 if text[end.start() - 1] in ".!?" else end.start()


_ORDINALS = {
    w: str(i)
    for i, w in enumerate(["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"], 1)
}
_NUMBERED = r"(?:\[\d{1,2}\]|\d{1,2}\b)"
# "Document 1", "Documents [1] and [3]", "the second passage" (not "the novel's second passage")
_SOURCE = (
    rf"(?:(?:the\s+)?(?:documents?|passages?)\s+{_NUMBERED}(?:\s*(?:,|and|&)\s*(?:(?:document|passage)\s+)?{_NUMBERED})*"
    rf"|\bthe\s+(?:{'|'.join(_ORDINALS)})\s+(?:document|passage)\b)"
)
_LEADS_IN = (
    r"(?:according\s+to|as\s+(?:stated|said|mentioned|noted|reported|shown|described)\s+in|based\s+on)"
)
_NAMED_SOURCE = re.compile(
    rf"(?:,\s*)?(?:\*\*|__)?\b{_LEADS_IN}\s+{_SOURCE}(?:\*\*|__)?\s*,?"
    # apart, in brackets (a run of spaces read from its start only: linear time)
    rf"|(?P<apart>(?<!\s)\s*\(\s*(?:{_LEADS_IN}\s+|see\s+|from\s+)?{_SOURCE}\s*\))"
    # "Document 1 states that ...", "..., as Document 1 notes, ..."
    rf"|(?:,?\s*\bas\s+)?\b{_SOURCE}\s+(?:(?:state|mention|note|report|show|indicate|explain)(?:s|d|ed)?|says?|said)\b"
    r"(?:\s+that)?\s*[,:]?",
    re.IGNORECASE,
)
_NAMED_NUMBER = re.compile(rf"\d{{1,2}}|\b(?:{'|'.join(_ORDINALS)})\b", re.IGNORECASE)


def drop_unknown(answer: str, given: int) -> str:
    """The answer with every citation of a passage number outside 1..given removed."""

    def keep(m: re.Match) -> str:
        numbers = [n for n in _numbers(m.group(1)) if 1 <= n <= given]
        return f" [{']['.join(map(str, numbers))}]" if numbers else ""

    return _MARK.sub(keep, answer)


def sentences(answer: str) -> list[CitedSentence]:
    """Answer sentences with the numbers they cite; marks right after a full stop belong to the
    sentence before it ("... in Tehran. [2]")."""
    out: list[CitedSentence] = []
    start = 0
    for end in [m.start() for m in _SENTENCE_END.finditer(answer)] + [len(answer)]:
        part, offset = answer[start:end], start
        start = _SENTENCE_END.match(answer, end).end() if end < len(answer) else end
        leading = _LEADING_MARKS.match(part)
        if leading and out:
            prev = out[-1]
            numbers = _unique(prev.numbers + _all_numbers(leading.group(0)))
            out[-1] = CitedSentence(prev.text, numbers, prev.start, offset + leading.end())
            part, offset = part[leading.end() :], offset + leading.end()
        text = plain(part)
        if text:
            out.append(CitedSentence(text, _all_numbers(part), offset, offset + len(part.rstrip())))
    return out


def framing(answer: str, cited: list[CitedSentence]) -> set[int]:
    """Which of `answer`'s sentences (`cited`, as `sentences` gives them) only frame it and state
    nothing to check: a heading, a table's rule and the header row above it, a line that names
    the sources ("*Source: Alpha*")."""
    lines = [answer[s.start : s.end] for s in cited]
    below = [*lines[1:], ""]
    return {
        i for i, line in enumerate(lines)
        if is_heading(line) or _TABLE_RULE.match(line) or _SOURCES_LINE.match(line)
        or (line.lstrip().startswith("|") and _TABLE_RULE.match(below[i]))
    }  # fmt: skip


_HEADING = re.compile(r"\A\s*#{1,6}\s")
_TABLE_RULE = re.compile(r"\A\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*\Z")
_SOURCES_LINE = re.compile(r"\A[\s*_]*(?:sources?|references?)\s*:", re.IGNORECASE)


def is_heading(line: str) -> bool:
    """Whether `line` is a markdown heading ("## Summary")."""
    return bool(_HEADING.match(line))


def is_list_item(line: str) -> bool:
    """Whether `line` is an item of a markdown list ("- ...", "* ...", "1. ...")."""
    return bool(_LIST_ITEM.match(line.lstrip())) and not line.lstrip().startswith("#")


def plain(sentence: str) -> str:
    """A sentence as the claim it makes: without citation marks and markdown, spaces made single."""
    return _LIST_ITEM.sub("", _EMPHASIS.sub("", " ".join(_MARK.sub("", sentence).split())))


def set_marks(answer: str, sentence: CitedSentence, numbers: list[int]) -> str:
    """The answer with `sentence`'s citation marks replaced by `numbers`, put at its end."""
    body = _MARK.sub("", answer[sentence.start : sentence.end]).rstrip()
    if sentence.start == 0:  # a reply that opens with its marks ("[2] The meeting ...") opens with its words
        body = body.lstrip()
    marks = "".join(f"[{n}]" for n in numbers)
    return f"{answer[: sentence.start]}{body}{' ' + marks if marks else ''}{answer[sentence.end :]}"


def _numbers(group: str) -> list[int]:
    """The passage numbers a mark's group names: "1, 3" -> 1, 3; "1-3" -> 1, 2, 3."""
    numbers: list[int] = []
    for m in re.finditer(r"(\d+)(?:\s*[-–]\s*(\d+))?", group):
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        numbers += range(first, last + 1) if 0 <= last - first <= 10 else [first, last]
    return numbers


def _all_numbers(text: str) -> tuple[int, ...]:
    return _unique(tuple(n for m in _MARK.finditer(text) for n in _numbers(m.group(1))))


def _unique(numbers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(numbers))
