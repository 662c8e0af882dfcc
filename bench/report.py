"""reports/bench.json and a readable reports/bench.md with a latency plot."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.machine import describe, measured


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
        f"Run {run['date']} of {measured(run)} on {describe(m)}; {run['seconds'] / 60:.0f} minutes. Command: `{run['command']}`. "
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
            f"| full build of SciFact's first {b['documents']} documents ({b['chunks']} chunks), chunks/s | {b['docqa_chunks_per_s']} "
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
    if "index_ray" in r:
        ray = r["index_ray"]
        lines += [
            "## Indexing on a local Ray cluster",
            "",
            f"`docqa index --ray auto` of the same SciFact collection on a Ray cluster started on this machine "
            f"with `ray start --head` ({ray['cpus']} CPUs), against `docqa index` without Ray: each a command timed "
            "from start to exit, so each loads the model (the one-machine build in its own process, the Ray "
            f"build in its actors); {ray['rounds']} rounds in turns, medians. The last column is against the "
            f"in-process build above ({ray['in_process_seconds']} s, its model already loaded). Each command's "
            "time in two parts, from its progress bar: start-up, until its first vectors (starting the "
            "workers, loading the model, the first batch), and the chunks it embeds per second after them "
            "(to the end of the command: the index written too). The goal reads the build's throughput: "
            "seconds per chunk after start-up against one machine's, at 1 actor (on 2 cores Ray can only "
            "add overhead); the whole command's time is beside it, start-up included (longer on Ray: "
            "its worker starts and imports the model's libraries after the command has started).",
            "",
            "| build | embedding actors | threads each | chunks | seconds, each round | median | vs one machine "
            "| first vectors at | chunks/s after | per chunk vs one machine | goal | vs in-process |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for row in ray["rows"]:
            per_chunk = row["seconds_per_chunk_vs_one_machine"]
            goal = f"<= 1.15: {_ok(per_chunk, '<= 1.15')}" if row["actors"] == 1 else ""
            each = ", ".join(str(s) for s in row["seconds"])
            lines.append(f"| {row['build']} | {row['actors'] or '-'} | {row['threads_per_actor']} | {row['chunks']} | "
                         f"{each} | {row['median_seconds']} | {row['vs_one_machine']} | "
                         f"{row['first_vectors_seconds']} s | {row['chunks_per_second_after']} | {per_chunk} | "
                         f"{goal} | {row['vs_in_process']} |")  # fmt: skip
        lines.append("")
    if "query" in r:
        lines += [
            "## Retrieval latency",
            "",
            "docqa: encode, dense search, BM25, fusion and reading the chunks, as `ask` runs it. Bare: the "
            "query encode plus one search of the same FAISS index. BM25: docqa's BM25 search of the same "
            "question alone (for as many results as `ask` fuses), the work docqa does that the bare path does not. "
            "docqa embeds the question in turn, or in a large index on a thread of its own (one core) beside "
            "BM25's search (`qa.retriever.BESIDE`); the last column times docqa the other way.",
            "",
            "| chunks | index | docqa p50 / p95 | bare p50 / p95 | ratio p50 / p95 | goal | BM25 alone p50 / p95 "
            "| docqa the other way p50 / p95 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in r["query"]["rows"]:
            d, b = row["docqa"], row["bare"]
            goal = f"<= 1.5: {_ok(row['ratio_p50'], '<= 1.5')}"
            if row["chunks"] >= 1_000_000:
                goal += f"; p50 <= 20 ms: {_ok(d['p50_ms'], '<= 20')}"
            lexical = f"{row['bm25']['p50_ms']} / {row['bm25']['p95_ms']} ms" if "bm25" in row else "-"
            o = row.get("other_way")
            other = f"{o['p50_ms']} / {o['p95_ms']} ms ({o['embedding']})" if o else "-"
            lines.append(f"| {row['chunks']:,} | {row['index']} | {d['p50_ms']} / {d['p95_ms']} ms | {b['p50_ms']} / "
                         f"{b['p95_ms']} ms | {row['ratio_p50']} / {row['ratio_p95']} | {goal} | {lexical} | "
                         f"{other} |")  # fmt: skip
        for size, rec in r["query"]["approximate_recall"].items():
            key = next(k for k in rec if k.startswith("recall@"))
            lines.append(f"\nHNSW on {size} chunks: {key} {rec[key]} against exact search ({rec['goal']}: "
                         f"{_ok(rec[key], rec['goal'])}); {rec['approx_ms_per_query']} ms against "
                         f"{rec['exact_ms_per_query']} ms exact per query.")  # fmt: skip
        for size, rec in r["query"].get("compressed_recall", {}).items():
            lines.append(f"\nIVF-PQ with an exact rerank (a segment past `compress_above`) on the same {size} chunks: "
                         f"recall@10 {rec['recall@10']} against exact search ({rec['goal']}: "
                         f"{_ok(rec['recall@10'], rec['goal'])}); {rec['approx_ms_per_query']} ms per query; "
                         f"{rec['lists']} lists, {rec['probes']} probed, {rec['rerank']}x k reranked; "
                         f"{rec['bytes_per_chunk_in_memory']} bytes a chunk in memory; built in {rec['build_s']} s.")  # fmt: skip
        lines.append("")
    if "growth" in r:
        lines += _growth(r["growth"])
    if "answers" in r:
        lines += _answers(r)
    if "command_line" in r:
        lines += _command_line(r["command_line"])
    if "serving" in r:
        s = r["serving"]
        lines += [
            "## Serving",
            "",
            f"`docqa serve` to the first answer, model cache warm: {s['cold_start_to_first_answer_s']} s. Peak RSS "
            f"of the server after {s['answers']} answers: {s['peak_rss_gb']} GB ({s['goal_rss_gb']}: "
            f"{_ok(s['peak_rss_gb'], s['goal_rss_gb'])}).",
            "",
            *_restart(s["restart"]),
        ]
    if "serving_ray" in r:
        ray = r["serving_ray"]
        lines += [
            "## Answers on Ray Serve",
            "",
            f"The same models deployed with `docqa serve --ray`'s deployments on a local Ray cluster ({ray['cpus']} "
            f"cores), the askers at once through the Python API, beside the same askers in one process "
            f"({ray['one_process_answers_per_minute']} answers/min, above).",
            "",
            "| generator replicas | askers at once | seconds | answers/min | vs one process |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {row['replicas']} | {row['users']} | {row['seconds']} | {row['answers_per_minute']} | "
                  f"{row['vs_one_process']} |" for row in ray["rows"]]  # fmt: skip
        lines.append("")
    if "gpu" in r:
        lines += _gpu(r["gpu"])
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["", f"Settings: `{json.dumps(run['settings'])}`.", ""]
    return "\n".join(lines)


def _answers(r: dict) -> list[str]:
    a, first, ask = r["answers"], r.get("first_use", {}), r.get("asking")
    lines = [
        f"## Answers ({a['model']}: runtime {a['runtime']}, {a['dtype']}, {a['threads']} threads)",
        "",
        f"One docqa answer prompt of {a['prompt_tokens']} tokens (XQuAD paragraphs as passages), "
        f"{a['new_tokens']} tokens decoded at batch 1, every runtime on the same tokens; docqa (as shipped, drafting "
        f"tokens from the prompt and checking them in one step, and one token a step), onnxruntime-genai's loop and "
        f"llama.cpp in {a.get('rounds', 1)} rounds taking turns, each warmed on a few tokens first (medians; each "
        "round's decode rate beside):",
        "",
        "| runtime | weights | time to first token | decode | decode, each round |",
        "|---|---|---|---|---|",
    ]
    pages = f"; {a['huge_pages_mb']} MB of it on huge pages" if "huge_pages_mb" in a else ""
    weights = {"docqa": f"{a['dtype']} (ONNX, built from the packaged GGUF{pages})", "llama.cpp": "the packaged GGUF (Q4_K_M)",
               "onnxruntime-genai loop": "the same ONNX model as docqa"}  # fmt: skip
    for name, row in a["rows"].items():
        if "skipped" in row:
            lines.append(f"| {name} | | {row['skipped']} | | |")
            continue
        what = weights.get(name.split(",")[0], row.get("dtype", ""))
        if row.get("drafted"):
            what += f"; {row['drafted']:.0%} of the tokens drafted (qa/drafts.py)"
        each = ", ".join(str(r["decode_tps"]) for r in row.get("rounds", []))
        lines.append(f"| {name} | {what} | {row['ttft_s']} s | {row['decode_tps']} tok/s | {each} |")
    lines.append("")
    goals = a["goals"]
    if "decode_vs_llama_cpp" in a:
        lines += [
            f"Against llama.cpp: decode {a['decode_vs_llama_cpp']}x ({goals['decode_vs_llama_cpp']}: "
            f"{_ok(a['decode_vs_llama_cpp'], goals['decode_vs_llama_cpp'])}), time to first token "
            f"{a['ttft_vs_llama_cpp']}x ({goals['ttft_vs_llama_cpp']}: {_ok(a['ttft_vs_llama_cpp'], goals['ttft_vs_llama_cpp'])}).",
            "",
        ]
    plain = a["rows"].get("docqa, one token a step", {})
    if "decode_tps" in plain and "decode_tps" in a["rows"]["docqa"]:
        lines += [f"docqa's drafts: {a['rows']['docqa']['decode_tps'] / plain['decode_tps']:.2f}x the decode rate "
                  f"of one token a step.", ""]  # fmt: skip
    lines += spinning(r.get("spinning"))
    if "huge_pages" in r:
        lines += huge_pages(r["huge_pages"])
    if "seconds" in first:
        lines += [f"First use, from the installed packages to a loaded generator (empty model cache): "
                  f"{first['seconds']} s ({first['goal_seconds']}: {_ok(first['seconds'], first['goal_seconds'])}), "
                  f"peak RSS {first.get('peak_rss_gb', '?')} GB (the conversion's own processes included).", ""]  # fmt: skip
    elif first:
        lines += [f"First use failed: {first['failed']}", ""]
    if ask:
        lines += asking(ask)
    reuse = r.get("prompt_reuse")
    if reuse and "skipped" not in reuse:
        whole, reused = reuse["read whole"], reuse["shared beginning reused"]
        lines += [
            "The same questions asked in turn with the runtime's kept key/value cache of the last prompt and "
            "without it (alternating rounds, each from the warm-up question): mean "
            f"{reused['mean_seconds']} s with it against {whole['mean_seconds']} s without ({reuse['time_ratio']}x); "
            f"prompt tokens read per answer {reused['prompt_tokens_read']} against {whole['prompt_tokens_read']}.",
            "",
        ]
    if "drafting" in r and "skipped" not in r["drafting"]:
        lines += drafting(r["drafting"])
    order = r.get("passage_order")
    if order:
        lines += passage_order(order)
    if "blocks" in r:
        lines += block_sizes(r["blocks"])
    return lines


def _restart(r: dict) -> list[str]:
    """The first question after `docqa serve` restarts, with the prompts it wrote when it stopped
    and with none (bench.answering.serving)."""
    if "skipped" in r:
        return [f"A restart from the prompts the server kept: skipped ({r['skipped']}).", ""]
    return [
        f"Stopped as Ctrl-C stops it, the server wrote the prompts it read; started again, it was asked "
        f'"{r["question"]}" (not asked before) once its models were ready: answered in {r["recalled"]} s, '
        f"against {r['none']} s in a server started with no kept prompts ({r['ratio']}x); from the start of "
        f"each to that answer {r['recalled_to_first_answer_s']} s against {r['none_to_first_answer_s']} s.",
        "",
    ]


def block_sizes(b: dict) -> list[str]:
    """The 4-bit model written each way (bench.blocks)."""
    lines = [
        f"The 4-bit model of {b['model']} written each way below (docqa ships the first: "
        f"{written(b['shipped'])}): the {b['prompt_tokens']}-token prompt and "
        f"{b['new_tokens']} tokens decoded in {b['rounds']} rounds taking turns (medians); how far each "
        "one's next-token distribution is from that of the packaged weights run in float32 by transformers "
        f"(KL divergence, and how often both pick the same token) along {b['forced_tokens']} tokens of the "
        f"float model's own answers to {b['faithfulness_prompts']} other XQuAD prompts, and the KL beside "
        "the shipped model's on the same prompts (the mean difference, its standard error, and on how many "
        "prompts the other is the closer):",
        "",
        "| weights | file | prompt | decode | vs shipped: prompt, decode | KL from the float model | same token "
        "| KL vs shipped | closer on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(b["rows"]):
        shipped = " (shipped)" if i == 0 else ""
        lines.append(f"| {written(row)}{shipped} | {row['weights_mb']} MB | {row['prompt_s']} s | "
                     f"{row['decode_tps']} tok/s | {row['prompt_vs_shipped']}x, {row['decode_vs_shipped']}x | "
                     f"{row['kl']} | "
                     f"{row['same_token']} | {row['kl_vs_shipped']:+} ± {row['kl_vs_shipped_error']} | "
                     f"{row['closer']} of {b['faithfulness_prompts']} |")  # fmt: skip
    return [*lines, ""]


def written(row: dict) -> str:
    """How a 4-bit model is written: its block size and the modules in 8 bits."""
    wide = "/".join(m.removesuffix("_proj") for m in row["eight_bit"])
    return f"blocks of {row['block']}" + (f", {wide} in 8 bits" if wide else ", every matrix in 4 bits")


def huge_pages(h: dict) -> list[str]:
    """The 4-bit model's weights on huge pages against where ONNX Runtime leaves them (bench.pages)."""
    on, off = h["median"]["huge pages"], h["median"]["as ONNX Runtime leaves them"]
    each = lambda name: ", ".join(str(t["decode_tps"]) for t in h["rounds"][name])  # noqa: E731
    return [
        f"The 4-bit model's weights moved onto huge pages once its session is made (docqa's setting; "
        f"{h['huge_pages_mb']} MB moved) against the 4 KiB pages ONNX Runtime leaves them on, each round "
        f"in two fresh processes taking turns, {len(h['rounds']['huge pages'])} rounds: decoding "
        f"{h['new_tokens']} tokens on the {h['prompt_tokens']}-token prompt {each('huge pages')} tok/s "
        f"against {each('as ONNX Runtime leaves them')}, median {on['decode_tps']} against "
        f"{off['decode_tps']} ({h['decode_ratio']}x); reading the prompt {on['prompt_s']} s against "
        f"{off['prompt_s']} s ({h['prompt_ratio']}x).",
        "",
    ]


