"""One running docqa (the web UI's service): it serves the index as it was built."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError
from qa.assistant import AnswerStream
from qa.service import Left, Service, Slots
from qa.web import Handlers
from tests.fakes import FakeEmbedder, FakeGenerator
from tests.test_builder import make_docs


def test_the_server_uses_the_model_and_chunk_settings_the_index_was_built_with(tmp_path: Path, monkeypatch):
    # As after `docqa index --model fake-special --chunk-tokens 16`: the server must not load the
    # default model, and an upload must not re-embed everything with the default chunk settings.
    docs, index_dir = make_docs(tmp_path / "docs"), tmp_path / "index"
    model = FakeEmbedder("fake-special")
    settings = dict(embedding_model="fake-special", chunk_tokens=16, chunk_overlap=2, title_tokens=0)
    build(Config(docs=docs, index_dir=index_dir, **settings), model, progress=False, log=lambda m: None)
    loaded = []

    def load(name: str, device: str | None = None, dtype: str | None = None) -> FakeEmbedder:
        loaded.append(name)
        if name != "fake-special":
            raise ConfigError(f"no embedding model {name!r} here")
        return model

    monkeypatch.setattr(Embedder, "load", load)
    service = Service(Config(docs=docs, index_dir=index_dir), FakeGenerator()).start(background=False)
    assert service.status().embedding_model == "fake-special"
    upload = tmp_path / "harvest.txt"
    upload.write_text("The harvest festival in the valley drew farmers from every village.")
    model.embedded.clear()
    before = service.assistant.index
    stored, refused, report = service.upload([("harvest.txt", upload)])
    assert refused == [] and report.rebuilt_because is None
    assert report.embedded == len(model.embedded) and all("harvest" in t for t in model.embedded)
    assert set(loaded) == {"fake-special"}
    assert service.assistant.index.segments[0] is before.segments[0], "the segments already open are shared"
    assert service.assistant.ask("Who came to the harvest festival?").passages[0].doc_id.startswith("upload:")


def _waiting(slots: Slots, n: int) -> None:
    while slots.load[1] < n:
        time.sleep(0.005)


def test_questions_waiting_for_the_model_get_their_turns_in_the_order_they_came():
    slots, served, holding = Slots(1), [], threading.Event()

    def ask(i: int) -> None:
        with slots.turn():
            served.append(i)
            time.sleep(0.25)  # an answer holds the model a while, as those behind it keep waiting

    def hold() -> None:
        with slots.turn():
            holding.wait()

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    while slots.load[0] < 1:
        time.sleep(0.005)
    for i in range(6):
        threads.append(threading.Thread(target=ask, args=(i,)))
        threads[-1].start()
        _waiting(slots, i + 1)  # each in line before the next comes
    time.sleep(0.3)
    holding.set()
    for t in threads:
        t.join(10)
    assert served == list(range(6)) and slots.load == (0, 0)


def test_a_caller_that_goes_away_while_waiting_gives_its_place_to_the_next():
    slots, served, holding, gone = Slots(1), [], threading.Event(), threading.Event()
    left = []

    def ask(i: int, leaving: threading.Event | None = None) -> None:
        try:
            with slots.turn(leaving):
                served.append(i)
        except Left:
            left.append(i)

    def hold() -> None:
        with slots.turn():
            holding.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    while slots.load[0] < 1:
        time.sleep(0.005)
    first, second = threading.Thread(target=ask, args=(1, gone)), threading.Thread(target=ask, args=(2,))
    first.start()
    _waiting(slots, 1)
    second.start()
    _waiting(slots, 2)
    gone.set()
    first.join(10)
    assert left == [1] and slots.load == (1, 1)
    holding.set()
    for t in (second, holder):
        t.join(10)
    assert served == [2] and slots.load == (0, 0)


def test_a_stream_closed_from_another_thread_while_it_is_read_stops_at_its_next_piece():
    reading, release = threading.Event(), threading.Event()

    def pieces(done):
        reading.set()
        release.wait(5)  # waiting for its turn, or for the model's first word
        yield "first"
        yield "second"

    stream, got = AnswerStream(pieces), []
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    reading.wait(5)
    stream.close()  # a server stopping closes the stream its request thread is reading
    assert stream.gone.is_set(), "a stream still waiting for a turn gives up its place"
    release.set()
    reader.join(5)
    assert got == [] and stream.answer is None


TALKS = "The meeting in Tehran was mediated by Ismail Khan."
FESTIVAL = "The Zorblat festival is held every March in Kettleby."


def serving(tmp_path: Path, files: dict[str, str], reply: str = "Khan. [1]") -> Service:
    """A service started on a folder of `files` (name -> text), with fake models."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text)
    config = Config(
        docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0
    )
    return Service(config, FakeGenerator(reply), FakeEmbedder()).start(background=False)


