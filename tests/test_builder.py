from __future__ import annotations

import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embeddings import store
from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ConfigError, IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing
from embeddings.index import Index
from embeddings.verify import verify
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent

DOCS = {
    "wheat.txt": "India sent 50,000 tonnes of wheat to Afghanistan. Pakistan blocked the road.",
    "talks.md": "# Talks\n\nThe meeting in Tehran was mediated by Ismail Khan. It ended without result.",
    "notes/river.txt": "The river flooded the valley in spring. Farmers lost their crops.",
}


def make_docs(folder: Path, docs: dict[str, str] = DOCS) -> Path:
    for name, text in docs.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        docs=make_docs(tmp_path / "docs"), index_dir=tmp_path / "index", chunk_tokens=16, chunk_overlap=4
    )


def run(config: Config, embedder: FakeEmbedder, logs: list[str] | None = None):
    return build(config, embedder, progress=False, log=(logs.append if logs is not None else lambda m: None))


def opened(config: Config, embedder: FakeEmbedder) -> Index:
    return Index.open(config.index_dir, embedder)


def deny_listing(monkeypatch, folder: str) -> None:
    """Folders named `folder` cannot be listed from now on, as one this user may not read."""
    listing = os.scandir

    def denied(path):
        if str(path).endswith(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", denied)


def test_first_build_indexes_every_document(config, fake_embedder):
    report = run(config, fake_embedder)
    assert (report.added, report.documents, report.skipped) == (3, 3, [])
    index = opened(config, fake_embedder)
    assert len(index) == report.chunks == len(fake_embedder.embedded)
    assert {d.id for d in index.documents()} == set(DOCS)
    top = index.lexical("who mediated the meeting", 1)[0].chunk
    assert top.doc_id == "talks.md" and "Ismail Khan" in top.text
    assert index.document_text("talks.md")[top.start : top.end] == top.text
    assert index.dense("Ismail Khan mediated", 1)[0].chunk.doc_id == "talks.md"


def test_second_build_of_an_unchanged_folder_embeds_nothing(config, fake_embedder):
    run(config, fake_embedder)
    before = store.current(config.index_dir)
    again = FakeEmbedder()
    report = run(config, again)
    assert report.up_to_date and report.embedded == 0 and again.embedded == []
    assert "up to date, nothing to embed" in report.summary()
    assert store.current(config.index_dir) == before


def test_changes_embed_only_new_and_changed_documents(config, fake_embedder):
    run(config, fake_embedder)
    (config.docs / "wheat.txt").write_text("India sent rice instead. The convoy arrived late.")
    (config.docs / "notes/river.txt").unlink()
    (config.docs / "new.txt").write_text("A new school opened in Herat.")
    later = FakeEmbedder()
    report = run(config, later)
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 1)
    assert all("Ismail" not in t for t in later.embedded)  # the unchanged document was carried
    index = opened(config, later)
    assert {d.id for d in index.documents()} == {"wheat.txt", "talks.md", "new.txt"}
    assert not index.lexical("flooded valley", 5)
    assert index.lexical("rice convoy", 1)[0].chunk.doc_id == "wheat.txt"
    assert not index.lexical("tonnes", 5), "the old text of a changed document must be gone"
    assert index.dense("Ismail Khan mediated the meeting", 1)[0].chunk.doc_id == "talks.md"
    assert len(index) == sum(d.chunks for d in index.documents())


def test_a_record_whose_id_a_later_one_repeats_stays_indexed_build_after_build(config, fake_embedder):
    (config.docs / "a.jsonl").write_text('{"id": "x", "text": "Zebras live in the savanna."}\n')
    (config.docs / "b.jsonl").write_text('{"id": "x", "text": "Penguins live in Antarctica."}\n')
    for added in ("", "new.txt"):  # nothing changed, then an unrelated document added
        if added:
            (config.docs / added).write_text("Cycling is popular in the Netherlands.")
        report = run(config, fake_embedder)
        assert [s.source for s in report.skipped] == ["b.jsonl:1"], "the repeat is skipped, every time"
        assert "Zebras" in opened(config, fake_embedder).document_text("x")


