"""Check that the live index agrees with itself: every file has its recorded checksum; manifest,
chunk tables, vectors and BM25 describe the same documents and chunks; and (with the model) each
vector still belongs to its text."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import store
from embeddings.chunker import with_title
from embeddings.embedder import Embedder
from embeddings.errors import DocqaError
from embeddings.index import Index


@dataclass
class Verdict:
    documents: int = 0
    chunks: int = 0
    hashes: dict[str, str] = field(default_factory=dict)  # document id -> content hash, as indexed
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(index_dir: Path, embedder: Embedder | None = None, sample: int = 8, seed: int = 0) -> Verdict:
    """Open the index at `index_dir` and list every disagreement found in it. With `embedder`,
    `sample` random chunks are embedded again and must match the vectors stored for them."""
    verdict = Verdict()
    try:
        index = Index.open(index_dir, embedder)
    except DocqaError as e:
        verdict.problems.append(f"the index does not load: {e}")
        return verdict
    try:
        store.check_files(Path(index_dir), index.manifest, full=True)  # every byte, not size and time
        _check(index, verdict, embedder, sample, seed)
    except DocqaError as e:
        verdict.problems.append(f"the index does not load: {e}")
    finally:
        index.close()
    return verdict


def _check(index: Index, verdict: Verdict, embedder: Embedder | None, sample: int, seed: int) -> None:
    problems = verdict.problems
    docs = index.documents()
    verdict.documents, verdict.chunks = index.table.count()
    verdict.hashes = {d.id: d.hash for d in docs}
    counts = index.manifest.get("counts", {})
    if (counts.get("documents"), counts.get("chunks")) != (verdict.documents, verdict.chunks):
        problems.append(f"the manifest counts {counts}, the tables hold {verdict.documents} documents "
                        f"and {verdict.chunks} chunks")  # fmt: skip
    if len(verdict.hashes) != len(docs):
        problems.append("a document is live in more than one segment")
    for entry, view in zip(index.manifest["segments"], index.views, strict=True):
        problems += _check_segment(entry, view)
    for doc in docs:
        text = index.document_text(doc.id) or ""
        chunks = index.document_chunks(doc.id)
        if len(chunks) != doc.chunks:
            problems.append(f"{doc.id}: the document lists {doc.chunks} chunks, the table has {len(chunks)}")
        for c in chunks:
            if text[c.start : c.end] != c.text:
                problems.append(f"{doc.id}: chunk {c.row} is not the text at its offsets {c.start}-{c.end}")
                break
    if embedder is not None and verdict.chunks and not problems:
        rows = _live_rows(index)
        _check_vectors(index, embedder, random.Random(seed).sample(rows, min(sample, len(rows))), problems)


def _check_segment(entry: dict, view) -> list[str]:
    segment, problems = view.segment, []
    documents, chunks = segment.table.count()
    name = segment.name
    if (entry["documents"], entry["chunks"]) != (documents, chunks):
        problems.append(f"segment {name}: the manifest lists {entry['documents']} documents and "
                        f"{entry['chunks']} chunks, its table holds {documents} and {chunks}")  # fmt: skip
    if len(segment.vectors) != chunks:
        problems.append(f"segment {name}: {len(segment.vectors)} vectors for {chunks} chunks")
    if len(segment.terms.lengths) != chunks:
        problems.append(f"segment {name}: BM25 holds {len(segment.terms.lengths)} chunks, the table {chunks}")
    if segment.table.rows() != list(range(chunks)):
        problems.append(
            f"segment {name}: the chunk rows are not numbered 0..n-1, so vectors and chunks are misaligned"
        )
    if len(view.dead) != entry["deleted_chunks"] or any(
        segment.table.document(d) is None for d in view.deleted
    ):
        problems.append(f"segment {name}: its deleted documents are not the ones the manifest lists")
    return problems


def _live_rows(index: Index) -> list[int]:
    rows = []
    for v in index.views:
        dead = set(v.dead.tolist())
        rows += [v.base + r for r in range(len(v.segment)) if r not in dead]
    return rows


def _check_vectors(index: Index, embedder: Embedder, rows: list[int], problems: list[str]) -> None:
    title_tokens = index.manifest.get("chunker", {}).get("title_tokens", 0)
    chunks = index.table.chunks(rows)
    texts = [with_title(c.title, c.text, embedder.tokenize, title_tokens) for c in chunks]
    fresh = embedder.embed(texts)
    stored = index.vectors.get(np.array([c.row for c in chunks]))
    for c, similarity in zip(chunks, np.sum(fresh * stored, axis=1).tolist(), strict=True):
        if similarity < 0.98:  # the same text embeds the same, up to bf16 rounding
            problems.append(
                f"{c.doc_id}: the vector of chunk {c.row} is not its text's (cosine {similarity:.3f})"
            )


def generation(index_dir: Path) -> str | None:
    """The name of the live generation, or None before the first build."""
    folder = store.current(index_dir)
    return folder.name if folder else None
