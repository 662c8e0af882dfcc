"""The one settings object of docqa, with every default in sight."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embeddings.errors import ConfigError


@dataclass(frozen=True)
class Config:
    # Where documents come from and where the index lives.
    docs: Path = Path("seeds")
    index_dir: Path = Path(".docqa")

    # Embedding: a catalogue name, a Hugging Face id or a local folder.
    embedding_model: str = "all-MiniLM-L6-v2"
    device: str | None = None  # None: cuda when present, else cpu
    dtype: str | None = None  # None: bfloat16 where the hardware runs it fast, else float32
    batch_size: int = 64
    # Chunks are sized in the embedding model's own tokens.
    chunk_tokens: int = 128
    chunk_overlap: int = 24
    # How many chunks are read ahead before they are embedded together; bounds memory.
    embed_window: int = 2048

    def __post_init__(self) -> None:
        object.__setattr__(self, "docs", Path(self.docs))
        object.__setattr__(self, "index_dir", Path(self.index_dir))
        if self.chunk_tokens < 8:
            raise ConfigError(f"chunk_tokens must be at least 8, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap must be between 0 and half of chunk_tokens "
                f"({self.chunk_tokens // 2 - 1}), got {self.chunk_overlap}"
            )
        if self.batch_size < 1 or self.embed_window < self.batch_size:
            raise ConfigError("batch_size must be >= 1 and embed_window >= batch_size")
