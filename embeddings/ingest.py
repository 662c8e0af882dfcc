"""New and changed documents -> chunks -> vectors, into a new segment, a window of chunks at a time."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from tqdm import tqdm

from embeddings.chunker import Span, chunk_text, with_title
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import UnreadableDocument
from embeddings.readers import Document, Pending, Skipped
from embeddings.segment import SegmentWriter


class Ingest:
    """Parse, chunk and embed documents into `writer`, counting what happened in `report`."""

    def __init__(self, config: Config, embedder: Embedder, writer: SegmentWriter, report, progress: bool,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.config, self.embedder, self.writer, self.report = config, embedder, writer, report
        self.progress, self.log = progress, log
        self.now = datetime.now(UTC).isoformat(timespec="seconds")
        self.hashes: dict[str, str] = {}  # documents written, with their content hashes

    def __call__(self, fresh: list[Pending], old_docs: dict[str, str]) -> None:
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
        row = 0
        for doc, spans in window:
            self.writer.add(doc, spans, out[row : row + len(spans)], self.now)
            self.hashes[doc.id] = doc.hash
            row += len(spans)
