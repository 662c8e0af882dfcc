"""Text -> overlapping chunks sized in the embedding model's tokens, cut on sentence ends.

Pure: the tokenizer is handed in as a function, so the logic is tested without a model.
A chunk is a character span of the original text; `text[start:end]` is its exact text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Token offsets (start, end) of each text in a batch, special tokens left out.
Tokenize = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

# A full stop after an initial ("John W. Weeks", "U.S. Army", "e.g."), a title ("Dr.", "St.",
# "Gov."), a company's form ("Apple Inc.", "Acme Corp.") or a month ("Jan. 5") does not end a
# sentence: split there, a name would be quoted to the model on two lines, an answer's citation
# mark put inside it ("The John W. [1] Weeks Bridge"), and the support check would look for
# "Apple" and "rose 5%" in two sentences. (Each group is of one length: Python's look-behind.)
NOT_AFTER_ABBREVIATION = (
    r"(?<!\b[A-Z]\.)(?<!\b[a-z]\.[a-z]\.)(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|Mt|vs|Co|Lt)\.)"
    r"(?<!\b(?:Mrs|Rev|Gen|Col|Gov|Sen|Rep|Sgt|Maj|Inc|Ltd|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.)"
    r"(?<!\b(?:Prof|Corp|Capt|Sept)\.)"
    # Nor does an abbreviation before a word in lower case ("approx. five", "etc. and"), nor one
    # that stands before a number ("No. 5", "Fig. 3", "Art. 7", "pp. 12", "approx. 5%").
    r"(?!(?:(?<=\b(?:cf|ca)\.)|(?<=\b(?:etc|viz|esp)\.)|(?<=\b(?:incl|resp)\.)|(?<=\bapprox\.))"
    r"[\"'”’)\]]*\s+[a-z])"
    r"(?!(?:(?<=\b(?:No|pp|ca)\.)|(?<=\b(?:Fig|fig|Art|art|Vol|vol|Nos|Ref|ref)\.)|(?<=\bFigs\.)"
    r"|(?<=\bapprox\.))\s+\d)"
)
# A unit ends after sentence punctuation (and any closing quotes) or at a line break. Chinese
# and Japanese full stops need no space after them.
_UNIT_END = re.compile(
    rf"(?<=[.!?…]){NOT_AFTER_ABBREVIATION}([\"'”’)\]]*)\s+|(?<=[。！？])(?![。！？])([」』”’）)]*)\s*|\n+"
)
# No tokenizer makes fewer than one token per this many characters in practice; units
# longer than it are cut at spaces before tokenizing so one huge line cannot flood memory.
_CHARS_PER_TOKEN_BOUND = 16


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    tokens: int


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences and lines, whitespace trimmed."""
    spans, start = [], 0
    for m in _UNIT_END.finditer(text):
        quotes = m.group(1) or m.group(2) or ""  # closing quotes stay with the sentence
        spans.append((start, m.start() + len(quotes)))
        start = m.end()
    spans.append((start, len(text)))
    return [_trim(text, s, e) for s, e in spans if text[s:e].strip()]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while text[start].isspace():
        start += 1
    while text[end - 1].isspace():
        end -= 1
    return start, end


def _bounded(text: str, spans: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    out = []
    for start, end in spans:
        while end - start > max_chars:
            cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
            cut = cut if cut > start else start + max_chars
            if text[start:cut].strip():
                out.append(_trim(text, start, cut))
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if start < end:
            out.append((start, end))
    return out


def _units(text: str, tokenize: Tokenize, max_tokens: int) -> list[Span]:
    spans = _bounded(text, sentences(text), max_tokens * _CHARS_PER_TOKEN_BOUND)
    offsets = tokenize([text[s:e] for s, e in spans])
    units = []
    for (start, _end), toks in zip(spans, offsets, strict=True):
        toks = [(start + a, start + b) for a, b in toks if b > a]
        units.extend(_split_long(text, toks, max_tokens) if len(toks) > max_tokens else [_span(toks)])
    return [u for u in units if u.tokens]


def _span(toks: list[tuple[int, int]]) -> Span:
    return Span(toks[0][0], toks[-1][1], len(toks)) if toks else Span(0, 0, 0)


def _split_long(text: str, toks: list[tuple[int, int]], max_tokens: int) -> list[Span]:
    """A sentence longer than a chunk is cut at token boundaries, at a word start if one is near."""
    pieces, i = [], 0
    while i < len(toks):
        j = min(i + max_tokens, len(toks))
        if j < len(toks):
            word_start = next(
                (k for k in range(j, i + max_tokens // 2, -1) if text[toks[k][0] - 1].isspace()), j
            )
            j = word_start
        pieces.append(_span(toks[i:j]))
        i = j
    return pieces


def chunk_text(text: str, tokenize: Tokenize, max_tokens: int, overlap: int) -> list[Span]:
    """Pack whole sentences into chunks of at most `max_tokens`, each sharing about `overlap`
    tokens of whole sentences with the one before."""
    units = _units(text, tokenize, max_tokens)
    chunks: list[Span] = []
    first = 0
    while first < len(units):
        last, total = first, units[first].tokens
        while last + 1 < len(units) and total + units[last + 1].tokens <= max_tokens:
            last += 1
            total += units[last].tokens
        chunks.append(Span(units[first].start, units[last].end, total))
        if last + 1 == len(units):
            break
        first = _overlap_start(units, first, last, overlap, max_tokens)
    return chunks


def _overlap_start(units: list[Span], first: int, last: int, overlap: int, max_tokens: int) -> int:
    """The first unit of the next chunk: trailing sentences of this one worth <= overlap tokens,
    as long as the next sentence still fits beside them."""
    start, carried = last + 1, 0
    while start - 1 > first and carried + units[start - 1].tokens <= overlap:
        start -= 1
        carried += units[start].tokens
    while start <= last and carried + units[last + 1].tokens > max_tokens:
        carried -= units[start].tokens
        start += 1
    return start


def with_title(title: str, text: str, tokenize: Tokenize, title_tokens: int) -> str:
    """What is embedded and BM25-indexed for a chunk: its document's title, cut to at most
    `title_tokens` tokens, on a line before the chunk's text. Titles carry much of what a
    document is about, and a chunk from its middle would otherwise lose them."""
    title = title.strip()
    if title_tokens <= 0 or not title:
        return text
    offsets = tokenize([title])[0]
    if len(offsets) > title_tokens:
        title = title[: offsets[title_tokens - 1][1]]
    return f"{title}\n{text}"
