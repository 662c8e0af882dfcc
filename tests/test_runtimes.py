"""The generator runtimes for real: the 4-bit ONNX model of the small packaged generator on the
CPU, and the GPU code path (static KV cache, compiled decoding step, batching) run on the CPU
with a tiny random-weight model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from embeddings.errors import ConfigError
from qa import models
from qa.decoding import Scheduler
from qa.generator import load
from qa.runtimes import hf, ort
from qa.sureness import sureness
from tests.conftest import ROOT

ARTICLE = (
    "In a massive development, Afghanistan National Resistance Front leader Ahmad Massoud met the "
    "Taliban's acting Foreign Minister Amir Khan Muttaqi in Tehran. The meeting was mediated by the "
    "former governor of Afghanistan's Herat province Ismail Khan. India gave 50,000 tonnes of wheat."
)
QUESTIONS = [
    "Who mediated the meeting?",
    "Where was the meeting held? Answer in a few words.",
    "What did India give?",
]


def messages(question: str, text: str = ARTICLE) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer from the passage in one sentence."},
        {"role": "user", "content": f"{text}\n\nQuestion: {question}"},
    ]


@pytest.fixture(scope="module")
def small():
    return load(models.SMALL, batch=4)


def test_the_cpu_runtime_is_a_4bit_model_built_once_and_reused(small):
    folder = models.int4(models.SMALL)
    assert (folder / "COMPLETE").is_file() and models.int4(models.SMALL) == folder
    assert (folder / models.VARIANT).is_file(), (
        "it says what it converts, so a later conversion can supersede it"
    )
    weights = (folder / "model.onnx.data").stat().st_size
    assert 200_000_000 < weights < models.QWEN_CODER_05B.size, "4-bit weights: smaller than the Q4_K_M file"
    assert (small.runtime, small.dtype, small.device) == ("onnx-int4", "int4", "cpu")
    assert small.context == 32768, "a prompt and its answer take the model's context length at most"
    pieces = list(small.stream(messages(QUESTIONS[0]), 30))
    assert all(0 < p.chance <= 1 for p in pieces), "each piece comes with the probability of its tokens"
    assert 0 < sureness(QUESTIONS[0], pieces) <= 1
    assert load(models.SMALL, batch=4) is small, "loaded once per process"
    assert "Ismail Khan" in small.generate(messages(QUESTIONS[0]), 30)


def test_the_cpu_runtime_keeps_no_arena_sized_for_the_longest_prompt_yet(small):
    """ONNX Runtime's arena keeps the largest buffers any prompt has needed and grows with each
    longer one: a server's memory grew with every answer (2.62 GB after three; 2.45 without it)."""
    assert small.scheduler.batch.session.get_session_options().enable_cpu_mem_arena is False


def test_questions_asked_together_get_the_answers_they_get_alone(small):
    alone = [small.generate(messages(q), 24) for q in QUESTIONS]
    together: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda q=q: together.__setitem__(q, small.generate(messages(q), 24)))
        for q in QUESTIONS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [together[q] for q in QUESTIONS] == alone


def test_a_long_prompt_read_in_chunks_is_answered_as_if_read_whole(small):
    folder = models.int4(models.SMALL)
    long_text = " ".join([ARTICLE] * 4)
    prompt = small.tokenizer(small.render(messages(QUESTIONS[0], long_text)), add_special_tokens=False)[
        "input_ids"
    ]
    assert len(prompt) > 200
    answers = []
    for chunk in (64, 4096):
        batch = ort.load(folder, capacity=2, prompt_chunk=chunk)
        batch.prompt_alone = chunk
        scheduler = Scheduler(batch)
        answers.append(list(scheduler.submit(prompt, 16, small.stop)))
    assert answers[0] == answers[1]


