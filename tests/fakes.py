"""Deterministic stand-ins for the models, for tests of the logic around them."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qa.generator import Piece

_WORD = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Words hashed into a bag-of-words vector: texts sharing words score high."""

    def __init__(self, name: str = "fake-embedder", dim: int = 64, max_tokens: int = 254) -> None:
        self.name, self.dim, self.max_tokens = name, dim, max_tokens
        self.fingerprint = hashlib.sha256(name.encode()).hexdigest()[:16]
        self.device, self.dtype = "cpu", "float32"
        self.embedded: list[str] = []

    @classmethod
    def load(cls, name: str, device: str | None = None, dtype: str | None = None) -> FakeEmbedder:
        return cls(name)

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _WORD.finditer(t)] for t in texts]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class FakeGenerator:
    """Replies from a script: a fixed text, or a function of the prompt. One token per word."""

    def __init__(
        self, reply="I don't know.", name: str = "fake-generator", context: int = 32768,
        chances: dict[str, float] | None = None,
    ) -> None:  # fmt: skip
        """`chances`: the probability the model gives each word (1.0 for any other); without it
        the pieces are plain text, as from a runtime that does not measure them."""
        self.reply, self.name, self.context, self.chances = reply, name, context, chances
        self.device, self.dtype, self.runtime = "cpu", "float32", "fake"
        self.prompts: list[list[dict[str, str]]] = []

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _WORD.finditer(t)] for t in texts]

    def count(self, text: str) -> int:
        return len(_WORD.findall(text))

    def render(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int):
        self.prompts.append(messages)
        reply = self.reply(messages) if callable(self.reply) else self.reply
        for i, word in enumerate(re.findall(r"\S+\s*", reply)):
            if i >= max_new_tokens:
                return
            yield word if self.chances is None else Piece(word, self.chances.get(word.strip(), 1.0))

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        return "".join(self.stream(messages, max_new_tokens))


def citing(words: str, sentence: str):
    """A FakeGenerator reply: `sentence` citing the prompt's document block that holds `words`,
    wherever the prompt's passage order puts it."""

    def reply(messages: list[dict[str, str]]) -> str:
        blocks = messages[1]["content"].split("Document [")[1:]
        number = next(b.split("]")[0] for b in blocks if words in b)
        return f"{sentence} [{number}]"

    return reply


def write_docs(folder: Path, texts: dict[str, str]) -> Path:
    """A documents folder holding `texts` (file name -> text); returns the folder."""
    folder.mkdir()
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


def check_contract(runtime: type, protocol: type, fake: object) -> None:
    """`runtime` (a class) has every member `protocol` declares, its methods with the same
    parameters; `fake` (an instance, whose plain attributes count) is one of `protocol`."""
    fields = set(getattr(runtime, "__dataclass_fields__", {})) | set(vars(fake))
    for name, declared in _members(protocol).items():
        assert hasattr(runtime, name) or name in fields, f"{runtime.__name__} has no {name}"
        if declared is not None and hasattr(runtime, name):
            assert _signature(inspect.getattr_static(runtime, name)) == _signature(declared), name
    assert isinstance(fake, protocol)


def _members(protocol: type) -> dict[str, object]:
    """The protocol's attributes and methods, as declared."""
    declared = {name: None for name in protocol.__annotations__}
    declared |= {name: value for name, value in vars(protocol).items() if not name.startswith("_")}
    return declared


def _signature(value: object) -> list[tuple[str, object]] | None:
    if isinstance(value, property):
        return None
    function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
    if not callable(function):
        return None
    params = list(inspect.signature(function).parameters.values())
    return [(p.name, p.default) for p in params if p.name not in ("self", "cls")]
