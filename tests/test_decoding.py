"""The decoding scheduler with a scripted batch: several readers share one batch, a reader
who stops early frees its place, errors reach the reader, nothing hangs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from embeddings.errors import ConfigError
from qa.decoding import Scheduler
from qa.generator import Generator, LocalGenerator, pick_runtime
from tests.fakes import FakeGenerator, check_contract


class CountingBatch:
    """Each sequence's next token is the previous plus one; records how many decode together."""

    def __init__(self, capacity: int = 4, static: bool = False) -> None:
        self.capacity, self.static = capacity, static
        self.rows: dict[object, int] = {}
        self.chances: dict[object, tuple[float, ...]] = {}  # none measured
        self.widths: list[int] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def free(self) -> int:
        if self.static and self.rows:
            return 0
        return self.capacity - len(self.rows)

    def join(self, key: object, prompt: Sequence[int]) -> None:
        if prompt[0] < 0:
            raise ValueError("negative prompt")
        self.rows[key] = prompt[-1]

    def step(self) -> dict[object, int]:
        self.started.set()
        self.gate.wait()
        self.widths.append(len(self.rows))
        for key in self.rows:
            self.rows[key] += 1
        return dict(self.rows)

    def leave(self, key: object) -> None:
        del self.rows[key]


def test_a_stream_gets_its_tokens_and_stops_at_the_limit_or_a_stop_token():
    scheduler = Scheduler(CountingBatch())
    assert list(scheduler.submit([10], max_new_tokens=3, stop=[])) == [11, 12, 13]
    assert list(scheduler.submit([10], max_new_tokens=9, stop=[13])) == [11, 12]


class DraftingBatch(CountingBatch):
    """Makes three tokens a step, as a runtime does whose draft the model agreed with."""

    def step(self) -> dict[object, tuple[int, ...]]:
        made = {}
        for key, last in self.rows.items():
            made[key] = (last + 1, last + 2, last + 3)
            self.chances[key] = (0.9, 0.6, 0.3)
            self.rows[key] = last + 3
        return made


def test_tokens_made_in_one_step_reach_the_reader_in_order_up_to_the_limit_or_a_stop_token():
    scheduler = Scheduler(DraftingBatch())
    assert list(scheduler.submit([10], max_new_tokens=7, stop=[])) == [11, 12, 13, 14, 15, 16, 17]
    assert list(scheduler.submit([10], max_new_tokens=9, stop=[15])) == [11, 12, 13, 14]
    assert list(scheduler.submit([10], max_new_tokens=2, stop=[])) == [11, 12]


def test_each_token_read_comes_with_the_probability_the_runtime_gave_it_or_none():
    stream = Scheduler(DraftingBatch()).submit([10], max_new_tokens=5, stop=[])
    assert list(stream) == [11, 12, 13, 14, 15] and stream.chances == [0.9, 0.6, 0.3, 0.9, 0.6]
    unmeasured = Scheduler(CountingBatch()).submit([10], max_new_tokens=2, stop=[])
    assert list(unmeasured) == [11, 12] and unmeasured.chances == [None, None]


def test_waiting_requests_are_decoded_in_one_batch():
    batch = CountingBatch(capacity=4)
    batch.gate.clear()  # hold the first step until all four have joined
    scheduler = Scheduler(batch)
    first = scheduler.submit([0], 5, [])
    batch.started.wait(5)
    others = [scheduler.submit([100 * i], 5, []) for i in range(1, 4)]
    batch.gate.set()
    results = [list(s) for s in [first, *others]]
    assert results[0] == [1, 2, 3, 4, 5] and results[3] == [301, 302, 303, 304, 305]
    assert max(batch.widths) == 4, "the requests that were waiting joined the running batch"


def test_a_reader_who_stops_early_leaves_and_the_next_question_is_answered():
    batch = CountingBatch(capacity=1)
    scheduler = Scheduler(batch)
    abandoned = scheduler.submit([0], 10_000, [])
    assert next(abandoned) == 1  # the reader keeps the object but stops reading
    abandoned.close()
    assert list(scheduler.submit([50], 2, [])) == [51, 52]


def test_an_abandoned_stream_that_is_never_closed_does_not_block_others_for_ever():
    scheduler = Scheduler(CountingBatch(capacity=1))
    kept = scheduler.submit([0], 20, [])
    next(kept)  # held, not closed: it decodes to its limit and frees the batch
    assert list(scheduler.submit([7], 1, [])) == [8]


def test_a_static_batch_takes_newcomers_only_when_it_is_empty():
    batch = CountingBatch(capacity=4, static=True)
    batch.gate.clear()
    scheduler = Scheduler(batch)
    first = scheduler.submit([0], 3, [])
    batch.started.wait(5)
    late = scheduler.submit([10], 3, [])
    batch.gate.set()
    assert list(first) == [1, 2, 3] and list(late) == [11, 12, 13]
    assert max(batch.widths) == 1


def test_an_error_reaches_its_reader_and_the_scheduler_goes_on():
    scheduler = Scheduler(CountingBatch())
    with pytest.raises(ValueError, match="negative prompt"):
        list(scheduler.submit([-1], 3, []))
    assert list(scheduler.submit([1], 1, [])) == [2]


def test_the_runtime_is_chosen_from_the_device_unless_told():
    assert pick_runtime("cpu", None) == "onnx-int4"
    assert pick_runtime("cuda", None) == "transformers"
    assert pick_runtime("cpu", "transformers") == "transformers"
    with pytest.raises(ConfigError, match="runs on the CPU"):
        pick_runtime("cuda:0", "onnx-int4")
    with pytest.raises(ConfigError, match="not one of"):
        pick_runtime("cpu", "llama")


def test_a_dtype_asked_for_keeps_a_cpu_generator_on_int4(monkeypatch):
    from qa import generator

    monkeypatch.setattr(generator, "_load", lambda name, device, dtype, runtime, batch: (runtime, dtype))
    assert generator.load("qwen2.5-0.5b-instruct", "cpu", "float32") == ("onnx-int4", "float32")
    assert generator.load("qwen2.5-0.5b-instruct", "cpu", "float32", "transformers")[0] == "transformers"


@pytest.mark.parametrize("runtime", [FakeGenerator, LocalGenerator])
def test_the_fake_generator_keeps_the_real_ones_contract(runtime):
    """Every member the protocol declares, with the same parameters, on the fake and the real one."""
    check_contract(runtime, Generator, FakeGenerator())


class HalfCharacters:
    """A tokenizer whose token 13 is the first half of a character: alone at the end it decodes
    to the replacement character, as a real one does."""

    def apply_chat_template(self, messages, tokenize: bool, add_generation_prompt: bool) -> str:
        return "prompt"

    def __call__(self, text, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [10]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f" w{t}" for t in ids if t != 13) + ("\ufffd" if ids[-1] == 13 else "")


def test_the_tokens_of_a_reply_are_counted_as_decoded_a_character_cut_in_half_at_the_limit_too():
    import pickle

    from qa.generator import tokens_made

    generator = LocalGenerator(HalfCharacters(), Scheduler(CountingBatch()), "fake", "cpu", "f32", "fake", ())
    pieces = list(generator.stream([{"role": "user", "content": "Q?"}], max_new_tokens=3))
    assert "".join(pieces) == " w11 w12", "half a character is never shown"
    assert tokens_made(pieces) == 3, "the model made three tokens: the answer reached its limit"
    assert pickle.loads(pickle.dumps(pieces[0])).tokens == 1, "a piece sent between processes keeps its count"
    assert tokens_made(["plain", "text"]) is None, "a runtime that does not count: the text is counted"