def test_an_answer_that_copies_its_passage_decodes_several_tokens_a_step_and_the_same_tokens(small):
    """A lone sequence's next tokens are drafted from its prompt and checked in one step; what
    it writes is what one token a step writes."""
    folder = models.int4(models.SMALL)
    chat = messages("Quote the sentence that says who mediated the meeting, word for word.")
    prompt = small.tokenizer(small.render(chat), add_special_tokens=False)["input_ids"]
    answers, drafted = [], []
    for draft in (0, ort.OrtBatch.draft):
        batch = ort.load(folder, capacity=2, prompt_chunk=256)
        assert ort.POSITIONS in [i.name for i in batch.session.get_inputs()], "logits at the positions asked"
        batch.draft = draft
        answers.append(list(Scheduler(batch).submit(prompt, 40, small.stop)))
        drafted.append(batch.tokens_drafted)
    assert answers[1] == answers[0]
    assert "Ismail Khan" in small.tokenizer.decode(answers[0])
    assert drafted[0] == 0 and drafted[1] > len(answers[0]) / 3, drafted


def test_a_prompt_that_begins_like_the_last_one_reads_only_the_rest_and_answers_as_if_read_whole(small):
    folder = models.int4(models.SMALL)

    def tokens(question: str) -> list[int]:
        return small.tokenizer(small.render(messages(question)), add_special_tokens=False)["input_ids"]

    def answer(batch: ort.OrtBatch, prompt: list[int]) -> list[int]:
        return list(Scheduler(batch).submit(prompt, 16, small.stop))

    prompts = [tokens(q) for q in QUESTIONS]
    alone = [answer(ort.load(folder, capacity=2, prompt_chunk=256), p) for p in prompts]  # nothing to reuse
    shared = ort.load(folder, capacity=2, prompt_chunk=256)
    assert [answer(shared, p) for p in prompts] == alone
    common = sum(
        max(len(os.path.commonprefix([p, earlier])) for earlier in prompts[:i])
        for i, p in enumerate(prompts)
        if i
    )
    assert common > 50 and shared.tokens_reused == common, "each prompt reused the longest beginning kept"
    assert shared.tokens_read == sum(map(len, prompts)) - common
    assert (
        answer(shared, prompts[-1]) == alone[-1] and shared.tokens_read == sum(map(len, prompts)) - common + 1
    )


def test_a_prompt_read_in_between_leaves_the_cache_of_the_one_before_it_within_the_kept_tokens(small):
    """A conversation's turn reads a rewriting prompt between two answer prompts: the second
    answer prompt still starts from the first's cache, unless the kept tokens cannot hold both."""
    folder = models.int4(models.SMALL)

    def tokens(chat: list[dict[str, str]]) -> list[int]:
        return small.tokenizer(small.render(chat), add_special_tokens=False)["input_ids"]

    first, second = tokens(messages(QUESTIONS[0])), tokens(messages(QUESTIONS[1]))
    between = tokens(
        [{"role": "system", "content": "Rewrite the question."}, {"role": "user", "content": "Who?"}]
    )
    shared = len(os.path.commonprefix([first, second]))
    assert shared > len(os.path.commonprefix([between, second])) + 50
    reused = {}
    for keep in (2048, len(between)):
        batch = ort.load(folder, capacity=2, prompt_chunk=256)
        batch.keep_tokens = keep
        for prompt in (first, between):
            list(Scheduler(batch).submit(prompt, 4, small.stop))
        before = batch.tokens_reused
        list(Scheduler(batch).submit(second, 4, small.stop))
        reused[keep] = batch.tokens_reused - before
    assert reused[2048] == shared, "the first answer prompt's beginning, kept across the one between"
    assert reused[len(between)] < shared, "only the prompt in between was kept"


