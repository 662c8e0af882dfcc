"""Answer speed and memory, each beside a baseline from the same run: docqa's generator against
llama.cpp on the same model (its GGUF) and against onnxruntime-genai's own loop on the same
ONNX model; seconds per answer on the sample article with one asker and with four at once, and
with the answer prompt's passages best first and in reading order;
the CPU runtime's worker threads spinning within a step against sleeping; the first use of
the model (from the installed packages to a loaded generator); peak memory
while serving and the cold start of `docqa serve`."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from embeddings.config import PASSAGE_ORDERS, Config
from evaluation import data
from qa.assistant import Assistant
from qa.decoding import Scheduler
from qa.generator import LocalGenerator, from_config
from qa.prompt import fit
from qa.retriever import Passage
from qa.runtimes import ort
from qa.runtimes.ort import threads

QUESTIONS = [
    "Who mediated the meeting between Massoud and Muttaqi?",
    "Where did the meeting take place?",
    "How much wheat did India give?",
    "What did the NRF demand?",
]
# Warms the models; not a timed question: a prompt asked again is read from the runtime's kept
# key/value cache (qa/runtimes/ort.py), which would time a repeat, not an answer.
WARM_UP = "Who is Ahmad Massoud?"
# Each runtime decodes a few tokens after the prompt's last WARM_TOKENS before it is timed, in
# the process that times it: a first step pays for setting up what later ones reuse.
WARM_TOKENS = 64


def long_prompt(
    generator: LocalGenerator, eval_data: Path, tokens: int = 1000, question: int = 0
) -> list[int]:
    """A docqa answer prompt of about `tokens` tokens: XQuAD's `question`th question, and
    paragraphs as passages."""
    paragraphs, questions = data.xquad(eval_data)
    passages = [Passage(p.id, p.article, 0, len(p.text), p.text, 0.5) for p in paragraphs[:12]]
    count = lambda m: generator.count(generator.render(m))  # noqa: E731
    messages, _ = fit(questions[question].text, passages, tokens, count)
    return generator.prompt_ids(messages)


def docqa_speed(
    generator: LocalGenerator, prompt: list[int], new_tokens: int, draft: int | None = None
) -> dict:
    """Time to first token and decode rate of docqa's generator (scheduler and runtime), with
    the runtime's drafts (qa/drafts.py) as shipped or `draft` tokens of them a step, and the
    share of the tokens decoded that were drafted."""
    batch = generator.scheduler.batch
    shipped, drafted = getattr(batch, "draft", None), getattr(batch, "tokens_drafted", 0)
    if draft is not None and shipped is not None:
        batch.draft = draft
    try:
        started = time.perf_counter()
        first, count = 0.0, 0
        for _ in generator.scheduler.submit(prompt, new_tokens, stop=()):
            first = first or time.perf_counter() - started
            count += 1
        total = time.perf_counter() - started
    finally:
        if shipped is not None:
            batch.draft = shipped
    return {"ttft_s": round(first, 2), "decode_tps": round((count - 1) / max(total - first, 1e-9), 2),
            "drafted": round((getattr(batch, "tokens_drafted", 0) - drafted) / max(count, 1), 2)}  # fmt: skip


def onnxruntime_genai_speed(folder: Path, prompt: list[int], new_tokens: int) -> dict:
    """The same ONNX model under onnxruntime-genai's own generation loop (batch 1)."""
    import onnxruntime_genai as og

    config = og.Config(str(folder))
    config.clear_providers()
    config.overlay(
        f'{{"model": {{"decoder": {{"session_options": {{"intra_op_num_threads": {threads()}}}}}}}}}'
    )
    model = og.Model(config)

    def run(tokens: list[int], count: int) -> tuple[float, float]:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(tokens) + count, do_sample=False)
        generator = og.Generator(model, params)
        started = time.perf_counter()
        generator.append_tokens(np.array([tokens], dtype=np.int32))
        generator.generate_next_token()
        first = time.perf_counter() - started
        for _ in range(count - 1):
            generator.generate_next_token()
        return first, time.perf_counter() - started

    run(prompt[-WARM_TOKENS:], 4)  # warm, as docqa is before its turn
    first, total = run(prompt, new_tokens)
    return {"ttft_s": round(first, 2), "decode_tps": round((new_tokens - 1) / max(total - first, 1e-9), 2)}


