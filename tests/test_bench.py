"""The benchmark's measurements of a growing index, on a small synthetic collection and a fake
model (the numbers themselves come from `make bench`)."""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from bench import query
from embeddings.builder import build
from embeddings.config import Config
from embeddings.index import Index
from embeddings.verify import verify
from tests.conftest import ROOT
from tests.fakes import FakeEmbedder


def test_the_synthetic_collection_is_an_index_that_docqa_updates_like_any_other(tmp_path: Path):
    embedder = FakeEmbedder()
    index_dir = query.synthetic_index(tmp_path / "synthetic", 300, embedder)
    assert verify(index_dir).ok  # its vectors are synthetic, not its texts'
    config = Config(docs=index_dir.parent / "docs", index_dir=index_dir)
    assert build(config, embedder, progress=False, log=lambda m: None).up_to_date
    assert query.synthetic_index(tmp_path / "synthetic", 300, embedder) == index_dir  # made once


def test_adding_one_document_is_measured_for_a_build_and_an_upload_and_leaves_the_collection_as_it_was(
    tmp_path: Path,
):
    embedder = FakeEmbedder()
    index_dir = query.synthetic_index(tmp_path / "synthetic", 300, embedder)
    before = {d.id for d in Index.open(index_dir, embedder).documents()}
    cost = query.add_one_document(index_dir, embedder)
    for path in ("make_index", "upload"):
        assert cost[path]["embedded_chunks"] == 1 and cost[path]["beyond_embedding_s"] >= 0
    assert {d.id for d in Index.open(index_dir, embedder).documents()} == before


def test_the_open_cost_counts_the_bytes_an_open_reads(tmp_path: Path):
    embedder = FakeEmbedder()
    index_dir = query.synthetic_index(tmp_path / "synthetic", 3000, embedder)
    cost = query.open_cost(index_dir, embedder)
    assert cost["chunks"] == 3000 and 0 < cost["bytes_read"] < cost["index_bytes"]