def picked(tmp_path: Path, name: str, text: str) -> Path:
    """A file the user picked to upload."""
    (path := tmp_path / name).write_text(text)
    return path


def test_a_server_started_without_documents_takes_uploads_and_says_why_one_was_not_read(tmp_path: Path):
    service = serving(tmp_path, {}, "Kettleby. [1]")
    assert service.status().state == "empty" and "restart" in service.status().message
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"not a pdf at all")
    said = Handlers(service).upload([str(broken)])  # as the page's Documents tab adds it
    assert "could not read broken.pdf" in said and "could not be read; remove it" in said, said
    assert "when the index is free" not in said, "nothing else held the index"
    assert "give the folder" not in said, "the page has no folder to give"
    status = service.status()
    assert status.state == "empty" and "could not read broken.pdf" in status.message, status.message
    assert [(u.name, u.status) for u in service.uploads()] == [("broken.pdf", "failed")]
    again = Handlers(service).upload([str(broken)])
    assert "could not be read" in again and "retry" not in again.lower(), "retrying cannot mend it"
    stored = service.uploads()[0].stored
    assert Handlers(service).remove(f"stored:{stored}").startswith("Removed"), "it was removed"
    assert service.uploads() == [] and "broken.pdf" not in service.status().message
    upload = picked(tmp_path, "festival.txt", FESTIVAL)
    stored, refused, report = service.upload([("festival.txt", upload)])
    assert refused == [] and report.documents == 1 and service.status().state == "ready"
    assert (
        service.assistant.ask("Where is the Zorblat festival held?").passages[0].doc_id.startswith("upload:")
    )


def test_the_only_document_is_not_removed_and_stays_listed_and_answered_from(tmp_path: Path):
    service = serving(tmp_path, {"talks.txt": TALKS})
    service.upload([("festival.txt", picked(tmp_path, "festival.txt", FESTIVAL))])
    page = Handlers(service)
    assert page.remove("talks.txt").startswith("Removed")
    uploaded = service.documents()[0].id
    said = page.remove(uploaded)
    assert "only document in the index" in said, said
    assert [d.id for d in service.documents()] == [uploaded]
    assert [u.status for u in service.uploads()] == ["indexed"], "its file is kept"
    assert service.assistant.ask("Where is the Zorblat festival held?").passages[0].doc_id == uploaded


def test_an_upload_not_removed_because_the_rest_of_the_folder_went_is_kept_whole(tmp_path: Path):
    service = serving(tmp_path, {"talks.txt": TALKS})
    (stored,), _, _ = service.upload([("festival.txt", picked(tmp_path, "festival.txt", FESTIVAL))])
    (service.config.docs / "talks.txt").unlink()  # gone from the folder, unwatched: the index still holds it
    said = Handlers(service).remove(stored.doc_id)
    assert said.startswith("**Not removed:**") and "give the folder" not in said, said
    assert [u.name for u in service.uploads()] == ["festival.txt"], "kept, as the page says"
    assert (service.config.index_dir / "uploads" / stored.stored).is_file()
    assert stored.doc_id in [d.id for d in service.documents()]


def test_a_removal_the_index_could_not_take_leaves_nothing_out_for_a_later_build(tmp_path: Path, monkeypatch):
    from embeddings.errors import IndexBusy
    from qa import service as served

    service = serving(tmp_path, {"talks.txt": TALKS, "festival.txt": FESTIVAL})

    def busy(*args, **kwargs):
        raise IndexBusy("another build holds the index")

    with monkeypatch.context() as patched:
        patched.setattr(served, "build", busy)
        assert Handlers(service).remove("festival.txt").startswith("**Not removed:**")
    service.reindex()
    assert "festival.txt" in [d.id for d in service.documents()], "not removed, as the page said"
