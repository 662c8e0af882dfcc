"""Answers, sources and summaries as HTML for the web UI. Pure: text in, escaped HTML out."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from embeddings.chunker import sentences
from qa.answer import Answer, Citation, verdict
from qa.retriever import Passage
from qa.support import support

_MARK = re.compile(r"\[(\d+)\]")
CONTEXT_CHARS = 400  # how much of the surrounding paragraph a source card shows on each side


def answer_html(text: str, numbers: set[int] | None = None, note: str = "", anchor: str = "source") -> str:
    """The answer with each [n] a link to source n (only known n when `numbers` is given);
    `anchor` names the sources' ids (`anchor-n`), one name per answer on a page."""

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        if numbers is not None and n not in numbers:
            return m.group(0)
        return f'<a class="cite" href="#{anchor}-{n}">[{n}]</a>'

    body = _MARK.sub(link, _lines(text))
    extra = f'<p class="note">{_lines(note)}</p>' if note else ""
    return f'<div class="answer">{body}</div>{extra}'


def draft_html(text: str) -> str:
    """The model's reply while it is written: marked as a draft that docqa has not yet checked."""
    return (
        f'<div class="draft">{answer_html(text, set(), "Draft: not yet checked against the passages.")}</div>'
    )


def final_answer_html(answer: Answer, anchor: str = "source") -> str:
    if answer.withdrawn:
        draft = _lines(answer.raw.strip())
        return (
            answer_html(answer.text, set(), answer.reason or "")
            + f'<details class="withdrawn" open><summary>Withdrawn: the draft the model wrote did not pass '
            f"docqa's checks</summary><s>{draft}</s></details>"
        )
    if answer.abstained:
        return answer_html(answer.text, set(), answer.reason or "")
    t = answer.timings
    note = f"{t.get('total', 0):.1f} s · {answer.model}"
    if answer.cut:
        note += " · cut at the answer's token limit"
    return answer_html(answer.text, {c.number for c in answer.citations}, note, anchor)


def sources_html(answer: Answer, text_of: Callable[[str], str], anchor: str = "source") -> str:
    """A card per cited passage (or per nearest passage when docqa abstained), the passage shown
    in its paragraph with the sentence that best supports the answer highlighted."""
    if answer.abstained:
        cards = [_card(None, p, None, text_of(p.doc_id), anchor) for p in answer.passages[:5]]
        head = "<h4>Nearest passages (none holds the answer)</h4>"
        return f'<div class="sources">{head}{"".join(cards)}</div>' if cards else ""
    by_number: dict[int, list[Citation]] = {}
    for c in answer.citations:
        by_number.setdefault(c.number, []).append(c)
    cards = []
    for n in sorted(by_number):
        cites = by_number[n]
        p = answer.passages[n - 1]
        cards.append(_card(n, p, cites, text_of(p.doc_id), anchor))
    if not cards:
        return '<div class="sources"><p class="note">The answer cites no passage.</p></div>'
    return f'<div class="sources"><h4>Sources</h4>{"".join(cards)}</div>'


def _card(number: int | None, p: Passage, cites: list[Citation] | None, document: str, anchor: str) -> str:
    date = p.metadata.get("date")
    meta = [_inline(p.doc_id), f"chars {p.start}–{p.end}", f"similarity {p.score:.2f}"]
    if p.page_label:
        meta.insert(1, f'<span class="page">{_inline(p.page_label)}</span>')
    if date:
        meta.insert(1, _inline(str(date)))
    badge = ""
    if cites:
        ok = any(c.supported for c in cites)
        best = max(c.support for c in cites)
        label = verdict(cites)
        added = " (added by docqa)" if all(c.inferred for c in cites) else ""
        badge = f'<span class="{"supported" if ok else "unsupported"}">{label} · {best:.0%}{added}</span>'
    # Mark the supporting sentence only where the passage does support the answer.
    claim = " ".join(c.sentence for c in cites if c.supported) if cites else ""
    where = f' id="{anchor}-{number}"' if number else ""
    if document[p.start : p.end] == p.text:
        text = highlight(document, p.start, p.end, claim)
    else:  # the document is gone or has changed since (an answer kept by the browser): the passage alone
        text = f'<span class="passage">{_lines(p.text)}</span>'
    title = f"[{number}] " if number else ""
    return (
        f'<div class="source"{where}><div class="source-head"><b>{title}{_inline(p.title)}</b> {badge}</div>'
        f'<div class="source-meta">{" · ".join(meta)}</div>'
        f'<div class="source-text">{text}</div></div>'
    )


def asked_as_html(question: str, standalone: str | None) -> str:
    """The question as retrieval searched it, when a follow-up was rewritten; else nothing."""
    if not standalone or standalone == " ".join(question.split()):  # asked as typed, spaces aside
        return ""
    return f'<p class="note asked-as">Asked as: {_inline(standalone)}</p>'