def spinning(spin: dict | None) -> list[str]:
    """The CPU runtime's worker threads spinning within a step against sleeping
    (bench.answering.thread_spinning)."""
    if not spin or "skipped" in spin:
        return []
    on, off, ratio = spin["spinning"], spin["sleeping"], spin["ratio"]
    each = lambda o, k: ", ".join(map(str, o[k]))  # noqa: E731
    return [
        "The runtime's worker threads waiting for the next operator of a step by spinning (docqa's setting; "
        "they stop when the step ends) against sleeping and being woken, each in a session of its own, "
        f"{spin['rounds']} alternating rounds: decoding {spin['new_tokens']} tokens on the "
        f"{spin['prompt_tokens']}-token prompt {each(on, 'decode_tps')} tok/s spinning against "
        f"{each(off, 'decode_tps')} sleeping, median {ratio['decode_tps']}x; {spin['users']} askers at once "
        f"{each(on, 'answers_per_minute_together')} answers/min against {each(off, 'answers_per_minute_together')}, "
        f"median {ratio['answers_per_minute_together']}x; CPU seconds the process used in the second after a "
        f"decode, at most {max(on['cpu_seconds_after'])} spinning and {max(off['cpu_seconds_after'])} sleeping.",
        "",
    ]


def drafting(d: dict) -> list[str]:
    """The sample article's questions with the runtime's drafts and one token a step
    (bench.answering.drafting)."""
    drafted, one = d["drafted"], d["one token a step"]
    lines = [
        f"The same questions asked in turn with the runtime's drafts ({d['draft']} tokens looked up in the "
        "prompt and checked in one step with the next, while one question decodes alone) and one token a "
        f"step (alternating rounds, each from the warm-up question): mean {drafted['mean_seconds']} s per answer "
        f"drafted against {one['mean_seconds']} s ({d['time_ratio']}x), median {drafted['median_seconds']} s "
        f"against {one['median_seconds']} s; {d['tokens_drafted']} tokens decoded as drafted; the same answer to "
        f"{d['same_answers']} of {len(drafted['answers'])} questions.",
        "",
    ]
    return lines + changed_answers({"one token a step": one["answers"], "drafted": drafted["answers"]})


