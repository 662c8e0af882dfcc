"""Folder -> index: embed only what is new or changed, carry the rest, swap in atomically."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import store
from embeddings.chunker import Span, chunk_text, with_title
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError, DocqaError, UnreadableDocument
from embeddings.lexical import Lexical
from embeddings.library import UPLOAD_PREFIX, Library
from embeddings.models import fingerprint, locate
from embeddings.readers import Document, Pending, Skipped, scan
from embeddings.table import Table
from embeddings.vectors import Vectors

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


@dataclass
class BuildReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    rebuilt_because: str | None = None

    @property
    def up_to_date(self) -> bool:
        return not (self.added or self.changed or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        counts = (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{len(self.skipped)} skipped, {self.unchanged} unchanged"
        )
        total = f"{_count(self.documents, 'document')}, {_count(self.chunks, 'chunk')}"
        if self.up_to_date:
            return f"Index is up to date, nothing to embed: {total} ({counts}) in {self.seconds:.1f} s"
        rate = self.embedded / self.embed_seconds if self.embed_seconds else 0.0
        return (
            f"Indexed {total}: {counts}; embedded {_count(self.embedded, 'chunk')} "
            f"({rate:.0f} chunks/s) in {self.seconds:.1f} s"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def settings(config: Config, embedder: Embedder) -> dict:
    """What the vectors depend on, as the manifest records it."""
    return {
        "embedding": {
            "model": embedder.name,
            "fingerprint": embedder.fingerprint,
            "dim": embedder.dim,
            "dtype": embedder.dtype,
        },
        "chunker": _chunker(config),
    }


def _chunker(config: Config) -> dict:
    return {
        "chunk_tokens": config.chunk_tokens,
        "chunk_overlap": config.chunk_overlap,
        "title_tokens": config.title_tokens,
    }


def _why_rebuild(old: dict, model: str, model_fingerprint: str, chunker: dict) -> str | None:
    """Why vectors in `old` cannot be reused, or None when they can."""
    if old.get("embedding", {}).get("fingerprint") != model_fingerprint:
        return f"the embedding model changed ({old.get('embedding', {}).get('model')} -> {model})"
    if old.get("chunker") != chunker:
        return f"the chunk settings changed ({old.get('chunker')} -> {chunker})"
    return None


def build(
    config: Config,
    embedder: Embedder | None = None,
    progress: bool = True,
    log: Log = _stderr,
    wait: float = 0,
) -> BuildReport:
    """Bring the index at `config.index_dir` in line with the documents at `config.docs`."""
    started = time.perf_counter()
    if not config.docs.exists():
        raise ConfigError(f"no documents at {config.docs}: give a folder or file that exists")
    # Hashing the weights is enough to know whether anything must be embedded; the model
    # itself is loaded only when something must.
    name = embedder.name if embedder else config.embedding_model
    model_fingerprint = embedder.fingerprint if embedder else fingerprint(locate(name))
    with store.build_lock(config.index_dir, wait):
        report = BuildReport()
        library = Library(config.index_dir)
        for stored in library.recover():
            log(f"found upload {stored} stored before an interruption; indexing it now")
        found = _scan(config.docs, library)
        report.skipped = [s for s in found if isinstance(s, Skipped)]
        for s in report.skipped:
            log(f"skipped {s.source}: {s.reason}")
        excluded = library.excluded()
        pending = [p for p in found if isinstance(p, Pending) and p.id not in excluded]
        old_folder, old_manifest, report.rebuilt_because = _previous(
            config.index_dir, name, model_fingerprint, _chunker(config)
        )
        old_docs = {} if report.rebuilt_because else old_manifest.get("documents", {})
        report.removed = len(old_docs.keys() - {p.id for p in pending})
        keep = [p for p in pending if old_docs.get(p.id) == p.hash]
        fresh = [p for p in pending if old_docs.get(p.id) != p.hash]
        if old_folder and not fresh and report.up_to_date:
            report.unchanged = len(keep)
            report.documents = old_manifest["counts"]["documents"]
            report.chunks = old_manifest["counts"]["chunks"]
            report.seconds = time.perf_counter() - started
            return report
        if not pending:
            raise _nothing_readable(config.docs)
        embedder = embedder or Embedder.load(name, config.device, config.dtype)
        room = embedder.max_tokens - config.title_tokens - 1 if config.title_tokens else embedder.max_tokens
        if config.chunk_tokens > room:
            raise ConfigError(
                f"chunk_tokens={config.chunk_tokens} and title_tokens={config.title_tokens} are more than "
                f"{embedder.name} reads at once ({embedder.max_tokens} tokens); choose chunk_tokens {room} or less"
            )
        if report.rebuilt_because:
            log(f"Re-embedding everything: {report.rebuilt_because}")
        workspace = store.new_workspace(config.index_dir)
        try:
            writer = _Writer(config, embedder, workspace, report, progress, log)
            if old_folder is not None:
                writer.carry(old_folder, keep)
            writer.embed(fresh, old_docs)
            store.commit(config.index_dir, workspace, {**writer.finish(), **settings(config, embedder)})
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        _record_uploads(library, report, writer.hashes)
    report.seconds = time.perf_counter() - started
    return report


def _scan(docs: Path, library: Library) -> list[Pending | Skipped]:
    """The folder's documents, then the uploads stored beside the index."""
    seen: set[str] = set()
    found = list(scan(docs, seen=seen))
    if library.uploads_dir.is_dir():
        found += scan(library.uploads_dir, UPLOAD_PREFIX, library.names(), seen)
    return found


