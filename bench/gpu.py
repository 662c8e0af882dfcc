"""`python -m bench.gpu --out DIR`: the prepared script for a GPU machine. Model files cannot
travel there, so it builds docqa's architectures from their configs (bench/configs/) with
random weights (speed does not depend on the weights) and times embedding throughput and the
generator's decode: plain `generate`, then a static KV cache with `torch.compile` (CUDA
graphs), at batch 1 and with several questions batched. Writes DIR/gpu.json."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CONFIGS = Path(__file__).parent / "configs"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def embedding(device: str, batch: int = 256, tokens: int = 160, rounds: int = 20) -> dict:
    from transformers import BertConfig, BertModel

    model = (
        BertModel(BertConfig.from_json_file(CONFIGS / "all-MiniLM-L6-v2.json"))
        .to(device, torch.bfloat16)
        .eval()
    )
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


def decode(model, prompt: torch.Tensor, new_tokens: int, **options) -> float:
    """Decode tokens/s beyond the first token, greedy."""
    greedy = dict(
        do_sample=False, pad_token_id=0, min_new_tokens=new_tokens, max_new_tokens=new_tokens, **options
    )
    with torch.inference_mode():
        model.generate(prompt, **{**greedy, "min_new_tokens": 1, "max_new_tokens": 1})
        _sync()
        started = time.perf_counter()
        model.generate(prompt, **{**greedy, "min_new_tokens": 1, "max_new_tokens": 1})
        _sync()
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        model.generate(prompt, **greedy)
        _sync()
        total = time.perf_counter() - started
    return prompt.shape[0] * (new_tokens - 1) / max(total - prefill, 1e-9)


def generator(device: str, prompt_tokens: int = 1000, new_tokens: int = 128) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(CONFIGS / "qwen2.5-coder-1.5b-instruct.json")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(device).eval()
    one = torch.randint(1000, 20000, (1, prompt_tokens), device=device)
    eight = one.repeat(8, 1)
    out = {"plain_batch1_tps": round(decode(model, one, new_tokens), 1)}
    model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    decode(model, one, 8, cache_implementation="static")  # compile once
    out["static_compiled_batch1_tps"] = round(
        decode(model, one, new_tokens, cache_implementation="static"), 1
    )
    out["static_compiled_batch8_tps"] = round(
        decode(model, eight, new_tokens, cache_implementation="static"), 1
    )
    return {**out, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "goal_batch1_tps": ">= 200"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (no GPU found)",
        "torch": torch.__version__,
        "embedding": embedding(device),
        "generator": generator(device),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