def passage_order(order: dict) -> list[str]:
    """The sample article's questions with the answer prompt's passages best first and in
    reading order (bench.answering.passage_orders)."""
    rank, reading = order["rank"], order["reading"]
    lines = [
        "The same questions asked in turn with the answer prompt's passages best first and in reading "
        f"order (alternating rounds, each from the warm-up question; shipped: {order['shipped']}): mean "
        f"{reading['mean_seconds']} s in reading order against {rank['mean_seconds']} s best first "
        f"({order['time_ratio']}x), median {reading['median_seconds']} s against {rank['median_seconds']} s; "
        f"prompt tokens read per answer {reading['prompt_tokens_read']} against {rank['prompt_tokens_read']}; "
        f"the same answer to {order['same_answers']} of {len(rank['answers'])} questions.",
        "",
    ]
    return lines + changed_answers({"best first": rank["answers"], "reading order": reading["answers"]})


def changed_answers(settings: dict[str, dict[str, str]]) -> list[str]:
    """A table of the questions whose answers differ between two settings (each question: answer)."""
    (first, a), (second, b) = settings.items()
    changed = [q for q in a if a[q] != b[q]]
    if not changed:
        return []
    return [f"| question | {first} | {second} |", "|---|---|---|",
            *[f"| {q} | {a[q]} | {b[q]} |" for q in changed], ""]  # fmt: skip


