"""The GPU runtime (and the CPU one on request): a Hugging Face causal LM under PyTorch.

Questions are batched statically: the ones waiting when the batch is empty start together,
left-padded, in one `generate` call. On a GPU the KV cache is static and the decoding step is
compiled with torch.compile (CUDA graphs), which is what makes small models fast there: an
uncompiled step spends its time launching kernels, not computing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

_DONE = object()


@dataclass
class HfBatch:
    """`decoding.Batch` over `model.generate`, greedy."""

    model: object  # a transformers causal LM
    pad_id: int
    capacity: int = 4
    static_cache: bool = False  # a fixed-size KV cache, needed for compiling the decoding step
    compile: bool = False
    cache_tokens: int = 4096  # the static cache's length, fixed so the compiled step is reused
    _joining: dict[object, list[int]] = field(default_factory=dict)
    _rows: list[object] = field(default_factory=list)
    _left: set[int] = field(default_factory=set)  # rows whose reader went away
    _tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _jobs: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _worker: threading.Thread | None = None  # runs every generate: CUDA graphs live in its thread
    _running: bool = False

    def free(self) -> int:
        running = self._running and len(self._left) < len(self._rows)
        return 0 if running else self.capacity - len(self._joining)

    def join(self, key: object, prompt: Sequence[int]) -> None:
        if not prompt:
            raise ValueError("an empty prompt cannot be decoded")
        if len(prompt) >= self.cache_tokens and self.static_cache:
            raise ValueError(
                f"the prompt ({len(prompt)} tokens) does not fit the {self.cache_tokens}-token cache"
            )
        self._joining[key] = list(prompt)

    def leave(self, key: object) -> None:
        if key in self._joining:
            del self._joining[key]
        elif key in self._rows:
            self._left.add(self._rows.index(key))

    def step(self) -> dict[object, int | None]:
        if self._running and len(self._left) == len(self._rows):
            while (item := self._tokens.get()) is not _DONE and not isinstance(item, BaseException):
                pass  # every reader has gone: let generate see it and stop
            self._end()
        if not self._running:
            if not self._joining:
                return {}
            self._start()
        item = self._tokens.get()
        if item is _DONE or isinstance(item, BaseException):
            ended = {key: None for i, key in enumerate(self._rows) if i not in self._left}
            self._end()
            if isinstance(item, BaseException):
                raise item
            return ended
        return {key: int(token) for key, token in zip(self._rows, item, strict=True)}

    def _end(self) -> None:
        self._running, self._rows, self._left = False, [], set()

    def _start(self) -> None:
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        self._rows, prompts, self._joining = list(self._joining), list(self._joining.values()), {}
        longest = max(map(len, prompts))
        device = self.model.device
        ids = torch.tensor([[self.pad_id] * (longest - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts], device=device)
        tokens, left = self._tokens, self._left

        class Rows(BaseStreamer):
            def put(self, value: torch.Tensor) -> None:
                if value.dim() == 1:  # one new token per row (the prompt arrives first, 2-D)
                    tokens.put(value.tolist())

            def end(self) -> None:
                pass

        class Left(StoppingCriteria):  # rows whose reader went away stop; the others go on
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
                done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                if left:
                    done[list(left)] = True
                return done

        options: dict = {}
        if self.static_cache:
            options.update(cache_implementation="static", max_cache_len=self.cache_tokens)
        if self.compile:
            from transformers.generation.configuration_utils import CompileConfig

            on_gpu = self.model.device.type == "cuda"
            config = CompileConfig(mode="reduce-overhead" if on_gpu else "default")  # CUDA graphs on a GPU
            config._compile_all_devices = True  # transformers compiles on a GPU only, unless told
            options["compile_config"] = config
        else:
            options["disable_compile"] = True

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        streamer=Rows(),
                        stopping_criteria=StoppingCriteriaList([Left()]),
                        max_new_tokens=self.cache_tokens - longest if self.static_cache else 4096,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=self.pad_id,
                        **options,
                    )
                tokens.put(_DONE)
            except BaseException as e:  # handed to the scheduler, never lost in this thread
                tokens.put(e)

        if self._worker is None:
            self._worker = threading.Thread(
                target=_work, args=(self._jobs,), name="docqa-generate", daemon=True
            )
            self._worker.start()
        self._running = True
        self._jobs.put(run)


def _work(jobs: queue.SimpleQueue) -> None:
    while True:
        jobs.get()()


def load(folder, device: str, dtype: torch.dtype):
    """The causal LM in `folder` on `device`; weights from safetensors only, never a pickle."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    return model.to(device).eval()
