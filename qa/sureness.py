"""How sure the model was of its answer, from the probabilities it gave the tokens it chose.

A wrong answer is most often a fluent sentence whose one chosen word (the name, the number, the
thing the question asks for) the model found barely likelier than others; the words it copies
from the question and the function words around them it is sure of either way. So an answer's
sureness is the probability of the least likely word it wrote that the question does not give
(citation marks and function words left out). Pure: the pieces come from the generator."""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.words import STOP

_WORD = re.compile(r"\w+")


def sureness(question: str, pieces: Sequence[str]) -> float | None:
    """The lowest probability among the reply's own content words: `pieces` as the generator
    streamed them, each with the `chance` of its least likely token (qa.generator.Piece). None
    where a piece carries no chance (a runtime that does not measure it); 1.0 with no such word."""
    chances = [getattr(p, "chance", None) for p in pieces]
    if not pieces or None in chances:
        return None
    given = set(_WORD.findall(question.lower()))
    words: list[list] = []  # [text, chance] of each word as the pieces spell it
    marked = False  # inside a citation mark: "[", "1", "]"
    for piece, chance in zip(pieces, chances, strict=True):
        if "[" in piece:
            marked = True
        if not marked:
            starts = not words or not piece[:1].isalnum() or not words[-1][0][-1:].isalnum()
            if starts:
                words.append([piece.strip(), chance])
            else:
                words[-1][0] += piece
                words[-1][1] = min(words[-1][1], chance)
        if "]" in piece:
            marked = False
    own = [
        chance for text, chance in words
        if text[:1].isalnum() and text.lower() not in given and text.lower() not in STOP
    ]  # fmt: skip
    return round(min(own), 4) if own else 1.0
