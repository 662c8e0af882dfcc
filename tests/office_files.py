"""Small office documents and ebooks made in the test by the libraries docqa reads them with, so
no binary fixtures live in the repo."""

from __future__ import annotations

import io
from datetime import datetime


def docx_file(title: str | None = "Harvest report", created: datetime | None = datetime(2024, 3, 5)) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title or ""
    if created:
        document.core_properties.created = created
    document.add_heading("Harvest in the valley", level=1)
    document.add_paragraph("The barley harvest doubled this year.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["Crop", "Tonnes"], ["Barley", "1,200"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Rain came late in the spring.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_with_hidden_places() -> bytes:
    """A memo whose text stands where python-docx's own walk does not look: a content control, a
    tracked insertion (beside a tracked deletion), a table inside a table's cell."""
    import docx
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    document = docx.Document()
    document.add_heading("Merger memo", 1)
    document.add_paragraph("Before the control.")
    document.element.body.insert(2, parse_xml(
        f"<w:sdt {w}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>The merger closes on 3 March.</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>"
    ))  # fmt: skip
    buyer = document.add_paragraph("The buyer is ")
    buyer._p.append(
        parse_xml(f'<w:ins {w} w:id="1" w:author="a"><w:r><w:t>Globex Corporation</w:t></w:r></w:ins>')
    )
    buyer._p.append(
        parse_xml(f'<w:del {w} w:id="2" w:author="a"><w:r><w:delText>Initech</w:delText></w:r></w:del>')
    )
    moved = document.add_paragraph("Terms: ")
    moved._p.append(
        parse_xml(f'<w:moveFrom {w} w:id="3" w:author="a"><w:r><w:t>Pay by 30 June.</w:t></w:r></w:moveFrom>')
    )
    moved._p.append(parse_xml(f"<w:r {w}><w:t>COVID</w:t><w:noBreakHyphen/><w:t>19 rules apply.</w:t></w:r>"))
    document.add_paragraph().add_run("Pay by 30 June.")  # where the sentence was moved to
    total = document.add_paragraph("Total")
    total.paragraph_format.tab_stops.add_tab_stop(docx.shared.Inches(1))  # a setting, not a tab
    cell = document.add_table(rows=1, cols=1).cell(0, 0)
    cell.text = "Schedule"
    cell.add_table(rows=1, cols=1).cell(0, 0).text = "Escrow agent: First National Bank"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_file(slides: list[tuple[str, str, str]], title: str = "Quarterly review") -> bytes:
    """A deck of (slide title, body, speaker notes) slides."""
    import pptx

    deck = pptx.Presentation()
    deck.core_properties.title = title
    deck.core_properties.created = datetime(2023, 11, 20)
    for heading, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def epub_file(chapters: list[tuple[str, str]], title: str = "River stories") -> bytes:
    """A book of (chapter title, paragraph) chapters; the pages do not repeat the titles."""
    import tempfile
    from pathlib import Path

    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("river-stories")
    book.set_title(title)
    book.set_language("en")
    book.add_metadata("DC", "date", "2021-06-01")
    items = []
    for i, (heading, text) in enumerate(chapters, 1):
        item = epub.EpubHtml(title=heading, file_name=f"chapter{i}.xhtml", lang="en")
        item.content = f"<html><body><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.spine = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "book.epub"
        epub.write_epub(str(path), book)
        return path.read_bytes()


def odt_file(title: str = "Mill minutes") -> bytes:
    from odfdo import Document, Header, Paragraph, Table

    document = Document("text")
    document.body.clear()
    document.meta.set_title(title)
    document.meta.set_creation_date(datetime(2022, 9, 14))
    document.body.append(Header(1, "The old mill"))
    document.body.append(Paragraph("The mill reopened after the flood."))
    table = Table("Output", width=2, height=2)
    table.set_values([["Flour", "30 sacks"], ["Bran", "4 sacks"]])
    document.body.append(table)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
