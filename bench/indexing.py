"""Index build speed against a bare SentenceTransformer.encode of the same chunk texts, an
incremental update against a full build, and peak memory while indexing at two sizes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from embeddings.builder import build
from embeddings.chunker import with_title
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index


def embedded_texts(index: Index, title_tokens: int, tokenize) -> list[str]:
    """Exactly what the build embedded: each chunk with its document's title before it."""
    titles = {d.id: d.title for d in index.documents()}
    chunks = index.table.chunks(list(range(len(index))))
    return [with_title(titles[c.doc_id], c.text, tokenize, title_tokens) for c in chunks]


def throughput(corpus: Path, work: Path, config: Config, embedder: Embedder) -> dict:
    """chunks/s of a full `build` (reading, chunking, embedding, writing) and of bare encode."""
    folder = work / "bench-build"
    shutil.rmtree(folder, ignore_errors=True)
    settings = replace(config, docs=corpus, index_dir=folder)
    embedder.embed(["warm up the model"] * 8)
    started = time.perf_counter()
    report = build(settings, embedder, progress=False)
    docqa_seconds = time.perf_counter() - started
    texts = embedded_texts(Index.open(folder, embedder), config.title_tokens, embedder.tokenize)
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=config.batch_size, show_progress_bar=False)
    bare_seconds = time.perf_counter() - started
    docqa_rate, bare_rate = report.chunks / docqa_seconds, len(texts) / bare_seconds
    return {
        "documents": report.documents,
        "chunks": report.chunks,
        "docqa_seconds": round(docqa_seconds, 1),
        "docqa_chunks_per_s": round(docqa_rate, 1),
        "bare_encode_seconds": round(bare_seconds, 1),
        "bare_chunks_per_s": round(bare_rate, 1),
        "ratio": round(docqa_rate / bare_rate, 3),
        "goal": ">= 0.9",
        "batch_size": config.batch_size,
        "dtype": embedder.dtype,
    }


def incremental(corpus: Path, work: Path, config: Config, embedder: Embedder, size: int = 1000) -> dict:
    """One changed document in a `size`-document collection, against building it all."""
    folder = work / "bench-incremental"
    shutil.rmtree(folder, ignore_errors=True)
    docs = folder / "docs" / "corpus.jsonl"
    docs.parent.mkdir(parents=True)
    lines = corpus.read_text().splitlines()[:size]
    docs.write_text("\n".join(lines) + "\n")
    settings = replace(config, docs=docs, index_dir=folder / "index")
    started = time.perf_counter()
    full = build(settings, embedder, progress=False)
    full_seconds = time.perf_counter() - started
    record = json.loads(lines[size // 2])
    record["text"] += " This sentence was added to change the document."
    lines[size // 2] = json.dumps(record)
    docs.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    update = build(settings, embedder, progress=False)
    update_seconds = time.perf_counter() - started
    return {
        "documents": full.documents,
        "chunks": full.chunks,
        "full_seconds": round(full_seconds, 2),
        "update_seconds": round(update_seconds, 2),
        "update_embedded_chunks": update.embedded,
        "ratio": round(update_seconds / full_seconds, 4),
        "goal": "<= 0.05",
    }


_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
config = Config(docs=Path(sys.argv[1]), index_dir=Path(sys.argv[2]))
embedder = Embedder.load(config.embedding_model)
embedder.embed(["warm up"])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = build(config, embedder, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"chunks": report.chunks, "rss_after_model_mb": loaded / 1024, "peak_rss_mb": peak / 1024}))
"""


def memory(corpus: Path, work: Path, sizes: tuple[int, ...]) -> list[dict]:
    """Peak RSS of a fresh process indexing the first `size` documents, for each size."""
    out = []
    lines = corpus.read_text().splitlines()
    for size in sizes:
        folder = work / f"bench-memory-{size}"
        shutil.rmtree(folder, ignore_errors=True)
        docs = folder / "corpus.jsonl"
        folder.mkdir(parents=True)
        docs.write_text("\n".join(lines[:size]) + "\n")
        done = subprocess.run([sys.executable, "-c", _MEASURE, str(docs), str(folder / "index")],
                              capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        vectors_mb = result["chunks"] * 384 * 4 / 2**20
        out.append({"documents": min(size, len(lines)), **{k: round(v, 1) for k, v in result.items()},
                    "vectors_mb": round(vectors_mb, 1),
                    "growth_mb": round(result["peak_rss_mb"] - result["rss_after_model_mb"], 1)})  # fmt: skip
    return out
