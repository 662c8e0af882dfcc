"""Answers -> a Markdown document to keep or share: each question, its answer with its [n] marks,
and under it the passages it cites, with their documents, pages and whether they support it.
Pure: takes (question, answer) pairs, so a whole conversation is exported as one answer is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields

from qa.answer import Answer, Citation, verdict
from qa.retriever import Passage


def to_markdown(pairs: Sequence[tuple[str, Answer]], title: str = "Answers from docqa") -> str:
    """One section per (question, answer), in order."""
    return "\n\n".join([f"# {title}", *(_section(q, a) for q, a in pairs)]) + "\n"


def _section(question: str, answer: Answer) -> str:
    lines = [f"## {_line(question)}", ""]
    if answer.standalone and answer.standalone != question:  # a follow-up, as docqa searched it
        lines += [f"*Asked as: {_line(answer.standalone)}*", ""]
    lines.append(answer.text.strip())
    if answer.cut:
        lines += ["", "*Cut at the answer's token limit: it may end mid-sentence.*"]
    if answer.abstained:
        if answer.reason:
            lines += ["", f"*Why: {answer.reason}.*"]
        if answer.passages:
            lines += ["", "### Nearest passages (none holds the answer)"]
            lines += [_source(None, p, None) for p in answer.passages[:5]]
    else:
        by_number: dict[int, list[Citation]] = {}
        for c in answer.citations:
            by_number.setdefault(c.number, []).append(c)
        if by_number:
            lines += ["", "### Sources"]
            lines += [_source(n, answer.passages[n - 1], cites) for n, cites in sorted(by_number.items())]
    note = " · ".join(x for x in (answer.model, answer.runtime) if x)
    return "\n".join([*lines, "", f"<sub>{note}</sub>"] if note else lines)


def _source(number: int | None, p: Passage, cites: list[Citation] | None) -> str:
    where = [f"`{p.doc_id}`"]
    if p.metadata.get("date"):
        where.append(str(p.metadata["date"]))
    if p.page_label:
        where.append(p.page_label)
    where.append(f"characters {p.start}–{p.end}")
    said = ""
    if cites:
        said = f" · {verdict(cites)} ({max(c.support for c in cites):.0%})"
    head = f"**[{number}] {_line(p.title)}**" if number else f"**{_line(p.title)}**"
    lines = (_BLOCK.sub(_as_text, literal(line.strip())) for line in p.text.strip().split("\n"))
    quote = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return f"\n{head} — {', '.join(where)}{said}\n\n{quote}"


def _line(text: str) -> str:
    """`text` on one line, as Markdown shows it literally."""
    return literal(" ".join(text.split()))


def literal(text: str) -> str:
    """Text a user or a document gave (a question, a title, a file name, a reason that quotes
    one) as Markdown shows it literally inside a line: "*notes*_v2.txt" is not read as emphasis,
    "<title>" not as HTML. Only what Markdown reads inside a line is escaped, so "rice-2
    (copy).txt" reads as it is through the API too."""
    return _MARKDOWN.sub(r"\\\1", text)


_MARKDOWN = re.compile(r"([\\`*_\[\]<>!~&])")
# A passage's line quoted, its indent let go (else a code block, showing escapes as typed): one
# that would open a block of its own (a heading, a rule, "=====" under a line, a "+" or "12."
# list) is quoted as text
_BLOCK = re.compile(r"^(?:[#=+]|[-*_](?=(?:\s*[-*_]){2,}\s*$)|-(?=-*$)|\d+(?=[.)]\s))")


def _as_text(opening: re.Match) -> str:
    """The opening of a block as text: "\\#", and "12\\." for a list's number (a backslash
    escapes punctuation only)."""
    said = opening.group()
    return said + "\\" if said[0].isdigit() else "\\" + said


def answer_from_dict(data: dict) -> Answer:
    """An Answer from `Answer.to_dict()` (the web UI's and `--json`'s form); unknown keys are ignored."""
    passages = [Passage(**_known(Passage, p)) for p in data.get("passages", [])]
    citations = [Citation(**_known(Citation, c)) for c in data.get("citations", [])]
    rest = _known(Answer, data)
    return Answer(**{**rest, "passages": passages, "citations": citations})


def _known(kind: type, data: dict) -> dict:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}
