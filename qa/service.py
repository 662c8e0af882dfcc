"""One running docqa: its models (loaded in the background), its index, and the document
library, shared by every user of the web UI. Each method is one thing a user can do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embeddings.builder import BuildReport, build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError, DocqaError
from embeddings.index import Index
from embeddings.library import UPLOAD_PREFIX, Library, Upload
from embeddings.table import DocumentInfo
from qa.assistant import AnswerStream, Assistant
from qa.generator import Generator
from qa.summarize import Summary

MAX_UPLOAD_BYTES = 50_000_000


class NotReady(DocqaError):
    """The models are still loading."""


@dataclass(frozen=True)
class Status:
    state: str  # "loading", "ready" or "failed"
    message: str
    documents: int = 0
    chunks: int = 0
    embedding_model: str = ""
    generator_model: str = ""
    device: str = ""


class Service:
    def __init__(self, config: Config, generator: Generator | None = None, embedder: Embedder | None = None):
        self.config = config
        self.library = Library(config.index_dir)
        self._generator, self._embedder = generator, embedder
        self._assistant: Assistant | None = None
        self._state, self._message = "loading", "Starting ..."
        self._index_lock = threading.Lock()  # one index update at a time from this process

    # Start-up
    def start(self, background: bool = True) -> Service:
        """Load the models and open (or first build) the index; the UI serves meanwhile."""
        if background:
            threading.Thread(target=self._load, name="docqa-load", daemon=True).start()
        else:
            self._load()
        return self

    def _load(self) -> None:
        try:
            started = time.perf_counter()
            self._message = f"Loading the embedding model {self.config.embedding_model} ..."
            embedder = self._embedder or Embedder.load(
                self.config.embedding_model, self.config.device, self.config.dtype
            )
            self._embedder = embedder
            if not (self.config.index_dir / "CURRENT").exists():
                self._message = f"Building the index of {self.config.docs} ..."
                build(self.config, embedder, progress=False, wait=60)
            self._message = f"Loading the generator {self.config.generator} (the first start converts it once, about a minute) ..."
            generator = self._generator or Generator.load(
                self.config.generator, self.config.device, self.config.dtype
            )
            self._generator = generator
            self._assistant = Assistant(Index.open(self.config.index_dir, embedder), generator, self.config)
            self._state, self._message = (
                "ready",
                f"Ready (models loaded in {time.perf_counter() - started:.0f} s)",
            )
        except Exception as e:  # shown on the page and in status; the server keeps serving
            self._state, self._message = "failed", f"docqa could not start: {e}"
            raise

    @property
    def assistant(self) -> Assistant:
        if self._assistant is None:
            if self._state == "failed":
                raise NotReady(self._message)
            raise NotReady(f"docqa is still starting: {self._message}")
        return self._assistant

    def status(self) -> Status:
        if self._assistant is None:
            return Status(self._state, self._message)
        a = self._assistant
        docs, chunks = a.index.table.count()
        return Status(
            self._state, self._message, docs, chunks, a.index.manifest["embedding"]["model"],
            a.generator.name, a.generator.device,
        )  # fmt: skip

    # Asking and summarising
    def ask(self, question: str) -> AnswerStream:
        return self.assistant.stream(question)

    def summarize(self, doc_id: str | None, progress: Callable[[int, int], None] | None = None) -> Summary:
        return self.assistant.summarize(doc_id, progress)

    def document_text(self, doc_id: str) -> str:
        return self.assistant.index.document_text(doc_id) or ""

    # The document library
    def documents(self) -> list[DocumentInfo]:
        return self.assistant.index.documents()

    def uploads(self) -> list[Upload]:
        return self.library.uploads()

    def upload(self, files: list[tuple[str, Path]]) -> tuple[list[Upload], list[str], BuildReport | None]:
        """Store each (name, temporary path) under a generated name, then index them.
        Returns what was stored, what was refused (with reasons), and the build report."""
        stored, refused = [], []
        for name, path in files:
            try:
                stored.append(self.library.store(name, Path(path), MAX_UPLOAD_BYTES))
            except (ConfigError, OSError) as e:
                refused.append(str(e))
        report = self.reindex() if stored else None
        return stored, refused, report

    def remove(self, doc_id: str) -> BuildReport:
        """Take a document out of the index: an upload is deleted, a folder document excluded."""
        if doc_id.startswith(UPLOAD_PREFIX):
            self.library.delete(doc_id.removeprefix(UPLOAD_PREFIX))
        elif self.assistant.index.document(doc_id) is None:
            raise ConfigError(f"no document {doc_id!r} in the index")
        else:
            self.library.exclude(doc_id)
        return self.reindex()

    def forget_upload(self, stored: str) -> BuildReport:
        """Remove an upload that never made it into the index."""
        self.library.delete(stored)
        return self.reindex()

    def retry(self) -> tuple[BuildReport, list[Upload]]:
        """Index again every stored upload that is pending or failed; returns those still failing."""
        report = self.reindex()
        return report, [u for u in self.library.uploads() if u.status != "indexed"]

    def reindex(self) -> BuildReport:
        """Bring the index up to date (uploads included) and answer from the new one."""
        assistant = self.assistant
        with self._index_lock:
            report = build(self.config, assistant.index.embedder, progress=True, wait=120, log=lambda m: None)
            index = Index.open(self.config.index_dir, assistant.index.embedder)
            self._assistant = Assistant(index, assistant.generator, self.config)
        return report