def test_memory_growth_below_an_earlier_higher_peak_is_seen():
    from bench.indexing import Resident

    earlier = np.ones(200 * 2**20 // 8)  # a peak first, as loading the model makes one
    del earlier
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Resident() as memory:
        grown = np.ones(80 * 2**20 // 8)  # then 80 MB of growth while "indexing"
    assert memory.peak_mb - memory.start_mb >= 60
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss == peak_before, "ru_maxrss cannot see it"
    del grown


def test_the_report_shows_the_growth_measurements_against_their_goals(tmp_path: Path):
    from bench import report

    embedder = FakeEmbedder()
    index_dir = query.synthetic_index(tmp_path / "synthetic", 300, embedder)
    growth = {**query.add_one_document(index_dir, embedder), "open": query.open_cost(index_dir, embedder)}
    machine = {"cpu": "cpu", "cores": 2, "bf16": False, "gpu": None, "torch": "2"}
    run = {
        "date": "today",
        "seconds": 60,
        "command": "python -m bench --only grow",
        "machine": machine,
        "settings": {},
    }
    text = report.markdown({"growth": [growth], "run": run}, [])
    assert "## Adding a document, opening the index" in text and "| 300 |" in text and "<= 2 s: met" in text


def sample_assistant(minilm, tmp_path: Path, answer_tokens: int):
    """The Python API over the sample article's index, answering with the real small model."""
    from qa import models
    from qa.assistant import Assistant
    from tests.conftest import ROOT

    config = Config(
        docs=ROOT / "seeds", index_dir=tmp_path / "index", generator=models.SMALL, answer_tokens=answer_tokens
    )
    build(config, minilm, progress=False, log=lambda m: None)
    return Assistant.open(config=config, embedder=minilm)


def test_prompt_reuse_is_measured_against_reading_every_prompt_whole(minilm, tmp_path: Path):
    """The runtime's kept key/value cache, on and off, with the real small model: the questions
    read fewer prompt tokens with it, and the runtime is left as it was."""
    from bench.answering import prompt_reuse

    assistant = sample_assistant(minilm, tmp_path, answer_tokens=24)
    kept = assistant.generator.scheduler.batch.reuse_from
    out = prompt_reuse(assistant, rounds=1)
    whole, reused = out["read whole"], out["shared beginning reused"]
    assert whole["prompt_tokens_read"] > 300, "every prompt read whole: the instructions and passages"
    assert reused["prompt_tokens_read"] < whole["prompt_tokens_read"] - 50, (
        "the shared instructions not read again"
    )
    assert out["time_ratio"] > 0 and assistant.generator.scheduler.batch.reuse_from == kept


def test_drafted_answers_are_measured_against_one_token_a_step(minilm, tmp_path: Path):
    """The runtime's drafts, on and off, with the real small model: the answers are the same,
    tokens were drafted, the runtime is left as it was, and the report says it."""
    from bench import report
    from bench.answering import QUESTIONS, drafting

    assistant = sample_assistant(minilm, tmp_path, answer_tokens=32)
    shipped = assistant.generator.scheduler.batch.draft
    out = drafting(assistant, rounds=1)
    assert out["tokens_drafted"] > 0 and assistant.generator.scheduler.batch.draft == shipped
    assert out["same_answers"] >= len(QUESTIONS) - 1, out
    assert out["time_ratio"] > 0
    text = "\n".join(report.drafting(out))
    assert f"the same answer to {out['same_answers']} of {len(QUESTIONS)} questions" in text


def test_passages_in_reading_order_are_measured_against_best_first(minilm, tmp_path: Path):
    """The sample article's questions with the passages in reading order and best first, with the
    real small model: in reading order its prompts begin alike up to the question, so the runtime
    reads fewer prompt tokens; the assistant is left with its own setting, and the report says it."""
    from bench import report
    from bench.answering import QUESTIONS, passage_orders

    assistant = sample_assistant(minilm, tmp_path, answer_tokens=16)
    config = assistant.config
    out = passage_orders(assistant, rounds=1)
    rank, reading = out["rank"], out["reading"]
    assert rank["prompt_tokens_read"] > 100, "best first, the questions' prompts differ in their passages"
    assert reading["prompt_tokens_read"] < rank["prompt_tokens_read"] / 2, (
        "in reading order only the question and what follows it is read again"
    )
    assert set(reading["answers"]) == set(QUESTIONS) and assistant.config == config
    text = "\n".join(report.passage_order(out))
    assert (
        f"prompt tokens read per answer {reading['prompt_tokens_read']} against {rank['prompt_tokens_read']}"
        in text
    )


def test_a_restarted_server_is_timed_on_a_new_question_with_the_prompts_it_wrote_and_with_none(
    monkeypatch, tmp_path: Path
):
    """The first server starts with no kept prompts and writes them when it stops; the restart
    finds them and is asked a question the first was not; the server it is compared with finds
    none; the report gives both and their ratio."""
    from types import SimpleNamespace

    from bench import answering, report

    prompts = tmp_path / "cache" / "prompts.npz"
    prompts.parent.mkdir()
    prompts.write_bytes(b"left by an earlier command")
    monkeypatch.setattr(answering, "from_config", lambda config: SimpleNamespace(prompts=prompts))
    started = []

    def serve(index_dir: Path, docs: Path, questions: list[str]) -> dict:  # recall, answer, write
        started.append((questions, prompts.exists()))
        prompts.write_bytes(b"kept")
        first = 4.0 if started[-1][1] else 10.0
        return {"to_first_answer_s": first + 20, "first_answer_s": first, "peak_rss_gb": 2.3}

    monkeypatch.setattr(answering, "_serve", serve)
    out = answering.serving(tmp_path / "index", tmp_path / "docs", Config(), answers=3)
    q = answering.QUESTIONS
    assert started == [(q[:3], False), ([q[3]], True), ([q[3]], False)]
    assert out["cold_start_to_first_answer_s"] == 30.0 and out["peak_rss_gb"] == 2.3
    assert out["restart"]["ratio"] == 2.5 and out["restart"]["question"] == q[3]
    text = "\n".join(report._restart(out["restart"]))
    assert "answered in 4.0 s, against 10.0 s in a server started with no kept prompts (2.5x)" in text
    skipped = report._restart({"skipped": "the transformers runtime keeps no prompts"})
    assert "skipped (the transformers runtime keeps no prompts)" in skipped[0]


def test_the_command_line_is_timed_after_a_question_whose_prompts_it_recalls_and_with_none(
    monkeypatch, tmp_path: Path
):
    """Each timed `docqa ask` of the recalled kind finds the file the question before it wrote;
    each of the other kind finds none; the report gives both and their ratio."""
    from types import SimpleNamespace

    from bench import answering, report

    prompts = tmp_path / "cache" / "prompts.npz"
    monkeypatch.setattr(answering, "from_config", lambda config: SimpleNamespace(prompts=prompts))
    asked = []

    def ask(command: list[str], **kwargs) -> None:  # as `docqa ask` does: recall, answer, remember
        asked.append((command[command.index("ask") + 1], prompts.exists()))
        prompts.parent.mkdir(exist_ok=True)
        prompts.write_bytes(b"x" * 2**21)
        time.sleep(0.02)

    monkeypatch.setattr(answering.subprocess, "run", ask)
    out = answering.command_line(tmp_path / "index", Config(), rounds=2)
    q = answering.QUESTIONS
    assert asked == [(q[0], False), (q[1], True), (q[1], False), (q[2], False), (q[1], False), (q[2], True)]
    assert [len(out["rounds"][m]) for m in ("recalled", "alone")] == [2, 2] and out["file_mb"] == 2
    text = "\n".join(report._command_line(out))
    assert f"{out['speedup']}x" in text and f"{out['median_s']['alone']} s with none to recall" in text


def test_only_a_whole_bench_run_writes_to_reports():
    """reports/bench.md is what one whole run measured, never a partial run's sections."""
    from bench.__main__ import destination

    assert destination(argparse.Namespace(out=None, only=None)) == Path("reports")
    assert destination(argparse.Namespace(out=None, only=["grow"])) == Path("test-artifacts/bench")
    assert destination(argparse.Namespace(out=Path("/tmp/x"), only=["grow"])) == Path("/tmp/x")


def test_a_build_commands_start_up_is_read_from_its_own_progress_bar(tmp_path: Path):
    """The Ray section splits each `docqa index` command at its first vectors: a progress bar
    that the parser no longer reads would put the split at the command's end."""
    from bench.indexing import _docqa_index

    command = _docqa_index(ROOT / "seeds", tmp_path / "index", [])
    assert command.chunks > 0
    assert 0 < command.first_vectors < command.seconds
    assert command.rate >= 0


def test_answer_times_are_split_at_the_first_token_alone_and_with_askers_at_once(minilm, tmp_path: Path):
    """The answering section says where an answer's time went, with the real small model: the
    wait for each first token and the prompt tokens read, alone and with askers at once, and what
    a decoding step and a prompt token cost."""
    from bench import report
    from bench.answering import QUESTIONS, asking
    from qa import models
    from qa.assistant import Assistant
    from tests.conftest import ROOT

    config = Config(
        docs=ROOT / "seeds", index_dir=tmp_path / "index", generator=models.SMALL, answer_tokens=16
    )
    build(config, minilm, progress=False, log=lambda m: None)
    out = asking(Assistant.open(config=config, embedder=minilm), users=2)
    assert all(0 < a["first_token"] < a["seconds"] for a in out["alone"]), out["alone"]
    assert len(out["first_token_each_together"]) == 2 and min(out["first_token_each_together"]) > 0
    assert out["prompt_tokens_read_alone"] > 0 and out["prompt_tokens_read_together"] > 0
    text = "\n".join(report.asking(out))
    assert f"| {QUESTIONS[0]} | {out['alone'][0]['seconds']} | {out['alone'][0]['first_token']} |" in text
    assert f"{out['prompt_tokens_read_alone']} prompt tokens read per answer" in text
    # what a decoding step costs with one and two sequences in it, and a prompt token
    steps = out["decode_step_seconds"]
    assert set(steps) == {"1", "2"} and all(steps.values()) and out["prompt_seconds_per_token"] > 0
    assert f"a step for 2 costs {steps['2'] / steps['1']:.2f}x the step for one" in text


def test_worker_threads_spinning_within_a_step_are_measured_against_sleeping(minilm, tmp_path: Path):
    """The CPU runtime's thread setting, with the real small model: both settings decode in a
    session of their own, neither leaves threads busy after a decode, the generator keeps its own
    runtime, and the report states the ratio it measured."""
    from bench import report
    from bench.answering import thread_spinning
    from qa import models
    from qa.assistant import Assistant
    from tests.conftest import ROOT

    config = Config(
        docs=ROOT / "seeds", index_dir=tmp_path / "index", generator=models.SMALL, answer_tokens=16
    )
    build(config, minilm, progress=False, log=lambda m: None)
    assistant = Assistant.open(config=config, embedder=minilm)
    shipped = assistant.generator.scheduler
    messages, _ = assistant.prompt("Who mediated the meeting?", assistant.search("Who mediated the meeting?"))
    out = thread_spinning(assistant, config, assistant.generator.prompt_ids(messages), 1, 8, users=2)
    assert assistant.generator.scheduler is shipped
    for setting in ("spinning", "sleeping"):
        assert out[setting]["decode_tps"][0] > 0 and out[setting]["answers_per_minute_together"][0] > 0
        assert out[setting]["cpu_seconds_after"][0] < 0.1, "threads stop spinning when a step ends"
    text = "\n".join(report.spinning(out))
    assert f"median {out['ratio']['decode_tps']}x; 2 askers at once" in text
    assert f"median {out['ratio']['answers_per_minute_together']}x" in text


def test_retrieval_latency_is_measured_against_the_bare_search_with_bm25_alone_and_the_other_way(
    minilm, tmp_path: Path
):
    from bench import report

    index_dir = query.synthetic_index(tmp_path / "synthetic", 300, minilm)
    row = query.latency(Index.open(index_dir, minilm), minilm, query.synthetic_questions(12), Config())
    assert row["chunks"] == 300 and row["questions"] == 12
    for side in ("docqa", "bare", "bm25", "other_way"):
        assert 0 < row[side]["p50_ms"] <= row[side]["p95_ms"]
    assert (row["embedding"], row["other_way"]["embedding"]) == ("in turn", "beside BM25")  # 300 chunks
    machine = {"cpu": "cpu", "cores": 2, "bf16": False, "gpu": None, "torch": "2"}
    run = {"date": "today", "seconds": 60, "command": "python -m bench --only query", "machine": machine,
           "settings": {}}  # fmt: skip
    text = report.markdown({"query": {"rows": [row], "approximate_recall": {}}, "run": run}, [])
    line = next(x for x in text.splitlines() if x.startswith("| 300 |"))
    other = row["other_way"]
    assert line.endswith(f"| {row['bm25']['p50_ms']} / {row['bm25']['p95_ms']} ms | "
                         f"{other['p50_ms']} / {other['p95_ms']} ms (beside BM25) |")  # fmt: skip


def test_the_runtimes_take_turns_on_prompts_none_has_read_and_the_report_gives_their_medians(monkeypatch):
    from types import SimpleNamespace

    from bench import answering, report
    from qa import models
    from qa.runtimes import ort

    calls: list[tuple[str, int]] = []
    rates = iter([99.0, 20.0, 16.0, 30.0, 25.0, 24.0, 28.0, 17.0, 27.0, 22.0, 18.0, 29.0, 26.0])

    def timed(name: str):
        def run(*args):
            tokens = next(a for a in args if isinstance(a, list))
            calls.append((name, len(tokens)))
            return {"ttft_s": 10.0, "decode_tps": next(rates)}

        return run

    prompt = list(range(100, 1100))
    monkeypatch.setattr(answering, "long_prompt", lambda generator, data: prompt)
    monkeypatch.setattr(answering, "docqa_speed", timed("docqa"))
    monkeypatch.setattr(answering, "onnxruntime_genai_speed", timed("genai"))
    monkeypatch.setattr(answering, "llama_cpp_speed", timed("llama"))
    monkeypatch.setattr(
        answering, "transformers_speed", lambda config, tokens, n: {"ttft_s": 9.0, "decode_tps": 4.0}
    )
    monkeypatch.setattr(models, "int4", lambda name: Path("model"))
    batch = ort.OrtBatch(SimpleNamespace(get_inputs=lambda: []), kv_heads=2, head_size=64, huge_pages=3 << 20)
    generator = SimpleNamespace(
        name="m", runtime="onnx-int4", dtype="int4", scheduler=SimpleNamespace(batch=batch)
    )
    out = answering.generation(SimpleNamespace(generator=generator), Config(), Path("eval"), Path("m.gguf"),
                               new_tokens=8, rounds=3)  # fmt: skip
    assert calls[0] == ("docqa", 64)  # the warm-up, on the prompt's end: it begins no round's prompt
    assert calls[1:] == [("docqa", 1000), ("docqa", 997), ("genai", 1000), ("llama", 1000),
                         ("llama", 999), ("genai", 999), ("docqa", 996), ("docqa", 999),
                         ("docqa", 998), ("docqa", 995), ("genai", 998), ("llama", 998)]  # fmt: skip
    assert out["rows"]["docqa, one token a step"]["decode_tps"] == 17.0
    docqa, llama = out["rows"]["docqa"], out["rows"]["llama.cpp"]
    assert [r["decode_tps"] for r in docqa["rounds"]] == [20.0, 27.0, 22.0] and docqa["decode_tps"] == 22.0
    assert [r["decode_tps"] for r in llama["rounds"]] == [25.0, 24.0, 26.0] and llama["decode_tps"] == 25.0
    assert out["decode_vs_llama_cpp"] == round(22.0 / 25.0, 2)
    text = "\n".join(report._answers({"answers": out}))
    assert "| 22.0 tok/s | 20.0, 27.0, 22.0 |" in text and "in 3 rounds taking turns" in text
    assert "| docqa, one token a step | int4 (ONNX" in text and "| 17.0 tok/s | 16.0, 17.0, 18.0 |" in text
    assert "docqa's drafts: 1.29x the decode rate of one token a step" in text
    assert "packaged GGUF; 3 MB of it on huge pages)" in text, "the timed session's weights, where they are"


def test_a_distribution_moved_from_the_float_models_is_measured_by_kl_and_the_tokens_picked():
    from bench.blocks import divergence

    rng = np.random.default_rng(0)
    reference = [rng.standard_normal((5, 50)).astype(np.float32) for _ in range(2)]
    assert divergence(reference, reference) == {"kl": 0.0, "same_token": 1.0}
    flatter = [r / 2 for r in reference]  # the same choices, less sure of them
    moved = divergence(reference, flatter)
    assert moved["kl"] > 0 and moved["same_token"] == 1.0
    swapped = [r.copy() for r in reference]
    swapped[0][0] = -swapped[0][0]  # one position's choice turned over
    assert divergence(reference, swapped)["same_token"] == 0.9


def test_each_way_of_writing_the_weights_is_a_model_of_its_own_timed_and_compared_with_the_float_weights():
    """The small packaged model through bench.blocks for real: one 4-bit model per variant, each
    with its block size and its 8-bit modules in its graph; the float model's continuation fed
    back gives logits whose choices are mostly the float model's own; each variant's KL stands
    beside the shipped model's prompt by prompt; the report shows every variant and the shipped one."""
    import onnx

    from bench import blocks, report
    from qa import models
    from qa.generator import load
    from qa.runtimes import ort

    small = load(models.SMALL, batch=1)
    asked = ["Name three colours of the rainbow.", "What is the capital of France?"]
    prompts = [small.prompt_ids([{"role": "user", "content": q}]) for q in asked]
    out = blocks.block_sizes(models.SMALL, prompts[0] * 3, prompts, new_tokens=4, rounds=2, forced=6)

    assert [(row["block"], tuple(row["eight_bit"])) for row in out["rows"]] == list(blocks.VARIANTS)
    assert out["shipped"] == {"block": ort.BLOCK, "eight_bit": list(ort.EIGHT_BIT)}
    assert out["rows"][0]["block"] == ort.BLOCK and tuple(out["rows"][0]["eight_bit"]) == ort.EIGHT_BIT
    assert models.int4(models.SMALL) == models.int4(models.SMALL, eight_bit=ort.EIGHT_BIT), "what docqa runs"
    for row in out["rows"]:
        graph = onnx.load(
            str(
                models.int4(models.SMALL, block=row["block"], eight_bit=tuple(row["eight_bit"]))
                / "model.onnx"
            ),
            load_external_data=False,
        )
        written = {
            (n.name.split("/")[-2], a["bits"], a["block_size"])
            for n in graph.graph.node
            if n.op_type == "MatMulNBits"
            for a in [{x.name: x.i for x in n.attribute}]
        }
        eight = {name for name, bits, _ in written if bits == 8}
        assert {size for _, _, size in written} == {row["block"]}
        assert eight == ({"qkv_proj"} if row["eight_bit"] else set()) | (
            {"o_proj"} if "o_proj" in row["eight_bit"] else set()
        )
        assert len(row["rounds"]) == 2 and row["decode_tps"] > 0 and row["prompt_s"] > 0
        assert 0 <= row["kl"] < 1 and row["same_token"] >= 0.5 and len(row["kl_each"]) == 2
    assert out["rows"][0]["kl_vs_shipped"] == 0 and out["rows"][0]["closer"] == 0
    size = {(row["block"], tuple(row["eight_bit"])): row["weights_mb"] for row in out["rows"]}
    qkv, b = blocks.QKV, ort.BLOCK
    assert size[b, (*qkv, "o_proj")] > size[b, qkv] > size[b, ()], "more matrices in 8 bits, more bytes"
    assert size[32, ()] > size[64, ()] > size[128, ()], "fewer scales, fewer bytes"
    text = "\n".join(report.block_sizes(out))
    assert f"| {report.written(out['shipped'])} (shipped) |" in text
    assert "| blocks of 128, every matrix in 4 bits |" in text
    assert f"| blocks of {b}, q/k/v in 8 bits |" in text
    assert f"| blocks of {b}, q/k/v/o in 8 bits |" in text and "of 2 |" in text


def test_a_variant_s_kl_beside_the_shipped_model_s_is_paired_prompt_by_prompt():
    from bench.blocks import paired

    assert paired([0.04, 0.03, 0.05], [0.02, 0.03, 0.01]) == {
        "kl_vs_shipped": -0.02, "kl_vs_shipped_error": 0.0115, "closer": 2
    }  # fmt: skip
    assert paired([0.04], [0.05])["kl_vs_shipped"] == 0.01


def test_huge_pages_are_timed_against_4k_pages_each_in_fresh_processes():
    """The small packaged model through bench.pages for real: each setting runs in processes of
    its own, the weights move only where asked, and the report states the ratio it measured."""
    from bench import pages, report
    from qa import models
    from qa.generator import load
    from tests.test_hugepages import kernel_collapses

    small = load(models.SMALL, batch=1)
    prompt = small.prompt_ids([{"role": "user", "content": "Name three colours of the rainbow."}])
    out = pages.huge_pages(models.int4(models.SMALL), prompt * 3, rounds=2, new_tokens=4)

    for name in pages.SETTINGS:
        assert len(out["rounds"][name]) == 2 and all(t["decode_tps"] > 0 for t in out["rounds"][name])
    assert all(t["huge_pages_mb"] == 0 for t in out["rounds"]["as ONNX Runtime leaves them"])
    assert (out["huge_pages_mb"] > 100) == kernel_collapses()
    text = "\n".join(report.huge_pages(out))
    assert f"({out['decode_ratio']}x)" in text and f"{out['huge_pages_mb']} MB moved" in text


def test_a_failed_gpu_run_is_reported_and_an_old_one_is_marked_stale():
    from bench import report

    failed = report._gpu(
        {"date": "2026-12-01", "device": "H100", "generator": {"error": "CUDA out of memory"}}
    )
    assert any("failed on the lent GPU machine" in line and "CUDA out of memory" in line for line in failed)
    measured = json.loads((ROOT / "reports" / "gpu.json").read_text())
    fresh = "\n".join(report._gpu({**measured, "changed_since": []}))
    stale = "\n".join(report._gpu({**measured, "changed_since": ["abc1234", "def5678"]}))
    assert (
        "Stale" not in fresh and "**Stale**: 2 later commits changed the GPU path (abc1234, def5678)" in stale
    )


def test_the_baselines_are_warmed_as_docqa_is_before_they_are_timed(monkeypatch):
    """onnxruntime-genai and llama.cpp decode a few tokens after the prompt's end first, in the
    process that times them, so a first step's setup is not charged to their turn alone."""
    import sys
    from types import SimpleNamespace

    from bench import answering

    prompt = list(range(100, 1100))
    read: list[tuple[str, list[int]]] = []

    class Generator:
        def __init__(self, model, params):
            self.steps = 0

        def append_tokens(self, tokens):
            read.append(("genai", tokens[0].tolist()))

        def generate_next_token(self):
            self.steps += 1

    class Params:
        def __init__(self, model):
            pass

        def set_search_options(self, **options):
            pass

    class Llama:
        def __init__(self, **settings):
            pass

        def reset(self):
            read.append(("llama", "reset"))

        def generate(self, tokens, **options):
            read.append(("llama", list(tokens)))
            yield from range(10_000)

    fake_og = SimpleNamespace(
        Config=lambda folder: SimpleNamespace(clear_providers=lambda: None, overlay=lambda text: None),
        Model=lambda config: object(), GeneratorParams=Params, Generator=Generator,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", fake_og)
    monkeypatch.setitem(sys.modules, "llama_cpp", SimpleNamespace(Llama=Llama))
    answering.onnxruntime_genai_speed(Path("model"), prompt, 8)
    answering._llama_cpp("m.gguf", prompt, 8)
    assert read == [("genai", prompt[-64:]), ("genai", prompt),
                    ("llama", prompt[-64:]), ("llama", "reset"), ("llama", prompt)]  # fmt: skip