def test_documents_a_changed_reader_would_read_otherwise_are_read_again_once(
    config, fake_embedder, monkeypatch
):
    """An index built before docqa read a format better (Markdown comments, PDF ligatures) is
    not left with the old text: the next build reads that format's documents again."""
    from embeddings import builder, readers

    (config.docs / "talks.md").write_text("# Talks\n\nThe meeting ended.<!-- secret plan: sell the farm -->")
    monkeypatch.setitem(builder.READERS, ".md", 0)  # an older docqa, which read the comment
    monkeypatch.setitem(readers.PARSERS, ".md", lambda data: ("Talks", data.decode(), {}))
    run(config, fake_embedder)
    assert opened(config, fake_embedder).lexical("secret plan farm", 5)
    monkeypatch.undo()
    (config.docs / "new.md").write_text("# New\n\nA school opened.")  # read as any new document is
    later = FakeEmbedder()
    report = run(config, later)
    assert (report.added, report.changed, report.read_again, report.unchanged) == (1, 1, 1, 2)
    assert "1 read again only because docqa now reads their format otherwise" in report.summary()
    assert later.embedded and all("Talks" in t or "school" in t for t in later.embedded)
    assert not opened(config, later).lexical("secret plan farm", 5)
    assert run(config, FakeEmbedder()).up_to_date, "read again once, not at every build"


def test_an_index_with_no_document_of_a_changed_format_records_the_readers_once(
    config, fake_embedder, monkeypatch
):
    from embeddings import builder

    monkeypatch.setitem(builder.READERS, ".pdf", 0)  # no PDF here: nothing to read again
    run(config, fake_embedder)
    monkeypatch.undo()
    assert run(config, FakeEmbedder()).up_to_date
    manifest = store.read_manifest(store.current(config.index_dir))
    assert manifest["readers"][".pdf"] == builder.READERS[".pdf"], "recorded, so no later build asks again"


def test_documents_of_a_folder_unlisted_when_the_reader_changed_are_read_again_later(config, fake_embedder,
                                                                                     monkeypatch):  # fmt: skip
    from embeddings import builder, readers

    (config.docs / "notes/plan.md").write_text("# Plan\n\nSow in spring.<!-- zebra -->")
    monkeypatch.setitem(builder.READERS, ".md", 0)
    monkeypatch.setitem(readers.PARSERS, ".md", lambda data: ("Plan", data.decode(), {}))
    run(config, fake_embedder)
    monkeypatch.undo()
    deny_listing(monkeypatch, "notes")
    assert run(config, FakeEmbedder()).read_again == 1  # talks.md; notes/plan.md kept as it was
    assert opened(config, fake_embedder).lexical("zebra", 5)
    assert run(config, FakeEmbedder()).up_to_date, "talks.md is not read again while the folder stays shut"
    monkeypatch.undo()
    report = run(config, FakeEmbedder())
    assert report.read_again == 1 and not opened(config, fake_embedder).lexical("zebra", 5)  # notes/plan.md
    assert run(config, FakeEmbedder()).up_to_date


def test_a_file_replaced_by_one_of_the_same_size_and_time_is_read_again(config, fake_embedder):
    path = config.docs / "wheat.txt"
    an_hour_ago = time.time_ns() - 3_600_000_000_000  # long enough ago for its time to be trusted
    os.utime(path, ns=(an_hour_ago, an_hour_ago))
    run(config, fake_embedder)
    kept = path.stat()
    path.write_text(DOCS["wheat.txt"].replace("wheat", "flour"))  # as `cp -p` or `rsync -a` would copy it
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (kept.st_size, kept.st_mtime_ns)
    report = run(config, FakeEmbedder())
    assert (
        report.changed == 1
        and opened(config, fake_embedder).lexical("flour", 1)[0].chunk.doc_id == "wheat.txt"
    )