def asking(ask: dict) -> list[str]:
    """The sample article's questions asked by one asker and by several at once (bench.answering.
    asking), and where their time went: the wait for the first token (the prompt read) and the
    prompt tokens read per answer, which askers at once cannot share."""
    lines = [
        "### Asking about the sample article (models loaded, `Assistant.ask`)",
        "",
        "| question | seconds | first token after | answer |",
        "|---|---|---|---|",
        *[f"| {q['question']} | {q['seconds']} | {q['first_token']} | {q['answer']} |" for q in ask["alone"]],
        "",
        f"Median {ask['median_seconds_alone']} s per answer ({ask['goal_seconds']}: "
        f"{_ok(ask['median_seconds_alone'], ask['goal_seconds'])}). {ask['users']} askers at once: "
        f"{ask['answers_per_minute_together']} answers per minute against {ask['answers_per_minute_alone']} for "
        f"one asker, {ask['ratio']}x ({ask['goal_ratio']}: {_ok(ask['ratio'], ask['goal_ratio'])}); seconds "
        f"each: {', '.join(map(str, ask['seconds_each_together']))}.",
        "",
    ]
    share = ask["median_first_token_alone"] / max(ask["median_seconds_alone"], 1e-9)
    return lines + [
        f"The wait for the first token (reading the prompt): median {ask['median_first_token_alone']} s of the "
        f"{ask['median_seconds_alone']} s alone ({share:.0%}), {ask['prompt_tokens_read_alone']} prompt tokens read "
        f"per answer; with {ask['users']} askers at once each waited {', '.join(map(str, ask['first_token_each_together']))} s "
        f"for its first token and {ask['prompt_tokens_read_together']} prompt tokens were read per answer. A "
        "decoding step serves every asker at once, but each prompt is read on its own: where reading the prompt "
        "is most of an answer, askers at once gain little.",
        "",
        *_step_costs(ask),
    ]


