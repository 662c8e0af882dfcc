"""Texts -> normalised vectors with a sentence-transformers model; the only model call here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from embeddings.errors import ConfigError
from embeddings.hardware import dtype_name, pick_device, pick_dtype
from embeddings.models import fingerprint, locate


@dataclass
class Embedder:
    model: object  # a loaded SentenceTransformer
    name: str
    fingerprint: str
    device: str
    dtype: str

    @classmethod
    def load(cls, name: str, device: str | None = None, dtype: str | None = None) -> Embedder:
        """The model `name` (catalogue name, Hub id or folder), loaded once per process."""
        return _load(name, pick_device(device), dtype)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """The most tokens of text one input may hold before the model would truncate it."""
        return int(self.model.max_seq_length) - self.model.tokenizer.num_special_tokens_to_add()

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each token, for the chunker to count and cut with."""
        if not texts:
            return []
        enc = self.model.tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [[tuple(o) for o in offsets] for offsets in enc["offset_mapping"]]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32, unit length; the model sorts batches by length itself."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        # Normalise in float32: bf16 leaves norms ~0.3% off 1, which would blur score thresholds.
        vectors = vectors.float().cpu().numpy()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@cache
def _load(name: str, device: str, dtype: str | None) -> Embedder:
    from sentence_transformers import SentenceTransformer

    folder = locate(name)
    torch_dtype = pick_dtype(device, dtype)
    # safetensors only: a weights file is never unpickled, whatever folder or Hub id is given.
    model = SentenceTransformer(
        str(folder), device=device, model_kwargs={"dtype": torch_dtype, "use_safetensors": True}
    )
    if not getattr(model.tokenizer, "is_fast", False):
        raise ConfigError(f"embedding model {name!r} has no fast tokenizer; docqa needs one for offsets")
    return Embedder(model, name, fingerprint(folder), device, dtype_name(torch_dtype))
