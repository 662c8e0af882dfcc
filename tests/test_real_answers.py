"""The real answering path with the small packaged model (Qwen2.5-Coder-0.5B) on the sample
article: loading, asking, streaming, summarising, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings.config import Config
from embeddings.errors import DocqaError
from qa import models
from qa.assistant import Assistant

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def small(seed_index, minilm) -> Assistant:
    config = Config(index_dir=seed_index, generator=models.SMALL)
    return Assistant.open(config=config, embedder=minilm)


def test_the_packaged_model_is_checked_converted_and_cached_once():
    folder = models.converted(models.QWEN_CODER_05B)
    assert (folder / "COMPLETE").read_text().strip() == models.QWEN_CODER_05B.sha256
    assert (folder / "model.safetensors").stat().st_size > 100_000_000
    assert models.locate(models.SMALL) == folder


def test_a_packaged_model_whose_checksum_differs_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCQA_CACHE", str(tmp_path))
    tampered = models.PackagedModel(
        **{**models.QWEN_CODER_05B.__dict__, "name": "tampered", "parts": models.QWEN_CODER_05B.parts[:1]}
    )
    with pytest.raises(DocqaError, match="does not match its known checksum"):
        models.converted(tampered, report=lambda m: None)
    left = [p.name for p in (tmp_path / "models").iterdir() if p.suffix != ".lock"]  # the lock file stays
    assert not left, "nothing half-made is left in the cache"


def test_ask_returns_an_answer_with_sources_in_place(small):
    answer = small.ask("Where did the meeting take place?")
    assert answer.model == models.SMALL and answer.timings["total"] > 0
    assert answer.runtime == "onnx-int4 (int4, cpu)", "how the model ran is part of the answer"
    assert answer.passages
    text = small.index.document_text(answer.passages[0].doc_id)
    for p in answer.passages:
        assert text[p.start : p.end] == p.text
    for c in answer.citations:
        assert 1 <= c.number <= len(answer.passages) and text[c.start : c.end] == c.text
    assert json.loads(json.dumps(answer.to_dict()))["question"] == "Where did the meeting take place?"


def test_stream_yields_the_reply_piece_by_piece(small):
    stream = small.stream("How much wheat did India give to Afghanistan?")
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == stream.answer.raw.strip()


def test_a_follow_up_goes_through_the_rewrite_and_is_answered_with_the_earlier_turn(small):
    # The 0.5B model often gives the pronoun back ("Where was he governor? Ismail Khan"), which
    # the checks refuse; it is then asked what "he" stands for. The default model names him in
    # the rewrite itself (tests/test_default_model.py).
    chat = small.chat()
    first = chat.ask("Who mediated the meeting between Massoud and Muttaqi?")
    assert "Ismail Khan" in first.text, first
    calls = []
    generate = small.generator.generate
    small.generator.generate = lambda messages, most: calls.append(messages) or generate(messages, most)
    try:
        second = chat.ask("Where was he governor?")
    finally:
        del small.generator.generate
    assert "Ismail Khan" in calls[0][-1]["content"], "the rewrite reads the first turn"
    if len(calls) > 1:  # the rewrite kept "he": the model was asked about it, with the first turn
        assert calls[1][-1]["content"].endswith('What does "he" stand for?')
        assert "Ismail Khan" in calls[1][-1]["content"] and chat.last_resolve
    if len(calls) > 2:  # its reply was not taken: it chose among the names the first turn said
        assert calls[2][-1]["content"].endswith('Which of the names does "he" stand for?')
        assert "Names: Ismail Khan" in calls[2][-1]["content"] and chat.last_choice
    assert len(calls) <= 3
    assert second.standalone in ("Where was he governor?", "Where was Ismail Khan governor?")
    assert second.question == "Where was he governor?" and second.passages and second.timings["rewrite"] > 0
    assert [t.question for t in chat.turns] == [first.question, second.question]


def test_summarize_the_sample_article(small):
    summary = small.summarize("000_ef5301ee062fc8f6.txt")
    assert len(summary.text.split()) > 10 and summary.model == models.SMALL
    text = small.index.document_text("000_ef5301ee062fc8f6.txt")
    assert all(text[p.start : p.end] == p.text for p in summary.sources)


def docqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_a_script_that_closes_a_stream_early_and_ends_exits_cleanly(seed_index):
    """The process ends while the model may be mid-step for the stream it left: the step ends
    first (ONNX Runtime, torn down under a running step, aborts the process)."""
    script = f"""
