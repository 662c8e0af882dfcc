"""Citations of PDFs and presentations say which page (or slide) the passage is on: in the answer
object (and so `--json`), in the web page, and in `docqa ask`'s sources."""

from __future__ import annotations

from pathlib import Path

from embeddings.builder import build
from embeddings.config import Config
from embeddings.pages import join_pages, page_label
from qa.assistant import Assistant
from qa.cli import _print_sources
from qa.render import sources_html
from tests.fakes import FakeEmbedder, FakeGenerator, citing
from tests.office_files import pptx_file
from tests.pdfs import paged_pdf
from tests.test_readers import write


def test_pages_are_offsets_and_a_span_names_the_pages_it_covers():
    text, starts = join_pages(["First page.", "  ", "Third page.\n", "Fourth."])
    assert text == "First page.\n\nThird page.\n\nFourth." and starts == [0, 13, 13, 26]
    metadata = {"page_starts": starts}
    assert page_label(metadata, text.index("Third"), text.index("Third") + 5) == "p. 3", (
        "empty page 2 has no text"
    )
    assert page_label(metadata, 0, len(text)) == "pp. 1–4"
    assert page_label({**metadata, "page_unit": "slide"}, 26, 30) == "slide 4"
    assert page_label({"pages": 4}, 0, 10) is None, "a document indexed before pages were kept has none"


PAGES = [
    ["The committee met in Geneva to discuss the budget."],
    ["Nothing happened on this page at all."],
    ["The barley harvest in Kettleby doubled after the new irrigation canal opened."],
]


def ask(tmp_path: Path, files: dict[str, bytes], question: str) -> Assistant:
    docs = tmp_path / "docs"
    for name, data in files.items():
        write(docs, name, data)
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=16, chunk_overlap=2, min_relevance=0.0
    )
    embedder = FakeEmbedder()
    build(config, embedder, progress=False, log=lambda m: None)
    generator = FakeGenerator(citing("Kettleby", "The barley harvest in Kettleby doubled."))
    return Assistant.open(config=config, generator=generator, embedder=embedder).ask(question)


def test_a_pdf_citation_carries_its_page_everywhere_it_is_shown(tmp_path, capsys):
    answer = ask(
        tmp_path,
        {"report.pdf": paged_pdf(PAGES, title="Farm report")},
        "How did the barley harvest in Kettleby do?",
    )
    cited = answer.citations[0]
    assert (cited.doc_id, cited.page, cited.page_label, cited.supported) == ("report.pdf", 3, "p. 3", True)
    assert answer.to_dict()["citations"][0]["page"] == 3, "the --json answer has the page"
    assert "page_starts" not in answer.passages[0].metadata, (
        "offsets for finding pages stay out of the answer"
    )
    html = sources_html(answer, lambda doc_id: "")
    assert '<span class="page">p. 3</span>' in html
    _print_sources(answer)
    assert "(report.pdf, p. 3, chars" in capsys.readouterr().out


def test_a_presentation_citation_names_its_slide(tmp_path):
    deck = pptx_file(
        [
            ("Budget", "The committee met in Geneva to discuss the budget for the coming year.", ""),
            ("Harvest", "The barley harvest in Kettleby doubled.", ""),
        ]
    )
    cited = ask(tmp_path, {"review.pptx": deck}, "How did the barley harvest in Kettleby do?").citations[0]
    assert (cited.page, cited.page_label) == (2, "slide 2")


def test_documents_without_pages_cite_no_page(tmp_path):
    cited = ask(
        tmp_path, {"notes.txt": b"The barley harvest in Kettleby doubled."}, "How did the barley do?"
    ).citations[0]
    assert (cited.page, cited.page_label) == (None, None)
