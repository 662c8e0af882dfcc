"""The CPU runtime: a causal LM with 4-bit weights under ONNX Runtime.

The model is built once from its Hugging Face folder by onnxruntime-genai's model builder
(weights int4, symmetric, in blocks of BLOCK, multiplied with int8 activations; the embedding
table 4-bit too; logits only for the last position) and cached. On a CPU, decoding a token is
bound by reading the weights and unpacking them: 4-bit weights read a quarter of what float16
would.

docqa drives the ONNX graph itself rather than through a generation loop so that sequences of
different lengths decode in one batch: each row of the KV cache is right-padded and the
attention mask tells the attention kernel (GroupQueryAttention) how long each row is, which
also gives each row its own rotary positions. The decoding rows' cache is one buffer per layer,
with room to grow, bound as both the step's past and its present: the kernel writes each new
token's keys and values in place instead of copying the whole cache into a new one every step.
While some sequences decode, a newcomer's prompt is read in chunks, between which the others keep
decoding.

Reading the prompt is most of an answer's time on a CPU, and prompts share their beginnings:
every answer prompt opens with the same instructions, a follow-up or a question asked again
repeats more. The key/value caches of the last prompts read are kept (up to `keep_tokens` of
them: a conversation's turn reads a rewriting prompt between two answer prompts), and a prompt
that begins with the same tokens as one of them, or as one decoding now, starts from that part
of its cache (a position's keys and values depend only on the tokens up to it) and reads only
the rest.

A sequence decoding alone is fed its next token and a draft of the ones after it (qa/drafts.py)
in one step: the graph is given an input at load, the positions whose logits it returns, where
the builder wrote logits for the last position only, and the step keeps the drafted tokens the
model agrees with.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embeddings.errors import ConfigError
from qa.drafts import Drafts, agreed
from qa.runtimes import kept_prompts

if TYPE_CHECKING:
    import onnx

# Weights per block, each block with its own float scale. A 4-bit matrix-vector product on a CPU
# is bound by unpacking and scaling blocks as much as by reading bytes: the 1.5B model decodes
# faster with blocks of 64 or 128 than with 32, but its next-token distribution moves further from
# the packaged weights' (make bench's blocks table, reports/bench.md, measures both at every run).
BLOCK = 32
# A packaged model's layers written in 8 bits instead of 4 (gguf_int4.checkpoint's `eight_bit`):
# none. The attention's q/k/v projections are 6% of the weights and a fifth of the 4-bit model's
# KL from the float model: in 8 bits its KL is 0.024 against 0.033, closer on all 12 prompts, at
# the same decode rate (make bench). But that model answers "I don't know" to the sample
# article's first question ("Who mediated the meeting ...?"), which the float model and the
# all-4-bit model answer (q/k/v/o in 8 bits as well: the same), and on make eval's calibration
# half (`--only xquad news --answers-from calibration`) it gave the right answer to 27 of 30 XQuAD
# and 16 of 20 news questions against 28 and 17 (on news it declined 4 against 1, and answered
# none wrong against 2): closer on average is not better where an answer turns on one token.
EIGHT_BIT: tuple[str, ...] = ()


def build_options(block: int = BLOCK) -> tuple[str, ...]:
    """The builder's options; changing them changes the cached model's key (see qa/models.py)."""
    return (
        "prune_lm_head=true",
        "op_types_to_quantize=MatMul/Gather",
        "accuracy_level=4",
        f"int4_block_size={block}",
    )


# The decoder's input, added at load, of the positions whose logits it gives (-1 the last).
POSITIONS = "logits_positions"

ROOM = 128  # positions of room the decoding cache is given to grow into, each time it must grow


def threads() -> int:
    """The cores this process may use (what ONNX Runtime should use, all of them): those it may
    run on, no more than a container's CPU limit allows (cgroup v2 cpu.max, "200000 100000" for
    2 CPUs): threads past it spin for time the container does not get."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        limit = quota_cores(Path("/sys/fs/cgroup/cpu.max").read_text())
    except OSError:  # no cgroup v2 limit to read: the cores are the limit
        limit = None
    return min(cores, limit) if limit else cores


