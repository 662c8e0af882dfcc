"""Pages (PDF pages, presentation slides) as character offsets into a document's text, so a passage
cut anywhere in that text knows which pages it comes from.

A document with pages keeps, in its metadata, the offset where each page begins (`page_starts`,
ascending); a presentation says its pages are slides (`page_unit`). Documents indexed before
docqa kept pages have neither, and their passages simply have no page."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence

PAGE_STARTS = "page_starts"
PAGE_UNIT = "page_unit"
PAGE_KEYS = frozenset({PAGE_STARTS, PAGE_UNIT})  # metadata for finding pages, not for showing
SEPARATOR = "\n\n"  # between pages in the joined text: a paragraph break for the chunker and the UI


def join_pages(pages: Sequence[str]) -> tuple[str, list[int]]:
    """The pages' texts (stripped) as one text, and the offset where each page begins. An empty
    page begins where the next page with text does, so no offset is ever attributed to it."""
    text, starts, waiting = "", [], 0
    for page in pages:
        page = page.strip()
        if not page:
            waiting += 1
            continue
        if text:
            text += SEPARATOR
        starts += [len(text)] * (waiting + 1)
        waiting = 0
        text += page
    return text, starts + [len(text)] * waiting


def page_range(metadata: Mapping[str, object], start: int, end: int) -> tuple[int, int] | None:
    """(first, last) 1-based page of the text at [start, end), or None when the document has no pages."""
    starts = metadata.get(PAGE_STARTS)
    if not isinstance(starts, list) or not starts or end <= start:
        return None
    first = max(bisect_right(starts, start), 1)
    return first, max(bisect_right(starts, end - 1), first)


def page_label(metadata: Mapping[str, object], start: int, end: int) -> str | None:
    """How a reader finds the text at [start, end): "p. 12", "pp. 12–13", "slide 3", "slides 3–4"."""
    pages = page_range(metadata, start, end)
    if pages is None:
        return None
    first, last = pages
    if metadata.get(PAGE_UNIT) == "slide":
        return f"slide {first}" if first == last else f"slides {first}–{last}"
    return f"p. {first}" if first == last else f"pp. {first}–{last}"
