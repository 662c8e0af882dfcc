"""Bytes of one file -> (title, text, metadata), one parser per format.

Every parser raises UnreadableDocument with a reason a user can act on; the text it returns
is what chunk offsets point into.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from datetime import datetime

from embeddings.errors import UnreadableDocument
from embeddings.pages import PAGE_STARTS, join_pages

Parsed = tuple[str | None, str, dict[str, object]]  # title (None: derive one), text, metadata

# (Each pattern here reads a long run of spaces in linear time: "\s*:?\s*" would try every split.)
_DATE_LINE = re.compile(r"\A\s*(?:date|published)(?:\s*:\s*|\s+)(\d{4}-\d{2}-\d{2})\b", re.IGNORECASE)
_FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n---\r?\n", re.DOTALL)
# A line of YAML front matter: "key: value" (a key may have spaces or quotes), a list's item, or a
# line indented under a key; one key at least that site generators and note apps use
_SETTING = re.compile(r"[\"']?[\w -]+[\"']?\s*:|\s+\S|-\s|#")
_KNOWN_SETTING = re.compile(
    r"[\"']?(?:title|date|tags|layout|author|authors|categories|category|description|draft|slug|permalink"
    r"|aliases|created|updated|last modified|lang|keywords)[\"']?\s*:",
    re.IGNORECASE,
)
_MD_HEADING = re.compile(r"^#[ \t]+(\S.*)$", re.MULTILINE)
_MD_FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)  # code, whose "# ..." are comments
# A comment the rendered page does not show (notes to the writer, a hidden order), where it is not
# code. Kept whole, in this order: a fenced block (a fence line holds no other backticks; to a
# closing fence as long, or the end), an indented block after a blank line, a `span` (between
# backtick runs of one length), and an unclosed "<!--" with all that follows it. CRLF files too.
_MD_COMMENT = re.compile(
    r"(?P<kept>^[ \t]*(?P<fence>`{3,}(?=[^`\n]*$)|~{3,}).*?(?:^[ \t]*(?P=fence)[`~]*[ \t]*\r?$|\Z)"
    r"|(?:(?<=\n\n)|(?<=\n\r\n)|\A)(?:(?: {4}|\t)[^\n]*(?:\n|\Z))+"
    r"|(?<!`)(?P<ticks>`+)(?!`)[^\n]+?(?<!`)(?P=ticks)(?!`))"
    r"|<!--(?:-?>|.*?-->)"
    r"|(?P<unclosed><!--.*)",
    re.MULTILINE | re.DOTALL,
)
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 (with BOM) text, or a reason why this is not a text file."""
    if data.startswith(UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise UnreadableDocument(f"not valid UTF-16 (at byte {e.start}); save it as UTF-8") from None
        if "\x00" in text[:4096]:
            raise UnreadableDocument("looks like a binary file (it holds NUL characters), not text")
    elif b"\x00" in data[:8192]:
        raise not_text(data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise not_utf8(
                data, e.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
            ) from None
    if not text.strip():
        raise UnreadableDocument(EMPTY)
    return text


BINARY = "looks like a binary file (it holds NUL bytes), not text"
EMPTY = "empty: it holds no text"


def not_text(data: bytes) -> UnreadableDocument:
    """The reason a file with NUL bytes near its start is not read: UTF-16 without its mark, or binary."""
    if _utf16_without_mark(data[:8192]):
        return UnreadableDocument("UTF-16 text without a byte order mark: save it as UTF-8")
    return UnreadableDocument(BINARY)


def not_utf8(data: bytes, at: int) -> UnreadableDocument:
    """The reason a file is not UTF-8: its first bad byte, and where it stands."""
    return UnreadableDocument(f"not valid UTF-8 (byte 0x{data[at]:02x} at offset {at}); save it as UTF-8")


def _utf16_without_mark(head: bytes) -> bool:
    """Whether `head` reads as UTF-16 text with no byte order mark: every other byte NUL (the
    high byte of Latin letters), the others mostly printable."""
    for odd in (0, 1):  # big-endian text has its NULs first, little-endian second
        zeros, letters = head[odd::2], head[1 - odd :: 2]
        if len(zeros) >= 8 and zeros.count(0) >= 0.9 * len(zeros):
            return sum(32 <= b < 127 or b in (9, 10, 13) for b in letters) >= 0.9 * len(letters)
    return False


def _leading_date(text: str) -> dict[str, object]:
    m = _DATE_LINE.match(text)
    return {"date": m.group(1)} if m and _valid_date(m.group(1)) else {}


def iso_date(value: object) -> str | None:
    """`value` as YYYY-MM-DD when it is an ISO 8601 date or date and time, else None: dates go into
    prompts and pages, so anything else given as one is not used as one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip()).date().isoformat()  # "20210101" too
    except ValueError:
        return None


def _valid_date(value: str) -> bool:
    try:
        datetime.strptime(value[:10], "%Y-%m-%d")
    except ValueError:
        return False
    return True


def parse_text(data: bytes) -> Parsed:
    text = decode(data)
    body = _DATE_LINE.sub("", text, count=1).strip()
    first = body.split("\n", 1)[0].strip()
    # A short first line followed by more text reads as a title; a long one is prose, and
    # its opening words are the best title there is.
    if len(first) <= 100 and "\n" in body:
        return first, text, _leading_date(text)
    return _opening(first), text, _leading_date(text)


def _opening(line: str, limit: int = 80) -> str:
    sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def parse_markdown(data: bytes) -> Parsed:
    text = _MD_COMMENT.sub(lambda m: m.group("kept") or m.group("unclosed") or "", decode(data))
    if not text.strip():
        raise UnreadableDocument("it holds only comments (<!-- ... -->), which a rendered page does not show")
    metadata: dict[str, object] = {}
    title = None
    front = _FRONT_MATTER.match(text)
    lines = [line for line in front.group(1).splitlines() if line.strip()] if front else []
    if (
        front
        and all(_SETTING.match(line) for line in lines)
        and any(_KNOWN_SETTING.match(line) for line in lines)
    ):
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip().strip("'\"")
            if key == "title" and value:
                title = value
            elif key == "date" and _valid_date(value):
                metadata["date"] = value[:10]
        text = text[front.end() :]  # settings for a site generator, which its pages do not show
        if not text.strip():
            raise UnreadableDocument("it holds only front matter (--- ... ---), no text a page shows")
    if title is None:  # the first heading with words ("# #" has none)
        headings = (_heading_text(h.group(1)) for h in _MD_HEADING.finditer(_MD_FENCED.sub("", text)))
        title = next((h for h in headings if h), None)
    metadata = metadata or _leading_date(text)
    return title, text, metadata


def _heading_text(line: str) -> str:
    """A Markdown heading's text without its closing hashes, which follow a space ("# Notes ##"),
    so that "# Learning C#" keeps its "#"."""
    text = line.rstrip()
    bare = text.rstrip("#")
    return bare.rstrip() if bare != text and (not bare or bare[-1] in " \t") else text


_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "table", "tr", "td", "th", "h1", "h2", "h3", "h4",
    "h5", "h6", "section", "article", "header", "footer", "blockquote", "pre", "hr", "dt", "dd",
    "main", "nav", "aside", "figure", "figcaption", "caption", "details", "summary", "address",
    "dl", "thead", "tbody", "tfoot", "form", "fieldset", "legend", "option",
}  # fmt: skip
_INVISIBLE_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0+(?:\.0+)?(?:px|em|rem|pt|%)?\s*(?:;|$)|opacity\s*:\s*0+(?:\.0+)?\s*(?:;|$)",
    re.IGNORECASE,
)


def parse_html(data: bytes) -> Parsed:
    from bs4 import BeautifulSoup

    text = decode(data)  # its own reason (not UTF-8, say) says what to do
    # Markup the parser rejects ("<![-- a -->") is that file's reason to be skipped, not the build's end.
    try:
        soup = BeautifulSoup(text, "html.parser")
    except Exception as e:
        said = " ".join(str(e).split())
        raise UnreadableDocument(
            f"not readable HTML ({type(e).__name__}: {said}); fix the markup it names"
        ) from None
    title = _html_title(soup)
    metadata: dict[str, object] = {}
    for meta in soup.find_all("meta"):
        name = str(meta.get("name") or meta.get("property") or "").lower()
        content = str(meta.get("content") or "")
        if name in {"date", "article:published_time", "dc.date"} and _valid_date(content):
            metadata["date"] = content[:10]
    text = tidy(visible_text(soup))
    if not text:
        raise UnreadableDocument("the HTML page has no visible text")
    return title, text, metadata


def _html_title(soup) -> str | None:
    """The page's <title> (not an inline image's, inside <svg>), else its first <h1> a reader
    sees; None where neither has text."""
    title = next((t for t in soup.find_all("title") if t.find_parent("svg") is None), None)
    if title is not None and (said := title.get_text(" ", strip=True)):
        return said
    for heading in soup.find_all("h1"):  # the first a reader sees (most pages have a title)
        if not any(_hidden(t) for t in (heading, *heading.parents) if t.name):
            return heading.get_text(" ", strip=True) or None
    return None


_UNSEEN_TAGS = {"script", "style", "noscript", "template", "head"}


def visible_text(root) -> str:
    """The text a reader of the page sees, blocks on lines of their own. Hidden elements (and
    scripts, styles, the head) are left out. One pass without changing the tree, so the time
    stays linear in the page's size however wide or deep it is."""
    from bs4 import CData, NavigableString, Tag

    out: list[str] = []
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if node is None:  # the end of a block
            out.append("\n")
        elif isinstance(node, Tag):
            if node.name in _UNSEEN_TAGS or _hidden(node):
                continue
            if node.name in _BLOCK_TAGS:
                out.append("\n")
                stack.append(None)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes or declarations
            out.append(str(node))
    return "".join(out)


def _hidden(tag) -> bool:
    return (
        tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
        or bool(_INVISIBLE_STYLE.search(str(tag.get("style") or "")))
    )


def tidy(text: str) -> str:
    lines = (re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# The letters a typesetter joins into one glyph ("ﬁ" in "ﬁnancial", as LaTeX and Word write PDFs):
# searched and embedded as the letters they are.
_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)


def parse_pdf(data: bytes) -> Parsed:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("the PDF is encrypted; save a copy without a password")
        pages = [(page.extract_text() or "").translate(_LIGATURES) for page in reader.pages]
        info = _pdf_info(reader)
    except UnreadableDocument:
        raise
    except Exception as e:  # pypdf raises many types on malformed files; each becomes a reason
        raise UnreadableDocument(f"not a readable PDF ({type(e).__name__}: {e})") from None
    text, starts = join_pages(pages)
    if not text:
        raise UnreadableDocument("the PDF has no extractable text (a scanned image?); OCR it first")
    title = str(info.title).strip() if info is not None and info.title else None
    return title or None, text, {"pages": len(pages), PAGE_STARTS: starts, **_pdf_date(info)}


def _pdf_info(reader):
    """The PDF's information dictionary (title, dates), or None: a damaged one is no reason to
    skip pages whose text reads."""
    try:
        return reader.metadata
    except Exception:
        return None


def _pdf_date(info) -> dict[str, object]:
    try:
        created = info.creation_date if info is not None else None
    except Exception:  # a malformed /CreationDate is no reason to skip the document
        return {}
    return {"date": created.date().isoformat()} if created else {}


PARSERS = {
    ".txt": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
}
