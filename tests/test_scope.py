"""Scoped questions: chosen documents, a folder, a date range, file types. Dense search and BM25
both filter before they rank, so a scope gets its full top k from inside it; an empty scope says so."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import QuestionError
from embeddings.index import Index
from embeddings.scope import Scope
from embeddings.vectors import Vectors
from qa.assistant import Assistant
from qa.cli import main
from tests.fakes import FakeEmbedder, FakeGenerator

WHEAT = "India sent wheat to Afghanistan. The wheat came by road through Iran. Wheat prices fell."
DOCS = {
    **{f"news/wheat-{i}.md": f"---\ndate: 2023-0{i}-01\n---\n{WHEAT}" for i in range(1, 7)},
    "notes/2024/rice.md": "---\ndate: 2024-05-02\n---\nRice harvests in Bengal doubled. Some wheat was sown too.",
    "notes/2024/barley.txt": "date 2024-07-09\nBarley in the valley failed. A little wheat survived.",
    "notes/2024x/millet.txt": "Millet grows in dry land; wheat does not.",
    "notes/corpus.jsonl": json.dumps(
        {"id": "oats", "text": "Oats and wheat were traded.", "date": "2022-01-05"}
    ),
}


@pytest.fixture
def index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Index:
    docs = tmp_path / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    config = Config(docs=docs, index_dir=tmp_path / "index", chunk_tokens=12, chunk_overlap=2)
    build(config, fake_embedder, progress=False, log=lambda m: None)
    return Index.open(config.index_dir, fake_embedder)


def ids(hits) -> set[str]:
    return {h.chunk.doc_id for h in hits}


def test_a_folder_is_matched_whole_and_not_by_a_name_that_starts_alike():
    scope = Scope(under="notes/2024/")
    assert scope.admits("a", "notes/2024/rice.md", None)
    assert not scope.admits("b", "notes/2024x/millet.txt", None)
    assert Scope(under="notes").admits("oats", "notes/corpus.jsonl:1", None), (
        "a .jsonl line is in its file's folder"
    )
    assert Scope(under="./notes/").under == "notes" and not Scope(under=".") and not Scope(under="./")


def test_dates_are_inclusive_and_undated_documents_are_outside_a_date_range():
    scope = Scope.parse(since="2024-05-02", until="2024-07-09")
    assert scope.admits("a", "a.md", "2024-05-02") and scope.admits("b", "b.md", "2024-07-09")
    assert not scope.admits("c", "c.md", "2024-07-10") and not scope.admits("d", "d.md", None)
    with pytest.raises(QuestionError, match="like 2024-05-31"):
        Scope.parse(since="May 2024")
    with pytest.raises(QuestionError, match="date range is empty"):
        Scope.parse(since="2024-02-01", until="2024-01-01")


def test_a_scope_gets_its_full_top_k_from_inside_it_in_dense_and_bm25(index):
    # Six documents outside the scope say "wheat" far more often than any inside it.
    scope = Scope(under="notes")
    for search in (index.dense, index.lexical):
        everywhere = search("wheat", 3)
        assert ids(everywhere) <= {f"news/wheat-{i}.md" for i in range(1, 7)}
        inside = search("wheat", 4, scope)
        assert len(inside) == 4 and ids(inside) == {"notes/2024/rice.md", "notes/2024/barley.txt",
                                                     "notes/2024x/millet.txt", "oats"}  # fmt: skip


def test_documents_dates_and_types_narrow_the_scope_together(index):
    assert ids(index.lexical("wheat", 10, Scope(doc_ids={"oats", "news/wheat-2.md"}))) == {
        "oats",
        "news/wheat-2.md",
    }
    assert ids(index.dense("wheat", 10, Scope.parse(since="2024-01-01"))) == {
        "notes/2024/rice.md",
        "notes/2024/barley.txt",
    }
    assert ids(index.dense("wheat", 10, Scope(under="notes", formats={".TXT"}))) == {
        "notes/2024/barley.txt", "notes/2024x/millet.txt"}  # fmt: skip
    assert ids(index.lexical("wheat", 10, Scope(formats={"jsonl"}, until=date(2022, 12, 31)))) == {"oats"}


def test_a_changed_document_is_found_in_its_scope_once_in_its_new_version(tmp_path, index, fake_embedder):
    (tmp_path / "docs/notes/2024/rice.md").write_text(
        "---\ndate: 2024-05-02\n---\nRice and more wheat, rewritten."
    )
    config = Config(docs=tmp_path / "docs", index_dir=tmp_path / "index", chunk_tokens=12, chunk_overlap=2)
    build(config, fake_embedder, progress=False, log=lambda m: None)
    fresh = Index.open(config.index_dir, fake_embedder)
    hits = fresh.lexical("wheat", 10, Scope(doc_ids={"notes/2024/rice.md"}))
    assert len(hits) == 1 and hits[0].chunk.text.endswith("Rice and more wheat, rewritten.")


def test_an_approximate_segment_searches_a_small_scope_exactly():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = Vectors.empty(16)
    flat.add(vectors)
    hnsw = flat.settle(exact_limit=100)
    assert hnsw.approximate
    allowed = np.zeros(3000, dtype=bool)
    allowed[rng.choice(3000, 40, replace=False)] = True
    query = vectors[:2]
    scores, rows = hnsw.search_within(query, 10, allowed)
    truth = np.argsort(-(query @ vectors[allowed].T), axis=1)[:, :10]
    assert (rows == np.flatnonzero(allowed)[truth]).all()
    assert allowed[flat.search_within(query, 50, allowed)[1]].all() and flat.search_within(
        query, 50, allowed
    )[1].shape == (2, 40)


def assistant(index: Index) -> Assistant:
    generator = FakeGenerator("Wheat was sent. [1]")
    return Assistant(index, generator, Config(index_dir=index.folder.parent, min_relevance=0.0, top_k=3))


def test_a_scoped_question_reads_passages_from_the_scope_only(index):
    answer = assistant(index).ask("Where did the wheat go?", Scope(under="notes/2024"))
    assert {p.doc_id for p in answer.passages} == {"notes/2024/rice.md", "notes/2024/barley.txt"}


def test_an_empty_scope_says_so_instead_of_abstaining(index):
    with pytest.raises(
        QuestionError, match=r"no indexed document matches the scope \(documents under reports/"
    ):
        assistant(index).stream("Where did the wheat go?", Scope(under="reports"))
    with pytest.raises(QuestionError, match="no document 'nope.txt' in the index"):
        assistant(index).ask("Where did the wheat go?", Scope(doc_ids={"nope.txt", "oats"}))


def test_docqa_search_takes_a_scope(index, monkeypatch, capsys):
    monkeypatch.setattr(Embedder, "load", lambda name, device=None, dtype=None: FakeEmbedder(name))
    folder = str(index.folder.parent)
    assert main(["search", "wheat", "--index", folder, "--under", "notes", "--format", "txt", "--json"]) == 0
    assert {h["doc_id"] for h in json.loads(capsys.readouterr().out)} == {
        "notes/2024/barley.txt",
        "notes/2024x/millet.txt",
    }
    assert main(["search", "wheat", "--index", folder, "--since", "2030-01-01"]) == 2
    assert (
        "no indexed document matches the scope (documents dated 2030-01-01 or later)"
        in capsys.readouterr().err
    )
    assert main(["search", "wheat", "--index", folder, "--until", "last week"]) == 2
    assert "until must be a date like 2024-05-31" in capsys.readouterr().err


def test_the_page_asks_within_the_documents_and_dates_picked(tmp_path):
    from qa.service import Service
    from qa.web import Handlers

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "old.md").write_text("---\ndate: 2019-01-01\n---\nThe wheat went to Iran.")
    (docs / "new.md").write_text("---\ndate: 2024-01-01\n---\nThe wheat went to Afghanistan.")
    config = Config(docs=docs, index_dir=tmp_path / "index", min_relevance=0.0)
    service = Service(config, FakeGenerator("The wheat went to Afghanistan. [1]"), FakeEmbedder()).start(
        background=False
    )
    handlers = Handlers(service)
    *_, (_, _, data) = handlers.ask("Where did the wheat go?", ["new.md"], "", "")
    assert {p["doc_id"] for p in data["passages"]} == {"new.md"}
    *_, (_, _, data) = handlers.ask("Where did the wheat go?", [], "2018-01-01", "2020-12-31")
    assert {p["doc_id"] for p in data["passages"]} == {"old.md"}
    *_, (html, _, data) = handlers.ask("Where did the wheat go?", [], "2030-01-01", None)
    assert (
        "no indexed document matches the scope (documents dated 2030-01-01 or later)" in html
        and "error" in data
    )
