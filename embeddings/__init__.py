"""Documents -> chunks -> vectors -> index, and search over it."""

from embeddings.builder import BuildReport, build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import DocqaError
from embeddings.index import Hit, Index
from embeddings.table import Chunk, DocumentInfo

__all__ = [
    "BuildReport",
    "Chunk",
    "Config",
    "DocqaError",
    "DocumentInfo",
    "Embedder",
    "Hit",
    "Index",
    "build",
]