def quota_cores(cpu_max: str) -> int | None:
    """The whole CPUs a cgroup v2 `cpu.max` ("200000 100000") allows, at least 1; None for "max"
    (no limit) or a text that is not one."""
    quota, _, period = cpu_max.strip().partition(" ")
    if not (quota.isdigit() and period.isdigit() and int(period)):
        return None
    return max(1, int(quota) // int(period))


@dataclass
class _Sequence:
    pending: list[int]  # prompt tokens not yet read
    kv: list[np.ndarray] | None = None  # while reading the prompt: [1, kv_heads, length, head_size] per input
    length: int = 0  # tokens in the KV cache
    last: int = -1  # the token to feed next
    # the whole prompt (its first `length` tokens are in the KV cache)
    prompt: list[int] = field(default_factory=list)
    drafts: Drafts = field(default_factory=Drafts)  # once read: the prompt and the tokens made


@dataclass
class OrtBatch:
    """`decoding.Batch` over a GroupQueryAttention decoder exported by onnxruntime-genai."""

    session: object  # onnxruntime.InferenceSession
    kv_heads: int
    head_size: int
    capacity: int = 4
    prompt_chunk: int = 256  # prompt tokens read per step while other sequences decode
    # The positions the model reads (genai_config's context_length): a prompt and its answer.
    context: int = 32768
    # ... and while none do (bounds the activations' memory: 512 instead of 2048 took 0.06 GB off
    # the peak RSS of `docqa serve` answering a long prompt; make bench's 3 answers on the sample
    # article peaked at 2.41 GB both ways)
    prompt_alone: int = 512
    # The model file and runtime version a kept cache was computed by: only theirs are recalled.
    identity: str = ""
    reuse_from: int = 16  # a shared beginning shorter than this is read again (not worth a copy)
    # Prompt tokens whose caches are kept, the newest first (the newest always): 2048 are 117 MB
    # for the default model (28 layers, 2 key/value heads of 128 floats each for keys and values).
    keep_tokens: int = 2048
    tokens_read: int = 0  # prompt tokens run through the model so far ...
    tokens_reused: int = 0  # ... and those taken from a kept prompt's KV cache instead
    tokens_drafted: int = 0  # tokens decoded as drafted, more than one in a step
    # Tokens drafted from what a sequence decoding alone has read (qa/drafts.py) and checked in
    # one step with its next token (0: none). A step costs more for each token it feeds (here, an
    # AMD EPYC on 2 threads, one that feeds 4 about 2x one that feeds 1), and a draft is fed only
    # where one is found. Measured once when drafts came in (24 XQuAD answers, 700-token prompts,
    # commit 529d1b0): 1.135x as fast with 3 as one token a step, 1.09x with 1, 1.12x with 2 and
    # 1.10x with 4; make bench times drafts against one token a step at every run.
    draft: int = 3
    huge_pages: int = 0  # bytes of the session's weights moved onto huge pages (qa/runtimes/hugepages.py) ...
    moving: threading.Thread | None = None  # ... by this thread, while it runs
    chances: dict[object, tuple[float, ...]] = field(default_factory=dict)  # decoding.Batch.chances
    # The prompts read last, oldest first, with their KV caches (never written to: steps make new arrays).
    _kept: list[tuple[list[int], list[np.ndarray]]] = field(default_factory=list)
    _sequences: dict[object, _Sequence] = field(default_factory=dict)
    _rows: list[object] = field(default_factory=list)  # decoding sequences, in KV row order
    # The decoding rows' cache: [rows, kv_heads, room, head_size] per input, written in place by
    # each step (a row's first `length` positions are its cache), and the same as ONNX values.
    _kv: list[np.ndarray] = field(default_factory=list)
    _bound: list[object] = field(default_factory=list)
    _prompt_turn: bool = True

    def __post_init__(self) -> None:
        names = [i.name for i in self.session.get_inputs()]
        self._positions = POSITIONS in names  # the graph gives logits where it is told (see load)
        self._past = [n for n in names if n.startswith("past_key_values.")]
        self._present = [n.replace("past_key_values.", "present.") for n in self._past]

    def free(self) -> int:
        return self.capacity - len(self._sequences)

    def remember(self, path: Path) -> None:
        """Write the kept prompts' caches to `path` for a later process (qa/runtimes/kept_prompts.py)."""
        kept_prompts.save(path, list(self._kept), self.identity)

    def recall(self, path: Path) -> None:
        """Keep the prompts an earlier process wrote to `path` (none where it was another model's)."""
        recalled = kept_prompts.load(path, self.identity, len(self._past), self.kv_heads, self.head_size)
        for tokens, kv in recalled:
            self._keep(tokens, kv)

    def join(self, key: object, prompt: Sequence[int]) -> None:
        """Take `prompt` to read, or refuse it (its reader alone: the others decode on) where the
        model cannot read it."""
        if not prompt:
            raise ValueError("an empty prompt cannot be decoded")
        if len(prompt) >= self.context:
            raise ConfigError(
                f"the prompt is {len(prompt):,} tokens and the model reads at most {self.context:,}, its "
                f"answer included: lower the context budget (--context-tokens)"
            )
        tokens = list(prompt)  # `pending` is sliced, never changed in place: one list serves both
        self._sequences[key] = _Sequence(tokens, prompt=tokens)

    def _start(self, s: _Sequence) -> None:
        """Start `s` (about to be read) from the KV cache of the longest beginning it shares with
        a kept prompt or a sequence decoding now, when that is long enough; never the whole
        prompt: its last token is read to get the next one. Chosen when its reading begins, not
        when it joined, so that questions asked together reuse one another's."""
        sources = list(self._kept)
        for row, key in enumerate(self._rows):
            sources.append((self._sequences[key].prompt, [a[row : row + 1] for a in self._kv]))
        best, kv = 0, None
        for tokens, cache in sources:
            n = len(os.path.commonprefix([tokens, s.prompt[:-1]]))
            if n > best:
                best, kv = n, cache
        if kv is not None and best >= self.reuse_from:
            s.kv, s.length, s.pending = [a[:, :, :best] for a in kv], best, s.prompt[best:]
            self.tokens_reused += best

    def leave(self, key: object) -> None:
        self._sequences.pop(key)
        if key in self._rows:
            row = self._rows.index(key)
            self._rows.pop(row)
            keep = [i for i in range(len(self._rows) + 1) if i != row]
            longest = max((self._sequences[k].length for k in self._rows), default=0)
            self._hold(
                [np.ascontiguousarray(kv[keep, :, : longest + ROOM]) for kv in self._kv] if self._rows else []
            )

    def step(self) -> dict[object, int]:
        self.chances = {}
        reading = [k for k, s in self._sequences.items() if s.pending]
        if reading and (self._prompt_turn or not self._rows):
            self._prompt_turn = False
            return self._read_prompt(reading[0])
        self._prompt_turn = True
        return self._decode() if self._rows else {}

    def _read_prompt(self, key: object) -> dict[object, int]:
        s = self._sequences[key]
        if s.length == 0:
            self._start(s)
        size = self.prompt_chunk if self._rows else self.prompt_alone
        chunk, s.pending = s.pending[:size], s.pending[size:]
        past = s.kv or [self._empty(1)] * len(self._past)
        mask = np.ones((1, s.length + len(chunk)), dtype=np.int64)
        logits, s.kv = self._run(np.array([chunk], dtype=np.int64), mask, past)
        _give_back_free_memory()  # the chunk's activations, so the next answer starts as small
        s.length += len(chunk)
        self.tokens_read += len(chunk)
        if s.pending:
            return {}
        self._keep(s.prompt, s.kv)
        s.last = int(logits[0].argmax())
        self.chances[key] = (_chance(logits[0]),)
        s.drafts.extend([*s.prompt, s.last])
        self._add_row(key, s.kv)
        s.kv = None
        return {key: s.last}

    def _keep(self, prompt: list[int], kv: list[np.ndarray]) -> None:
        """Keep `prompt`'s cache with the last ones read, in place of any kept prompt it begins
        with; the oldest go while they hold more than `keep_tokens`."""
        kept = [(t, c) for t, c in self._kept if prompt[: len(t)] != t]
        kept.append((prompt, kv))
        while len(kept) > 1 and sum(len(t) for t, _ in kept) > self.keep_tokens:
            kept.pop(0)
        self._kept = kept

    def _decode(self) -> dict[object, int | tuple[int, ...] | None]:
        sequences = [self._sequences[k] for k in self._rows]
        ended = {k: None for k, s in zip(self._rows, sequences, strict=True) if s.length >= self.context}
        if ended:  # an answer that reached the model's last position ends there
            return ended
        longest = max(s.length for s in sequences)
        draft = self._draft(sequences)[: self.context - longest - 1]
        fed = 1 + len(draft)
        if longest + fed > self._kv[0].shape[2]:  # no room for this step's tokens: grow
            self._hold([_pad(kv, longest + fed + ROOM) for kv in self._kv])
        mask = np.zeros((len(sequences), longest + fed), dtype=np.int64)
        for row, s in enumerate(sequences):
            mask[row, : s.length + fed] = 1  # the cache so far and the tokens fed now
        tokens = np.array([[s.last, *draft] for s in sequences], dtype=np.int64)
        logits = self._step_in_place(tokens, mask, fed)
        out: dict[object, int | tuple[int, ...]] = {}
        for key, s, rows in zip(self._rows, sequences, logits, strict=True):
            made = agreed(draft, [int(r.argmax()) for r in rows])
            self.chances[key] = tuple(_chance(r) for r in rows[: len(made)])
            s.length += len(made)  # the cache past them holds rejected drafts: overwritten next
            s.last = made[-1]
            s.drafts.extend(made)
            self.tokens_drafted += len(made) - 1
            out[key] = made[0] if len(made) == 1 else tuple(made)
        return out

    def _draft(self, sequences: list[_Sequence]) -> list[int]:
        """Tokens to check after a lone sequence's next one: a step for several sequences has
        work enough for the cores already."""
        if len(sequences) > 1 or not self.draft or not self._positions:
            return []
        return sequences[0].drafts.draft(self.draft)

    def _add_row(self, key: object, kv: list[np.ndarray]) -> None:
        """Start decoding `key` from its prompt's cache `kv` (copied: that cache is also kept as the
        prompt's own, and the decoding cache is written in place)."""
        room = max(self._kv[0].shape[2] if self._rows else 0, kv[0].shape[2] + ROOM)
        if self._rows:
            kv = [np.concatenate([_pad(a, room), _pad(b, room)]) for a, b in zip(self._kv, kv, strict=True)]
        else:
            kv = [_pad(b, room) for b in kv]  # a new array: `room` is longer than the prompt
        self._hold(kv)
        self._rows.append(key)

    def _hold(self, kv: list[np.ndarray]) -> None:
        """Make `kv` the decoding rows' cache, bound as ONNX values over the same memory."""
        from onnxruntime import OrtValue

        self._kv = kv
        self._bound = [OrtValue.ortvalue_from_numpy(a) for a in kv]

    def _step_in_place(self, tokens: np.ndarray, mask: np.ndarray, fed: int = 1) -> np.ndarray:
        """One decoding step of every row, `fed` tokens each: the logits after each of them. The
        cache is both the past and the present, so the attention kernel writes each row's new keys
        and values at its length, in place."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", tokens)  # the arrays stay alive until the run returns
        binding.bind_cpu_input("attention_mask", mask)
        if self._positions:
            binding.bind_cpu_input(POSITIONS, np.arange(-fed, 0, dtype=np.int64))
        for past, present, value in zip(self._past, self._present, self._bound, strict=True):
            binding.bind_ortvalue_input(past, value)
            binding.bind_ortvalue_output(present, value)
        binding.bind_output("logits")
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[-1].numpy()[:, -fed:]

    def _run(
        self, tokens: np.ndarray, mask: np.ndarray, past: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        feed = {"input_ids": tokens, "attention_mask": mask, **dict(zip(self._past, past, strict=True))}
        if self._positions:
            feed[POSITIONS] = np.array([-1], dtype=np.int64)
        logits, *present = self.session.run(["logits", *self._present], feed)
        return logits[:, -1], present

    def _empty(self, rows: int) -> np.ndarray:
        return np.zeros((rows, self.kv_heads, 0, self.head_size), dtype=np.float32)


def _chance(logits: np.ndarray) -> float:
    """The probability of the likeliest token, from its logits (0.14 ms for 152k on a core)."""
    return float(1.0 / np.exp(logits - logits.max()).sum())


def _pad(kv: np.ndarray, length: int) -> np.ndarray:
    return np.pad(kv, ((0, 0), (0, 0), (0, length - kv.shape[2]), (0, 0))) if kv.shape[2] < length else kv


def _heap_trimmer() -> Callable[[], object]:
    """glibc's `malloc_trim(0)`: the free pages inside the heap go back to the system. Without
    it, the activations of the longest prompt read so far stay in the process after it."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator decides alone
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


_give_back_free_memory = _heap_trimmer()


def load(
    folder: Path,
    capacity: int,
    prompt_chunk: int,
    threads_: int | None = None,
    spinning: bool = True,
    huge_pages: bool = True,
) -> OrtBatch:
    """The decoder in `folder` (as the builder wrote it), ready to batch. `spinning`: the worker
    threads wait for the next operator of a step by spinning, not sleeping; `huge_pages`: its
    weights are moved onto huge pages in a thread of their own (about 2 s of one core for the
    default model, while the first prompt is read), not before the session is returned (the
    bench compares both settings with and without)."""
    import onnx
    import onnxruntime as ort

    from qa.runtimes import hugepages

    model = json.loads((folder / "genai_config.json").read_text())["model"]
    decoder = model["decoder"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads_ or threads()
    options.inter_op_num_threads = 1
    # A step runs hundreds of small operators; workers spin between them (ONNX Runtime's default)
    # rather than sleep and be woken for each. make bench compares the two at every run
    # (bench.answering.thread_spinning): over its recent runs neither is steadily faster (askers at
    # once 0.83-1.02x with spinning), so the default stays. They stop spinning when the step ends,
    # so between steps they leave the cores to the embedder.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    # The arena would keep the largest buffers that any prompt length has needed, growing with
    # each new one; without it they go back to malloc (and `_give_back_free_memory` returns them).
    options.enable_cpu_mem_arena = False
    # The graph is read from its file and given the positions input; its weights from beside it.
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder))
    graph = logits_where_asked(onnx.load(folder / decoder["filename"], load_external_data=False))
    before = hugepages.mapped() if huge_pages else []
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = OrtBatch(session, decoder["num_key_value_heads"], decoder["head_size"], capacity, prompt_chunk,
                     model["context_length"])  # fmt: skip
    batch.identity = f"{folder.resolve() / decoder['filename']} onnxruntime {ort.__version__}"
    if huge_pages:
        weights = hugepages.added(before, hugepages.mapped())

        def move() -> None:
            batch.huge_pages = hugepages.collapse(weights)

        batch.moving = threading.Thread(target=move, name="docqa-huge-pages", daemon=True)
        batch.moving.start()
    return batch


