"""Generated answer -> checked citations. Pure text logic, no model.

Each answer sentence is matched with the passage numbers it cites; numbers that name no given
passage are dropped from the text; each remaining citation is scored by how much of the
sentence's content the passage holds (stemmed word overlap), and marked supported or not.
Small models cite loosely, so `answer.interpret` keeps in the text only the marks that hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_MARK = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LEADING_MARKS = re.compile(r"(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_REFUSAL = re.compile(
    r"\b(?:I\s+(?:do\s+not|don'?t|cannot|can'?t)\s+(?:know|find|answer|tell)"
    r"|(?:passages?|documents?|text|context)\s+(?:does|do)\s+not\s+(?:contain|mention|say|provide|include|specify)"
    r"|not\s+(?:mentioned|stated|provided|specified|given|found)\s+in\s+the\s+(?:passages?|documents?|text|context)"
    r"|no\s+information\s+(?:about|on|regarding))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CitedSentence:
    text: str  # the sentence without its citation marks
    numbers: tuple[int, ...]  # passage numbers it cites, 1-based, in order, no repeats
    start: int  # offsets in the answer of the sentence with its marks
    end: int


def is_refusal(answer: str) -> bool:
    """The model said, in its first sentence, that the passages do not hold the answer (or it
    wrote no words at all, only citation marks)."""
    words = _MARK.sub("", answer).strip()
    return not _WORD.search(words) or bool(_REFUSAL.search(_SENTENCE_END.split(words, maxsplit=1)[0]))


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
        text = " ".join(_MARK.sub("", part).split())
        if text:
            out.append(CitedSentence(text, _all_numbers(part), offset, offset + len(part.rstrip())))
    return out


def set_marks(answer: str, sentence: CitedSentence, numbers: list[int]) -> str:
    """The answer with `sentence`'s citation marks replaced by `numbers`, put at its end."""
    body = _MARK.sub("", answer[sentence.start : sentence.end]).rstrip()
    marks = "".join(f"[{n}]" for n in numbers)
    return f"{answer[: sentence.start]}{body}{' ' + marks if marks else ''}{answer[sentence.end :]}"


def support(sentence: str, passage: str) -> float:
    """How much of the sentence the passage holds: the mean of the shares of its content words
    and of its adjacent content-word pairs found there (stemmed, stop words left out). Pairs keep
    "Ismail Khan" from being supported by a passage that only names "Amir Khan"."""
    words = _content(sentence)
    if not words:
        return 1.0
    found = _content(passage)
    pairs, found_words, found_pairs = _pairs(words), set(found), _pairs(found)
    share = sum(w in found_words for w in words) / len(words)
    if not pairs:
        return share
    return (share + sum(p in found_pairs for p in pairs) / len(pairs)) / 2


def _pairs(words: list[str]) -> set[tuple[str, str]]:
    return set(zip(words, words[1:], strict=False))


def best_support(sentence: str, passages: list[str]) -> tuple[int, float]:
    """(1-based number, support) of the passage that best supports a sentence."""
    scores = [support(sentence, p) for p in passages]
    best = max(range(len(scores)), key=scores.__getitem__)
    return best + 1, scores[best]


def _numbers(group: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", group)]


def _all_numbers(text: str) -> tuple[int, ...]:
    return _unique(tuple(n for m in _MARK.finditer(text) for n in _numbers(m.group(1))))


def _unique(numbers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(numbers))


def _content(text: str) -> list[str]:
    """Stemmed words, stop words left out, in order."""
    stemmer, stop = _language()
    return stemmer.stemWords([w for w in _WORD.findall(text.lower()) if w not in stop])


@cache
def _language():
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return Stemmer.Stemmer("english"), frozenset(STOPWORDS_EN)
