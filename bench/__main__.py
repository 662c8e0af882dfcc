"""`python -m bench` (make bench): docqa against the raw calls beneath it, each ratio measured in
the same run; a whole run writes reports/bench.json and reports/bench.md."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import answering, blocks, indexing, pages, query, report
from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from evaluation import data
from evaluation.machine import machine, source
from qa import models
from qa.assistant import Assistant
from qa.generator import from_config as load_generator

ROOT = Path(__file__).resolve().parent.parent
REPORTS = Path("reports")


# The code the GPU figures measure: a change to it since reports/gpu.json was written makes them stale.
GPU_PATH = ("qa/runtimes/hf.py", "qa/decoding.py", "qa/generator.py", "bench/gpu.py")


def _changed_since(date: str, paths: tuple[str, ...]) -> list[str] | None:
    """The commits that changed `paths` after `date` (None: no git history to ask, as in a copy)."""
    try:
        done = subprocess.run(["git", "log", f"--since={date}", "--format=%h", "--", *paths], cwd=ROOT,
                              capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    parser.add_argument(
        "--out", type=Path, default=None, help="default: reports/; with --only: test-artifacts/bench"
    )
    parser.add_argument("--work", type=Path, default=Path(".eval-work/bench"))
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="synthetic collection sizes"
    )
    parser.add_argument(
        "--index-docs", type=int, default=1000,
        help="SciFact documents to index in the build, memory and Ray sections (all: 5183)",
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="*", choices=["index", "ray", "query", "grow", "answer", "cli", "serve"], default=None
    )
    args = parser.parse_args(argv)
    stages = args.only or ["index", "ray", "query", "grow", "answer", "cli", "serve"]
    out = destination(args)
    started, measured = time.perf_counter(), source()  # the commit as the run starts
    config = Config()
    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
    full_corpus, queries, _ = data.scifact(args.data)
    corpus = indexing.sample(full_corpus, args.index_docs, args.work)
    results: dict = {}
    if "index" in stages:
        print("bench: index build against bare encode ...", file=sys.stderr)
        results["index_build"] = indexing.throughput(corpus, args.work, config, embedder)
        results["incremental"] = indexing.incremental(full_corpus, args.work, config, embedder)
        results["index_memory"] = indexing.memory(
            full_corpus, args.work, (args.index_docs // 2, args.index_docs)
        )
    if "ray" in stages:
        print("bench: the same build on a local Ray cluster ...", file=sys.stderr)
        single = results.get("index_build") or indexing.throughput(corpus, args.work, config, embedder)
        results["index_ray"] = indexing.on_ray(corpus, args.work, single["docqa_seconds"])
    if "query" in stages:
        print("bench: retrieval latency ...", file=sys.stderr)
        scifact = args.work / "bench-build"
        if not (scifact / "CURRENT").exists():
            indexing.throughput(corpus, args.work, config, embedder)
        questions = [queries[q] for q in sorted(queries)]
        rows = [query.latency(Index.open(scifact, embedder), embedder, questions, config)]
        recall, compressed = {}, {}
        for size in args.sizes:
            folder = query.synthetic_index(args.work / f"bench-synthetic-{size}", size, embedder)
            index = Index.open(folder, embedder)
            rows.append(query.latency(index, embedder, query.synthetic_questions(200), config))
            if index.vectors.approximate:
                probes = query.clustered_vectors(500, embedder.dim, np.random.default_rng(99))
                recall[f"{size:,} synthetic"] = query.approximate_recall(index.vectors, probes)
                if size == max(args.sizes):  # the same vectors as one IVF-PQ segment (Config.compress_above)
                    compressed[f"{size:,} synthetic"] = query.compressed_recall(index.vectors, probes)
        results["query"] = {"rows": rows, "approximate_recall": recall, "compressed_recall": compressed}
    if "grow" in stages:  # adding one small document, and opening the index, at each synthetic size
        print("bench: adding a document and opening the index ...", file=sys.stderr)
        results["growth"] = []
        for size in args.sizes:
            folder = query.synthetic_index(args.work / f"bench-synthetic-{size}", size, embedder)
            results["growth"].append(
                {**query.add_one_document(folder, embedder), "open": query.open_cost(folder, embedder)}
            )
    if "answer" in stages:
        print("bench: answers: docqa, onnxruntime-genai, llama.cpp and transformers ...", file=sys.stderr)
        seeds = args.work / "bench-seeds"
        build(replace(config, docs=ROOT / "seeds", index_dir=seeds), embedder, progress=False)
        results["first_use"] = answering.first_use(config)
        assistant = Assistant(Index.open(seeds, embedder), load_generator(config), config)
        gguf = args.work / "model.gguf"
        if not gguf.exists():
            models.join(models.KNOWN[config.generator], gguf)
        results["answers"] = answering.generation(assistant, config, args.data, gguf)
        results["spinning"] = answering.thread_spinning(
            assistant, config, answering.long_prompt(assistant.generator, args.data)
        )
        print("bench: the 4-bit model's weights on huge pages ...", file=sys.stderr)
        results["huge_pages"] = pages.huge_pages(
            models.int4(config.generator), answering.long_prompt(assistant.generator, args.data)
        )
        results["asking"] = answering.asking(assistant)
        results["prompt_reuse"] = answering.prompt_reuse(assistant)
        results["drafting"] = answering.drafting(assistant)
        results["passage_order"] = answering.passage_orders(assistant)
        print("bench: the 4-bit model written other ways ...", file=sys.stderr)
        generator = assistant.generator
        results["blocks"] = blocks.block_sizes(
            config.generator,
            answering.long_prompt(generator, args.data),
            [answering.long_prompt(generator, args.data, 400, question=q) for q in range(1, 13)],
        )
    if "cli" in stages:
        print("bench: docqa ask, a process for each question ...", file=sys.stderr)
        seeds = args.work / "bench-seeds"
        build(replace(config, docs=ROOT / "seeds", index_dir=seeds), embedder, progress=False)
        results["command_line"] = answering.command_line(seeds, config)
    if "serve" in stages:
        print("bench: serving memory and cold start ...", file=sys.stderr)
        seeds = args.work / "bench-seeds"
        results["serving"] = answering.serving(seeds, ROOT / "seeds", config)
        print("bench: answers per minute on Ray Serve ...", file=sys.stderr)
        if "asking" not in results:  # the one-process figure it stands beside, from this run
            results["asking"] = answering.asking(
                Assistant(Index.open(seeds, embedder), load_generator(config), config)
            )
        results["serving_ray"] = answering.on_ray_serve(seeds, config, results["asking"])
    gpu = REPORTS / "gpu.json"  # written by `python -m bench.gpu` on a GPU machine, shown as its own run
    if gpu.exists():
        results["gpu"] = json.loads(gpu.read_text())
        results["gpu"]["changed_since"] = _changed_since(str(results["gpu"].get("date", "")), GPU_PATH)
    results["run"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        **measured,
        "settings": {
            "batch_size": config.batch_size,
            "chunk_tokens": config.chunk_tokens,
            "title_tokens": config.title_tokens,
            "candidates": config.candidates,
            "top_k": config.top_k,
            "embedding": f"{embedder.name} ({embedder.dtype})",
            "generator": config.generator,
        },  # fmt: skip
    }
    json_path, md_path = report.write(results, out)
    print(f"bench: wrote {json_path} and {md_path}")
    return 0


def destination(args: argparse.Namespace) -> Path:
    """Where the report goes: reports/ only for a whole run, so that every report there is what one
    command wrote; a partial run writes beside the test artifacts, and nothing is merged."""
    if args.out:
        return args.out
    return Path("test-artifacts/bench") if args.only else REPORTS


if __name__ == "__main__":
    sys.exit(main())
