"""Pages, scopes and export with the real models (MiniLM and the packaged generators), through the
Python API and the command line, on a collection of a PDF, a Word file, a note and the article.
Answers whose citations must carry pages come from the default model: the small one, given the
PDF's one passage alone, writes a row of citation marks instead of a sentence."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.scope import Scope
from qa import models, to_markdown
from qa.assistant import Assistant
from tests.conftest import ROOT
from tests.documents_corpus import make

QUESTION = "What happened to the barley harvest in Kettleby?"


@pytest.fixture(scope="module")
def collection(minilm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents")
    config = Config(docs=make(folder / "docs"), index_dir=folder / "index", generator=models.SMALL)
    build(config, minilm, progress=False, log=lambda m: None)
    return config


@pytest.fixture(scope="module")
def small(collection, minilm) -> Assistant:
    return Assistant.open(config=collection, embedder=minilm)


@pytest.fixture(scope="module")
def default(collection, minilm) -> Assistant:
    return Assistant.open(config=replace(collection, generator=models.DEFAULT), embedder=minilm)


@pytest.mark.slow
def test_a_question_scoped_to_the_pdf_is_answered_from_it_with_pages(default):
    answer = default.ask(QUESTION, Scope(doc_ids={"report.pdf"}))
    assert not answer.abstained, answer.reason
    assert {p.doc_id for p in answer.passages} == {"report.pdf"}
    assert all(re.fullmatch(r"pp?\. \d(–\d)?", p.page_label) for p in answer.passages)
    assert answer.citations and all(c.page_label for c in answer.citations)
    best = max(answer.citations, key=lambda c: c.support)
    assert "3" in best.page_label, "the passage that holds the answer is on page 3"
    markdown = to_markdown([(QUESTION, answer)])
    assert f"## {QUESTION}" in markdown and "`report.pdf`" in markdown and best.page_label in markdown


def test_a_date_range_leaves_out_undated_and_other_documents(small):
    answer = small.ask("What did the mill grind?", Scope.parse(since="2019-01-01", until="2019-12-31"))
    assert {p.doc_id for p in answer.passages} == {"notes/mill.md"}


def docqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)  # fmt: skip


@pytest.mark.slow
def test_cli_ask_with_a_scope_prints_pages_and_json_has_them(collection):
    common = ["--index", str(collection.index_dir), "--model", models.DEFAULT]
    done = docqa("ask", QUESTION, *common, "--doc", "report.pdf", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {p["doc_id"] for p in answer["passages"]} == {"report.pdf"}
    assert answer["citations"] and all(
        c["page"] in (1, 2, 3) and c["page_label"] for c in answer["citations"]
    )
    shown = docqa("ask", QUESTION, *common, "--under", ".", "--format", "pdf")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"\(report\.pdf, pp?\. [\d–]+, chars \d+-\d+;", shown.stdout), shown.stdout
    empty = docqa("ask", QUESTION, *common, "--under", "notes", "--format", "pdf")
    assert empty.returncode == 2 and "no indexed document matches the scope" in empty.stderr
