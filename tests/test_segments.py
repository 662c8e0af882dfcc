"""What a build and an open cost as the index grows: a build writes what changed, not the whole
index; opening reads no file in full; readers of older generations keep working."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from embeddings import builder, generation, segment, store, vectors
from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import IndexMismatch
from embeddings.index import Index
from embeddings.lexical import Terms
from embeddings.verify import verify
from tests.fakes import FakeEmbedder
from tests.test_builder import DOCS, make_docs

MORE = {
    f"more/m{i}.txt": f"Report {i} on the harvest in district {i}. Farmers counted {i * 7} sacks."
    for i in range(12)
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(docs=make_docs(tmp_path / "docs", {**DOCS, **MORE}), index_dir=tmp_path / "index",
                  chunk_tokens=16, chunk_overlap=4)  # fmt: skip


def run(config: Config, embedder: FakeEmbedder):
    return build(config, embedder, progress=False, log=lambda m: None)


def segment_files(config: Config) -> dict[str, int]:
    """Each file of the live generation's segments, with its modification time."""
    manifest = store.read_manifest(store.current(config.index_dir))
    return {name: (config.index_dir / name).stat().st_mtime_ns for name in manifest["files"]}


def test_adding_a_document_writes_only_its_own_segment(config, fake_embedder, monkeypatch):
    run(config, fake_embedder)
    before = segment_files(config)
    indexed: list[int] = []
    write = Terms.write

    def counted(texts, folder):
        texts = list(texts)
        indexed.append(len(texts))
        write(texts, folder)

    monkeypatch.setattr(Terms, "write", counted)
    (config.docs / "new.txt").write_text("A new school opened in Herat in the spring.")
    report = run(config, FakeEmbedder())
    assert (report.added, report.unchanged, report.embedded) == (1, len(DOCS) + len(MORE), 1)
    after = segment_files(config)
    assert before.items() <= after.items(), "the files already written stay as they are, untouched"
    assert indexed == [1], "BM25 counts the new chunk only"
    index = Index.open(config.index_dir, fake_embedder)
    assert index.lexical("school Herat", 1)[0].chunk.doc_id == "new.txt"
    assert index.dense("new school opened in Herat", 1)[0].chunk.doc_id == "new.txt"
    assert verify(config.index_dir, fake_embedder, sample=50).ok


def test_an_approximate_index_is_not_built_again_for_a_small_addition(config, fake_embedder, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 5)  # as if the collection were past 200,000 chunks
    run(config, fake_embedder)
    assert Index.open(config.index_dir, fake_embedder).vectors.approximate
    settled: list[int] = []
    settle = vectors.Vectors.settle
    monkeypatch.setattr(
        vectors.Vectors, "settle", lambda self, *a, **k: (settled.append(len(self)), settle(self, *a, **k))[1]
    )
    loaded: list[Path] = []
    load = vectors.Vectors.load
    monkeypatch.setattr(vectors.Vectors, "load", lambda path: (loaded.append(path), load(path))[1])
    kept = store.current(config.index_dir)
    (config.docs / "new.txt").write_text("A new school opened in Herat in the spring.")
    run(config, FakeEmbedder())
    assert settled == [1], "only the new chunk's segment is written; the HNSW graph is kept"
    old = {f.parent.name for f in loaded} & {e["name"] for e in store.read_manifest(kept)["segments"]}
    assert not old, "the build does not even read the graph it keeps (seconds at a million chunks)"
    assert (
        Index.open(config.index_dir, fake_embedder).dense("new school opened in Herat", 1)[0].chunk.doc_id
        == "new.txt"
    )


def test_opening_an_index_reads_no_checksum_unless_a_file_looks_changed(config, fake_embedder, monkeypatch):
    run(config, fake_embedder)
    hashed: list[Path] = []
    sha256 = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda path: (hashed.append(path), sha256(path))[1])
    Index.open(config.index_dir, fake_embedder).close()
    assert hashed == []
    name = next(iter(segment_files(config)))
    os.utime(config.index_dir / name)  # touched (or copied without its times): read once to be sure
    Index.open(config.index_dir, fake_embedder).close()
    assert hashed == [config.index_dir / name]


def test_docqa_check_reads_every_byte(config, fake_embedder):
    run(config, fake_embedder)
    manifest = store.read_manifest(store.current(config.index_dir))
    name = next(n for n in manifest["files"] if n.endswith("vectors.faiss"))
    path = config.index_dir / name
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01  # one bit of one vector, the file's size and time as they were
    path.write_bytes(bytes(data))
    os.utime(path, ns=(manifest["files"][name]["mtime_ns"], manifest["files"][name]["mtime_ns"]))
    Index.open(config.index_dir, fake_embedder).close()
    problems = verify(config.index_dir, fake_embedder).problems
    assert any("checksum changed" in p for p in problems), problems


