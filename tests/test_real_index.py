"""The index with the real MiniLM model on the sample article, through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from embeddings.builder import build
from embeddings.chunker import chunk_text
from embeddings.config import Config
from embeddings.index import Index

ROOT = Path(__file__).resolve().parent.parent
DOCQA = [sys.executable, "-m", "qa.cli"]


def test_real_chunks_are_never_truncated_by_the_model(minilm):
    text = (ROOT / "seeds/000_ef5301ee062fc8f6.txt").read_text() * 3
    config = Config()
    spans = chunk_text(text, minilm.tokenize, config.chunk_tokens, config.chunk_overlap)
    tokenizer = minilm.model.tokenizer
    for s in spans:
        ids = tokenizer(text[s.start : s.end])["input_ids"]  # with [CLS] and [SEP]
        assert len(ids) - 2 <= config.chunk_tokens <= minilm.max_tokens
        assert len(ids) <= minilm.model.max_seq_length


def test_vectors_are_unit_length(minilm):
    vectors = minilm.embed(["one short text", "another, somewhat longer text about wheat and Iran"])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_mediator_passage_comes_first(minilm, seeds_copy, tmp_path):
    config = Config(docs=seeds_copy, index_dir=tmp_path / "index")
    report = build(config, minilm, progress=False)
    assert report.documents == 1 and report.chunks >= 3
    index = Index.open(config.index_dir, minilm)
    dense = index.dense("Who mediated the meeting?", 3)
    assert "Ismail Khan" in dense[0].chunk.text
    assert dense[0].score > dense[-1].score
    assert "Ismail Khan" in index.lexical("mediator", 3)[0].chunk.text  # stemmed: mediator ~ mediated
    doc = index.documents()[0]
    assert doc.metadata == {"date": "2022-01-10"}


def test_a_question_embedded_beside_bm25_finds_the_same_passages_on_one_core(
    minilm, seeds_copy, tmp_path, monkeypatch
):
    import threading

    import torch

    from qa.retriever import Retriever

    config = Config(docs=seeds_copy, index_dir=tmp_path / "index")
    build(config, minilm, progress=False)
    index = Index.open(config.index_dir, minilm)
    in_turn = Retriever.of(index, config)
    beside = Retriever.of(index, config)
    beside.beside = 0  # as in an index of BESIDE rows or more
    cores: list[tuple[str, int]] = []
    embed = minilm.embed

    def watched(texts):
        cores.append((threading.current_thread().name, torch.get_num_threads()))
        return embed(texts)

    monkeypatch.setattr(minilm, "embed", watched)
    for question in ("Who mediated the meeting?", "How much wheat did India give?", "xylophone"):
        cores.clear()
        a, b = in_turn(question), beside(question)
        assert a.passages == b.passages and (a.top_score, a.lexical) == (b.top_score, b.lexical), question
        (asking, asking_cores), (other, other_cores) = cores
        assert asking == threading.current_thread().name and asking_cores == torch.get_num_threads()
        assert other != asking and other_cores == 1


def docqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DOCQA, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_cli_builds_then_finds_nothing_to_embed_then_searches(seeds_copy, tmp_path):
    index_dir = str(tmp_path / "index")
    first = docqa("index", str(seeds_copy), "--index", index_dir)
    assert first.returncode == 0, first.stderr
    assert "Indexed 1 document, " in first.stdout and "1 added" in first.stdout
    assert "documents: 100%" in first.stderr and "embedding: 100%" in first.stderr  # progress bars
    second = docqa("index", str(seeds_copy), "--index", index_dir)
    assert second.returncode == 0 and "up to date, nothing to embed" in second.stdout
    found = docqa("search", "Who mediated the meeting?", "--index", index_dir, "--json", "--k", "2")
    hits = json.loads(found.stdout)
    assert "Ismail Khan" in hits[0]["text"] and hits[0]["doc_id"] == "000_ef5301ee062fc8f6.txt"
    text = (seeds_copy / hits[0]["doc_id"]).read_text()
    assert text[hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]


def test_cli_errors_are_clear_and_exit_non_zero(tmp_path):
    missing = docqa("search", "anything", "--index", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no index in" in missing.stderr and "Traceback" not in missing.stderr
    no_docs = docqa("index", str(tmp_path / "nowhere"), "--index", str(tmp_path / "i"))
    assert no_docs.returncode == 2 and "no documents at" in no_docs.stderr
    bad = docqa("index", "--chunk-tokens", "0")
    assert bad.returncode == 2 and "must be 1 or more" in bad.stderr