def test_prompts_one_process_remembers_the_next_reads_only_where_they_differ(small, tmp_path, capsys):
    """`docqa ask` is a process per question: the next one starts from the prompts the last one
    read (written to disk), answers as if it read its prompt whole, and uses no other model's."""
    folder = models.int4(models.SMALL)

    def tokens(question: str) -> list[int]:
        return small.tokenizer(small.render(messages(question)), add_special_tokens=False)["input_ids"]

    def answer(batch: ort.OrtBatch, prompt: list[int]) -> list[int]:
        return list(Scheduler(batch).submit(prompt, 16, small.stop))

    first, second = tokens(QUESTIONS[0]), tokens(QUESTIONS[2])
    alone = answer(ort.load(folder, capacity=2, prompt_chunk=256), second)
    path = tmp_path / "prompts.npz"
    earlier = ort.load(folder, capacity=2, prompt_chunk=256)
    answer(earlier, first)
    earlier.remember(path)

    later = ort.load(folder, capacity=2, prompt_chunk=256)
    later.recall(path)
    assert answer(later, second) == alone
    shared = len(os.path.commonprefix([first, second]))
    assert shared > 50 and later.tokens_reused == shared and later.tokens_read == len(second) - shared

    other = ort.load(folder, capacity=2, prompt_chunk=256)
    other.identity = "another model's file"
    other.recall(path)
    assert answer(other, second) == alone and other.tokens_reused == 0, "another model's caches are not used"

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short, as by a full disk
    broken = ort.load(folder, capacity=2, prompt_chunk=256)
    broken.recall(path)
    assert "not using the kept prompts" in capsys.readouterr().err
    assert answer(broken, second) == alone and broken.tokens_reused == 0


def test_questions_asked_together_reuse_one_another_s_beginnings_and_answer_as_if_alone(small):
    folder = models.int4(models.SMALL)
    prompts = [
        small.tokenizer(small.render(messages(q)), add_special_tokens=False)["input_ids"] for q in QUESTIONS
    ]

    def decode(batch: ort.OrtBatch, keys: list[int], steps: int = 40) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {k: [] for k in keys}
        for _ in range(steps):
            for key, made in batch.step().items():  # a lone sequence's step may make several
                out[key].extend(made if isinstance(made, tuple) else [made])
        return {k: tokens[:8] for k, tokens in out.items()}

    alone = []
    for p in prompts:
        batch = ort.load(folder, capacity=4, prompt_chunk=256)
        batch.join(0, p)
        alone.append(decode(batch, [0])[0])
    together = ort.load(folder, capacity=4, prompt_chunk=256)
    for key, p in enumerate(prompts):  # all at once, before anything is read
        together.join(key, p)
    answers = decode(together, [0, 1, 2])
    assert [answers[k] for k in range(3)] == alone and all(len(a) == 8 for a in alone)
    common = lambda a, b: len(os.path.commonprefix([a, b]))  # noqa: E731
    expected = common(prompts[0], prompts[1]) + max(
        common(prompts[0], prompts[2]), common(prompts[1], prompts[2])
    )
    assert expected > 100 and together.tokens_reused == expected, (
        "each reused the longest beginning read before it"
    )
    assert together.tokens_read == sum(map(len, prompts)) - expected


