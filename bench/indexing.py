"""Index build speed against a bare SentenceTransformer.encode of the same chunk texts, an
incremental update against a full build, and memory growth while indexing at two sizes."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from embeddings import store
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


def on_ray(corpus: Path, work: Path, in_process_seconds: float, actors: tuple[int, ...] = (1, 2),
           rounds: int = 2) -> dict:  # fmt: skip
    """`docqa index --ray` of the same collection on a local Ray cluster started as a user starts
    one (`ray start --head`), with each number of embedding actors, against `docqa index` on this
    machine: each a command timed from start to exit, so both load the model (the one-machine
    build in its own process, the Ray build in its actors). Taken in turns, `rounds` times, as the
    machine is noisy; a one-document build on the cluster first, untimed. Also against the
    in-process build above (`in_process_seconds`: the model already loaded, no command). Each
    command's time splits in two, from its progress bar: until its first vectors (start-up: Ray's
    workers start and load the model) and the rate it builds at after them. Ends with
    `ray stop`, which stops every Ray cluster on this machine."""
    from embeddings.ray_build import actor_threads  # Ray only where this section runs

    ray = [str(Path(sys.executable).parent / "ray")]
    cpus = os.cpu_count() or 1
    started = subprocess.run([*ray, "start", "--head", f"--num-cpus={cpus}", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True)  # fmt: skip
    if started.returncode != 0:
        raise RuntimeError(f"ray start failed: {started.stderr[-2000:]}")
    runs: dict[str, list[Command]] = {"one machine": [], **{f"ray {n}": [] for n in actors}}
    try:
        warm = work / "bench-ray-warm"
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir(parents=True)
        (warm / "one.jsonl").write_text(corpus.read_text().splitlines()[0] + "\n")
        _docqa_index(warm / "one.jsonl", warm / "index", ["--ray", "auto"])
        for _ in range(rounds):
            for name in runs:
                folder = work / f"bench-cli-{name.replace(' ', '-')}"
                shutil.rmtree(folder, ignore_errors=True)
                extra = ["--ray", "auto", "--ray-actors", name.split()[1]] if name.startswith("ray") else []
                runs[name].append(_docqa_index(corpus, folder, extra))
    finally:
        subprocess.run([*ray, "stop"], capture_output=True)
    single = statistics.median(c.seconds for c in runs["one machine"])
    single_rate = statistics.median(c.rate for c in runs["one machine"])
    rows = []
    for name, commands in runs.items():
        n = int(name.split()[1]) if name.startswith("ray") else 0
        median = statistics.median(c.seconds for c in commands)
        rate = statistics.median(c.rate for c in commands)
        rows.append({"build": name, "actors": n, "threads_per_actor": actor_threads({"CPU": cpus}, n) if n else cpus,
                     "chunks": commands[0].chunks, "seconds": [round(c.seconds, 1) for c in commands],
                     "median_seconds": round(median, 1), "vs_one_machine": round(median / single, 3),
                     "vs_in_process": round(median / in_process_seconds, 3),
                     "first_vectors_seconds": round(statistics.median(c.first_vectors for c in commands), 1),
                     "chunks_per_second_after": round(rate, 1),
                     "seconds_per_chunk_vs_one_machine": round(single_rate / rate, 3) if rate else None})  # fmt: skip
    return {"in_process_seconds": in_process_seconds, "rows": rows, "rounds": rounds, "cpus": cpus,
            "goal": "1 actor's seconds per chunk after start-up within 1.15x of `docqa index` on one machine "
                    "(2 cores: overhead, not speed-up)"}  # fmt: skip


_EMBEDDED = re.compile(rb"embedding:\s+(?:\d+%\|[^|]*\|\s*)?(\d+)")  # the build's own progress bar


@dataclass
class Command:
    """One `docqa index` command: seconds from start to exit, the chunks its index holds, and, from
    its progress bar, when the first vectors came and the chunks it embedded per second after."""

    seconds: float
    chunks: int
    first_vectors: float
    rate: float


def _docqa_index(docs: Path, index: Path, extra: list[str]) -> Command:
    """Runs `docqa index` on `docs` and times it, reading its progress on stderr as it comes."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "qa.cli", "index", str(docs), "--index", str(index), *extra]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=_ROOT)
    first: tuple[float, int] | None = None
    err = b""
    while out := proc.stderr.read1(65536):
        err += out
        if first is None:  # whole lines only: a bar's line can arrive in two reads
            lines = err[: max(err.rfind(b"\r"), err.rfind(b"\n")) + 1]
            if counts := [int(n) for n in _EMBEDDED.findall(lines) if int(n)]:
                first = (time.perf_counter() - started, counts[0])
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"docqa index {' '.join(extra)} failed: {err.decode(errors='replace')[-2000:]}")
    _, manifest = store.open_current(index)
    chunks = manifest["counts"]["chunks"]
    at, done = first or (seconds, chunks)
    rate = (chunks - done) / (seconds - at) if seconds > at else 0.0
    return Command(seconds, chunks, at, rate)
