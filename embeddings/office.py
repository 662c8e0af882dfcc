"""Bytes of an office document or an ebook -> (title, text, metadata), each read by its own
well-kept library: .docx (python-docx), .pptx (python-pptx), .odt (odfdo), .epub (ebooklib, then
the HTML reader). All four are ZIP packages; one that unpacks to far more than a document holds
is refused before the library reads it.

Titles and dates come from the document's own properties; a presentation's slides are kept as
pages (see pages.py), so its passages say which slide they come from."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime

from embeddings.errors import UnreadableDocument
from embeddings.formats import Parsed, iso_date, tidy, visible_text
from embeddings.pages import PAGE_STARTS, PAGE_UNIT, join_pages

MAX_UNPACKED = 200_000_000  # bytes a package may unpack to; text documents are far smaller


def _package(data: bytes, kind: str) -> None:
    """Refuse what is not a ZIP package, or one that would unpack to too much (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            unpacked = sum(entry.file_size for entry in package.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise UnreadableDocument(
            f"not a readable {kind} file (not a ZIP package: {e}); save it again"
        ) from None
    if unpacked > MAX_UNPACKED:
        raise UnreadableDocument(
            f"the {kind} file unpacks to {unpacked / 1e6:,.0f} MB, over the {MAX_UNPACKED / 1e6:,.0f} MB "
            "docqa reads; save the text on its own"
        )


def _read(data: bytes, kind: str, parse: Callable[[bytes], Parsed]) -> Parsed:
    _package(data, kind)
    try:
        title, text, metadata = parse(data)
    except UnreadableDocument:
        raise
    except Exception as e:  # the libraries raise many types on damaged files; each becomes a reason
        raise UnreadableDocument(f"not a readable {kind} file ({type(e).__name__}: {e})") from None
    if not text.strip():
        raise UnreadableDocument(f"the {kind} file has no text")
    return (title or "").strip() or None, text, metadata


def _day(value: object) -> dict[str, object]:
    """{"date": YYYY-MM-DD} from a property that holds a date, else nothing."""
    if isinstance(value, datetime | date):
        return {"date": value.isoformat()[:10]}
    found = iso_date(value)
    return {"date": found} if found else {}


def _lines(text: str) -> str:
    return tidy(text.replace("\v", "\n"))


def parse_docx(data: bytes) -> Parsed:
    return _read(data, "Word (.docx)", _docx)


def _docx(data: bytes) -> Parsed:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    blocks, heading = [], None
    for element in _blocks(document.element.body):
        if element.tag == _W + "tbl":
            table = Table(element, document._body)
            blocks.append(
                _table([[_cell_text(cell._tc) for cell in _unique(row.cells)] for row in table.rows])
            )
            continue
        text = _lines(_paragraph_text(element))
        style = Paragraph(element, document._body).style
        name = (style.name if style is not None else "") or ""
        if text and heading is None and (name == "Title" or name.startswith("Heading")):
            heading = text
        blocks.append(text)
    props = document.core_properties
    return props.title or heading, "\n\n".join(b for b in blocks if b), _day(props.created or props.modified)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# What holds paragraphs and tables without being one: a content control (a form's field, a
# template's block), a tracked insertion, custom XML. python-docx's own walk skips their text.
_HOLDERS = frozenset(_W + t for t in ("sdt", "sdtContent", "ins", "customXml", "smartTag"))


def _blocks(parent) -> Iterator:
    """The paragraphs and tables of a body or a table cell, in order, those inside holders too."""
    for child in parent.iterchildren():
        if child.tag in (_W + "p", _W + "tbl"):
            yield child
        elif child.tag in _HOLDERS:
            yield from _blocks(child)


def _paragraph_text(p) -> str:
    """A paragraph's text as Word shows it: its runs wherever they stand (in a hyperlink, a
    tracked insertion, a content control, a text box), tabs, breaks and hyphens kept; what
    _NOT_SHOWN names left out."""
    out: list[str] = []
    _runs_text(p, out)
    return "".join(out)


# What a paragraph holds that is not its text now: a text box's copy for older readers, text a
# tracked change moved away (its new place holds it) or deleted.
_NOT_SHOWN = frozenset(
    ["{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback", _W + "moveFrom", _W + "del",
     _W + "pPr", _W + "rPr"]  # and a paragraph's or run's settings (its tab stops are not tabs)
)  # fmt: skip
# Characters Word writes as elements of their own.
_CHARACTERS = {
    _W + "tab": "\t",
    _W + "ptab": "\t",
    _W + "br": "\n",
    _W + "cr": "\n",
    _W + "noBreakHyphen": "-",
}


def _runs_text(element, out: list[str]) -> None:
    for child in element.iterchildren():
        if child.tag == _W + "t":
            out.append(child.text or "")
        elif child.tag in _CHARACTERS:
            out.append(_CHARACTERS[child.tag])
        elif child.tag not in _NOT_SHOWN:
            if child.tag == _W + "p":  # a text box's paragraph, inside this one
                out.append("\n")
            _runs_text(child, out)


def _cell_text(tc) -> str:
    """A table cell's text: its paragraphs, and the rows of a table inside it."""
    parts = []
    for block in _blocks(tc):
        if block.tag == _W + "tbl":
            rows = (
                " | ".join(_cell_text(c) for c in tr.iterchildren(_W + "tc"))
                for tr in block.iterchildren(_W + "tr")
            )
            parts += rows
        else:
            parts.append(_paragraph_text(block))
    return "\n".join(part for part in parts if part.strip())


def _unique(cells: list) -> Iterator:
    """Cells of a row, a merged cell once (python-docx repeats it for each column it spans)."""
    last = None
    for cell in cells:
        if cell._tc is not last:
            yield cell
        last = cell._tc


def _table(rows: list[list[str]]) -> str:
    """A table as text: a row on each line, its cells between ` | `."""
    lines = (" | ".join(" ".join(cell.split()) for cell in row) for row in rows)
    return "\n".join(line for line in lines if line.strip(" |"))


def parse_pptx(data: bytes) -> Parsed:
    return _read(data, "PowerPoint (.pptx)", _pptx)


def _pptx(data: bytes) -> Parsed:
    import pptx

    deck = pptx.Presentation(io.BytesIO(data))
    slides, first_title = [], None
    for slide in deck.slides:
        title = slide.shapes.title
        texts = [_lines(title.text_frame.text)] if title is not None and title.has_text_frame else []
        first_title = first_title or (texts[0] if texts and texts[0] else None)
        skip = title.shape_id if title is not None else None
        texts += [t for shape in slide.shapes if shape.shape_id != skip for t in _shape_texts(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = _lines(slide.notes_slide.notes_text_frame.text)
            texts.append(f"Notes: {notes}" if notes else "")
        slides.append("\n".join(t for t in texts if t))
    text, starts = join_pages(slides)
    props = deck.core_properties
    metadata = {"slides": len(slides), PAGE_STARTS: starts, PAGE_UNIT: "slide", **_day(props.created)}
    return props.title or first_title, text, metadata


def _shape_texts(shape) -> Iterator[str]:
    if getattr(shape, "shapes", None) is not None:  # a group
        for inner in shape.shapes:
            yield from _shape_texts(inner)
    elif shape.has_text_frame:
        yield _lines(shape.text_frame.text)
    elif getattr(shape, "has_table", False) and shape.has_table:
        yield _table([[cell.text for cell in row.cells] for row in shape.table.rows])


def parse_odt(data: bytes) -> Parsed:
    return _read(data, "OpenDocument text (.odt)", _odt)


def _odt(data: bytes) -> Parsed:
    from odfdo import Document, Header, Paragraph, Table

    document = Document(io.BytesIO(data))
    if document.get_type() != "text":
        raise UnreadableDocument(f"an OpenDocument {document.get_type()}, not text; save it as .odt text")
    blocks, heading = [], None
    for element in document.body.get_elements("//text:h | //text:p | //table:table"):
        if isinstance(element, Table):
            blocks.append(
                _table([[str(v) if v is not None else "" for v in row] for row in element.get_values()])
            )
        elif isinstance(element, Header | Paragraph) and not _in_table(element):
            text = _lines(str(element))
            if isinstance(element, Header) and heading is None and text:
                heading = text
            blocks.append(text)
    meta = document.meta
    return meta.get_title() or heading, "\n\n".join(b for b in blocks if b), _day(meta.get_creation_date())


def _in_table(element) -> bool:
    return any(p.tag == "table:table-cell" for p in _ancestors(element))


def _ancestors(element) -> Iterator:
    parent = element.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def parse_epub(data: bytes) -> Parsed:
    return _read(data, "EPUB", _epub)


def _epub(data: bytes) -> Parsed:
    import ebooklib
    from bs4 import BeautifulSoup
    from ebooklib import epub

    book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
    titles = dict(_toc(book.toc))
    chapters = []
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        text = tidy(visible_text(BeautifulSoup(item.get_content(), "html.parser")))
        title = titles.get(item.get_name())
        if title and text.split("\n", 1)[0] != title:  # the chapter's title, when its page does not show it
            text = f"{title}\n\n{text}".strip()
        chapters.append(text)
    title = next((t for t, _ in book.get_metadata("DC", "title") if t), None)
    dated = next(
        (found for d, _ in book.get_metadata("DC", "date") if (found := _day(d[:10] if d else d))), {}
    )
    return title, "\n\n".join(c for c in chapters if c), dated


def _toc(entries) -> Iterator[tuple[str, str]]:
    """(file name, chapter title) of each entry of an EPUB table of contents, nested ones too."""
    for entry in entries:
        if isinstance(entry, tuple | list):
            section, children = entry
            yield from _toc([section])
            yield from _toc(children)
        elif getattr(entry, "href", None) and getattr(entry, "title", None):
            yield re.sub(r"#.*$", "", entry.href), " ".join(entry.title.split())


PARSERS = {".docx": parse_docx, ".pptx": parse_pptx, ".odt": parse_odt, ".epub": parse_epub}
