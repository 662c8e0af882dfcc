"""Documents -> chunks -> vectors -> index, and search over it."""

from embeddings.builder import BuildReport, build
from embeddings.config import Config
from embeddings.embedder import Embedder, SentenceEmbedder
from embeddings.errors import (
    ClusterError,
    ConfigError,
    DocqaError,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    QuestionError,
    UnreadableDocument,
)
from embeddings.index import Hit, Index
from embeddings.scope import Scope
from embeddings.table import Chunk, DocumentInfo

__all__ = [
    "BuildReport",
    "Chunk",
    "ClusterError",
    "Config",
    "ConfigError",
    "DocqaError",
    "DocumentInfo",
    "Embedder",
    "Hit",
    "Index",
    "IndexBusy",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexMissing",
    "QuestionError",
    "Scope",
    "SentenceEmbedder",
    "UnreadableDocument",
    "build",
]