def _record_uploads(library: Library, report: BuildReport, indexed: dict[str, str]) -> None:
    failed = {s.id: s.reason for s in report.skipped if s.id}
    results = {}
    for upload in library.uploads():
        if upload.doc_id in indexed:
            results[upload.stored] = None
        elif upload.doc_id in failed:
            results[upload.stored] = failed[upload.doc_id]
    library.mark(results)


def _nothing_readable(docs: Path) -> ConfigError:
    return ConfigError(
        f"no readable documents in {docs} (docqa reads .txt .md .html .pdf .jsonl); "
        "the index was left as it was"
    )


def _previous(
    index_dir: Path, model: str, model_fingerprint: str, chunker: dict
) -> tuple[Path | None, dict, str | None]:
    """The live generation to build on, or why everything must be embedded again."""
    try:
        folder = store.current(index_dir)
        if folder is None:
            return None, {}, None
        manifest = store.read_manifest(folder)
    except DocqaError as e:
        return None, {}, f"the previous index cannot be used ({e})"
    return folder, manifest, _why_rebuild(manifest, model, model_fingerprint, chunker)


class _Writer:
    """Fills one new generation: carried rows first, then freshly embedded ones."""

    def __init__(self, config, embedder, workspace, report, progress, log) -> None:
        self.config: Config = config
        self.embedder: Embedder = embedder
        self.workspace: Path = workspace
        self.report: BuildReport = report
        self.progress, self.log = progress, log
        self.table = Table.create(workspace / "chunks.sqlite")
        self.vectors = Vectors.empty(embedder.dim)
        self.hashes: dict[str, str] = {}  # what the manifest will list
        self.now = datetime.now(UTC).isoformat(timespec="seconds")

    def carry(self, old_folder: Path, keep: list[Pending]) -> None:
        """Copy unchanged documents' rows and vectors from the live generation."""
        old_table = Table.open(old_folder / "chunks.sqlite")
        old_vectors = Vectors.load(old_folder / "vectors.faiss")
        try:
            rows: list[int] = []
            for item in keep:
                rows.extend(self.table.copy_from(old_table, item.id, len(self.vectors) + len(rows)))
                self.hashes[item.id] = item.hash
                if len(rows) >= 65_536:
                    self.vectors.add(old_vectors.get(np.array(rows)))
                    rows = []
            if rows:
                self.vectors.add(old_vectors.get(np.array(rows)))
        finally:
            old_table.close()
        self.report.unchanged = len(keep)

    def embed(self, fresh: list[Pending], old_docs: dict[str, str]) -> None:
        """Parse, chunk and embed new and changed documents, a window of chunks at a time."""
        config = self.config
        window: list[tuple[Document, list[Span]]] = []
        bars = dict(disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        with (
            tqdm(total=len(fresh), desc="documents", unit="doc", **bars) as docs_bar,
            tqdm(total=0, desc="embedding", unit="chunk", **bars) as self.chunks_bar,
        ):
            for item in fresh:
                docs_bar.update(1)
                try:
                    doc = item.load()
                    spans = chunk_text(
                        doc.text, self.embedder.tokenize, config.chunk_tokens, config.chunk_overlap
                    )
                    if not spans:
                        raise UnreadableDocument("no words the embedding model can read")
                except UnreadableDocument as e:
                    self.report.skipped.append(Skipped(item.source, str(e), item.id))
                    self.log(f"skipped {item.source}: {e}")
                    continue
                if item.id in old_docs:
                    self.report.changed += 1
                else:
                    self.report.added += 1
                window.append((doc, spans))
                self.chunks_bar.total += len(spans)
                if sum(len(s) for _, s in window) >= config.embed_window:
                    self._flush(window)
                    window = []
            self._flush(window)

    def _flush(self, window: list[tuple[Document, list[Span]]]) -> None:
        tokenize, title_tokens = self.embedder.tokenize, self.config.title_tokens
        texts = [
            with_title(doc.title, doc.text[s.start : s.end], tokenize, title_tokens)
            for doc, spans in window
            for s in spans
        ]
        if not texts:
            return
        # Embed longest first across the whole window, so batches hold texts of like length
        # (less padding), while the bar still moves every few batches.
        started = time.perf_counter()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        step = self.config.batch_size * 4
        for start in range(0, len(texts), step):
            part = order[start : start + step]
            out[part] = self.embedder.embed([texts[i] for i in part], self.config.batch_size)
            self.chunks_bar.update(len(part))
        self.report.embed_seconds += time.perf_counter() - started
        self.report.embedded += len(texts)
        row = len(self.vectors)
        self.vectors.add(out)
        for doc, spans in window:
            self.table.add(doc, spans, row, self.now)
            self.hashes[doc.id] = doc.hash
            row += len(spans)

    def finish(self) -> dict:
        """Write the vectors and BM25 beside the table; the manifest's content."""
        self.table.commit()
        self.report.documents, self.report.chunks = self.table.count()
        if self.report.chunks == 0:
            raise _nothing_readable(self.config.docs)
        self.vectors.settle().save(self.workspace / "vectors.faiss")
        Lexical.build(list(self.table.texts(with_titles=self.config.title_tokens > 0))).save(
            self.workspace / "bm25"
        )
        self.table.close()
        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "counts": {"documents": self.report.documents, "chunks": self.report.chunks},
            "documents": self.hashes,
        }