def _step_costs(ask: dict) -> list[str]:
    """What a decoding step and a prompt token cost here (bench.answering.step_costs): how much
    askers at once can save on decoding, where the steps are shared and the prompts are not."""
    steps = ask.get("decode_step_seconds")
    users = str(ask["users"])
    if not steps or not steps.get("1") or not steps.get(users):
        return []
    one, shared = steps["1"], steps[users]
    rows = ", ".join(f"{n} at once {s * 1000:.0f} ms" for n, s in steps.items() if s and n != "1")
    return [
        f"What the model's work costs on this CPU: a decoding step for one sequence {one * 1000:.0f} ms, "
        f"{rows}: a step for {users} costs {shared / one:.2f}x the step for one (the premise of askers at "
        f"once is that it costs little more), so steps shared by {users} askers decode at most "
        f"{int(users) * one / shared:.2f}x as fast as one asker's; reading a prompt costs "
        f"{ask['prompt_seconds_per_token'] * 1000:.1f} ms per token, and prompts are read one at a time.",
        "",
    ]


def _gpu(g: dict) -> list[str]:
    gen = g["generator"]
    title = f"## GPU ({g.get('device', 'unknown')}, torch {g.get('torch', '?')}, transformers {g.get('transformers', '?')})"
    if "error" in gen or "docqa_batch1" not in gen:
        return [title, "", f"`python -m bench.gpu` failed on the lent GPU machine ({g.get('date')}): "
                f"{gen.get('error', 'no batch-1 figures')}.", ""]  # fmt: skip
    changed = g.get("changed_since")
    stale = (
        [f"**Stale**: {len(changed)} later commits changed the GPU path ({', '.join(changed[:6])}); these "
         "figures are of the code before them. Run `python -m bench.gpu` on a GPU machine again.", ""]
        if changed else []
    )  # fmt: skip
    b1 = gen["docqa_batch1"]
    batched = next(v for k, v in gen.items() if k.startswith("docqa_batch") and k != "docqa_batch1")
    return [
        title,
        "",
        *stale,
        f"From `python -m bench.gpu` run on a lent GPU machine ({g['date']}; reports/gpu.json, written by that "
        "run): random weights in the default generator's architecture, a "
        f"{gen['prompt_tokens']}-token prompt, {gen['new_tokens']} tokens decoded.",
        "",
        f"- docqa's GPU path (static KV cache, compiled decoding step), batch 1: {b1['decode_tps_per_question']} tok/s "
        f"({gen['goal_batch1_tps']}: {_ok(b1['decode_tps_per_question'], gen['goal_batch1_tps'])}); first token "
        f"{b1['ttft_s']} s; in the same run transformers' `generate`, plain: {gen['plain_generate_batch1_tps']} "
        f"tok/s, with its own static cache and compiled step: {gen.get('compiled_generate_batch1_tps', 'not run')} "
        "tok/s.",
        f"- {batched['questions']} questions batched: {batched['decode_tps_all']} tok/s together, "
        f"{batched['decode_tps_per_question']} tok/s each; compiling took {gen['compile_s']} s once.",
        f"- Embedding (MiniLM architecture): {g['embedding']['chunks_per_s']} chunks/s.",
        "",
    ]


