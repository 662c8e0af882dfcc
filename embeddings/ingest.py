"""New and changed documents -> chunks -> vectors, into a new segment. The middle step, an
`Embedding`, runs here a window of chunks at a time (`LocalEmbedding`) or on a Ray cluster
(ray_build.py); `Ingest` writes what it yields, in the documents' order, either way."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from tqdm import tqdm

from embeddings.chunker import Span, Tokenize, chunk_text, with_title
from embeddings.compressed import Encode, local_map
from embeddings.config import Config
from embeddings.embedder import Description, Embedder
from embeddings.errors import UnreadableDocument
from embeddings.readers import Document, Pending, Skipped
from embeddings.segment import SegmentWriter

Embedded = tuple[Document, list[Span], np.ndarray]  # a document, its chunks, their vectors


def chunk(item: Pending, tokenize: Tokenize, config: Config) -> tuple[Document, list[Span]]:
    """Parse and chunk one document; UnreadableDocument says why it cannot be indexed."""
    doc = item.load()
    spans = chunk_text(doc.text, tokenize, config.chunk_tokens, config.chunk_overlap)
    if not spans:
        raise UnreadableDocument("no words the embedding model can read")
    return doc, spans


def passages(doc: Document, spans: list[Span], tokenize: Tokenize, title_tokens: int) -> list[str]:
    """What is embedded for each chunk: its text after the document's title."""
    return [with_title(doc.title, doc.text[s.start : s.end], tokenize, title_tokens) for s in spans]


def embed_longest_first(
    embedder: Embedder, texts: list[str], batch_size: int, done: Callable[[int], None] = lambda n: None
) -> np.ndarray:
    """(len(texts), dim) vectors. Longest first, so batches hold texts of like length (less
    padding), a few batches per call so `done` can move a progress bar."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    step = batch_size * 4
    for start in range(0, len(texts), step):
        part = order[start : start + step]
        out[part] = embedder.embed([texts[i] for i in part], batch_size)
        done(len(part))
    return out


class Progress:
    """A build's two bars: documents read, chunks embedded."""

    def __init__(self, documents: int, enabled: bool) -> None:
        bars = dict(disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self.documents = tqdm(total=documents, desc="documents", unit="doc", **bars)
        self.chunks = tqdm(total=0, desc="embedding", unit="chunk", **bars)

    def read(self, chunks: int) -> None:
        self.documents.update(1)
        self.chunks.total += chunks

    def embedded(self, chunks: int) -> None:
        self.chunks.update(chunks)

    def close(self) -> None:
        self.chunks.close()
        self.documents.close()


class Embedding(Protocol):
    """Documents -> their chunks and vectors, yielded in the order given (a document that cannot
    be indexed as Skipped), with the model that made the vectors."""

    model: Description
    seconds: float  # spent embedding

    def __call__(self, fresh: list[Pending], progress: Progress) -> Iterator[Embedded | Skipped]: ...

    def shard_map(self, encode: Encode, trained: bytes, shards: Iterable[np.ndarray]) -> list[bytes]:
        """Encodes a large segment's vectors in shards where the embedding runs (compressed.py)."""
        ...

    def close(self) -> None:
        """Stops what runs for it, whether or not its results were all read."""
        ...


class LocalEmbedding:
    """In this process: read ahead `embed_window` chunks, then embed them together."""

    def __init__(self, config: Config, embedder: Embedder) -> None:
        self.config, self.embedder = config, embedder
        self.model, self.seconds = Description.of(embedder), 0.0
        self.shard_map = local_map

    def close(self) -> None:
        pass

    def __call__(self, fresh: list[Pending], progress: Progress) -> Iterator[Embedded | Skipped]:
        window: list[tuple[Document, list[Span]]] = []
        for item in fresh:
            try:
                doc, spans = chunk(item, self.embedder.tokenize, self.config)
            except UnreadableDocument as e:
                progress.read(0)
                yield Skipped(item.source, str(e), item.id, passing=e.passing)
                continue
            progress.read(len(spans))
            window.append((doc, spans))
            if sum(len(s) for _, s in window) >= self.config.embed_window:
                yield from self._embed(window, progress)
                window = []
        yield from self._embed(window, progress)

    def _embed(self, window: list[tuple[Document, list[Span]]], progress: Progress) -> Iterator[Embedded]:
        tokenize, title_tokens = self.embedder.tokenize, self.config.title_tokens
        texts = [text for doc, spans in window for text in passages(doc, spans, tokenize, title_tokens)]
        if not texts:
            return
        started = time.perf_counter()
        out = embed_longest_first(self.embedder, texts, self.config.batch_size, progress.embedded)
        self.seconds += time.perf_counter() - started
        row = 0
        for doc, spans in window:
            yield doc, spans, out[row : row + len(spans)]
            row += len(spans)


class Ingest:
    """Write what `embedding` makes of the new and changed documents into `writer`, counting what
    happened in `report`."""

    def __init__(self, embedding: Embedding, writer: SegmentWriter, report, progress: bool,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.embedding, self.writer, self.report = embedding, writer, report
        self.progress, self.log = progress, log
        self.now = datetime.now(UTC).isoformat(timespec="seconds")
        self.hashes: dict[str, str] = {}  # documents written, with their content hashes

    def __call__(self, fresh: list[Pending], indexed: Collection[str]) -> None:
        report, progress = self.report, Progress(len(fresh), self.progress)
        seconds = self.embedding.seconds
        try:
            for result in self.embedding(fresh, progress):
                if isinstance(result, Skipped):
                    report.skipped.append(result)
                    report.removed += result.id in indexed  # its old version is not carried over
                    self.log(f"skipped {result.source}: {result.reason}")
                    continue
                doc, spans, vectors = result
                if doc.id in indexed:
                    report.changed += 1
                else:
                    report.added += 1
                self.writer.add(doc, spans, vectors, self.now)
                self.hashes[doc.id] = doc.hash
                report.embedded += len(spans)
        finally:
            progress.close()
            report.embed_seconds += self.embedding.seconds - seconds