def turn_html(answer: Answer, number: int, text_of: Callable[[str], str]) -> str:
    """One answer of a conversation, as the chat shows it: the rewritten question, the checked
    answer, and its own sources, whose ids (turn-N-source-n) no other answer on the page shares."""
    anchor = f"turn-{number}-source"
    return (
        f'<div class="turn">{asked_as_html(answer.question, answer.standalone)}'
        f"{final_answer_html(answer, anchor)}{sources_html(answer, text_of, anchor)}</div>"
    )


def highlight(document: str, start: int, end: int, claim: str = "") -> str:
    """The paragraph(s) around [start, end) with the passage shaded and, inside it, the sentence
    that best supports `claim` marked."""
    if not document or not 0 <= start < end <= len(document):
        return ""
    before = [m.end() for m in _PARAGRAPH_BREAK.finditer(document, 0, start)]
    left = max(before[-1] if before else 0, start - CONTEXT_CHARS)
    after = _PARAGRAPH_BREAK.search(document, end)
    right = min(after.start() if after else len(document), end + CONTEXT_CHARS)
    mark_start, mark_end = _best_sentence(document, start, end, claim) if claim else (start, start)
    parts = [
        ("", document[left:start]),
        ("passage", document[start:mark_start]),
        ("mark", document[mark_start:mark_end]),
        ("passage", document[mark_end:end]),
        ("", document[end:right]),
    ]
    out = "…" if left > 0 else ""
    for kind, text in parts:
        text = _lines(text)
        if kind == "mark" and text:
            out += f"<mark>{text}</mark>"
        elif kind == "passage" and text:
            out += f'<span class="passage">{text}</span>'
        else:
            out += text
    return out + ("…" if right < len(document) else "")


_PARAGRAPH_BREAK = re.compile(r"\r?\n[ \t]*\r?\n")  # a blank line, also a Windows one


def _lines(text: str) -> str:
    """`text` escaped, its line breaks as <br>: no raw newline, so the chat's Markdown never reads
    a blank line in it and the HTML stays one block (see web.py)."""
    return html.escape(text).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _inline(text: str) -> str:
    """A title, an id, a label: escaped, on one line."""
    return html.escape(" ".join(text.split()))


def _best_sentence(document: str, start: int, end: int, claim: str) -> tuple[int, int]:
    spans = [(start + s, start + e) for s, e in sentences(document[start:end])]
    if not spans:
        return start, end
    return max(spans, key=lambda span: support(claim, document[span[0] : span[1]]).score)


def counted(n: int, noun: str) -> str:
    """A count with its noun: "1 passage", "2 passages"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def drawn_from(sources: list[Passage]) -> str:
    """What a summary drew on: "Drawn from 3 passages of 2 documents"."""
    return f"Drawn from {counted(len(sources), 'passage')} of {counted(len({p.doc_id for p in sources}), 'document')}"


def caveats(
    left_out: list[str], supported: bool, skipped: Sequence[str] = (), shortened: bool = False,
    unfinished: str = "",
) -> list[str]:  # fmt: skip
    """What a summary's reader should know: the sentences the documents do not bear out, the
    parts the model wrote nothing for, and what was cut (Summary's fields of those names)."""
    lines = []
    if not supported:
        lines.append("The documents do not bear out this summary as written: read it with care.")
    if left_out:
        lines.append(
            f"Left out, {counted(len(left_out), 'sentence')} of the model's summary the documents do not bear out:"
        )
        lines += [f"  - {s}" for s in left_out]
    if skipped:
        lines.append(f"Not in this summary: the model wrote nothing for {', '.join(skipped)}.")
    if shortened:
        lines.append(
            "Summaries of parts were cut to fit the prompt that combined them: ask for fewer sentences, or "
            "raise the context budget, to keep them whole."
        )
    if unfinished:
        lines.append(f"Left out, the last sentence, cut at the summary's length limit: {unfinished}")
    return lines


def summary_html(
    title: str, text: str, sources: list[Passage], note: str = "", left_out: list[str] | None = None,
    supported: bool = True, skipped: Sequence[str] = (), shortened: bool = False, unfinished: str = "",
) -> str:  # fmt: skip
    """A summary as the page shows it, with its caveats (Summary's fields of those names)."""
    docs: dict[str, str] = {}
    for p in sources:
        docs.setdefault(p.doc_id, p.title)
    items = "".join(f"<li>{_inline(t)} <code>{_inline(d)}</code></li>" for d, t in docs.items())
    warn = "".join(
        f'<p class="note unsupported">{_lines(line)}</p>'
        for line in caveats(left_out or [], supported, skipped, shortened, unfinished)
    )
    body = _lines(text)  # a summary written as a list keeps its lines
    return (
        f'<div class="summary"><h4>{_inline(title)}</h4><p>{body}</p>{warn}'
        f'<p class="note">{_lines(note)}</p>'
        f"<details><summary>{_inline(drawn_from(sources))}</summary>"
        f"<ul>{items}</ul></details></div>"
    )