def _growth(rows: list[dict]) -> list[str]:
    """Adding one small document, and opening the index, on the synthetic collections."""
    lines = [
        "## Adding a document, opening the index",
        "",
        "One small document added to the synthetic collection: seconds beyond its own embedding, as "
        "`make index` adds it (a new file, then a build) and as an upload does (stored, built, the served "
        "index reopened). Opening the index for a question: seconds, and the share of its bytes read.",
        "",
        "| chunks | make index | upload | goal | open | first question | bytes read on open | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in rows:
        m, u, o = g["make_index"], g["upload"], g["open"]
        worst = max(m["beyond_embedding_s"], u["beyond_embedding_s"])
        lines.append(f"| {g['chunks']:,} | {m['beyond_embedding_s']} s | {u['beyond_embedding_s']} s | "
                     f"{g['goal']} s: {_ok(worst, g['goal'])} | {o['open_s']} s | {o['first_question_s']} s | "
                     f"{o['bytes_read']:,} of {o['index_bytes']:,} ({o['share_read']}) | {o['goal']}: "
                     f"{_ok(o['share_read'], o['goal'])} |")  # fmt: skip
    return [*lines, ""]


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


def _command_line(c: dict) -> list[str]:
    if "skipped" in c:
        return ["## The command line", "", f"Skipped: {c['skipped']}.", ""]
    m, rounds = c["median_s"], c["rounds"]
    return [
        "## The command line",
        "",
        f"`docqa ask` on the sample article, a process for each question (models cached), asked after another "
        f"question: {m['recalled']} s median, the last command's prompts recalled ({c['file_mb']} MB on disk), "
        f"against {m['alone']} s with none to recall, {c['speedup']}x ({len(rounds['alone'])} alternating rounds: "
        f"{', '.join(map(str, rounds['recalled']))} s against {', '.join(map(str, rounds['alone']))} s).",
        "",
    ]