from embeddings.config import Config
from qa.assistant import Assistant
assistant = Assistant.open(config=Config(index_dir={str(seed_index)!r}, generator={models.SMALL!r}))
with assistant.stream("Summarise the whole meeting in detail.") as stream:
    print("first piece:", next(stream))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "first piece:" in done.stdout and "terminate called" not in done.stderr


def test_cli_ask_json_and_bad_input(seed_index):
    common = ["--index", str(seed_index), "--model", models.SMALL]
    done = docqa("ask", "Who mediated the meeting?", *common, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {"text", "abstained", "citations", "passages", "timings", "model"} <= set(answer)
    empty = docqa("ask", "   ", *common)
    assert empty.returncode == 2 and "question is empty" in empty.stderr and "Traceback" not in empty.stderr
    unknown = docqa("summarize", "no-such-doc", *common)
    assert unknown.returncode == 2 and "no document 'no-such-doc'" in unknown.stderr


def test_the_next_docqa_ask_reads_only_what_its_prompt_does_not_share_with_the_last_one(seed_index, capsys):
    """Each `docqa ask` is a process of its own; the next question about the same documents starts
    from the prompts the last one read, written to the model cache."""
    from qa import cli, generator

    common = ["--index", str(seed_index), "--model", models.SMALL, "--json"]
    config = Config(index_dir=seed_index, generator=models.SMALL)

    def ask(question: str) -> tuple[dict, generator.LocalGenerator]:
        generator._load.cache_clear()  # a new process: nothing read yet
        assert cli.main(["ask", question, *common]) == 0
        return json.loads(capsys.readouterr().out), generator.from_config(config)  # the one it used

    generator._load.cache_clear()
    prompts = generator.from_config(config).prompts
    assert prompts is not None and prompts.is_relative_to(models.cache_root())
    prompts.unlink(missing_ok=True)
    first, used = ask("Who mediated the meeting?")
    assert prompts.is_file() and used.scheduler.batch.tokens_reused == 0
    second, used = ask("What did India give?")
    batch = used.scheduler.batch
    assert batch.tokens_reused > 100 and batch.tokens_read < batch.tokens_reused, (
        "the passages were not read again"
    )
    assert "wheat" in second["text"].lower() and "Ismail Khan" in first["text"]


def test_a_server_starts_from_the_prompts_the_last_one_read_and_writes_its_own_when_it_stops(
    seed_index, minilm
):
    """`docqa serve` recalls the kept prompts when its generator loads and writes its own when it
    stops, as `docqa ask` does for each question: the first question after a restart reads only
    what its prompt does not share with those the last server read."""
    from qa import generator
    from qa.service import Service

    config = Config(index_dir=seed_index, generator=models.SMALL)

    def serve() -> Service:
        generator._load.cache_clear()  # a new process: nothing read yet
        return Service(config, embedder=minilm).start(background=False)

    generator._load.cache_clear()
    prompts = generator.from_config(config).prompts
    assert prompts is not None
    prompts.unlink(missing_ok=True)
    first = serve()
    answer = first.assistant.ask("Who mediated the meeting?")
    assert first.assistant.generator.scheduler.batch.tokens_reused == 0 and not prompts.exists()
    first.stop()
    assert prompts.is_file(), "written when the server stops"
    second = serve()
    again = second.assistant.ask("What did India give?")
    batch = second.assistant.generator.scheduler.batch
    second.stop()
    assert batch.tokens_reused > 100 and batch.tokens_read < batch.tokens_reused, (
        "the passages were read again"
    )
    assert "Ismail Khan" in answer.text and "wheat" in again.text.lower()
