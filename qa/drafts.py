"""Drafts of the next tokens, looked up in what a sequence has read and written so far.

An answer copies much of what it says from its passages: once it has written the same few tokens
as a passage, the passage's next tokens are a good guess at its own. A runtime that can check
several tokens in one step (qa/runtimes/ort.py) feeds the guess after the last token and keeps
the tokens the model agrees with: those greedy decoding would choose one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Drafts:
    """The tokens of one sequence, with where each run of `n` of them last ended."""

    n: int = 3  # tokens that must match before their continuation is drafted
    tokens: list[int] = field(default_factory=list)
    # Each n-gram but the sequence's last, with the position just after its latest occurrence.
    _after: dict[tuple[int, ...], int] = field(default_factory=dict)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            end = len(self.tokens)
            if end >= self.n:  # the last n-gram, now followed by `token`, can be looked up
                self._after[tuple(self.tokens[end - self.n :])] = end
            self.tokens.append(token)

    def draft(self, most: int) -> list[int]:
        """Up to `most` tokens that followed the latest earlier occurrence of the sequence's last
        `n` tokens; none where they did not occur before."""
        if most < 1 or len(self.tokens) < self.n:
            return []
        after = self._after.get(tuple(self.tokens[-self.n :]))
        return [] if after is None else self.tokens[after : after + most]


def agreed(draft: list[int], chosen: list[int]) -> list[int]:
    """The tokens a step made: `chosen[i]` is the model's token after the fed token i (the last
    token, then the draft), so it holds while the draft before it was the model's own choice."""
    made = [chosen[0]]
    for drafted, after in zip(draft, chosen[1:], strict=False):
        if drafted != made[-1]:
            break
        made.append(after)
    return made
