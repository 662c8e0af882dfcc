"""Index build speed against a bare SentenceTransformer.encode of the same chunk texts, an
incremental update against a full build, and memory growth while indexing at two sizes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from embeddings.builder import build
from embeddings.chunker import with_title
from embeddings.config import Config
from embeddings.embedder import Embedder, SentenceEmbedder
from embeddings.index import Index

_ROOT = Path(__file__).resolve().parent.parent  # the measuring process imports bench from the checkout


def embedded_texts(index: Index, title_tokens: int, tokenize) -> list[str]:
    """Exactly what the build embedded: each chunk with its document's title before it."""
    titles = {d.id: d.title for d in index.documents()}
    chunks = index.table.chunks(list(range(len(index))))
    return [with_title(titles[c.doc_id], c.text, tokenize, title_tokens) for c in chunks]


def sample(corpus: Path, documents: int, work: Path) -> Path:
    """The first `documents` lines of a jsonl corpus (the whole corpus if it has no more)."""
    lines = corpus.read_text().splitlines()
    if documents >= len(lines):
        return corpus
    out = work / f"{corpus.stem}-first-{documents}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines[:documents]) + "\n")
    return out


def throughput(corpus: Path, work: Path, config: Config, embedder: SentenceEmbedder) -> dict:
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


class Resident:
    """Resident memory of this process, sampled on a thread while a step runs: `start_mb` when it
    began, `peak_mb` the most seen during it. Unlike ru_maxrss, which only ever reports the highest
    point since the process started (here the model load), this shows growth below that."""

    def __init__(self, every: float = 0.01) -> None:
        self.every, self.samples = every, [rss_mb()]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            self.samples.append(rss_mb())

    def __enter__(self) -> Resident:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append(rss_mb())

    @property
    def start_mb(self) -> float:
        return self.samples[0]

    @property
    def peak_mb(self) -> float:
        return max(self.samples)


def rss_mb() -> float:
    """This process's resident memory now (Linux: VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_MEASURE = """
import gc, json, sys
from pathlib import Path
from bench.indexing import Resident
from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder, SentenceEmbedder
config = Config(docs=Path(sys.argv[1]), index_dir=Path(sys.argv[2]))
embedder = Embedder.load(config.embedding_model)
embedder.embed(["warm up"])
gc.collect()
with Resident() as memory:
    report = build(config, embedder, progress=False)
print(json.dumps({"chunks": report.chunks, "rss_after_model_mb": memory.start_mb, "peak_rss_mb": memory.peak_mb}))
"""


def memory(corpus: Path, work: Path, sizes: tuple[int, ...]) -> list[dict]:
    """Resident memory of a fresh process indexing the first `size` documents, for each size:
    when the build starts (the model loaded) and at its peak, sampled while it runs."""
    out = []
    lines = corpus.read_text().splitlines()
    for size in sizes:
        folder = work / f"bench-memory-{size}"
        shutil.rmtree(folder, ignore_errors=True)
        docs = folder / "corpus.jsonl"
        folder.mkdir(parents=True)
        docs.write_text("\n".join(lines[:size]) + "\n")
        done = subprocess.run([sys.executable, "-c", _MEASURE, str(docs), str(folder / "index")],
                              capture_output=True, text=True, check=True, cwd=_ROOT)  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        vectors_mb = result["chunks"] * 384 * 4 / 2**20
        out.append({"documents": min(size, len(lines)), **{k: round(v, 1) for k, v in result.items()},
                    "vectors_mb": round(vectors_mb, 1),
                    "growth_mb": round(result["peak_rss_mb"] - result["rss_after_model_mb"], 1)})  # fmt: skip
    return out


def on_ray(
    corpus: Path, work: Path, config: Config, single_seconds: float, actors: tuple[int, ...] = (1, 2)
) -> dict:
    """The same full build on a local Ray cluster (`docqa index --ray`) with each number of
    embedding actors, against the single-process build of the same run (`single_seconds`). The
    cluster is started and warmed by a one-document build first; each timed build starts its own
    actors, as `docqa index --ray` does."""
    import ray

    from embeddings.ray_build import Cluster

    rows = []
    ray.init(include_dashboard=False, logging_level="ERROR")
    try:  # untimed: the cluster's first workers start Python and import torch once
        warm = work / "bench-ray-warm"
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir(parents=True)
        (warm / "one.jsonl").write_text(corpus.read_text().splitlines()[0] + "\n")
        build(replace(config, docs=warm / "one.jsonl", index_dir=warm / "index"), progress=False,
              cluster=Cluster(actors=max(actors)))  # fmt: skip
        for n in actors:
            folder = work / f"bench-ray-{n}"
            shutil.rmtree(folder, ignore_errors=True)
            cluster = Cluster(actors=n)
            started = time.perf_counter()
            report = build(replace(config, docs=corpus, index_dir=folder), progress=False, cluster=cluster)
            seconds = time.perf_counter() - started
            rows.append({"actors": n, "threads_per_actor": cluster.threads, "chunks": report.chunks,
                         "seconds": round(seconds, 1), "chunks_per_s": round(report.chunks / seconds, 1),
                         "time_vs_single_process": round(seconds / single_seconds, 3)})  # fmt: skip
    finally:
        ray.shutdown()
    return {"single_process_seconds": single_seconds, "rows": rows,
            "goal": "1 actor within 1.15x of the single-process time (2 cores: overhead, not speed-up)",
            "cpus": os.cpu_count()}  # fmt: skip