def test_records_moved_to_a_file_in_another_folder_are_found_under_it(config, fake_embedder):
    records = [
        {"id": "r1", "title": "Rice", "text": "Rice harvests doubled."},
        {"id": "r2", "text": "Tea prices fell."},
    ]
    (config.docs / "team-a").mkdir()
    (config.docs / "team-a/set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run(config, fake_embedder)
    (config.docs / "team-b").mkdir()
    (config.docs / "team-a/set.jsonl").rename(config.docs / "team-b/set.jsonl")
    report = run(config, FakeEmbedder())
    assert report.changed == 2 and not report.up_to_date
    sources = {d.id: d.source for d in opened(config, fake_embedder).documents()}
    assert (sources["r1"], sources["r2"]) == ("team-b/set.jsonl:1", "team-b/set.jsonl:2")
    assert run(config, FakeEmbedder()).up_to_date, "and then they are unchanged"


def test_another_embedding_model_re_embeds_everything_and_says_why(config, fake_embedder):
    run(config, fake_embedder)
    other, logs = FakeEmbedder(name="other-model"), []
    report = run(config, other, logs)
    assert report.rebuilt_because and "embedding model changed" in report.rebuilt_because
    assert any("Re-embedding everything" in m for m in logs)
    assert len(other.embedded) == report.chunks
    with pytest.raises(IndexMismatch, match="rebuild it"):
        opened(config, fake_embedder)


def test_other_chunk_settings_re_embed_everything(config, fake_embedder):
    run(config, fake_embedder)
    report = run(
        Config(docs=config.docs, index_dir=config.index_dir, chunk_tokens=32, chunk_overlap=4), FakeEmbedder()
    )
    assert "chunk settings changed" in report.rebuilt_because
    assert report.embedded == report.chunks


def test_a_build_leaves_the_cycle_collector_as_it_found_it(config, fake_embedder, monkeypatch):
    """A build pauses Python's cycle collector while it scans; a server that builds on every
    upload would leak memory if a build (one that failed included) left it off."""
    run(config, fake_embedder)
    assert gc.isenabled()
    monkeypatch.setattr(store, "current", lambda index_dir: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        run(config, fake_embedder)
    assert gc.isenabled()
    monkeypatch.undo()
    gc.disable()
    try:
        run(config, fake_embedder)
        assert not gc.isenabled(), "a caller who turned it off keeps it off"
    finally:
        gc.enable()


def test_unreadable_files_are_reported_counted_and_skipped(config, fake_embedder):
    (config.docs / "bad.txt").write_bytes(b"\xff\xfe\x00\x00binary")
    logs = []
    report = run(config, fake_embedder, logs)
    assert [s.source for s in report.skipped] == ["bad.txt"]
    assert any(m.startswith("skipped bad.txt:") for m in logs)
    assert "1 skipped" in report.summary()
    assert report.documents == 3


def test_a_file_that_could_not_be_read_is_not_read_again_until_it_changes(config, fake_embedder):
    (config.docs / "empty.txt").write_text("")
    (config.docs / "broken.pdf").write_bytes(b"%PDF-1.4 cut short")
    run(config, fake_embedder)
    before = store.current(config.index_dir)
    again, said = FakeEmbedder(), []
    report = run(config, again, said)
    assert report.up_to_date and store.current(config.index_dir) == before, "no new generation"
    assert {s.source for s in report.skipped} == {"empty.txt", "broken.pdf"}
    assert "skipped empty.txt: empty: it holds no text" in said, "still said at each build"
    (config.docs / "empty.txt").write_text("A new school opened in Herat.")
    report = run(config, FakeEmbedder())
    assert report.added == 1 and [s.source for s in report.skipped] == ["broken.pdf"]
    assert opened(config, fake_embedder).lexical("school Herat", 1)[0].chunk.doc_id == "empty.txt"


def test_a_file_that_could_not_be_opened_is_read_again_at_the_next_build(config, fake_embedder, monkeypatch):
    from embeddings.errors import UnreadableDocument
    from embeddings.readers import Pending

    (config.docs / "locked.txt").write_text("A new school opened in Herat.")
    load = Pending.load

    def denied(self):  # as a file on a disk that is gone for now, or not on a Ray node
        if self.source == "locked.txt":
            raise UnreadableDocument("cannot be read: Permission denied", passing=True)
        return load(self)

    monkeypatch.setattr(Pending, "load", denied)
    assert [s.source for s in run(config, fake_embedder).skipped] == ["locked.txt"]
    monkeypatch.setattr(Pending, "load", load)
    report = run(config, FakeEmbedder())
    assert report.added == 1 and not report.skipped, "not remembered as unreadable"


def test_a_crash_mid_build_leaves_the_previous_index(config, fake_embedder):
    run(config, fake_embedder)
    (config.docs / "wheat.txt").write_text("Completely new text about rice.")

    class Crashing(FakeEmbedder):
        def embed(self, texts, batch_size=64):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        run(config, Crashing())
    index = opened(config, fake_embedder)
    assert index.lexical("tonnes wheat", 1)[0].chunk.doc_id == "wheat.txt"
    assert not list(config.index_dir.glob("tmp-*"))


def test_a_crash_before_the_switch_leaves_the_previous_index(config, fake_embedder, monkeypatch):
    run(config, fake_embedder)
    (config.docs / "wheat.txt").write_text("Completely new text about rice.")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("CURRENT"):
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="killed"):
        run(config, FakeEmbedder())
    monkeypatch.setattr(os, "replace", real_replace)
    assert opened(config, fake_embedder).lexical("tonnes", 1)[0].chunk.doc_id == "wheat.txt"
    report = run(config, FakeEmbedder())  # and the next build finishes the job
    assert report.changed == 1


def test_leftovers_of_a_killed_build_are_ignored_then_cleaned(config, fake_embedder):
    run(config, fake_embedder)
    leftover = config.index_dir / "tmp-killed"
    leftover.mkdir()
    (leftover / "vectors.faiss").write_bytes(b"half written")
    assert len(opened(config, fake_embedder)) > 0
    (config.docs / "extra.txt").write_text("One more document.")
    run(config, fake_embedder)
    assert not leftover.exists()


def test_a_second_build_at_once_is_refused_with_a_clear_message(config, fake_embedder):
    with store.build_lock(config.index_dir), pytest.raises(IndexBusy, match="another docqa build"):
        run(config, fake_embedder)


def test_no_readable_documents_is_an_error_that_keeps_the_old_index(config, fake_embedder, tmp_path):
    run(config, fake_embedder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.txt").write_bytes(b"")
    with pytest.raises(ConfigError, match="no readable documents") as error:
        run(Config(docs=empty, index_dir=config.index_dir, chunk_tokens=16, chunk_overlap=4), fake_embedder)
    assert f"delete {config.index_dir} to empty it" in str(error.value)
    assert len(opened(config, fake_embedder).documents()) == 3
    first = Config(docs=empty, index_dir=tmp_path / "new", chunk_tokens=16, chunk_overlap=4)
    with pytest.raises(ConfigError, match="no readable documents") as error:
        run(first, fake_embedder)
    assert "add documents there" in str(error.value) and "left as it was" not in str(error.value), (
        "no index was built before: none is kept"
    )


def test_chunks_larger_than_the_model_reads_are_refused(config):
    with pytest.raises(ConfigError, match="choose chunk_tokens 7 or less"):
        run(config, FakeEmbedder(max_tokens=40))  # 16 chunk + 32 title + a line break > 40


def test_missing_index_says_how_to_build_one(tmp_path, fake_embedder):
    with pytest.raises(IndexMissing, match="docqa index"):
        Index.open(tmp_path / "nothing", fake_embedder)


def live_file(index_dir: Path, name: str) -> Path:
    """A file of the live generation's first segment."""
    manifest = store.read_manifest(store.current(index_dir))
    return index_dir / store.SEGMENTS / manifest["segments"][0]["name"] / name


def test_a_tampered_index_file_is_caught(config, fake_embedder):
    run(config, fake_embedder)
    table = live_file(config.index_dir, "chunks.sqlite")
    data = bytearray(table.read_bytes())
    data[-100] ^= 0xFF
    table.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="damaged"):
        opened(config, fake_embedder)
    report = run(config, fake_embedder)  # rebuilding repairs it
    assert "cannot be used" in report.rebuilt_because
    assert len(opened(config, fake_embedder).documents()) == 3


def test_an_index_of_another_format_version_says_what_to_run(config, fake_embedder):
    run(config, fake_embedder)
    manifest_path = store.current(config.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": 999}))
    with pytest.raises(IndexMismatch, match="docqa index"):
        opened(config, fake_embedder)


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from embeddings.builder import build
from embeddings.config import Config
from tests.fakes import FakeEmbedder

class Slow(FakeEmbedder):
    def embed(self, texts, batch_size=64):
        time.sleep(0.003 * len(texts))
        return super().embed(texts, batch_size)

config = Config(docs=Path(sys.argv[1]), index_dir=Path(sys.argv[2]), chunk_tokens=16, chunk_overlap=4,
                batch_size=8, embed_window=32)
print("ready", flush=True)
build(config, Slow(), progress=False, log=lambda m: None)
"""


def test_sigkill_at_random_moments_never_breaks_the_index(tmp_path, fake_embedder):
    docs = make_docs(tmp_path / "docs", {f"d{i}.txt": f"Document {i} says word{i}. " * 12 for i in range(60)})
    index_dir = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, docs, index_dir], check=True, env=env, cwd=ROOT)
    rng, killed_mid_build = random.Random(7), 0
    for round_ in range(5):
        for i in rng.sample(range(60), 40):
            (docs / f"d{i}.txt").write_text(f"Round {round_} rewrote {i}. " * 10)
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, docs, index_dir], env=env, cwd=ROOT, stdout=subprocess.PIPE
        )
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_mid_build += any(index_dir.glob("tmp-*"))
        index = Index.open(index_dir, fake_embedder)
        documents = index.documents()
        assert len(index) == sum(d.chunks for d in documents) == index.manifest["counts"]["chunks"]
        assert len(documents) == index.manifest["counts"]["documents"]
        assert verify(index_dir, fake_embedder).ok
        for d in documents:
            text = index.document_text(d.id)
            assert all(text[c.start : c.end] == c.text for c in index.document_chunks(d.id))
        index.close()
    assert killed_mid_build >= 3, "the kills should land while a build is writing"


def ids(config: Config, embedder: FakeEmbedder) -> set[str]:
    index = opened(config, embedder)
    try:
        return {d.id for d in index.documents()}
    finally:
        index.close()


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_build_goes_on(config, fake_embedder):
    (config.docs / os.fsdecode(b"caf\xe9.txt")).write_text("A menu of coffees.")
    (config.docs / os.fsdecode(b"men\xfc")).mkdir()
    (config.docs / os.fsdecode(b"men\xfc") / "a.txt").write_text("Inside a folder of that kind.")
    for _ in range(2):  # and the next build too
        report = run(config, fake_embedder)
        assert {s.source: s.reason for s in report.skipped} == {
            "caf\\xe9.txt": "its name is not valid UTF-8: rename it",
            "men\\xfc/": "its name is not valid UTF-8: rename it",
        }
    assert ids(config, fake_embedder) == set(DOCS)


def test_a_file_gone_or_changed_after_the_scan_is_skipped_and_the_build_goes_on(
    config, fake_embedder, monkeypatch
):
    from embeddings import changes

    records = [{"id": "a", "text": "Alpha text."}, {"id": "b", "text": "Beta text."}]
    (config.docs / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    scan_folder = changes.scan_all

    def scan_then_change(*args):
        found = scan_folder(*args)
        (config.docs / "wheat.txt").unlink()
        (config.docs / "set.jsonl").write_text(json.dumps({"id": "a", "text": "Other text."}) + "\n")
        return found

    monkeypatch.setattr(changes, "scan_all", scan_then_change)
    report = run(config, fake_embedder)
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == {"wheat.txt", "set.jsonl:1", "set.jsonl:2"}
    assert "cannot be read" in reasons["wheat.txt"]
    assert "changed" in reasons["set.jsonl:1"]
    assert ids(config, fake_embedder) == {"talks.md", "notes/river.txt"}


def test_a_file_of_a_type_docqa_does_not_read_is_refused_before_anything_runs(tmp_path, fake_embedder):
    for name in ("notes", "report.rtf"):
        (tmp_path / name).write_text("Some text.")
        with pytest.raises(ConfigError, match=r"docqa reads \.txt .*\.jsonl"):
            run(Config(docs=tmp_path / name, index_dir=tmp_path / "index"), fake_embedder)
    assert fake_embedder.embedded == []


def test_an_unreadable_folder_is_reported_and_its_documents_kept(config, fake_embedder, monkeypatch):
    (config.docs / "notes/set.jsonl").write_text(json.dumps({"id": "j1", "text": "A line of a set."}) + "\n")
    run(config, fake_embedder)
    deny_listing(monkeypatch, "notes")
    report = run(config, fake_embedder)
    assert [(s.source, s.reason) for s in report.skipped] == [("notes/", "cannot be read: Permission denied")]
    assert (report.removed, report.unchanged) == (0, 4)
    assert ids(config, fake_embedder) == {*DOCS, "j1"}


def test_a_document_that_can_no_longer_be_read_counts_as_removed(config, fake_embedder):
    run(config, fake_embedder)
    (config.docs / "wheat.txt").write_bytes("caf\xe9".encode("latin-1"))
    report = run(config, fake_embedder)
    assert "0 added, 0 changed, 1 removed, 1 skipped, 2 unchanged" in report.summary()
    assert ids(config, fake_embedder) == {"talks.md", "notes/river.txt"}


def test_an_index_folder_inside_the_documents_is_not_indexed_as_documents(config, fake_embedder, tmp_path):
    from embeddings.library import Library

    inside = Config(docs=config.docs, index_dir=config.docs / "idx", chunk_tokens=16, chunk_overlap=4)
    (tmp_path / "memo.txt").write_text("An uploaded memo about the harvest.")
    upload = Library(inside.index_dir).store("memo.txt", tmp_path / "memo.txt", 10**6)
    report = run(inside, fake_embedder)
    assert (report.added, report.skipped) == (4, [])
    assert ids(inside, fake_embedder) == {*DOCS, upload.doc_id}


def test_a_folder_of_another_program_is_never_written_as_the_index(tmp_path, fake_embedder):
    docs = make_docs(tmp_path / "docs")
    other = tmp_path / "leveldb"
    other.mkdir()
    (other / "CURRENT").write_text("MANIFEST-000005\n")
    (other / "LOG").write_text("log")
    with pytest.raises(
        ConfigError, match=r"holds files that are not a docqa index \(CURRENT, LOG\); give --index a new"
    ):
        run(Config(docs=docs, index_dir=other), fake_embedder)
    assert sorted(p.name for p in other.iterdir()) == ["CURRENT", "LOG"]
    assert (other / "CURRENT").read_text() == "MANIFEST-000005\n"


def test_an_uploads_registry_docqa_did_not_write_is_an_error_before_the_index_changes(config, fake_embedder):
    run(config, fake_embedder)
    before = store.current(config.index_dir)
    (config.docs / "new.txt").write_text("A new school opened in Herat.")
    (config.index_dir / "uploads.json").write_text("[]")
    with pytest.raises(ConfigError, match="uploads.json is not the list docqa keeps there; delete it"):
        run(config, fake_embedder)
    assert store.current(config.index_dir) == before


def test_an_index_folder_docqa_may_not_write_is_an_error_that_says_so(config, fake_embedder, monkeypatch):
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(
        ConfigError, match=r"cannot write the index in .* \(Permission denied\): check its perm"
    ):
        run(config, fake_embedder)


def test_the_uploads_version_moves_on_with_each_write_even_within_one_tick_of_the_clock(tmp_path):
    """The page refreshes its lists when the version moves: a file system whose times are coarse
    (or a clock set back) must not hide a second write."""
    from embeddings.library import Library

    library = Library(tmp_path / "idx")
    (tmp_path / "memo.txt").write_text("An uploaded memo about the harvest.")
    upload = library.store("memo.txt", tmp_path / "memo.txt", 10**6)
    before = library.version()
    registry = tmp_path / "idx" / "uploads.json"
    stamp = registry.stat().st_mtime_ns
    library.mark({upload.stored: None})
    os.utime(registry, ns=(stamp, stamp))  # written within the same tick
    assert library.version() != before, "marked indexed: the page must list it so"
