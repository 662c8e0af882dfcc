"""Texts -> normalised vectors. `Embedder` is what docqa asks of an embedding model; the real one,
`SentenceEmbedder`, runs sentence-transformers and holds the only embedding model call."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embeddings.errors import ConfigError
from embeddings.hardware import dtype_name, pick_device, pick_dtype
from embeddings.models import KNOWN, fingerprint, locate


@runtime_checkable
class Embedder(Protocol):
    """An embedding model as docqa uses it. Test fakes keep to the same contract."""

    name: str
    fingerprint: str  # a hash of the weights: an index records it and refuses other models
    device: str
    dtype: str

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The most tokens of text one input may hold before the model would truncate it."""
        ...

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each token (special tokens left out), for the chunker."""
        ...

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32, unit length."""
        ...

    @classmethod
    def load(cls, name: str, device: str | None = None, dtype: str | None = None) -> Embedder:
        """The model `name` (catalogue name, Hub id or folder) with sentence-transformers,
        loaded once per process."""
        return SentenceEmbedder.load(name, device, dtype)


@dataclass
class SentenceEmbedder:
    """A sentence-transformers model. Safe to share between threads: a fast tokenizer is a Rust
    object that `encode` switches to truncation and chunking switches back, and two threads
    using one at once fail with "Already borrowed" (huggingface/tokenizers#537). So `tokenize`
    has its own copy, used by one thread at a time, and `encode` keeps the model's, whose
    settings stop changing after the first call (made when the model loads)."""

    model: Any  # a loaded SentenceTransformer
    name: str
    fingerprint: str
    device: str
    dtype: str
    _chunking: Tokenizer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._chunking = Tokenizer(copy.deepcopy(self.model.tokenizer))

    @classmethod
    def load(cls, name: str, device: str | None = None, dtype: str | None = None) -> SentenceEmbedder:
        """The model `name` (catalogue name, Hub id or folder), loaded once per process. A folder
        is known by its absolute path: the index records the name, and is opened from anywhere."""
        return _load(absolute(name), pick_device(device), dtype)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """The most tokens of text one input may hold before the model would truncate it."""
        return int(self.model.max_seq_length) - self.model.tokenizer.num_special_tokens_to_add()

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each token, for the chunker to count and cut with."""
        return self._chunking(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32, unit length; the model sorts batches by length itself."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            vectors = self._one(texts[0])
        else:
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        # Normalise in float32: bf16 leaves norms ~0.3% off 1, which would blur score thresholds.
        vectors = vectors.float().cpu().numpy()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _one(self, text: str) -> Any:
        """One text (a question) through the model's own steps, without `encode`'s sorting and
        batching around them: the same vector, bit for bit, sooner (what a question waits for)."""
        import torch

        features = self.model.preprocess([text])
        features = {k: v.to(self.model.device) if torch.is_tensor(v) else v for k, v in features.items()}
        with torch.inference_mode():
            return self.model(features)["sentence_embedding"]


def use_one_core() -> None:
    """Run the calling thread's model calls on one core. torch keeps the setting per thread
    (OpenMP's), so the other threads' calls keep every core."""
    import torch

    torch.set_num_threads(1)


def absolute(name: str) -> str:
    """A model's name as an index records it and other machines' workers load it: a folder by its
    absolute path (the index is opened from anywhere), a catalogue name or Hub id as it is."""
    return str(Path(name).absolute()) if name not in KNOWN and Path(name).is_dir() else name


@dataclass(frozen=True)
class Description:
    """What an index records of the embedding model its vectors come from; what a build on a
    Ray cluster learns from a worker, where the model runs."""

    name: str
    fingerprint: str
    device: str
    dtype: str
    dim: int
    max_tokens: int

    @classmethod
    def of(cls, embedder: Embedder) -> Description:
        return cls(embedder.name, embedder.fingerprint, embedder.device, embedder.dtype, embedder.dim,
                   embedder.max_tokens)  # fmt: skip


class Tokenizer:
    """A model's fast tokenizer as the chunker uses it: character offsets of each token, special
    tokens left out. One call at a time (the lock): see SentenceEmbedder."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer, self._lock = tokenizer, threading.Lock()

    @classmethod
    def load(cls, name: str) -> Tokenizer:
        """The tokenizer of the model `name` without its weights, for processes that only chunk."""
        return _tokenizer(name)

    def __call__(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if not texts:
            return []
        with self._lock:
            offsets = self._offsets(list(texts))
        return [[tuple(o) for o in each] for each in offsets]

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        enc = self._tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return enc["offset_mapping"]


class _BareTokenizer(Tokenizer):
    """The Rust tokenizer of a model's tokenizer.json alone, as transformers runs it for the
    chunker (no truncation, no padding): it loads neither transformers nor torch, so a process
    that only chunks starts in a second, not five."""

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [e.offsets for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]


@cache
def _tokenizer(name: str) -> Tokenizer:
    folder = locate(name)
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer as RustTokenizer

        rust = RustTokenizer.from_file(str(folder / "tokenizer.json"))
        rust.no_truncation()
        rust.no_padding()
        return _BareTokenizer(rust)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"embedding model {name!r} has no fast tokenizer; docqa needs one for offsets")
    return Tokenizer(tokenizer)


@cache
def _load(name: str, device: str, dtype: str | None) -> SentenceEmbedder:
    from sentence_transformers import SentenceTransformer

    folder = locate(name)
    torch_dtype = pick_dtype(device, dtype)
    # safetensors only: a weights file is never unpickled, whatever folder or Hub id is given.
    try:
        model = SentenceTransformer(
            str(folder), device=device, model_kwargs={"dtype": torch_dtype, "use_safetensors": True}
        )
    except (OSError, ValueError) as e:  # a folder that holds no model, or none in safetensors
        raise ConfigError(f"embedding model {name!r} cannot be loaded from {folder}: {e}") from None
    if not getattr(model.tokenizer, "is_fast", False):
        raise ConfigError(f"embedding model {name!r} has no fast tokenizer; docqa needs one for offsets")
    model.encode(["settle the tokenizer's settings"], show_progress_bar=False)  # before threads share it
    return SentenceEmbedder(model, name, fingerprint(folder), device, dtype_name(torch_dtype))
