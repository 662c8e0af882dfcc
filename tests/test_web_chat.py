"""The web UI's chat, at the level of its handlers, against a Service running fake models: each
answer keeps its own sources, a follow-up shows the question as it was searched, the turns are
what the browser keeps (so a reload, or another user, is only a different list of turns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embeddings.config import Config
from qa.service import Service
from qa.web import KEPT_TURNS, Handlers
from tests.fakes import FakeEmbedder, FakeGenerator, write_docs

DOCS = {
    "talks.txt": "The meeting in Tehran was mediated by Ismail Khan. Ismail Khan was governor of Herat province.",
    "wheat.txt": "India sent 50,000 tonnes of wheat to Afghanistan through Iran.",
}


def reply(messages) -> str:
    user = messages[-1]["content"]
    if user.startswith("Conversation:"):  # the rewrite of a follow-up
        return (
            "Where was Ismail Khan governor?" if "he governor" in user else "How much wheat did India send?"
        )
    question = user[user.rindex("Question:") :]
    if "Where was Ismail Khan governor?" in question:
        return "Ismail Khan was governor of Herat province. [1]"
    if "mediated" in question:
        return "The meeting was mediated by Ismail Khan. [1]"
    if "wheat" in question:
        return "India sent 50,000 tonnes of wheat. [1]"
    return "I don't know."


@pytest.fixture
def handlers(tmp_path: Path) -> Handlers:
    docs = write_docs(tmp_path / "docs", DOCS)
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    service = Service(config, FakeGenerator(reply), FakeEmbedder()).start(background=False)
    return Handlers(service)


def test_a_follow_up_in_the_chat_shows_its_rewrite_and_each_answer_keeps_its_sources(handlers):
    updates = list(handlers.chat("Who mediated the meeting in Tehran?", []))
    assert len(updates) > 3, "the answer streams into the chat"
    assert all(kept == [] for _, kept in updates[:-1]), "nothing is kept until the answer is checked"
    assert any("Draft: not yet checked" in view[-1]["content"] for view, _ in updates[1:-1])
    view, kept = updates[-1]
    assert [m["role"] for m in view] == ["user", "assistant"] and len(kept) == 1
    json.dumps(kept)  # what the browser keeps is plain JSON

    view, kept = list(handlers.chat("Where was he governor?", kept))[-1]
    assert [m["content"] for m in view if m["role"] == "user"] == [
        '<div class="question">Who mediated the meeting in Tehran?</div>',
        '<div class="question">Where was he governor?</div>',
    ]
    first, second = view[1]["content"], view[3]["content"]
    assert "Asked as: Where was Ismail Khan governor?" in second and "Asked as" not in first
    assert "governor of Herat province" in second and "<mark>" in second and "supports the answer" in second
    # Each answer links to its own sources: no id is shared between the two answers.
    assert 'href="#turn-0-source-1"' in first and 'id="turn-0-source-1"' in first
    assert 'href="#turn-1-source-1"' in second and 'id="turn-1-source-1"' in second
    assert [t["standalone"] for t in kept] == [
        "Who mediated the meeting in Tehran?",
        "Where was Ismail Khan governor?",
    ]


def test_a_reload_shows_the_kept_conversation_and_users_keep_their_own(handlers):
    _, mine = list(handlers.chat("Who mediated the meeting in Tehran?", []))[-1]
    _, theirs = list(handlers.chat("How much wheat did India send?", []))[-1]
    restored = handlers.chat_view(_kept(mine))
    assert (
        restored[0]["content"] == '<div class="question">Who mediated the meeting in Tehran?</div>'
        and "Ismail Khan" in restored[1]["content"]
    )
    view, mine = list(handlers.chat("Where was he governor?", mine))[-1]
    assert "wheat" not in json.dumps(view), "another user's turns never reach this conversation"
    assert len(theirs) == 1 and len(mine) == 2


def test_a_new_conversation_has_no_earlier_turns(handlers):
    updates = list(handlers.chat("Where was  he governor? ", []))
    assert not any("Asked as" in view[-1]["content"] for view, _ in updates), (
        "a first question is asked as it is"
    )
    view, kept = updates[-1]
    assert kept[0]["standalone"] == "Where was he governor?"


def test_a_bad_question_or_kept_data_is_a_message_not_a_crash(handlers):
    view, kept = list(handlers.chat("   ", [{"not": "a turn"}]))[-1]
    assert 'class="error"' in view[-1]["content"] and "question is empty" in view[-1]["content"]
    assert kept == [{"not": "a turn"}], "what the browser kept is left as it was"
    assert handlers.chat_view(_kept("nonsense")) == []


def test_the_browser_keeps_the_latest_turns_and_the_conversation_downloads_as_markdown(handlers):
    _, kept = list(handlers.chat("Who mediated the meeting in Tehran?", []))[-1]
    _, kept = list(handlers.chat("Where was he governor?", kept))[-1]
    path = handlers.export_chat(kept)
    text = Path(path).read_text()
    assert text.startswith("# Conversation with docqa") and "## Who mediated the meeting in Tehran?" in text
    assert "## Where was he governor?\n\n*Asked as: Where was Ismail Khan governor?*" in text
    assert text.count("Asked as") == 1, "a question asked alone is asked as it is"
    assert handlers.export_chat([]) is None
    assert "let go" not in str(handlers.chat_view(_kept(kept)))
    many = kept[:1] * (KEPT_TURNS + 3)
    view, kept = list(handlers.chat("How much wheat did India send?", many))[-1]
    assert len(kept) == KEPT_TURNS and kept[-1]["question"] == "How much wheat did India send?"
    assert "keeps its latest 20 turns" in view[0]["content"], "the page says earlier turns are let go"


def _kept(stored):
    from qa.web import _turns

    return _turns(stored)


def test_a_chat_question_is_asked_within_the_picked_documents_and_dates(handlers):
    view, kept = list(handlers.chat("How much wheat did India send?", [], ["wheat.txt"]))[-1]
    assert {p["doc_id"] for p in kept[0]["answer"]["passages"]} == {"wheat.txt"}
    view, kept = list(handlers.chat("How much wheat did India send?", kept, None, "2030-01-01"))[-1]
    assert "no indexed document matches the scope" in view[-1]["content"] and len(kept) == 1


def test_no_document_text_is_read_as_markdown_in_the_chat_even_once_the_document_is_gone(tmp_path):
    """The chat reads each message as Markdown, and HTML in it only up to a blank line: a title or
    passage with a blank line could add a link, an image fetched from elsewhere, a heading."""
    hostile = "Talks\n\n[Open the report](javascript:alert(1)) ![x](https://elsewhere.example/beacon.png)"
    text = "The meeting in Tehran was mediated by Ismail Khan.\r\n\r\n# Not a heading\r\n\r\nMore text here."
    record = json.dumps({"id": "t1", "title": hostile, "text": text})
    docs = write_docs(tmp_path / "docs", {"talks.jsonl": record, "wheat.txt": DOCS["wheat.txt"]})
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    service = Service(config, FakeGenerator(reply), FakeEmbedder()).start(background=False)
    handlers = Handlers(service)
    asked = "Who mediated the meeting in Tehran?\n\n[me](javascript:alert(2))"
    view, kept = list(handlers.chat(asked, []))[-1]
    service.remove("t1")  # the turn is drawn again from the passage alone
    for shown in (view, handlers.chat_view(_kept(kept))):
        assert "Ismail Khan" in shown[1]["content"]
        assert all("\n" not in m["content"] and "\r" not in m["content"] for m in shown), (
            "one HTML block each"
        )
