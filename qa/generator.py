"""Chat messages -> text with a local causal LM; the only generator model call in docqa."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

from embeddings.hardware import dtype_name, pick_device, pick_dtype
from qa.models import KNOWN, locate

Messages = list[dict[str, str]]


@dataclass
class Generator:
    model: object  # a transformers causal LM
    tokenizer: object
    name: str
    device: str
    dtype: str
    # One generation at a time: concurrent ones would only split the same cores and memory.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, name: str, device: str | None = None, dtype: str | None = None) -> Generator:
        """The model `name` (catalogue name, Hub id or folder), loaded once per process."""
        return _load(name, pick_device(device), dtype)

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 4096))

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each token, so text can be cut to the generator's budget."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return [[tuple(o) for o in offsets] for offsets in enc["offset_mapping"]]

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        """Pieces of the reply as they are decoded (greedy, so answers are repeatable)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self.tokenizer(self.render(messages), return_tensors="pt", add_special_tokens=False)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []
        stop = threading.Event()  # set when the reader stops listening, so decoding ends too

        class _Stopped(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Stopped()]),
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                    )
            except BaseException as e:  # handed to the caller below, never lost in the thread
                errors.append(e)
                streamer.end()

        with self.lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                stop.set()
                worker.join()
        if errors:
            raise errors[0]

    def generate(self, messages: Messages, max_new_tokens: int) -> str:
        return "".join(self.stream(messages, max_new_tokens))


@cache
def _load(name: str, device: str, dtype: str | None) -> Generator:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = locate(name)
    torch_dtype = pick_dtype(device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template and name in KNOWN:
        tokenizer.chat_template = KNOWN[name].chat_template
    # safetensors only: a weights file is never unpickled, whatever folder or Hub id is given.
    model = (
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, use_safetensors=True)
        .to(device)
        .eval()
    )
    return Generator(model, tokenizer, name, device, dtype_name(torch_dtype))