def test_a_reader_that_opens_while_builds_replace_the_generation_gets_the_new_one(
    config, fake_embedder, monkeypatch
):
    run(config, fake_embedder)
    read_manifest, slowed = store.read_manifest, []

    def slow_reader(folder: Path) -> dict:
        if not slowed:  # the reader has read CURRENT; two builds commit before it reads on
            slowed.append(folder)
            for text in ("First change.", "Second change."):
                (config.docs / "wheat.txt").write_text(text)
                run(config, fake_embedder)
        return read_manifest(folder)

    monkeypatch.setattr(store, "read_manifest", slow_reader)
    index = Index.open(config.index_dir, fake_embedder)
    assert not slowed[0].exists(), "the generation the reader first saw was removed"
    assert index.document_text("wheat.txt") == "Second change."


def test_an_index_opened_before_later_builds_keeps_answering(config, fake_embedder):
    run(config, fake_embedder)
    old = Index.open(config.index_dir, fake_embedder)
    for i in range(4):
        (config.docs / "talks.md").write_text(f"# Talks\n\nRound {i} of the talks was held in Doha.")
        (config.docs / f"more/m{i}.txt").unlink()
        run(config, fake_embedder)
    assert "Ismail Khan" in old.document_text("talks.md")
    assert old.lexical("mediated Ismail Khan", 1)[0].chunk.doc_id == "talks.md"
    assert old.dense("harvest in district 3", 1)[0].chunk.doc_id == "more/m3.txt"


def test_reopening_shares_the_segments_still_listed_and_lets_go_of_the_rest(config, fake_embedder):
    run(config, fake_embedder)
    old = Index.open(config.index_dir, fake_embedder)
    (config.docs / "new.txt").write_text("A new school opened in Herat in the spring.")
    run(config, fake_embedder)
    new = old.reopen()
    assert new.segments[0] is old.segments[0] and len(new.segments) == 2
    old.close()
    assert new.lexical("mediated Ismail Khan", 1)[0].chunk.doc_id == "talks.md", "the shared one stays open"
    new.close()
    dropped = Index.open(config.index_dir, fake_embedder).segments[0]  # an index nobody closed
    gc.collect()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        dropped.table.count()


def test_many_small_builds_keep_few_segments_and_a_sound_index(config, fake_embedder):
    run(config, fake_embedder)
    for i in range(40):
        (config.docs / f"daily/d{i}.txt").parent.mkdir(exist_ok=True)
        (config.docs / f"daily/d{i}.txt").write_text(f"Daily note {i}: the river rose by {i} centimetres.")
        if i % 5 == 4:
            (config.docs / f"more/m{i // 5}.txt").unlink()
        run(config, fake_embedder)
    index = Index.open(config.index_dir, fake_embedder)
    assert len(index.segments) <= 3 * segment.MERGE_FACTOR
    assert {d.id for d in index.documents()} >= {f"daily/d{i}.txt" for i in range(40)}
    assert "more/m0.txt" not in {d.id for d in index.documents()}
    assert index.lexical("daily note 17 river", 1)[0].chunk.doc_id == "daily/d17.txt"
    assert verify(config.index_dir, fake_embedder, sample=50).ok


def test_merges_follow_size_classes_and_deletions():
    entry = lambda chunks, deleted=0: {"chunks": chunks, "deleted_chunks": deleted}  # noqa: E731
    assert segment.plan([entry(1000), entry(3), entry(2)]) == []
    assert segment.plan([entry(1000), entry(3), entry(2), entry(1), entry(2)]) == [[1, 2, 3, 4]]
    assert segment.plan([entry(1000, deleted=400), entry(3)]) == [[0]]
    assert segment.plan([entry(10, deleted=10), entry(3)]) == [[0]]


def test_an_index_of_the_format_before_segments_is_brought_up_to_date_without_embedding(
    config, fake_embedder
):
    run(config, fake_embedder)
    old_format(config.index_dir)
    again = FakeEmbedder()
    report = run(config, again)
    # only the Markdown file is embedded: an index that old was built before its comments were left out
    assert (report.unchanged, report.read_again) == (len(DOCS) + len(MORE) - 1, 1)
    assert again.embedded and all(text.startswith("Talks") for text in again.embedded)
    index = Index.open(config.index_dir, fake_embedder)
    assert index.lexical("mediated Ismail Khan", 1)[0].chunk.doc_id == "talks.md"
    assert verify(config.index_dir, fake_embedder, sample=50).ok


