"""`python -m bench.gpu --out DIR`: the prepared script for a GPU machine. Model files cannot
travel there, so it builds docqa's architectures from their configs (bench/configs/) with
random weights (speed does not depend on the weights) and times embedding throughput and the
generator through docqa's own GPU path (qa/runtimes/hf.py under the scheduler of
qa/decoding.py: static KV cache, compiled decoding step, questions batched) beside transformers'
own `generate` at batch 1, plain and with its static cache and compiled step. Imports only
torch, transformers and those two modules. Writes DIR/gpu.json."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from qa.decoding import Scheduler
from qa.runtimes.hf import HfBatch

CONFIGS = Path(__file__).parent / "configs"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def embedding(device: str, batch: int = 256, tokens: int = 160, rounds: int = 20) -> dict:
    from transformers import BertConfig, BertModel

    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # a CPU smoke run has no fast bf16
    model = BertModel(BertConfig.from_json_file(CONFIGS / "all-MiniLM-L6-v2.json")).to(device, dtype).eval()
    ids = torch.randint(1000, 20000, (batch, tokens), device=device)
    with torch.inference_mode():
        model(input_ids=ids)
        _sync()
        started = time.perf_counter()
        for _ in range(rounds):
            model(input_ids=ids)
        _sync()
    seconds = time.perf_counter() - started
    return {"chunks_per_s": round(batch * rounds / seconds, 1), "batch": batch, "tokens_per_chunk": tokens}


def generate_rate(model, prompt: list[int], new_tokens: int, compiled: bool) -> float:
    """Decode tokens/s of transformers' own `generate` at batch 1, beyond the first token: plain
    and eager, or with a static KV cache and its compiled decoding step (CUDA graphs)."""
    ids = torch.tensor([prompt], device=model.device)
    greedy: dict = dict(do_sample=False, pad_token_id=0)
    if compiled:
        from transformers.generation.configuration_utils import CompileConfig

        greedy.update(cache_implementation="static", max_cache_len=2048)
        config = CompileConfig(mode="reduce-overhead" if model.device.type == "cuda" else "default")
        config._compile_all_devices = True  # transformers compiles on a GPU only, unless told
        greedy["compile_config"] = config
    else:
        greedy["disable_compile"] = True
    with torch.inference_mode():
        for _ in range(2 if compiled else 1):  # compiled: the first calls compile the decoding step
            model.generate(ids, max_new_tokens=4, min_new_tokens=4, **greedy)
        _sync()
        started = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **greedy)
        _sync()
        first = time.perf_counter() - started
        started = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **greedy)
        _sync()
        total = time.perf_counter() - started
    return (new_tokens - 1) / max(total - first, 1e-9)


@dataclass
class Gathered(HfBatch):
    """docqa's batch, started only once `gather` questions have joined it. The threads of one
    measurement arrive microseconds apart; a batch that started with the first of them alone
    would leave the rest to a second batch of another size, compiled again inside the timing."""

    gather: int = 1

    def step(self) -> dict[object, int | None]:
        if 0 < len(self._joining) < self.gather:  # joining: waiting for a batch to start
            return {}
        return super().step()


def through_docqa(scheduler: Scheduler, prompts: list[list[int]], new_tokens: int) -> dict:
    """Every prompt asked at once through the scheduler (one batch): time to first token and
    the decode rate after it, per question and all together."""
    scheduler.batch.gather = len(prompts)
    firsts: list[float] = []
    lasts: list[float] = []
    started = time.perf_counter()

    def ask(prompt: list[int]) -> None:
        first = None
        for _ in scheduler.submit(prompt, new_tokens, stop=[]):
            first = first or time.perf_counter()
        firsts.append(first - started)
        lasts.append(time.perf_counter() - started)

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decode = max(lasts) - max(firsts)
    return {
        "questions": len(prompts),
        "ttft_s": round(max(firsts), 3),
        "decode_tps_per_question": round((new_tokens - 1) / max(decode, 1e-9), 1),
        "decode_tps_all": round(len(prompts) * (new_tokens - 1) / max(decode, 1e-9), 1),
    }


def generator(
    device: str, config_file: Path, prompt_tokens: int = 1000, new_tokens: int = 128, batched: int = 8
) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_file)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(device).eval()
    generator_ = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(1000, 20000, (prompt_tokens,), generator=generator_).tolist() for _ in range(batched)
    ]
    out: dict = {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "goal_batch1_tps": ">= 200"}
    out["plain_generate_batch1_tps"] = round(generate_rate(model, prompts[0], new_tokens, compiled=False), 1)
    print("plain generate:", out, flush=True)
    out["compiled_generate_batch1_tps"] = round(
        generate_rate(model, prompts[0], new_tokens, compiled=True), 1
    )
    print("compiled generate:", out, flush=True)
    batch = Gathered(model, pad_id=0, capacity=batched, static_cache=True, compile=True, cache_tokens=2048)
    scheduler = Scheduler(batch)
    started = time.perf_counter()
    through_docqa(scheduler, prompts[:1], 16)  # compiles the decoding step for one question
    through_docqa(scheduler, prompts, 16)  # and for a full batch
    out["compile_s"] = round(time.perf_counter() - started, 1)
    print("compiled:", out, flush=True)
    out["docqa_batch1"] = through_docqa(scheduler, prompts[:1], new_tokens)
    out[f"docqa_batch{batched}"] = through_docqa(scheduler, prompts, new_tokens)
    from torch._dynamo.utils import counters

    out["cudagraph_skips"] = counters["inductor"]["cudagraph_skips"]  # compiled code left out of CUDA graphs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=CONFIGS / "qwen2.5-coder-1.5b-instruct.json")
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    import transformers

    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (no GPU found)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    measures = {
        "embedding": lambda: embedding(device) if device == "cuda" else embedding(device, batch=8, rounds=1),
        "generator": lambda: generator(device, args.config, args.prompt_tokens, args.new_tokens),
    }
    for name, measure in measures.items():
        try:
            results[name] = measure()
        except Exception as e:  # recorded, so one failure does not lose the other numbers
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        (args.out / "gpu.json").write_text(json.dumps(results, indent=1))
        print(json.dumps({name: results[name]}, indent=1), flush=True)


if __name__ == "__main__":
    main()
