"""Chat messages -> text with a local causal LM: the one place docqa calls its generator.

The tokenizer and chat template always come from transformers; the weights run on one of two
runtimes (qa/runtimes), chosen from the hardware unless the settings say otherwise:
- `onnx-int4` on a CPU: 4-bit weights under ONNX Runtime, built once from the model's folder;
- `transformers` on a GPU: the model as it is (bf16), static KV cache, compiled decoding step.
Either way one scheduler thread decodes the waiting questions together (qa/decoding.py).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from embeddings.errors import ConfigError
from qa.decoding import Scheduler

if TYPE_CHECKING:
    from embeddings.config import Config

Messages = list[dict[str, str]]
RUNTIMES = ("onnx-int4", "transformers")


@runtime_checkable
class Generator(Protocol):
    """What docqa asks of a generator; the real one below and the tests' fake both are one."""

    name: str
    device: str
    dtype: str
    runtime: str
    context: int  # the most tokens the model reads for one reply: its prompt and the reply together

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each token, so text can be cut to the generator's budget."""
        ...

    def count(self, text: str) -> int: ...

    def render(self, messages: Messages) -> str:
        """The prompt text the model reads (its chat template applied)."""
        ...

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        """Pieces of the reply as they are decoded (greedy). Closing the iterator stops decoding."""
        ...

    def generate(self, messages: Messages, max_new_tokens: int) -> str: ...


class Piece(str):
    """A piece of a reply as it is decoded, with `chance`: the probability the model gave the least
    likely token that made it (None where the runtime does not measure it), and `tokens`: how
    many tokens made it (None where not counted). A plain str else."""

    chance: float | None
    tokens: int | None

    def __new__(cls, text: str, chance: float | None, tokens: int | None = None) -> Piece:
        piece = super().__new__(cls, text)
        piece.chance, piece.tokens = chance, tokens
        return piece

    def __reduce__(self) -> tuple:  # pickled whole (Ray Serve sends pieces between processes)
        return Piece, (str(self), self.chance, self.tokens)


def tokens_made(pieces: Sequence[str]) -> int | None:
    """The tokens the model decoded for `pieces`, where each piece counts its own: a count of the
    text again would miss a character cut in half at the token limit, or a token split the
    tokenizer would not make."""
    counts = [getattr(p, "tokens", None) for p in pieces]
    return None if not counts or None in counts else sum(counts)  # type: ignore[arg-type]


def least(chances: Sequence[float | None]) -> float | None:
    """The lowest of `chances`, or None when any is not measured."""
    return None if not chances or None in chances else min(chances)  # type: ignore[type-var]