def old_format(index_dir: Path) -> None:
    """Rewrite a one-segment index the way docqa wrote indexes before segments (format 1)."""
    live = store.current(index_dir)
    manifest = store.read_manifest(live)
    (entry,) = manifest["segments"]
    source = index_dir / store.SEGMENTS / entry["name"]
    for name in ("chunks.sqlite", "vectors.faiss"):
        shutil.copy(source / name, live / name)
    files = {n: {"bytes": (live / n).stat().st_size, "sha256": store.sha256_file(live / n)}
             for n in ("chunks.sqlite", "vectors.faiss")}  # fmt: skip
    old = {k: manifest[k] for k in ("created", "counts", "embedding", "chunker")}
    (live / store.MANIFEST).write_text(json.dumps({**old, "format": 1, "files": files, "documents": {}}))
    shutil.rmtree(index_dir / store.SEGMENTS)
    with pytest.raises(IndexMismatch, match="docqa index"):
        Index.open(index_dir)


def test_a_build_of_an_unchanged_folder_reads_no_document_again(config, fake_embedder, monkeypatch):
    an_hour_ago = time.time_ns() - 3_600_000_000_000
    for path in config.docs.rglob("*.*"):
        os.utime(path, ns=(an_hour_ago, an_hour_ago))
    run(config, fake_embedder)
    read: list[Path] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (read.append(self), read_bytes(self))[1])
    (config.docs / "new.txt").write_text("A new school opened in Herat in the spring.")
    report = run(config, fake_embedder)
    assert report.added == 1 and report.unchanged == len(DOCS) + len(MORE)
    assert [p.name for p in read] == ["new.txt", "new.txt"], "read to hash it, then to index it"


def test_a_change_that_keeps_a_fresh_files_size_and_time_is_still_seen(config, fake_embedder):
    run(config, fake_embedder)  # the files were written just now, within the same clock tick perhaps
    path = config.docs / "wheat.txt"
    stat = path.stat()
    path.write_text(DOCS["wheat.txt"].replace("India", "Italy"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    report = run(config, fake_embedder)
    assert report.changed == 1
    assert (
        Index.open(config.index_dir, fake_embedder).lexical("Italy wheat", 1)[0].chunk.doc_id == "wheat.txt"
    )


def test_a_damaged_record_of_the_last_scan_costs_only_a_fresh_read(config, fake_embedder):
    run(config, fake_embedder)
    (config.index_dir / "scanned.sqlite").write_bytes(b"not a database" * 100)
    (config.docs / "new.txt").write_text("A new school opened in Herat in the spring.")
    report = run(config, fake_embedder)
    assert (report.added, report.unchanged) == (1, len(DOCS) + len(MORE))
    again = run(config, fake_embedder)
    assert again.up_to_date and again.unchanged == len(DOCS) + len(MORE) + 1


def test_ids_follow_the_folder_indexed_now_not_the_one_an_earlier_build_indexed(config, fake_embedder):
    (config.docs / "river.txt").write_text("A river report at the top of the folder.")
    an_hour_ago = time.time_ns() - 3_600_000_000_000
    for path in config.docs.rglob("*.*"):
        os.utime(path, ns=(an_hour_ago, an_hour_ago))  # old enough for the scan record to be used
    run(Config(docs=config.docs / "notes", index_dir=config.index_dir, chunk_tokens=16, chunk_overlap=4),
        fake_embedder)  # fmt: skip
    report = run(config, fake_embedder)
    assert report.skipped == []
    ids = {d.id for d in Index.open(config.index_dir, fake_embedder).documents()}
    assert ids == {*DOCS, *MORE, "river.txt"}


def test_a_large_build_says_what_it_does_once_its_progress_bars_are_done(tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "LOUD_CHUNKS", 1)  # as a build of 50,000 chunks and more does
    monkeypatch.setattr(generation, "LOUD_CHUNKS", 1)
    docs = tmp_path / "docs"
    config = Config(docs=make_docs(docs), index_dir=tmp_path / "index", chunk_tokens=16, chunk_overlap=4)
    said: list[str] = []
    build(config, FakeEmbedder(), progress=True, log=said.append)
    assert any(line.startswith("building the search indexes of") for line in said), said
    for i in range(segment.MERGE_FACTOR):  # small builds, each a segment, until some merge
        (docs / f"new{i}.txt").write_text(f"Report {i} says the harvest grew.")
        build(config, FakeEmbedder(), progress=True, log=said.append)
    assert any(line.startswith("merging ") and "segments of the index" in line for line in said), said
    quiet: list[str] = []
    (docs / "last.txt").write_text("The last report.")
    build(config, FakeEmbedder(), progress=False, log=quiet.append)
    assert not any("building the search" in line or "merging" in line for line in quiet)
