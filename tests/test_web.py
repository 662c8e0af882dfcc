"""The web UI's handlers and HTML, against a Service running fake models."""

from __future__ import annotations

import html
import re
import threading
import time
from pathlib import Path

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ConfigError, IndexBusy
from embeddings.library import UPLOAD_PREFIX, Library
from qa.render import answer_html, highlight
from qa.service import Service
from qa.web import Handlers
from tests.fakes import FakeEmbedder, FakeGenerator, write_docs

DOCS = {
    "talks.txt": "The meeting in Tehran was mediated by Ismail Khan. The talks ended without result.",
    "wheat.txt": "India sent 50,000 tonnes of wheat to Afghanistan through Iran.",
}


def reply(messages) -> str:
    user = messages[-1]["content"]
    if "Question:" not in user:
        return "A short summary of the text."
    if "paid" in user:  # a fluent answer the passages do not hold: docqa withdraws it
        return "The talks were paid for by Norway. [1]"
    return "The meeting was mediated by Ismail Khan. [1]" if "mediated" in user else "I don't know."


@pytest.fixture
def service(tmp_path: Path) -> Service:
    docs = write_docs(tmp_path / "docs", DOCS)
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    return Service(config, FakeGenerator(reply), FakeEmbedder()).start(background=False)


def test_ask_streams_then_shows_linked_citations_and_highlighted_sources(service):
    updates = list(Handlers(service).ask("Who mediated the meeting in Tehran?"))
    assert len(updates) > 3, "the answer arrives piece by piece"
    answer, sources, data = updates[-1]
    assert '<a class="cite" href="#source-1">[1]</a>' in answer
    assert 'id="source-1"' in sources and "<mark>" in sources and "supports the answer" in sources
    assert data["citations"][0]["doc_id"] == "talks.txt"


def test_a_streamed_draft_is_marked_unchecked_and_a_withdrawn_one_is_marked_withdrawn(service):
    updates = list(Handlers(service).ask("Who paid for the talks in Tehran?"))
    drafts = updates[1:-1]
    assert drafts and all("Draft: not yet checked" in html for html, _, _ in drafts)
    # Every update before the last is a draft to an API caller, the first (before any text) too.
    assert all(data == {"draft": data["draft"], "checked": False} for _, _, data in updates[:-1])
    answer, sources, data = updates[-1]
    assert "The documents do not contain the answer" in answer
    assert 'class="withdrawn"' in answer and "<s>The talks were paid for by Norway. [1]</s>" in answer
    assert data["withdrawn"] is True and data["abstained"] is True and "Norway" in data["raw"]
    assert "Nearest passages" in sources


def test_a_bad_question_is_a_message_in_the_page(service):
    answer, sources, data = list(Handlers(service).ask("   "))[-1]
    assert 'class="error"' in answer and "question is empty" in answer and "error" in data


def test_a_date_the_page_cannot_read_is_named_by_its_field(service):
    answer, _, _ = list(Handlers(service).ask("Who mediated?", since="2022-13-01"))[-1]
    assert "Dated from must be a date like 2024-05-31" in answer, answer


def test_before_the_models_are_loaded_the_page_says_so(tmp_path):
    waiting = Service(Config(docs=tmp_path, index_dir=tmp_path / "index"))
    answer, _, _ = list(Handlers(waiting).ask("Anything?"))[-1]
    assert "still starting" in answer
    assert "Starting" in Handlers(waiting).status()


def test_summarise_reports_progress_then_the_summary(service):
    updates = list(Handlers(service).summarize("__all__"))
    assert any("Summarising" in html for html, _ in updates[:-1])
    html, data = updates[-1]
    assert "A short summary" in html and data["doc_id"] is None


def test_a_page_that_leaves_stops_its_summary_and_frees_the_model(service):
    written, going = [], threading.Event()

    def slow(messages, max_new_tokens):
        for word in ["Word "] * 500:
            going.set()
            time.sleep(0.01)
            written.append(word)
            yield word

    service.assistant.generator.stream = slow
    updates = Handlers(service).summarize("talks.txt")
    next(updates)  # "Summarising …"
    assert going.wait(10)
    updates.close()  # the page went away
    deadline = time.monotonic() + 10
    while service.slots.load != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.slots.load == (0, 0) and len(written) < 100, "the model stopped with the page"