@dataclass
class LocalGenerator:
    tokenizer: object  # a transformers tokenizer
    scheduler: Scheduler
    name: str
    device: str
    dtype: str
    runtime: str
    stop: tuple[int, ...]  # token ids that end a reply
    # Where the runtime's kept prompts are written for the next process to start from (the CPU
    # runtime's: qa/runtimes/kept_prompts.py); None where the runtime keeps none.
    prompts: Path | None = None

    @property
    def context(self) -> int:
        return self.scheduler.batch.context

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return [[tuple(o) for o in offsets] for offsets in enc["offset_mapping"]]

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, messages: Messages) -> list[int]:
        """The token ids the model reads for `messages`: the rendered chat template."""
        return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        """Pieces of the reply as they are decoded, each a Piece: with the probability the model
        gave the least likely token that made it."""
        tokens = self.scheduler.submit(self.prompt_ids(messages), max_new_tokens, self.stop)
        made: list[int] = []
        shown, since = "", 0  # the text put out, and the first token of the piece being made
        try:
            for token in tokens:
                made.append(token)
                text = self.tokenizer.decode(made, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # half of a character that spans tokens: wait for the rest
                    continue
                if len(text) > len(shown):
                    yield Piece(
                        text[len(shown) :], least(tokens.chances[since : len(made)]), len(made) - since
                    )
                    shown, since = text, len(made)
            if len(made) > since:  # tokens that showed nothing (an end token, half a character) count too
                yield Piece("", least(tokens.chances[since:]), len(made) - since)
        finally:
            tokens.close()  # a reader that stops early frees its place in the batch

    def generate(self, messages: Messages, max_new_tokens: int) -> str:
        return "".join(self.stream(messages, max_new_tokens))

    def recall(self) -> None:
        """Start from the prompts an earlier process read and remembered: a prompt that begins
        like one of them reads only the rest. Before the first question."""
        if self.prompts is not None:
            self.scheduler.batch.recall(self.prompts)  # an ort.OrtBatch

    def remember(self) -> None:
        """Write the prompts this process read (the last ones, as the runtime keeps them) for the
        next process to `recall`, replacing those written before."""
        if self.prompts is not None:
            self.scheduler.batch.remember(self.prompts)


def within_context(generator: Generator, budget: int, reply: int, knobs: str) -> None:
    """A ConfigError naming `knobs` (the settings to lower) unless a prompt of `budget` tokens and
    a reply of `reply` fit what the model reads for one reply: past that the runtime would end
    the reply wherever it stood."""
    if budget + reply > generator.context:
        raise ConfigError(
            f"the model reads at most {generator.context:,} tokens for one reply on the {generator.runtime} "
            f"runtime, its prompt and the reply together; a context budget of {budget:,} tokens "
            f"(--context-tokens) and a reply of up to {reply:,} take {budget + reply:,}: lower {knobs} "
            f"so that they take {generator.context:,} or less"
        )


@contextlib.contextmanager
def remembering(generator: Generator) -> Iterator[None]:
    """The prompts the last process read are recalled before the block, and those read by now
    written after it (qa/runtimes/kept_prompts.py): the next question about the same documents
    reads only what its prompt does not share with them. Only a LocalGenerator keeps prompts."""
    local = isinstance(generator, LocalGenerator)
    if local:
        generator.recall()
    try:
        yield
    finally:
        if local:
            try:
                generator.remember()
            except OSError as e:  # the answers stand; the next question reads its prompt whole
                print(f"docqa: could not keep the prompts read for the next question: {e}", file=sys.stderr)


def engine(generator: Generator) -> str:
    """The runtime that decodes for `generator`, one of RUNTIMES where it names one (also behind
    Ray Serve, whose runtime says "onnx-int4 on Ray Serve, 2 replicas")."""
    return next((r for r in RUNTIMES if generator.runtime.startswith(r)), generator.runtime)


def pick_runtime(device: str, runtime: str | None) -> str:
    """The runtime for `device`: int4 ONNX on a CPU, transformers on a GPU, unless told. A dtype
    asked for does not choose it: on a CPU that would take the generator from 1 GB of int4
    weights to 3.5 GB (bf16) or 7 GB (float32) unasked."""
    if runtime is not None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        if runtime == "onnx-int4" and not device.startswith("cpu"):
            raise ConfigError("the onnx-int4 runtime runs on the CPU; use --runtime transformers on a GPU")
        return runtime
    return "onnx-int4" if device.startswith("cpu") else "transformers"


def from_config(config: Config) -> LocalGenerator:
    """The generator the settings name, on the runtime they ask for or the hardware suits."""
    return load(config.generator, config.device, config.dtype, config.runtime, config.generator_batch)


def load(
    name: str,
    device: str | None = None,
    dtype: str | None = None,
    runtime: str | None = None,
    batch: int = 4,
) -> LocalGenerator:
    """The model `name` (catalogue name, Hub id or folder), loaded once per process."""
    from embeddings.hardware import pick_device

    device = pick_device(device)
    return _load(name, device, dtype, pick_runtime(device, runtime), batch)


@cache
def _load(name: str, device: str, dtype: str | None, runtime: str, batch: int) -> LocalGenerator:
    from transformers import AutoTokenizer

    from qa import models

    if runtime == "onnx-int4":
        from qa.runtimes import ort

        folder = models.int4(name)
        engine = ort.load(folder, capacity=batch, prompt_chunk=256)
        dtype_shown, prompts = "int4", models.cache_root() / "prompts" / f"{folder.name}.npz"
    else:
        from embeddings.hardware import dtype_name, pick_dtype
        from qa.runtimes import hf

        folder = models.locate(name)
        torch_dtype = pick_dtype(device, dtype)
        model, dtype_shown, prompts = hf.load(folder, device, torch_dtype), dtype_name(torch_dtype), None
        engine = hf.HfBatch(model, _pad_id(folder), batch, static_cache=device.startswith("cuda"),
                            compile=device.startswith("cuda"))  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template and name in models.KNOWN:
        tokenizer.chat_template = models.KNOWN[name].chat_template
    scheduler = Scheduler(engine, name=f"docqa-{runtime}")
    return LocalGenerator(
        tokenizer, scheduler, name, device, dtype_shown, runtime, _stop_ids(folder, tokenizer), prompts
    )


def _stop_ids(folder: Path, tokenizer) -> tuple[int, ...]:
    from transformers import GenerationConfig

    ids: set[int] = set()
    try:
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    except OSError:  # no generation_config.json: the tokenizer's end token is all there is
        pass
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return tuple(sorted(ids))


def _pad_id(folder: Path) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
