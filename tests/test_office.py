"""Word, PowerPoint, OpenDocument and EPUB files: their text, title and date, and a damaged one
refused with a reason while the rest of the folder is indexed."""

from __future__ import annotations

import re

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import UnreadableDocument
from embeddings.index import Index
from tests.office_files import docx_file, docx_with_hidden_places, epub_file, odt_file, pptx_file
from tests.test_readers import load, scanned, write


def test_docx_paragraphs_headings_and_tables_in_order_with_title_and_date(tmp_path):
    doc = load(tmp_path, "report.docx", docx_file())
    assert (doc.title, doc.metadata) == ("Harvest report", {"date": "2024-03-05"})
    assert doc.text == (
        "Harvest in the valley\n\nThe barley harvest doubled this year.\n\n"
        "Crop | Tonnes\nBarley | 1,200\n\nRain came late in the spring."
    )


def test_docx_text_in_content_controls_tracked_insertions_and_nested_tables_is_read(tmp_path):
    text = load(tmp_path, "memo.docx", docx_with_hidden_places()).text
    assert "The merger closes on 3 March." in text
    assert "The buyer is Globex Corporation" in text and "Initech" not in text  # what was deleted is gone
    assert "Schedule" in text and "Escrow agent: First National Bank" in text
    assert text.count("Pay by 30 June.") == 1, "text a tracked change moved is read where it now stands"
    assert "Terms: COVID-19 rules apply." in text
    assert "\n\nTotal" in text and "\tTotal" not in text


def test_docx_without_a_title_property_is_titled_by_its_first_heading(tmp_path):
    assert load(tmp_path, "untitled.docx", docx_file(title=None)).title == "Harvest in the valley"


def test_pptx_keeps_slide_text_notes_and_where_each_slide_begins(tmp_path):
    deck = pptx_file([("Sales", "Sales rose 5%.", "Mention Asia first."), ("Costs", "Costs fell.", "")])
    doc = load(tmp_path, "review.pptx", deck)
    assert (doc.title, doc.metadata["date"], doc.metadata["slides"]) == ("Quarterly review", "2023-11-20", 2)
    assert doc.text == "Sales\nSales rose 5%.\nNotes: Mention Asia first.\n\nCosts\nCosts fell."
    assert doc.metadata["page_starts"] == [0, doc.text.index("Costs")]


def test_epub_chapters_keep_their_titles(tmp_path):
    book = epub_file([("The flood", "The river flooded in spring."), ("The mill", "The mill reopened.")])
    doc = load(tmp_path, "river.epub", book)
    assert (doc.title, doc.metadata) == ("River stories", {"date": "2021-06-01"})
    assert doc.text == "The flood\n\nThe river flooded in spring.\n\nThe mill\n\nThe mill reopened."


def test_odt_paragraphs_headings_and_tables(tmp_path):
    doc = load(tmp_path, "minutes.odt", odt_file())
    assert (doc.title, doc.metadata) == ("Mill minutes", {"date": "2022-09-14"})
    assert (
        doc.text == "The old mill\n\nThe mill reopened after the flood.\n\nFlour | 30 sacks\nBran | 4 sacks"
    )


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("cut.docx", docx_file()[:300], "not a readable Word (.docx) file"),
        ("text.pptx", b"just some text, not a presentation", "not a readable PowerPoint (.pptx) file"),
        ("docx-as.epub", docx_file(), "not a readable EPUB file"),
        ("deck-as.odt", pptx_file([("A", "b", "")]), "not a readable OpenDocument text (.odt) file"),
    ],
)
def test_a_damaged_file_is_refused_with_a_reason(tmp_path, name, data, reason):
    write(tmp_path, name, data)
    pending, skipped = scanned(tmp_path)
    with pytest.raises(UnreadableDocument, match=re.escape(reason)):
        pending[name].load()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    from embeddings import office

    monkeypatch.setattr(office, "MAX_UNPACKED", 10_000)  # the test docx unpacks to about 40 kB
    write(tmp_path, "big.docx", docx_file())
    with pytest.raises(UnreadableDocument, match="unpacks to"):
        scanned(tmp_path)[0]["big.docx"].load()


def test_a_folder_of_new_formats_is_indexed_and_a_damaged_one_skipped(tmp_path, fake_embedder):
    docs = tmp_path / "docs"
    write(docs, "report.docx", docx_file())
    write(docs, "review.pptx", pptx_file([("Sales", "Sales rose in Asia.", "")]))
    write(docs, "river.epub", epub_file([("The flood", "The river flooded in spring.")]))
    write(docs, "minutes.odt", odt_file())
    write(docs, "broken.docx", b"PK\x03\x04 not really")
    config = Config(docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4)
    logs: list[str] = []
    report = build(config, fake_embedder, progress=False, log=logs.append)
    assert report.added == 4 and [s.source for s in report.skipped] == ["broken.docx"]
    assert any(m.startswith("skipped broken.docx: not a readable Word (.docx) file") for m in logs)
    titles = {d.id: d.title for d in Index.open(config.index_dir, fake_embedder).documents()}
    assert titles == {"report.docx": "Harvest report", "review.pptx": "Quarterly review",
                      "river.epub": "River stories", "minutes.odt": "Mill minutes"}  # fmt: skip
    again = build(config, fake_embedder, progress=False, log=lambda m: None)
    assert again.up_to_date and again.embedded == 0, "unchanged files are not read again"