def test_a_cache_written_in_place_grows_and_loses_rows_without_changing_any_answer(small, monkeypatch):
    monkeypatch.setattr(ort, "ROOM", 3)  # the decoding cache must grow every few steps
    folder = models.int4(models.SMALL)
    prompts = [
        small.tokenizer(small.render(messages(q, ARTICLE[: 120 + 90 * i])), add_special_tokens=False)[
            "input_ids"
        ]
        for i, q in enumerate(QUESTIONS)
    ]  # rows of different lengths

    def decode(batch: ort.OrtBatch, keys: list[int], leaves: dict[int, int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {k: [] for k in keys}
        while any(len(out[k]) < leaves.get(k, 20) for k in keys):
            for key, made in batch.step().items():  # a lone sequence's step may make several
                out[key].extend(made if isinstance(made, tuple) else [made])
                if len(out[key]) == leaves.get(key):
                    batch.leave(key)  # a reader who goes away mid-answer
        return {k: tokens[: leaves.get(k, 20)] for k, tokens in out.items()}

    alone = []
    for p in prompts:
        batch = ort.load(folder, capacity=4, prompt_chunk=256)
        batch.join(0, p)
        alone.append(decode(batch, [0], {})[0])
    together = ort.load(folder, capacity=4, prompt_chunk=256)
    for key, p in enumerate(prompts):
        together.join(key, p)
    answers = decode(together, [0, 1, 2], {1: 6})
    assert answers[0][:20] == alone[0] and answers[2][:20] == alone[2] and answers[1] == alone[1][:6]
    # the longest prompt's row has been fed its 19 tokens after the first: the cache grew to hold them
    assert len(together._rows) == 2 and together._kv[0].shape[2] >= max(map(len, prompts)) + 19


def test_a_prompt_past_the_models_positions_fails_alone_and_an_answer_ends_at_the_last_one(
    small, monkeypatch
):
    asked = messages(QUESTIONS[0])
    read = len(small.prompt_ids(asked))
    monkeypatch.setattr(small.scheduler.batch, "context", read + 6)  # room for a few tokens only
    answering = small.stream(asked, 30)
    said = next(answering)  # decoding now
    with pytest.raises(ConfigError, match="reads at most"):
        small.generate(messages(QUESTIONS[0], ARTICLE * 2), 10)  # refused: its reader alone
    said += "".join(answering)
    assert 0 < len(small.tokenizer(said, add_special_tokens=False)["input_ids"]) <= 7, said
    assert small.generate(asked, 3), "the batch goes on"


def test_a_reader_who_stops_early_does_not_hold_up_the_next_question(small):
    kept = small.stream(messages("Summarise the passage in ten sentences."), 200)
    next(kept)  # kept, never closed
    assert "Ismail Khan" in small.generate(messages(QUESTIONS[0]), 30)


def tiny_model(folder):
    """A two-layer Qwen2 with random weights, saved as safetensors."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_the_gpu_path_static_cache_compiled_and_batched_runs_on_the_cpu(tmp_path):
    import torch
    import torch._dynamo

    torch._dynamo.reset()
    model = hf.load(tiny_model(tmp_path / "tiny"), "cpu", torch.float32)
    prompts = [[5, 17, 33, 9, 101, 7], [8, 8, 250, 3, 77, 12], [40, 41, 42]]

    def decode(batch: hf.HfBatch, asked: list[list[int]], new: int = 8) -> list[list[int]]:
        for key, prompt in enumerate(asked):  # all join before the batch starts
            batch.join(key, prompt)
        made: dict[int, list[int]] = {key: [] for key in range(len(asked))}
        while any(len(tokens) < new for tokens in made.values()):
            for key, token in batch.step().items():
                if token is not None and len(made[key]) < new:
                    made[key].append(token)
                    if len(made[key]) == new:
                        batch.leave(key)
        return list(made.values())

    compiled = hf.HfBatch(model, pad_id=0, capacity=4, static_cache=True, compile=True, cache_tokens=64)
    assert compiled.context == 64, "a prompt and its answer fit the static cache"
    assert hf.HfBatch(model, pad_id=0).context == 256, "... or the positions the model was made for"
    together = decode(compiled, prompts)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "the decoding step was compiled"
    alone = [decode(hf.HfBatch(model, pad_id=0, capacity=1), [p])[0] for p in prompts]
    assert [len(t) for t in together] == [8, 8, 8]
    assert together[:2] == alone[:2], "rows of one length decode as they do alone"
    again = decode(compiled, prompts[::-1])[::-1]  # the same cache and step, rows in another order
    assert again[:2] == together[:2], "a later batch starts clean on the cache it reuses"
    for rows in (1, 2, 4, 1):  # batches of every size: their caches are kept, within twice a full one
        decode(compiled, [prompts[0]] * rows, new=2)
    assert sorted(compiled._lanes) == [1, 2, 4], "three questions decode in the lane of four"


def test_the_gpu_path_gives_the_probability_of_each_token_it_chooses(tmp_path):
    """An answer's sureness (qa/sureness.py) is measured on this runtime as on the CPU one: each
    token comes with the probability the model gave it, in one `generate` and in the compiled step."""
    import torch

    model = hf.load(tiny_model(tmp_path / "tiny"), "cpu", torch.float32)
    prompt, expected = [5, 17, 33, 9, 101, 7], []
    with torch.inference_mode():  # greedy decoding by hand, four tokens
        ids = torch.tensor([prompt])
        for _ in range(4):
            probabilities = model(input_ids=ids).logits[0, -1].float().softmax(-1)
            expected.append((int(probabilities.argmax()), float(probabilities.max())))
            ids = torch.cat([ids, probabilities.argmax().view(1, 1)], dim=1)
    for batch in (hf.HfBatch(model, pad_id=0, capacity=1),
                  hf.HfBatch(model, pad_id=0, capacity=2, static_cache=True, cache_tokens=64)):  # fmt: skip
        batch.join("q", prompt)
        made = []
        while len(made) < 4:
            made += [(token, batch.chances["q"][0]) for token in batch.step().values()]
        batch.leave("q")
        assert [t for t, _ in made] == [t for t, _ in expected]
        assert [c for _, c in made] == pytest.approx([c for _, c in expected], rel=1e-4)


def test_a_repetition_penalty_in_the_models_generation_config_does_not_change_the_cpu_answer(tmp_path):
    """Qwen2.5's Instruct models ship a repetition penalty for sampling; greedy decoding on this
    runtime picks as the compiled step and the int4 runtime do: the most likely token."""
    import torch

    folder = tiny_model(tmp_path / "tiny")
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "repetition_penalty": 5.0}))
    model = hf.load(folder, "cpu", torch.float32)
    prompt, greedy = [5, 17, 33, 9, 101, 7, 5, 17, 33], []
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        for _ in range(12):
            greedy.append(int(model(input_ids=ids).logits[0, -1].argmax()))
            ids = torch.cat([ids, torch.tensor([[greedy[-1]]])], dim=1)
    for batch in (hf.HfBatch(model, pad_id=0, capacity=1),
                  hf.HfBatch(model, pad_id=0, capacity=1, static_cache=True, cache_tokens=64)):  # fmt: skip
        batch.join("q", prompt)
        made: list[int] = []
        while len(made) < 12:
            made += [t for t in batch.step().values() if t is not None]
        batch.leave("q")
        assert made[:12] == greedy


def test_a_process_that_ends_right_after_an_answer_cut_at_its_limit_exits_cleanly(tmp_path):
    """The model decodes in a thread of its own, a step or two past the last reader: the process's
    end waits for it (torn down under a running `generate`, the process aborted)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    folder = tmp_path / "tiny-wide"  # a real vocabulary's width: a step lasts as long as the exit takes
    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    script = (
        "import torch\n"
        "from qa.decoding import Scheduler\n"
        "from qa.runtimes import hf\n"
        f"model = hf.load({str(folder)!r}, 'cpu', torch.float32)\n"
        "scheduler = Scheduler(hf.HfBatch(model, pad_id=0, capacity=2))\n"
        "print(len(list(scheduler.submit([5, 17, 33, 9], 3, ()))))\n"
    )
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert (done.returncode, done.stdout.strip()) == (0, "3"), done.stderr[-2000:]


def test_a_new_conversion_removes_the_ones_it_supersedes_and_no_other(tmp_path):
    def converted(name: str, variant: list | None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.onnx.data").write_bytes(b"w" * 1000)
        if variant is not None:
            (folder / models.VARIANT).write_text(json.dumps(variant))
        return folder

    ours = ["qwen", 32, ["q_proj"]]
    new = converted("qwen-onnx-int4-new", ours)
    old = converted("qwen-onnx-int4-old", ours)  # an earlier docqa's conversion of the same
    other = converted("qwen-onnx-int4-b64", ["qwen", 64, ["q_proj"]])  # another block size
    unknown = converted("qwen-onnx-int4-older", None)  # made before conversions said what they are
    elsewhere = converted("llama-onnx-int4-x", ours)
    said: list[str] = []
    models._remove_superseded(new, "qwen-onnx-int4-", ours, said.append)
    assert not old.exists() and all(f.exists() for f in (new, other, unknown, elsewhere))
    assert said == ["removed qwen-onnx-int4-old, an earlier conversion of the same model (0.0 GB)"]