def llama_cpp_speed(gguf: Path, prompt: list[int], new_tokens: int) -> dict:
    """The packaged GGUF itself under llama.cpp, the runtime users would pick instead, in a child
    process: a llama.cpp built for another CPU dies of an illegal instruction, and must not take
    the bench with it."""
    if importlib.util.find_spec("llama_cpp") is None:
        return {"skipped": "llama-cpp-python is not installed (make bench builds it)"}
    code = "import json, sys; from bench.answering import _llama_cpp; print(json.dumps(_llama_cpp(*json.loads(sys.argv[1]))))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps([str(gguf), prompt, new_tokens])],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        why = (
            signal.Signals(-done.returncode).name if done.returncode < 0 else f"exit status {done.returncode}"
        )
        return {"skipped": f"llama.cpp died ({why}); if it was built for another CPU (or with AMX), rebuild it: "
                           "pip uninstall llama-cpp-python, then make bench compiles it for this one"}  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _llama_cpp(gguf: str, prompt: list[int], new_tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=gguf, n_ctx=len(prompt) + new_tokens + 16, n_threads=threads(),
                n_threads_batch=threads(), n_batch=512, verbose=False)  # fmt: skip
    # warm, as docqa is before its turn: its weights read in from the mapped file
    for _ in itertools.islice(llm.generate(prompt[-WARM_TOKENS:], temp=0.0, reset=True), 4):
        pass
    llm.reset()  # nothing of the warm-up is reused: the timed prompt is read whole
    started = time.perf_counter()
    first, count = 0.0, 0
    for _ in llm.generate(prompt, temp=0.0, reset=True):
        first = first or time.perf_counter() - started
        count += 1
        if count == new_tokens:
            break
    total = time.perf_counter() - started
    return {"ttft_s": round(first, 2), "decode_tps": round((count - 1) / max(total - first, 1e-9), 2)}


def transformers_speed(config: Config, prompt: list[int], new_tokens: int) -> dict:
    """The model as it is under transformers on this CPU: what docqa ran before the int4 runtime."""
    from qa.generator import load

    generator = load(config.generator, "cpu", config.dtype, "transformers", batch=1)
    return {**docqa_speed(generator, prompt, new_tokens), "dtype": generator.dtype}


def asking(assistant: Assistant, users: int = 4) -> dict:
    """Seconds per answer on the sample article with the models loaded: one asker, then
    `users` askers at once (each asks every question once in the one-asker run). Beside each,
    the wait for the first token (on a CPU, mostly reading the prompt) and the prompt tokens the
    runtime read per answer, where it counts them: what the askers cannot share."""
    read = _tokens_read(assistant)
    assistant.ask(WARM_UP)
    started, before = time.perf_counter(), read()
    alone = []
    for q in QUESTIONS:
        t = time.perf_counter()
        answer = assistant.ask(q)
        alone.append({"question": q, "seconds": round(time.perf_counter() - t, 2),
                      "first_token": answer.timings.get("first_token", 0.0), "answer": answer.text})  # fmt: skip
    one_user, read_alone = time.perf_counter() - started, read() - before
    seconds: list[float] = []
    firsts: list[float] = []

    def ask(q: str) -> None:
        t = time.perf_counter()
        answer = assistant.ask(q)
        seconds.append(time.perf_counter() - t)
        firsts.append(answer.timings.get("first_token", 0.0))

    started, before = time.perf_counter(), read()
    askers = [threading.Thread(target=ask, args=(QUESTIONS[i % len(QUESTIONS)],)) for i in range(users)]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    together, read_together = time.perf_counter() - started, read() - before
    rate_alone = len(QUESTIONS) / one_user * 60
    rate_together = users / together * 60
    return {
        "alone": alone,
        "median_seconds_alone": round(float(np.median([a["seconds"] for a in alone])), 2),
        "median_first_token_alone": round(float(np.median([a["first_token"] for a in alone])), 2),
        "prompt_tokens_read_alone": round(read_alone / len(QUESTIONS)),
        "goal_seconds": "<= 5",
        "users": users,
        "seconds_each_together": [round(s, 1) for s in sorted(seconds)],
        "first_token_each_together": [round(s, 1) for s in sorted(firsts)],
        "prompt_tokens_read_together": round(read_together / users),
        "answers_per_minute_alone": round(rate_alone, 2),
        "answers_per_minute_together": round(rate_together, 2),
        "ratio": round(rate_together / rate_alone, 2),
        "goal_ratio": ">= 2.5",
        **step_costs(assistant, users),
    }


