"""reports/bench.json and a readable reports/bench.md with a latency plot."""

from __future__ import annotations

import json
from pathlib import Path


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    plots = _plot(results, out)
    (out / "bench.md").write_text(markdown(results, plots))
    return out / "bench.json", out / "bench.md"


def _ok(value: float, goal: str) -> str:
    op, target = goal.split()
    met = value >= float(target) if op == ">=" else value <= float(target)
    return "met" if met else "**not met**"


def markdown(r: dict, plots: list[str]) -> str:
    run, m = r["run"], r["run"]["machine"]
    lines = [
        "# docqa benchmarks",
        "",
        f"Run {run['date']} on {m['cpu']} ({m['cores']} cores, bf16 {'yes' if m['bf16'] else 'no'}, GPU "
        f"{m['gpu'] or 'none'}), torch {m['torch']}; {run['seconds'] / 60:.0f} minutes. Command: `{run['command']}`. "
        "Each docqa number stands beside its bare baseline from the same run; the machine is noisy, so "
        "the ratios are what to read.",
        "",
    ]
    if "index_build" in r:
        b, inc = r["index_build"], r["incremental"]
        lines += [
            "## Indexing",
            "",
            "| what | docqa | bare baseline | ratio | goal |",
            "|---|---|---|---|---|",
            f"| full build of SciFact ({b['documents']} docs, {b['chunks']} chunks), chunks/s | {b['docqa_chunks_per_s']} "
            f"({b['docqa_seconds']} s) | SentenceTransformer.encode of the same texts: {b['bare_chunks_per_s']} "
            f"({b['bare_encode_seconds']} s) | {b['ratio']} | {b['goal']}: {_ok(b['ratio'], b['goal'])} |",
            f"| one changed document in {inc['documents']} ({inc['update_embedded_chunks']} chunks embedded) | "
            f"{inc['update_seconds']} s | full build: {inc['full_seconds']} s | {inc['ratio']} | {inc['goal']}: "
            f"{_ok(inc['ratio'], inc['goal'])} |",
            "",
            f"Batch size {b['batch_size']}, {b['dtype']}. Memory while indexing (peak RSS of a fresh process):",
            "",
            "| documents | chunks | after loading the model | peak | growth | the vectors themselves |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["index_memory"]:
            lines.append(f"| {row['documents']} | {row['chunks']} | {row['rss_after_model_mb']} MB | {row['peak_rss_mb']} MB "
                         f"| {row['growth_mb']} MB | {row['vectors_mb']} MB |")  # fmt: skip
        lines.append("")
    if "query" in r:
        lines += [
            "## Retrieval latency",
            "",
            "docqa: encode, dense search, BM25, fusion and reading the chunks, as `ask` runs it. Bare: the "
            "query encode plus one search of the same FAISS index.",
            "",
            "| chunks | index | docqa p50 / p95 | bare p50 / p95 | ratio p50 / p95 | goal |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["query"]["rows"]:
            d, b = row["docqa"], row["bare"]
            goal = f"<= 1.5: {_ok(row['ratio_p50'], '<= 1.5')}"
            if row["chunks"] >= 1_000_000:
                goal += f"; p50 < 20 ms: {_ok(d['p50_ms'], '<= 20')}"
            lines.append(f"| {row['chunks']:,} | {row['index']} | {d['p50_ms']} / {d['p95_ms']} ms | {b['p50_ms']} / "
                         f"{b['p95_ms']} ms | {row['ratio_p50']} / {row['ratio_p95']} | {goal} |")  # fmt: skip
        for size, rec in r["query"]["approximate_recall"].items():
            key = next(k for k in rec if k.startswith("recall@"))
            lines.append(f"\nHNSW on {size} chunks: {key} {rec[key]} against exact search ({rec['goal']}: "
                         f"{_ok(rec[key], rec['goal'])}); {rec['approx_ms_per_query']} ms against "
                         f"{rec['exact_ms_per_query']} ms exact per query.")  # fmt: skip
        lines.append("")
    if "answers" in r:
        a = r["answers"]
        lines += [
            f"## Answers ({a['model']}, {a['device']}, {a['dtype']})",
            "",
            "| question | prompt tokens | docqa time to first token | bare prefill | docqa decode | bare decode |",
            "|---|---|---|---|---|---|",
        ]
        for row in a["rows"]:
            lines.append(f"| {row['question']} | {row['prompt_tokens']} | {row['docqa_ttft_s']} s | {row['bare_prefill_s']} s "
                         f"| {row['docqa_decode_tps']} tok/s | {row['bare_decode_tps']} tok/s |")  # fmt: skip
        lines += [
            "",
            f"Time to first token against bare prefill: {a['ttft_ratio']} ({a['ttft_goal']}: "
            f"{_ok(a['ttft_ratio'], a['ttft_goal'])}). Decode rate against bare generate: {a['decode_ratio']} "
            f"({a['decode_goal']}: {_ok(a['decode_ratio'], a['decode_goal'])}).",
            "",
        ]
        llama = a.get("llama_cpp", {})
        if "skipped" in llama:
            lines += [f"llama.cpp reference: {llama['skipped']}.", ""]
        elif llama:
            rate = a["rows"][0]["docqa_decode_tps"] / llama["decode_tps"]
            lines += [f"llama.cpp on the same GGUF (Q4_K_M): first token {llama['ttft_s']} s, decode "
                      f"{llama['decode_tps']} tok/s; docqa decodes at {rate:.2f}x its rate.", ""]  # fmt: skip
    if "serving" in r:
        s = r["serving"]
        lines += [
            "## Serving",
            "",
            f"`docqa serve` to the first answer, model cache warm: {s['cold_start_to_first_answer_s']} s. Peak RSS "
            f"after {s['answers']} answers: {s['peak_rss_gb']} GB ({s['goal_rss_gb']}: "
            f"{_ok(s['peak_rss_gb'], s['goal_rss_gb'])}).",
            "",
        ]
    if "gpu" in r:
        lines += ["## GPU", "", r["gpu"], ""]
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["", f"Settings: `{json.dumps(run['settings'])}`.", ""]
    return "\n".join(lines)


def _plot(r: dict, out: Path) -> list[str]:
    if "query" not in r:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(r["query"]["rows"], key=lambda row: row["chunks"])
    xs = [row["chunks"] for row in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, label, style in (("docqa", "docqa retrieval", "-"), ("bare", "bare encode + FAISS", "--")):
        ax.plot(xs, [row[key]["p50_ms"] for row in rows], style, marker="o", label=f"{label}, p50")
        ax.plot(xs, [row[key]["p95_ms"] for row in rows], style, marker=".", alpha=0.5, label=f"{label}, p95")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the index")
    ax.set_ylabel("ms per question")
    ax.set_title("Retrieval latency against collection size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bench-latency.png", dpi=110)
    plt.close(fig)
    return ["bench-latency.png"]
