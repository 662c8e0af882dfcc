"""Answer speed against bare `model.generate` on the same prompt (time to first token, decode
rate), llama.cpp on the same GGUF where llama-cpp-python is installed, peak memory while
serving, and the cold start from `docqa serve` to the first answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from qa.assistant import Assistant
from qa.prompt import fit

QUESTIONS = [
    "Who mediated the meeting between Massoud and Muttaqi?",
    "How much wheat did India give?",
    "What did the NRF demand?",
]


def _prompt(assistant: Assistant, question: str) -> list[dict[str, str]]:
    gen = assistant.generator
    found = assistant.retriever(question)
    messages, _ = fit(
        question, found.passages, assistant.config.context_tokens, lambda m: gen.count(gen.render(m))
    )
    return messages


def _bare(assistant: Assistant, messages, new_tokens: int) -> tuple[float, float, int]:
    """(prefill seconds, decode tokens/s, prompt tokens) of plain generate on the prompt."""
    gen = assistant.generator
    inputs = gen.tokenizer(gen.render(messages), return_tensors="pt", add_special_tokens=False).to(
        gen.model.device
    )
    greedy = dict(
        do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=gen.tokenizer.eos_token_id
    )
    with torch.inference_mode():
        started = time.perf_counter()
        gen.model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, **greedy)
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        out = gen.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **greedy)
        total = time.perf_counter() - started
    made = out.shape[1] - inputs["input_ids"].shape[1]
    return prefill, (made - 1) / max(total - prefill, 1e-9), int(inputs["input_ids"].shape[1])


def _docqa(assistant: Assistant, question: str) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s, tokens) of `stream` as a user sees it."""
    started = time.perf_counter()
    first, pieces = None, []
    for piece in assistant.stream(question):
        if first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    total = time.perf_counter() - started
    tokens = assistant.generator.count("".join(pieces))
    return first or total, (tokens - 1) / max(total - (first or total), 1e-9), tokens


def generation(assistant: Assistant, new_tokens: int = 48) -> dict:
    """Both paths on each sample question, alternating, after one warm-up each."""
    _docqa(assistant, QUESTIONS[0])
    _bare(assistant, _prompt(assistant, QUESTIONS[0]), 4)
    rows = []
    for q in QUESTIONS:
        ttft, ours_rate, made = _docqa(assistant, q)
        prefill, bare_rate, prompt_tokens = _bare(assistant, _prompt(assistant, q), max(made, 8))
        rows.append({"question": q, "prompt_tokens": prompt_tokens, "answer_tokens": made,
                     "docqa_ttft_s": round(ttft, 3), "bare_prefill_s": round(prefill, 3),
                     "docqa_decode_tps": round(ours_rate, 2), "bare_decode_tps": round(bare_rate, 2)})  # fmt: skip
    ttft = sum(r["docqa_ttft_s"] for r in rows) / sum(r["bare_prefill_s"] for r in rows)
    decode = sum(r["docqa_decode_tps"] for r in rows) / sum(r["bare_decode_tps"] for r in rows)
    return {
        "model": assistant.generator.name,
        "device": assistant.generator.device,
        "dtype": assistant.generator.dtype,
        "rows": rows,
        "ttft_ratio": round(ttft, 3),
        "ttft_goal": "<= 1.1",
        "decode_ratio": round(decode, 3),
        "decode_goal": ">= 0.95",
    }


def llama_cpp(gguf: Path, messages, new_tokens: int = 48) -> dict:
    """The same GGUF under llama.cpp, the runtime users would pick instead, if it is installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed (pip install -e '.[bench]' builds it)"}
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=None, verbose=False)
    started = time.perf_counter()
    first, count = None, 0
    for _ in llm.create_chat_completion(messages=messages, max_tokens=new_tokens, temperature=0, stream=True):
        first = first or time.perf_counter() - started
        count += 1
    total = time.perf_counter() - started
    return {
        "ttft_s": round(first or total, 3),
        "decode_tps": round((count - 1) / max(total - (first or total), 1e-9), 2),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(index_dir: Path, docs: Path, answers: int = 3) -> dict:
    """Start `docqa serve` with the default models (their cache warm), time the first answer,
    ask a few more, and read the server's peak RSS."""
    from gradio_client import Client

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "qa.cli",
        "serve",
        "--port",
        str(port),
        "--index",
        str(index_dir),
        "--docs",
        str(docs),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client, first = None, None
        while first is None:
            if proc.poll() is not None:
                raise RuntimeError("docqa serve exited before answering")
            try:
                client = client or Client(f"http://127.0.0.1:{port}/", verbose=False)
                _, _, answer = client.predict(QUESTIONS[0], api_name="/ask")
                if "text" in answer:
                    first = time.perf_counter() - started
            except Exception:  # not up, or the models still loading
                time.sleep(0.5)
        for i in range(1, answers):
            client.predict(QUESTIONS[i % len(QUESTIONS)], api_name="/ask")
        peak_kb = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM"))  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"cold_start_to_first_answer_s": round(first, 1), "answers": answers,
            "peak_rss_gb": round(peak_kb / 2**20, 2), "goal_rss_gb": "<= 5"}  # fmt: skip