def logits_where_asked(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the logits of the positions fed as POSITIONS (indices into the tokens fed, -1
    the last) instead of the last one's alone, where the builder wrote the last one's as a Gather
    of position -1 and an Unsqueeze before the language-model head; otherwise as it is (one token
    a step, no drafts)."""
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    head = producer.get("logits")
    unsqueeze = producer.get(head.input[0]) if head is not None else None
    gather = (
        producer.get(unsqueeze.input[0])
        if unsqueeze is not None and unsqueeze.op_type == "Unsqueeze"
        else None
    )
    if (
        gather is None
        or gather.op_type != "Gather"
        or [a.i for a in gather.attribute if a.name == "axis"] != [1]
    ):
        return model
    hidden, last = gather.input[0], set(gather.input[1:]) | set(unsqueeze.input[1:])
    nodes = [n for n in graph.node if n.name not in (gather.name, unsqueeze.name)]
    used = {name for n in nodes for name in n.input}
    nodes = [n for n in nodes if n.op_type != "Constant" or not set(n.output) <= last - used]
    at = nodes.index(head)
    nodes.insert(
        at,
        helper.make_node("Gather", [hidden, POSITIONS], [unsqueeze.output[0]], "/lm_head/positions", axis=1),
    )
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.append(helper.make_tensor_value_info(POSITIONS, TensorProto.INT64, ["positions"]))
    for value in [*graph.output, *graph.value_info]:
        if value.name in ("logits", unsqueeze.output[0]):
            value.type.tensor_type.shape.dim[1].dim_param = "positions"
    return model
