"""How many weights share a scale in the CPU runtime's 4-bit model (`qa.runtimes.ort.BLOCK`):
the packaged model built with blocks of 32, 64 and 128 weights, each one's speed at batch 1 in
rounds taking turns, and how far each one's next-token distribution moves from that of the
packaged weights themselves (the float model transformers runs), on the same tokens."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from qa import models
from qa.runtimes import ort

SIZES = (32, 64, 128)


def block_sizes(
    generator_name: str, prompt: list[int], faithfulness_prompts: list[list[int]], new_tokens: int = 64,
    rounds: int = 3, forced: int = 24,
) -> dict:  # fmt: skip
    """Per block size: the weights file, the median time to read `prompt` and decode rate over
    `rounds` (taking turns, the order reversed each other round; round r drops the prompt's first
    r tokens so that no model finds it read), and, over `faithfulness_prompts`, the mean KL
    divergence of the next-token distribution from the float model's and how often both pick the
    same token, along `forced` tokens of the float model's own greedy continuation."""
    folders = {size: models.int4(generator_name, block=size) for size in SIZES}
    timed: dict[int, list[dict]] = {size: [] for size in SIZES}
    for r in range(rounds):
        for size in SIZES if r % 2 == 0 else SIZES[::-1]:
            timed[size].append(speed(folders[size], prompt[r:], new_tokens))
    reference = _float_logits(generator_name, faithfulness_prompts, forced)
    rows = []
    for size in SIZES:
        pairs = zip(faithfulness_prompts, reference, strict=True)
        found = [_int4_logits(folders[size], prompt_, tokens) for prompt_, (tokens, _) in pairs]
        distance = divergence([logits for _, logits in reference], found)
        rows.append({
            "block": size,
            "weights_mb": round(sum(f.stat().st_size for f in folders[size].glob("model.onnx*")) / 1e6),
            "prompt_s": round(float(np.median([t["prompt_s"] for t in timed[size]])), 2),
            "decode_tps": round(float(np.median([t["decode_tps"] for t in timed[size]])), 2),
            "rounds": timed[size],
            **distance,
        })  # fmt: skip
    base = rows[0]
    for row in rows:
        row["decode_vs_32"] = round(row["decode_tps"] / base["decode_tps"], 2)
        row["prompt_vs_32"] = round(base["prompt_s"] / row["prompt_s"], 2)
    return {
        "model": generator_name,
        "shipped": ort.BLOCK,
        "prompt_tokens": len(prompt),
        "new_tokens": new_tokens,
        "rounds": rounds,
        "faithfulness_prompts": len(faithfulness_prompts),
        "forced_tokens": forced,
        "rows": rows,
    }


def divergence(reference: list[np.ndarray], found: list[np.ndarray]) -> dict:
    """Mean KL(reference || found) of the next-token distributions of each position (rows of
    logits, one array per prompt), and the share of positions where both pick the same token."""
    kl, same = [], []
    for ref, got in zip(reference, found, strict=True):
        p, q = _log_softmax(ref.astype(np.float64)), _log_softmax(got.astype(np.float64))
        kl.extend((np.exp(p) * (p - q)).sum(axis=1))
        same.extend(ref.argmax(axis=1) == got.argmax(axis=1))
    return {"kl": round(float(np.mean(kl)), 4), "same_token": round(float(np.mean(same)), 3)}


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def speed(folder: Path, prompt: list[int], new_tokens: int, huge_pages: bool = True) -> dict:
    """The seconds to read `prompt` and the decode rate of the 4-bit model in `folder`, in a session
    of its own, timed once its weights are where they will stay (see qa/runtimes/hugepages.py)."""
    batch = ort.load(folder, capacity=1, prompt_chunk=256, huge_pages=huge_pages)
    if batch.moving:
        batch.moving.join()
    started = time.perf_counter()
    batch.join(0, prompt)
    while not batch.step():
        pass
    first = time.perf_counter()
    for _ in range(new_tokens - 1):
        batch.step()
    done = time.perf_counter()
    return {"prompt_s": round(first - started, 2), "decode_tps": round((new_tokens - 1) / (done - first), 2),
            "huge_pages_mb": round(batch.huge_pages / 2**20)}  # fmt: skip


def _float_logits(name: str, prompts: list[list[int]], forced: int) -> list[tuple[list[int], np.ndarray]]:
    """For each prompt: the float model's greedy continuation of `forced` tokens and its logits
    before each of them ([forced, vocabulary])."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(models.locate(name), dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            whole = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=forced,
                                   min_new_tokens=forced, do_sample=False)  # fmt: skip
            logits = model(whole).logits[0, len(prompt) - 1 : len(prompt) - 1 + forced]
            out.append((whole[0, len(prompt) :].tolist(), logits.float().numpy()))
    return out


def _int4_logits(folder: Path, prompt: list[int], tokens: list[int]) -> np.ndarray:
    """The 4-bit model's logits after `prompt` and after each of `tokens` but the last, fed in
    turn through its key/value cache by the runtime's own prompt-reading call: [len(tokens), vocabulary]."""
    batch = ort.load(folder, capacity=1, prompt_chunk=256)
    past = [batch._empty(1)] * len(batch._past)
    feed, length, rows = list(prompt), 0, []
    for token in tokens:
        length += len(feed)
        logits, past = batch._run(np.array([feed], np.int64), np.ones((1, length), np.int64), past)
        rows.append(logits[0])
        feed = [token]
    return np.stack(rows)