def step_costs(assistant: Assistant, users: int, new_tokens: int = 16, prompt_tokens: int = 128) -> dict:
    """What the generator's work costs on this machine: a decoding step with 1, 2 and `users`
    sequences in it (the median time between one sequence's tokens while all of them decode), and
    reading a prompt, per token (a prompt of `prompt_tokens` that shares no beginning with any
    other). The premise of askers at once is that a step for several costs about what a step for
    one does; these say whether it holds here."""
    scheduler = getattr(assistant.generator, "scheduler", None)
    if scheduler is None:
        return {}
    messages, _ = assistant.prompt(QUESTIONS[0], assistant.search(QUESTIONS[0]))
    prompt = assistant.generator.prompt_ids(messages)
    steps = {}
    for rows in sorted({1, 2, users}):
        times = _token_times(scheduler, prompt, rows, new_tokens)
        together_from, together_to = max(t[0] for t in times), min(t[-1] for t in times)
        ticks = [t for t in times[0] if together_from <= t <= together_to]
        steps[str(rows)] = round(float(np.median(np.diff(ticks))), 4) if len(ticks) > 1 else None
    fresh = prompt[1:][:prompt_tokens]  # without the first token it begins like no prompt read before
    started = time.perf_counter()
    for _ in scheduler.submit(fresh, 1, stop=()):
        pass
    per_token = (time.perf_counter() - started) / len(fresh)
    return {"decode_step_seconds": steps, "prompt_seconds_per_token": round(per_token, 4)}


