"""How the CPU runtime's 4-bit model is written (`qa.runtimes.ort.BLOCK` and `EIGHT_BIT`,
`qa.gguf_int4`): the packaged model as shipped, and built with every matrix in 4 bits in blocks
of 32, 64 and 128, and in blocks of 32 with the attention's q/k/v (and o) projections in 8 bits;
each one's speed at batch 1 in rounds taking turns, and how far each one's next-token
distribution moves from that of the packaged weights themselves (the float model transformers
runs), on the same tokens, beside the shipped model's prompt by prompt."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from qa import models
from qa.runtimes import ort

SIZES = (32, 64, 128)
QKV = ("q_proj", "k_proj", "v_proj")
SHIPPED = (ort.BLOCK, ort.EIGHT_BIT)
# (weights per block, modules in 8 bits): each way measured, the shipped one first
WAYS = (*((size, ()) for size in SIZES), (ort.BLOCK, QKV), (ort.BLOCK, (*QKV, "o_proj")))
VARIANTS = (SHIPPED, *(way for way in WAYS if way != SHIPPED))


def block_sizes(
    generator_name: str, prompt: list[int], faithfulness_prompts: list[list[int]], new_tokens: int = 64,
    rounds: int = 3, forced: int = 24,
) -> dict:  # fmt: skip
    """Per variant: the weights file, the median time to read `prompt` and decode rate over
    `rounds` (taking turns, the order reversed each other round; round r drops the prompt's first
    r tokens so that no model finds it read), and, over `faithfulness_prompts`, the mean KL
    divergence of the next-token distribution from the float model's and how often both pick the
    same token, along `forced` tokens of the float model's own greedy continuation; beside the
    shipped model's, prompt by prompt: the mean difference of KL, its standard error, and on how
    many prompts the variant is the closer."""
    folders = [models.int4(generator_name, block=size, eight_bit=wide) for size, wide in VARIANTS]
    timed: list[list[dict]] = [[] for _ in VARIANTS]
    order = list(range(len(VARIANTS)))
    for r in range(rounds):
        for i in order if r % 2 == 0 else order[::-1]:
            timed[i].append(speed(folders[i], prompt[r:], new_tokens))
    reference = _float_logits(generator_name, faithfulness_prompts, forced)
    rows = []
    for (size, wide), folder, times in zip(VARIANTS, folders, timed, strict=True):
        batch = ort.load(folder, capacity=1, prompt_chunk=256, huge_pages=False)
        found = [
            _int4_logits(batch, prompt_, tokens)
            for prompt_, (tokens, _) in zip(faithfulness_prompts, reference, strict=True)
        ]
        each = [divergence([logits], [got])["kl"] for (_, logits), got in zip(reference, found, strict=True)]
        rows.append({
            "block": size,
            "eight_bit": list(wide),
            "weights_mb": round(sum(f.stat().st_size for f in folder.glob("model.onnx*")) / 1e6),
            "prompt_s": round(float(np.median([t["prompt_s"] for t in times])), 2),
            "decode_tps": round(float(np.median([t["decode_tps"] for t in times])), 2),
            "rounds": times,
            **divergence([logits for _, logits in reference], found),
            "kl_each": each,
        })  # fmt: skip
    base = rows[0]
    for row in rows:
        row["decode_vs_shipped"] = round(row["decode_tps"] / base["decode_tps"], 2)
        row["prompt_vs_shipped"] = round(base["prompt_s"] / row["prompt_s"], 2)
        row.update(paired(base["kl_each"], row["kl_each"]))
    return {
        "model": generator_name,
        "shipped": {"block": ort.BLOCK, "eight_bit": list(ort.EIGHT_BIT)},
        "prompt_tokens": len(prompt),
        "new_tokens": new_tokens,
        "rounds": rounds,
        "faithfulness_prompts": len(faithfulness_prompts),
        "forced_tokens": forced,
        "rows": rows,
    }


def paired(base: list[float], other: list[float]) -> dict:
    """`other`'s KL against `base`'s on the same prompts: the mean difference, its standard error
    and the prompts where `other` is the closer to the float model."""
    difference = np.array(other) - np.array(base)
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return {"kl_vs_shipped": round(float(difference.mean()), 4), "kl_vs_shipped_error": round(float(error), 4),
            "closer": int((difference < 0).sum())}  # fmt: skip


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
    batch.draft = 0  # one token a step: the weights' kernels compared, not how much a draft saves
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
            made = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=forced,
                                  min_new_tokens=forced, do_sample=False, output_logits=True,
                                  return_dict_in_generate=True)  # fmt: skip
            logits = torch.cat(made.logits).float().numpy()
            out.append((made.sequences[0, len(prompt) :].tolist(), logits))
    return out


def _int4_logits(batch: ort.OrtBatch, prompt: list[int], tokens: list[int]) -> np.ndarray:
    """The 4-bit model's logits after `prompt` and after each of `tokens` but the last, fed in
    turn through its key/value cache by the runtime's own prompt-reading call: [len(tokens), vocabulary]."""
    past = [batch._empty(1)] * len(batch._past)
    feed, length, rows = list(prompt), 0, []
    for token in tokens:
        length += len(feed)
        logits, past = batch._run(np.array([feed], np.int64), np.ones((1, length), np.int64), past)
        rows.append(logits[0])
        feed = [token]
    return np.stack(rows)
