"""The document side of the web UI in Debian's Chromium, against the real server with the small
model serving a mixed collection with --docs: a question scoped to a picked document shows its
page and can be downloaded as Markdown; an empty date range says so; a file dropped into the
watched folder is indexed and answered from; an uploaded presentation is listed by its title;
and /ask takes the scope from API callers. Screenshots land in test-artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.documents_corpus import make
from tests.office_files import pptx_file
from tests.served import chromium, docqa_serve, require_chromium, shot
from tests.test_browser import ask, attach

pytestmark = pytest.mark.browser
require_chromium()
QUESTION = "What happened to the barley harvest in Kettleby?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents-server")
    docs = make(folder / "docs")
    with docqa_serve(folder, docs, log_name="server-documents.log") as url:
        yield url, docs


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, server, request):
    page = browser.new_page(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page.goto(server[0])
    page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
    yield page
    if getattr(request.node, "failed", False):
        shot(page, f"failed-{request.node.name}")
    page.close()


def pick(page, doc_id: str) -> None:
    """Choose a document in the picker beside the question."""
    page.get_by_role("tab", name="Ask").click()
    box = page.locator("#scope-docs input").first
    box.click()
    box.fill(doc_id)
    page.get_by_role("option", name=re.compile(re.escape(doc_id))).first.click()
    page.locator("#question textarea").click()  # close the list


def test_a_question_scoped_to_a_picked_pdf_shows_pages_and_downloads_as_markdown(page):
    pick(page, "report.pdf")
    ask(page, QUESTION)
    cards = page.locator("#sources .source")
    assert cards.count() >= 1
    for i in range(cards.count()):
        assert "report.pdf" in cards.nth(i).inner_text()
    labels = [page.locator("#sources .source .page").nth(i).inner_text() for i in range(cards.count())]
    assert labels and all(re.fullmatch(r"pp?\. \d(–\d)?", label) for label in labels), labels
    shot(page, "scoped-answer-with-page")
    button = page.locator("#download")
    button.wait_for(state="visible", timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        button.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename.endswith(".md")
    assert f"## {QUESTION}" in text and "`report.pdf`" in text and "### Sources" in text and "\n> " in text


def test_a_date_range_that_holds_no_document_says_so(page):
    page.get_by_role("tab", name="Ask").click()
    since = page.locator("#since input").first
    since.fill("2030-01-01")
    since.press("Enter")
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#ask-button").click()
    page.locator("#answer").get_by_text("no indexed document matches the scope").wait_for(timeout=120_000)
    assert "2030-01-01" in page.locator("#answer").inner_text()
    shot(page, "empty-scope")


def test_a_file_dropped_into_the_watched_folder_is_indexed_and_answered_from(page, server):
    docs = server[1]
    (docs / "festival.txt").write_text(
        "Zorblat festival\n\nThe Zorblat festival is held every March in the village of Kettleby."
    )
    page.get_by_role("tab", name="Documents").click()
    page.locator("#documents-table").get_by_text("Zorblat festival").first.wait_for(timeout=180_000)
    shot(page, "watched-file-listed")
    ask(page, "Where is the Zorblat festival held?")
    assert "festival.txt" in page.locator("#sources").inner_text()
    (docs / "festival.txt").unlink()
    page.get_by_role("tab", name="Documents").click()
    deadline = time.monotonic() + 180
    while page.locator("#documents-table").get_by_text("Zorblat festival").count():
        assert time.monotonic() < deadline, "the removed file is still listed"
        time.sleep(0.5)


def test_an_uploaded_presentation_is_listed_by_its_title(page, tmp_path):
    deck = tmp_path / "review.pptx"
    deck.write_bytes(pptx_file([("Sales", "Sales of barley seed rose in the valley.", "Say it slowly.")]))
    attach(page, deck)
    page.locator("#add-button").click()
    page.locator("#upload-report").get_by_text("added review.pptx").wait_for(timeout=120_000)
    assert page.locator("#documents-table").get_by_text("Quarterly review").count() >= 1
    shot(page, "upload-pptx")


def test_the_ask_endpoint_takes_a_scope(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    _, _, answer = client.predict(QUESTION, ["report.pdf"], None, None, api_name="/ask")
    assert {p["doc_id"] for p in answer["passages"]} == {"report.pdf"}
    assert all(p["page_label"] for p in answer["passages"])
    _, _, unscoped = client.predict("Who mediated the meeting?", api_name="/ask")
    assert "text" in unscoped, "the scope is optional"
    _, _, refused = client.predict(QUESTION, ["no-such.pdf"], None, None, api_name="/ask")
    assert "no document 'no-such.pdf' in the index" in refused["error"]


def test_the_remove_endpoint_takes_a_document_id(server):
    from gradio_client import Client

    said = Client(server[0], verbose=False).predict("no-such.txt", api_name="/remove")[0]  # then the lists
    assert said.startswith("**Not removed:**") and "no-such.txt" in said, "the handler checks the id itself"