def _token_times(scheduler: Scheduler, prompt: list[int], rows: int, new_tokens: int) -> list[list[float]]:
    """When each of `rows` requests for `prompt` submitted at once received each of its tokens."""
    streams = [scheduler.submit(prompt, new_tokens, stop=()) for _ in range(rows)]
    times: list[list[float]] = [[] for _ in streams]

    def read(stream: Iterable[int], into: list[float]) -> None:
        for _ in stream:
            into.append(time.perf_counter())

    readers = [threading.Thread(target=read, args=pair) for pair in zip(streams, times, strict=True)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    return times


def prompt_reuse(assistant: Assistant, rounds: int = 2) -> dict:
    """The sample article's questions asked one after another with the CPU runtime's kept
    key/value cache used and not, in alternating rounds: seconds per answer and prompt tokens
    read. Each round starts from the warm-up question, so the first question shares with it only
    what any answer prompt shares (instructions, passages that rank first for both)."""
    batch = assistant.generator.scheduler.batch
    if not hasattr(batch, "reuse_from"):
        return {"skipped": f"the {assistant.generator.runtime} runtime keeps no prompt cache"}
    kept = batch.reuse_from
    modes = {"read whole": lambda: setattr(batch, "reuse_from", 1 << 62),
             "shared beginning reused": lambda: setattr(batch, "reuse_from", kept)}  # fmt: skip
    try:
        asked = _in_turn(assistant, modes, rounds)
    finally:
        batch.reuse_from = kept
    out = {m: _timed(a) for m, a in asked.items()}
    whole, reused = out["read whole"], out["shared beginning reused"]
    out["time_ratio"] = round(reused["mean_seconds"] / whole["mean_seconds"], 3)
    return out


def drafting(assistant: Assistant, rounds: int = 2) -> dict:
    """The sample article's questions asked one after another with the CPU runtime's drafts
    (qa/drafts.py) and one token a step, in alternating rounds, each from the warm-up question:
    seconds per answer, the tokens decoded as drafted (the warm-up's included), and whether the
    answers changed."""
    batch = assistant.generator.scheduler.batch
    if not hasattr(batch, "draft"):
        return {"skipped": f"the {assistant.generator.runtime} runtime drafts no tokens"}
    shipped, before = batch.draft, batch.tokens_drafted
    modes = {"one token a step": lambda: setattr(batch, "draft", 0),
             "drafted": lambda: setattr(batch, "draft", shipped)}  # fmt: skip
    try:
        asked = _in_turn(assistant, modes, rounds)
    finally:
        batch.draft = shipped
    out: dict = {"draft": shipped}
    out |= {mode: {**_timed(a), "answers": a["answers"]} for mode, a in asked.items()}
    out["tokens_drafted"] = batch.tokens_drafted - before
    out["time_ratio"] = round(out["drafted"]["mean_seconds"] / out["one token a step"]["mean_seconds"], 3)
    out["same_answers"] = sum(
        out["drafted"]["answers"][q] == out["one token a step"]["answers"][q] for q in QUESTIONS
    )
    return out


def passage_orders(assistant: Assistant, rounds: int = 2) -> dict:
    """The sample article's questions asked one after another with the passages in the answer
    prompt best first ("rank") and in reading order, in alternating rounds, each from the
    warm-up question: seconds per answer, prompt tokens the runtime read (the rest it took from
    the kept key/value cache) and the answers, to show whether they changed."""
    shipped = assistant.config

    def setting(order: str) -> Callable[[], None]:
        return lambda: setattr(assistant, "config", replace(shipped, passage_order=order))

    try:
        asked = _in_turn(assistant, {o: setting(o) for o in PASSAGE_ORDERS}, rounds)
    finally:
        assistant.config = shipped
    out: dict = {"shipped": shipped.passage_order}
    out |= {order: {**_timed(a), "answers": a["answers"]} for order, a in asked.items()}
    out["time_ratio"] = round(out["reading"]["mean_seconds"] / out["rank"]["mean_seconds"], 3)
    out["same_answers"] = sum(out["rank"]["answers"][q] == out["reading"]["answers"][q] for q in QUESTIONS)
    return out


def _tokens_read(assistant: Assistant) -> Callable[[], int]:
    """The prompt tokens the generator's runtime has read so far, where it counts them (else 0)."""
    batch = getattr(getattr(assistant.generator, "scheduler", None), "batch", None)
    return lambda: getattr(batch, "tokens_read", 0)


def _in_turn(assistant: Assistant, modes: dict[str, Callable[[], None]], rounds: int) -> dict[str, dict]:
    """The sample article's questions asked one after another in each of `modes` (each a function
    that sets the mode up), in alternating rounds, each round from the warm-up question: every
    answer's seconds and prompt tokens read, and each question's last answer."""
    read = _tokens_read(assistant)
    out: dict[str, dict] = {m: {"seconds": [], "tokens": [], "answers": {}} for m in modes}
    for _ in range(rounds):
        for mode, set_up in modes.items():
            set_up()
            assistant.ask(WARM_UP)
            for q in QUESTIONS:
                before, started = read(), time.perf_counter()
                answer = assistant.ask(q)
                out[mode]["seconds"].append(time.perf_counter() - started)
                out[mode]["tokens"].append(read() - before)
                out[mode]["answers"][q] = answer.text
    return out


def _timed(asked: dict) -> dict:
    """Median and mean seconds per answer and mean prompt tokens read, of one mode of `_in_turn`."""
    return {"median_seconds": round(float(np.median(asked["seconds"])), 2),
            "mean_seconds": round(float(np.mean(asked["seconds"])), 2),
            "prompt_tokens_read": int(np.mean(asked["tokens"]))}  # fmt: skip


def first_use(config: Config) -> dict:
    """From the installed packages to a loaded generator, in an empty model cache."""
    with tempfile.TemporaryDirectory(prefix="docqa-first-use-") as cache:
        # The child reports the largest memory of the conversions it waited for (and its own).
        code = "import resource; from qa.generator import from_config; from embeddings.config import Config; " \
               f"from_config(Config(generator={config.generator!r})); " \
               "print(max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))"  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DOCQA_CACHE": cache},
                              capture_output=True, text=True)  # fmt: skip
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:]}
    peak_kb = int(done.stdout.split()[-1])
    return {"seconds": round(seconds, 1), "goal_seconds": "<= 60", "peak_rss_gb": round(peak_kb / 1e6, 2)}