def test_an_upload_is_stored_under_a_generated_name_and_indexed(service, tmp_path):
    upload = tmp_path / "Notes about rice.txt"
    upload.write_text("Rice harvests in Bengal doubled this year.")
    message = Handlers(service).upload([str(upload)])
    assert "added **Notes about rice.txt**" in message
    stored = list((service.config.index_dir / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].name != upload.name and stored[0].suffix == ".txt"
    rows, uploads, _ = Handlers(service).documents()
    assert any(r[4] == UPLOAD_PREFIX + stored[0].name for r in rows)
    assert uploads[0][:2] == ["Notes about rice.txt", "indexed"]


def test_a_file_whose_content_is_indexed_already_is_refused_by_name(service, tmp_path):
    first, again = tmp_path / "rice.txt", tmp_path / "rice (1).txt"
    for path in (first, again):
        path.write_text("Rice harvests in Bengal doubled this year.")
    copy = tmp_path / "copy of talks.txt"
    copy.write_text(DOCS["talks.txt"])
    assert "added rice.txt" in shown(Handlers(service).upload([str(first)]))
    message = shown(Handlers(service).upload([str(again), str(copy)]))
    assert "rice (1).txt: the same file is indexed already, as rice.txt" in message
    assert "copy of talks.txt: the same file is indexed already, as talks.txt" in message
    assert [u.name for u in service.uploads()] == ["rice.txt"], "nothing stored twice"
    assert len(service.documents()) == len(DOCS) + 1


def shown(markdown: str) -> str:
    """The text a Markdown message shows, as the page renders it."""
    from markdown_it import MarkdownIt

    return html.unescape(re.sub(r"<[^>]+>", "", MarkdownIt().render(markdown)))


def test_a_file_name_is_shown_as_it_is_named_never_read_as_markdown(service, tmp_path):
    odd = tmp_path / "*draft*_v2 [final](x) <b>.txt"
    odd.write_text("The harvest festival in the valley is held every October.")
    message = Handlers(service).upload([str(odd)])
    assert "added *draft*_v2 [final](x) <b>.txt" in shown(message) and "<b>" not in message


def test_an_upload_name_never_becomes_a_path(service, tmp_path):
    upload = tmp_path / "plain.txt"
    upload.write_text("Harmless text about barley.")
    Handlers(service).upload([str(upload)], names=["../../../etc/evil.txt"])
    stored = list((service.config.index_dir / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].parent == service.config.index_dir / "uploads"
    assert service.uploads()[0].name == "evil.txt"


def test_a_broken_upload_is_reported_by_name_kept_and_removable(service, tmp_path):
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 bad bytes")  # an image named .txt
    message = Handlers(service).upload([str(broken)])
    assert "broken.txt" in message and "could not be read" in message and "binary" in message
    [failed] = service.uploads()
    assert failed.status == "failed" and "binary" in failed.error
    shown = service.version()  # what another open page last refreshed its lists at
    assert "Removed" in Handlers(service).remove(f"stored:{failed.stored}")
    assert service.uploads() == []
    assert service.version() != shown, "every open page refreshes its lists: the upload is gone"


def test_a_jsonl_upload_is_marked_by_its_records_indexed_or_failed(service, tmp_path):
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"id": "q1", "title": "Refunds", "text": "Refunds take five working days."}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q2", "text": 5}\n')
    Handlers(service).upload([str(faq), str(bad)])
    marked = {u.name: (u.status, u.error) for u in service.uploads()}
    assert marked["faq.jsonl"] == ("indexed", None), "its record is indexed under its own id"
    assert marked["bad.jsonl"][0] == "failed" and marked["bad.jsonl"][1], "with the record's reason"
    retried = Handlers(service).retry()
    assert "bad.jsonl" in retried and "faq.jsonl" not in retried, "only the upload that failed is retried"
    again = tmp_path / "again.jsonl"  # every record an id the index holds already
    again.write_text('{"id": "q1", "text": "Refunds take ten days."}\n')
    Handlers(service).upload([str(again)])
    [(status, error)] = [(u.status, u.error) for u in service.uploads() if u.name == "again.jsonl"]
    assert status == "failed" and "duplicate document id 'q1'" in error
    service.remove("q1")  # its one record taken out by hand: the upload holds nothing indexed now
    [faq_upload] = [u for u in service.uploads() if u.name == "faq.jsonl"]
    assert faq_upload.status == "failed" and "remove the upload" in faq_upload.error
    assert "Removed" in Handlers(service).remove(f"stored:{faq_upload.stored}"), "and it can be removed"


def test_uploads_are_stored_under_names_that_sort_in_the_order_they_came(tmp_path, monkeypatch):
    library = Library(tmp_path / "index")
    older = library.uploads_dir / "ffffffffffffffffffffffffffffffff.jsonl"  # an older install's name
    older.parent.mkdir(parents=True)
    older.write_text("{}")
    note = tmp_path / "note.jsonl"
    note.write_text('{"id": "q1", "text": "Refunds take five working days."}')
    stored = [library.store(f"note{i}.jsonl", note, 1000).stored for i in range(30)]
    monkeypatch.setattr(time, "time_ns", lambda: 1)  # a clock set back, then standing still
    stored += [library.store(f"later{i}.jsonl", note, 1000).stored for i in range(30)]
    assert sorted([older.name, *stored]) == [older.name, *stored]


def test_an_upload_whose_indexing_failed_stays_listed_and_can_be_retried(service, tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("The harvest festival in the valley is held every October.")
    with monkeypatch.context() as m:  # another build holds the index: this upload cannot be indexed now
        m.setattr(
            service, "reindex", lambda: (_ for _ in ()).throw(IndexBusy("another docqa build is running"))
        )
        message = Handlers(service).upload([str(notes)])
        assert "Not indexed" in message and "another docqa build" in message
        [pending] = service.uploads()
        assert (pending.name, pending.status) == ("notes.txt", "pending")
        again = Handlers(service).upload([str(notes)])  # the user tries the same file once more
        assert "stored already, as notes.txt, and not yet indexed" in again and len(service.uploads()) == 1
        other = tmp_path / "other.txt"
        other.write_text("The spring fair in the valley is held every April.")
        both = Handlers(service).upload([str(notes), str(other)])
        assert "Not indexed" in both and "refused notes.txt: the same file is stored already" in both
        assert "kept **other.txt**: retry it" in both, "what was stored, and what refused, is said"
    message = Handlers(service).retry()
    assert "still not indexed" not in message and "2 added" in message
    assert [u.status for u in service.uploads()] == ["indexed", "indexed"]
    assert any(d.id == pending.doc_id for d in service.documents())


def test_an_unsupported_type_is_refused_and_nothing_is_stored(service, tmp_path):
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    message = Handlers(service).upload([str(exe)])
    assert "refused tool.exe: docqa does not read .exe" in message
    assert not (service.config.index_dir / "uploads").exists() or not any(
        (service.config.index_dir / "uploads").iterdir()
    )


def test_removing_a_folder_document_keeps_it_out_of_later_builds_until_it_changes(service):
    assert "Removed" in Handlers(service).remove("wheat.txt")
    assert [r[4] for r in Handlers(service).documents()[0]] == ["talks.txt"]
    said: list[str] = []
    build(service.config, FakeEmbedder(), progress=False, log=said.append)  # as `make index` would
    assert "left out wheat.txt: removed from the index by hand; it is indexed again once it changes" in said
    service.reindex()
    assert [d.id for d in service.documents()] == ["talks.txt"]
    (service.config.docs / "wheat.txt").write_text("India sent 60,000 tonnes of wheat.")  # written anew
    service.reindex()
    assert sorted(d.id for d in service.documents()) == ["talks.txt", "wheat.txt"]
    (service.config.docs / "wheat.txt").write_text(DOCS["wheat.txt"])  # and back: it was not removed
    service.reindex()
    assert "wheat.txt" in [d.id for d in service.documents()]


def test_documents_removed_by_an_earlier_docqa_stay_out(service):
    (service.config.index_dir / "excluded.json").write_text('["wheat.txt"]')  # as docqa kept them before
    service.reindex()
    assert [d.id for d in service.documents()] == ["talks.txt"]


def test_status_names_the_models_and_counts(service):
    text = Handlers(service).status()
    assert "2 documents" in text and "fake-embedder" in text and "fake-generator" in text
    assert "fake (float32, cpu)" in text, "the runtime the generator runs on is shown"


def test_highlight_escapes_and_marks_the_supporting_sentence():
    doc = "Intro <b>bold</b>.\n\nFirst fact. Ismail Khan mediated the talks. Last fact.\n\nOther."
    start = doc.index("First")
    end = doc.index("Last fact.") + len("Last fact.")
    out = highlight(doc, start, end, "Ismail Khan mediated")
    assert "<mark>Ismail Khan mediated the talks.</mark>" in out
    assert "<b>" not in out and "Other" not in out
    windows = doc.replace("\n", "\r\n")  # a file saved with Windows line ends
    out = highlight(windows, windows.index("First"), windows.index("Last fact.") + 10, "Ismail Khan mediated")
    assert "Intro" not in out and "Other" not in out, "the card stops at the paragraph's end"


def test_answer_links_only_known_citations():
    out = answer_html("A [1] and B [2] <script>", numbers={1})
    assert 'href="#source-1"' in out and 'href="#source-2"' not in out and "<script>" not in out


def test_while_the_models_load_uploads_and_removals_change_nothing_and_say_why(tmp_path):
    waiting = Service(Config(docs=tmp_path / "docs", index_dir=tmp_path / "index"))
    upload = tmp_path / "rice.txt"
    upload.write_text("Rice harvests in Bengal doubled this year.")
    assert "still starting" in Handlers(waiting).upload([str(upload)])
    assert waiting.library.uploads() == [] and not (tmp_path / "index/uploads").exists()
    assert "still starting" in Handlers(waiting).remove("stored:0123.txt")


def test_a_page_keeps_what_it_picked_while_that_is_still_there_and_its_conversations_key_across_restarts(
    tmp_path,
):
    from qa.web import _browser_secret, _kept

    choices = [("All documents", "__all__"), ("Talks", "talks.txt")]
    assert _kept("talks.txt", choices, "__all__") == "talks.txt"
    assert _kept("gone.txt", choices, "__all__") == "__all__"
    first = _browser_secret(tmp_path / "index")
    assert _browser_secret(tmp_path / "index") == first and len(first) >= 32, "the same key after a restart"
    assert (tmp_path / "index/browser-secret").stat().st_mode & 0o777 == 0o600


def test_an_upload_over_the_limit_says_its_size_and_the_limit_in_bytes(tmp_path):
    from embeddings.library import Library

    big = tmp_path / "big.txt"
    big.write_text("x" * 1001)
    with pytest.raises(ConfigError, match=r"big.txt: 1,001 bytes is over the upload limit of 1,000 bytes"):
        Library(tmp_path / "index").store("big.txt", big, 1000)


def test_a_folder_record_whose_id_reads_like_an_upload_is_removed_as_a_document(service):
    (service.config.docs / "faq.jsonl").write_text(
        '{"id": "upload:refunds", "text": "Refunds take five working days."}\n'
        '{"id": "stored:returns", "text": "Returns are accepted for thirty days."}\n'
    )
    service.reindex()
    assert "Removed" in Handlers(service).remove("upload:refunds")
    assert "Removed" in Handlers(service).remove("stored:returns")
    assert sorted(d.id for d in service.documents()) == ["talks.txt", "wheat.txt"]


def test_models_that_could_not_start_in_the_background_are_one_line_not_a_traceback(tmp_path, capfd):
    failing = Service(
        Config(docs=tmp_path / "docs", index_dir=tmp_path / "index"), FakeGenerator(""), FakeEmbedder()
    )
    failing.start(background=True)  # an empty folder: nothing to index
    deadline = time.monotonic() + 30
    while failing.status().state != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert failing.status().state == "failed" and "docqa: docqa could not start: no documents at" in err
    assert "Traceback" not in err
