"""The Chat tab in Debian's Chromium against the real server with the small model: a question
and a follow-up, each answer with its own sources; the conversation back after a reload; another
browser starts with none; New conversation empties it, an answer still coming included. Screenshots land in test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.served import require_chromium, shot
from tests.test_browser import browser, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
require_chromium()


def chat(page, question: str, turns: int) -> None:
    """Send `question` in the Chat tab and wait until the chat shows `turns` checked answers."""
    page.locator("#chat-question textarea").fill(question)
    page.locator("#chat-button").click()
    deadline = time.monotonic() + 300
    while page.locator("#chat .turn").count() < turns:
        assert time.monotonic() < deadline, "no checked answer in the chat after 300 s"
        time.sleep(0.1)


def open_chat(browser, url: str):  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 1100})
    page = context.new_page()
    page.goto(url)
    page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
    page.get_by_role("tab", name="Chat").click()
    return context, page


def test_a_conversation_keeps_each_answers_sources_and_survives_a_reload(browser, server):  # noqa: F811
    context, page = open_chat(browser, server)
    try:
        chat(page, "Who mediated the meeting between Massoud and Muttaqi?", 1)
        chat(page, "Where was he governor?", 2)
        turns = page.locator("#chat .turn")
        for i in range(2):
            assert turns.nth(i).locator(".source").count() >= 1, f"answer {i + 1} shows its own sources"
        assert page.locator("#turn-0-source-1, #turn-1-source-1").count() >= 1
        shot(page, "chat")

        page.reload()
        page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Chat").click()
        page.locator("#chat .turn").nth(1).wait_for(timeout=30_000)
        assert page.locator("#chat .turn").count() == 2, "the conversation is back after a reload"
        assert "Where was he governor?" in page.locator("#chat").inner_text()

        other, theirs = open_chat(browser, server)
        try:
            time.sleep(2)
            assert theirs.locator("#chat .turn").count() == 0, "another browser has its own conversation"
        finally:
            other.close()

        page.locator("#new-conversation").click()
        deadline = time.monotonic() + 30
        while page.locator("#chat .turn").count():
            assert time.monotonic() < deadline, "New conversation did not empty the chat"
            time.sleep(0.1)
        page.reload()
        page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Chat").click()
        time.sleep(2)
        assert page.locator("#chat .turn").count() == 0, "and the emptied conversation stays empty"

        # Starting over while an answer is still coming stops it: the old turns do not come back.
        chat(page, "Who mediated the meeting between Massoud and Muttaqi?", 1)
        page.locator("#chat-question textarea").fill("How much wheat did India send?")
        page.locator("#chat-button").click()
        page.get_by_text("How much wheat did India send?").first.wait_for(timeout=30_000)
        page.locator("#new-conversation").click()
        time.sleep(20)  # time enough for an answer that went on to finish and write its turns back
        shown = page.locator("#chat").inner_text()
        assert page.locator("#chat .turn").count() == 0 and "Massoud" not in shown, (
            "the old turns did not come back"
        )
        assert "wheat" not in shown, "the answer that was coming was stopped"
        page.reload()
        page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Chat").click()
        time.sleep(2)
        assert page.locator("#chat .turn").count() == 0, "and the browser kept no turn of it"
    finally:
        context.close()
