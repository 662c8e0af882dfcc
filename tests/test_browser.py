"""The real server with the small packaged model, driven in Debian's Chromium by Playwright:
ask about the sample article, upload a document and ask about it, upload a broken file.
Screenshots land in test-artifacts/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import SEEDS
from tests.pdfs import text_pdf
from tests.served import chromium, docqa_serve, require_chromium, shot

pytestmark = pytest.mark.browser
require_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    shutil.copytree(SEEDS, folder / "docs")
    with docqa_serve(folder, folder / "docs") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, server, request):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(server)
    page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
    yield page
    if getattr(request.node, "failed", False):
        shot(page, f"failed-{request.node.name}")
    page.close()


def attach(page, path: Path) -> None:
    """Put a file in the upload box and wait until the browser has sent it to the server."""
    page.get_by_role("tab", name="Documents").click()
    with page.expect_response(lambda r: "/upload" in r.url and r.request.method == "POST", timeout=60_000):
        page.locator("#upload input[type=file]").set_input_files(str(path))
    shown = page.locator("#upload td.filename").first
    shown.wait_for(timeout=30_000)
    assert "".join(shown.inner_text().split()) == path.name  # Gradio shows stem and extension apart


def ask(page, question: str) -> list[str]:
    """Ask in the page; returns the answer texts seen while it streamed, the last one final."""
    page.get_by_role("tab", name="Ask").click()
    page.locator("#question textarea").fill(question)
    page.locator("#ask-button").click()
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = page.locator("#answer").inner_text()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if page.locator("#sources .source").count():
            break
        time.sleep(0.05)
    seen.append(page.locator("#answer").inner_text())
    return seen


def test_ask_streams_an_answer_and_shows_its_source_in_place(page):
    seen = ask(page, "Who mediated the meeting between Massoud and Muttaqi?")
    assert len({s for s in seen if s.strip() and s.strip() != "…"}) >= 3, f"no streaming seen: {seen}"
    source = page.locator("#sources .source").first
    assert source.locator(".passage").count() >= 1, "the passage is shaded inside its paragraph"
    assert "000_ef5301ee062fc8f6.txt" in source.inner_text()
    shot(page, "answer")


def test_upload_a_document_then_ask_about_it(page, tmp_path):
    doc = tmp_path / "festival.txt"
    doc.write_text("Zorblat festival\n\nThe Zorblat festival is held every March in the village of Kettleby.")
    attach(page, doc)
    page.locator("#add-button").click()
    page.locator("#upload-report").get_by_text("added festival.txt").wait_for(timeout=120_000)
    assert page.locator("#documents-table").get_by_text("Zorblat festival").count() >= 1
    shot(page, "upload")
    ask(page, "Where is the Zorblat festival held?")
    assert "Zorblat" in page.locator("#sources").inner_text()
    shot(page, "upload-answer")


def test_a_broken_upload_is_reported_with_its_reason(page, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(text_pdf(["never readable"])[:60])
    attach(page, broken)
    page.locator("#add-button").click()
    report = page.locator("#upload-report")
    report.get_by_text("could not be read").wait_for(timeout=120_000)
    assert "broken.pdf" in report.inner_text() and "PDF" in report.inner_text()
    assert page.locator("#uploads-table").get_by_text("failed").count() >= 1
    shot(page, "broken-upload")