def command_line(index_dir: Path, config: Config, rounds: int = 3) -> dict:
    """`docqa ask` as a user runs it, a process for each question (models cached, index built):
    seconds for a question asked after another, where the last command's prompts are recalled
    (qa/runtimes/kept_prompts.py), against the same question with none to recall, in alternating
    rounds, and the size of the file they were recalled from."""
    prompts = from_config(config).prompts
    if prompts is None:
        return {"skipped": f"the {config.generator} runtime keeps no prompts"}

    def ask(question: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa.cli", "ask", question, "--index", str(index_dir)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        return time.perf_counter() - started

    def alone(question: str) -> float:
        prompts.unlink(missing_ok=True)
        return ask(question)

    def after(earlier: str, question: str) -> float:
        alone(earlier)  # untimed: writes its prompts
        return ask(question)

    seconds: dict[str, list[float]] = {"recalled": [], "alone": []}
    size = 0
    for r in range(rounds):
        earlier, question = QUESTIONS[r % len(QUESTIONS)], QUESTIONS[(r + 1) % len(QUESTIONS)]
        for mode in ("recalled", "alone") if r % 2 == 0 else ("alone", "recalled"):
            seconds[mode].append(after(earlier, question) if mode == "recalled" else alone(question))
            if mode == "recalled":
                size = max(size, prompts.stat().st_size)
    median = {mode: round(float(np.median(values)), 2) for mode, values in seconds.items()}
    return {"rounds": {m: [round(v, 2) for v in values] for m, values in seconds.items()}, "median_s": median,
            "speedup": round(median["alone"] / median["recalled"], 2), "file_mb": round(size / 2**20)}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(index_dir: Path, docs: Path, config: Config, answers: int = 3) -> dict:
    """Start `docqa serve` with the default models (their cache warm, no kept prompts), time the
    first answer, ask a few more, and read the server's peak RSS; stop it as Ctrl-C does. Then a
    restart: a question it was not asked, first after starting again from the prompts it wrote
    when it stopped (qa/runtimes/kept_prompts.py), against the same question first in a server
    started with none."""
    prompts = from_config(config).prompts
    if prompts is not None:
        prompts.unlink(missing_ok=True)
    cold = _serve(index_dir, docs, QUESTIONS[:answers])
    out = {"cold_start_to_first_answer_s": cold["to_first_answer_s"], "answers": answers,
           "peak_rss_gb": cold["peak_rss_gb"], "goal_rss_gb": "<= 2.5"}  # fmt: skip
    if prompts is None:
        return {**out, "restart": {"skipped": f"the {config.generator} runtime keeps no prompts"}}
    question = QUESTIONS[answers % len(QUESTIONS)]
    recalled = _serve(index_dir, docs, [question])
    prompts.unlink()
    alone = _serve(index_dir, docs, [question])
    return {**out, "restart": {
        "question": question,
        "recalled": recalled["first_answer_s"], "none": alone["first_answer_s"],
        "ratio": round(alone["first_answer_s"] / recalled["first_answer_s"], 2),
        "recalled_to_first_answer_s": recalled["to_first_answer_s"],
        "none_to_first_answer_s": alone["to_first_answer_s"],
    }}  # fmt: skip


def _serve(index_dir: Path, docs: Path, questions: list[str]) -> dict:
    """A `docqa serve` process asked `questions` in turn, then stopped as Ctrl-C stops it: from
    its start to the first answer, the first answer's own seconds (asked once the server says it
    is ready), and its peak RSS."""
    from gradio_client import Client

    port = _free_port()
    command = [sys.executable, "-m", "qa.cli", "serve", "--port", str(port), "--index", str(index_dir),
               "--docs", str(docs)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client, status = None, ""
        while "generator:" not in status:  # the status line once the models are ready
            if proc.poll() is not None or "could not start" in status:
                raise RuntimeError(f"docqa serve did not start ({status or 'it exited'})")
            time.sleep(0.5)
            with contextlib.suppress(Exception):  # not up yet
                client = client or Client(f"http://127.0.0.1:{port}/", verbose=False)
                status = str(client.predict(api_name="/status"))
        asked = time.perf_counter()
        _, _, answer = client.predict(questions[0], api_name="/ask")
        done = time.perf_counter()
        if "text" not in answer:
            raise RuntimeError(f"docqa serve did not answer {questions[0]!r}: {answer}")
        for question in questions[1:]:
            client.predict(question, api_name="/ask")
        peak_kb = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM"))  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: the server writes its kept prompts
        proc.wait(timeout=60)
    return {"to_first_answer_s": round(done - started, 1), "first_answer_s": round(done - asked, 2),
            "peak_rss_gb": round(peak_kb / 2**20, 2)}  # fmt: skip


def generation(
    assistant: Assistant, config: Config, eval_data: Path, gguf: Path, new_tokens: int = 64, rounds: int = 3
) -> dict:
    """Every runtime on one ~1,000-token prompt, `new_tokens` decoded (end tokens ignored). docqa
    (with its drafts, and without them: one token a step), onnxruntime-genai's loop and llama.cpp
    take turns for `rounds` rounds, in the reverse order each other round, so that the machine's
    slower minutes fall on each alike; each figure is the median of its rounds. Round r gives
    every runtime the prompt without its first r tokens (docqa one token a step: without its first
    `rounds` + r): no runtime finds it read before. transformers, slow, is timed once."""
    from qa import models

    generator = assistant.generator
    prompt = long_prompt(generator, eval_data)
    docqa_speed(generator, prompt[-WARM_TOKENS:], 4)  # warm, sharing no beginning: every runtime reads it all
    folder = models.int4(config.generator)
    runs = {
        "docqa": lambda tokens: docqa_speed(generator, tokens, new_tokens),
        # the prompt without as many tokens again: one that docqa's own turn did not leave read
        "docqa, one token a step": lambda tokens: docqa_speed(generator, tokens[rounds:], new_tokens, 0),
        "onnxruntime-genai loop": lambda tokens: onnxruntime_genai_speed(folder, tokens, new_tokens),
        "llama.cpp": lambda tokens: llama_cpp_speed(gguf, tokens, new_tokens),
    }
    measured: dict[str, list[dict]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
            measured[name].append(runs[name](prompt[r:]))
    rows = {name: _median_row(each) for name, each in measured.items()}
    rows["transformers"] = transformers_speed(replace(config, runtime="transformers"), prompt, new_tokens)
    out = {
        "model": generator.name,
        "runtime": generator.runtime,
        "dtype": generator.dtype,
        "threads": threads(),
        "prompt_tokens": len(prompt),
        "new_tokens": new_tokens,
        "rounds": rounds,
        "rows": rows,
    }
    batch = getattr(getattr(generator, "scheduler", None), "batch", None)
    if isinstance(batch, ort.OrtBatch):  # its weights moved by now (qa/runtimes/hugepages.py)
        out["huge_pages_mb"] = round(batch.huge_pages / 2**20)
    llama = rows["llama.cpp"]
    if "skipped" not in llama:
        out["decode_vs_llama_cpp"] = round(rows["docqa"]["decode_tps"] / llama["decode_tps"], 2)
        out["ttft_vs_llama_cpp"] = round(rows["docqa"]["ttft_s"] / llama["ttft_s"], 2)
    out["goals"] = {"decode_vs_llama_cpp": ">= 0.8", "ttft_vs_llama_cpp": "<= 1.2"}
    return out


def _median_row(rounds: list[dict]) -> dict:
    """One runtime's rounds as their medians, each round's figures kept; a skip as it was given."""
    skipped = next((r for r in rounds if "skipped" in r), None)
    if skipped:
        return skipped
    keys = [k for k in ("ttft_s", "decode_tps", "drafted") if all(k in r for r in rounds)]
    median = {key: round(float(np.median([r[key] for r in rounds])), 2) for key in keys}
    return {**median, "rounds": rounds}


def thread_spinning(
    assistant: Assistant, config: Config, prompt: list[int], rounds: int = 3, new_tokens: int = 128,
    users: int = 4,
) -> dict:  # fmt: skip
    """The CPU runtime's worker threads spinning while they wait for the next operator of a step
    (docqa's setting; they stop when the step ends) against sleeping and being woken, each in a
    session of its own of `config.generator`'s 4-bit model, in alternating rounds: the decode
    rate on `prompt`; answers per minute to `users` askers at once on the sample article (their
    questions embedded while others decode: spinning threads hold the cores the embedder wants);
    and the CPU seconds the process used in the second after each decode (threads left spinning
    would use them)."""
    generator = assistant.generator
    shipped = generator.scheduler
    if (moving := getattr(shipped.batch, "moving", None)) is not None:
        moving.join()  # the shipped session's weights on huge pages: no CPU of its own counted below
    batch = getattr(shipped, "batch", None)
    if not isinstance(batch, ort.OrtBatch):
        return {"skipped": f"the {generator.runtime} runtime has no worker threads of its own"}
    from qa import models

    folder, settings = models.int4(config.generator), {"spinning": True, "sleeping": False}
    # Each scheduler's thread keeps its session for the rest of the process (about 1 GB each);
    # the serving figures are measured in a process of their own. Both without huge pages: the
    # thread that moves weights onto them would count in the CPU time after a step.
    schedulers = {
        name: Scheduler(ort.load(folder, batch.capacity, batch.prompt_chunk, spinning=spin, huge_pages=False))
        for name, spin in settings.items()
    }
    kinds = ("decode_tps", "answers_per_minute_together", "cpu_seconds_after")
    out: dict[str, dict[str, list[float]]] = {n: {k: [] for k in kinds} for n in settings}
    try:
        for _ in range(rounds):
            for name, scheduler in schedulers.items():
                generator.scheduler = scheduler
                docqa_speed(generator, prompt[1:65], 4)  # warm
                out[name]["decode_tps"].append(docqa_speed(generator, prompt, new_tokens)["decode_tps"])
                assistant.ask(WARM_UP)
                out[name]["answers_per_minute_together"].append(
                    round(users / _together(assistant, users) * 60, 2)
                )
                before = time.process_time()
                time.sleep(1.0)
                out[name]["cpu_seconds_after"].append(round(time.process_time() - before, 3))
    finally:
        generator.scheduler = shipped
    median = {n: {k: float(np.median(o[k])) for k in kinds[:2]} for n, o in out.items()}
    ratio = {k: round(median["spinning"][k] / median["sleeping"][k], 3) for k in kinds[:2]}
    return {**out, "median": median, "ratio": ratio, "rounds": rounds, "new_tokens": new_tokens,
            "prompt_tokens": len(prompt), "users": users}  # fmt: skip


def on_ray_serve(index_dir: Path, config: Config, alone: dict, counts: tuple[int, ...] = (1, 2)) -> dict:
    """Answers per minute from `alone["users"]` askers at once through the models deployed on Ray
    Serve (a local cluster of 4 logical CPUs on this machine), with each number of generator
    replicas, beside the same askers in one process (`alone`: `asking`'s result from this run)."""
    import ray

    from embeddings.index import Index
    from qa.ray_serve import RayServe, Replicas

    users, rows = alone["users"], []
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR")
    try:
        for n in counts:
            served = RayServe(replicas=Replicas(n, n))
            embedder, generator = served.deploy(config)
            assistant = Assistant(Index.open(index_dir, embedder), generator, config)
            assistant.ask(WARM_UP)
            seconds = _together(assistant, users)
            rate = users / seconds * 60
            rows.append({"replicas": n, "users": users, "seconds": round(seconds, 1),
                         "answers_per_minute": round(rate, 2),
                         "vs_one_process": round(rate / alone["answers_per_minute_together"], 2)})  # fmt: skip
            served.stop()
    finally:
        ray.shutdown()
    return {"one_process_answers_per_minute": alone["answers_per_minute_together"], "rows": rows,
            "cpus": os.cpu_count()}  # fmt: skip


def _together(assistant: Assistant, users: int) -> float:
    """Seconds until `users` askers at once (each one question) all have their answers; an asker
    that fails fails the measurement (a crash must not pass for a fast answer)."""
    failed: list[BaseException] = []

    def ask(question: str) -> None:
        try:
            assistant.ask(question)
        except BaseException as e:  # noqa: BLE001 (raised below, in the measuring thread)
            failed.append(e)

    askers = [threading.Thread(target=ask, args=(QUESTIONS[i % len(QUESTIONS)],)) for i in range(users)]
    started = time.perf_counter()
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    if failed:
        raise RuntimeError(f"{len(failed)} of {users} askers at once failed") from failed[0]
    return time.perf_counter() - started
