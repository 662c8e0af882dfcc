"""The CPU runtime's weights on huge pages (docqa's setting, qa/runtimes/hugepages.py) against the
pages ONNX Runtime leaves them on: the default model's prompt and decode speed at batch 1, each
round in two fresh processes taking turns (in one process, the session made second decoded up to
1.15x as fast as the first here, whichever setting each had)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SETTINGS = {"huge pages": True, "as ONNX Runtime leaves them": False}


def huge_pages(folder: Path, prompt: list[int], rounds: int = 3, new_tokens: int = 64) -> dict:
    """Per setting, each round's and the median time to read `prompt` and decode rate (round r
    drops the prompt's first r tokens, the order reversed each other round), and the ratios."""
    timed: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for r in range(rounds):
        for name in SETTINGS if r % 2 == 0 else list(SETTINGS)[::-1]:
            timed[name].append(_in_child(folder, prompt[r:], new_tokens, SETTINGS[name]))
    median = {
        name: {k: round(float(np.median([t[k] for t in rows])), 2) for k in ("prompt_s", "decode_tps")}
        for name, rows in timed.items()
    }
    on, off = median["huge pages"], median["as ONNX Runtime leaves them"]
    return {
        "rounds": timed,
        "median": median,
        "decode_ratio": round(on["decode_tps"] / off["decode_tps"], 3),
        "prompt_ratio": round(off["prompt_s"] / on["prompt_s"], 3),
        "huge_pages_mb": max(t["huge_pages_mb"] for t in timed["huge pages"]),
        "prompt_tokens": len(prompt),
        "new_tokens": new_tokens,
    }


def _in_child(folder: Path, prompt: list[int], new_tokens: int, huge: bool) -> dict:
    code = ("import json, sys; from pathlib import Path; from bench.blocks import speed; "
            "folder, *rest = json.loads(sys.argv[1]); print(json.dumps(speed(Path(folder), *rest)))")  # fmt: skip
    args = json.dumps([str(folder), prompt, new_tokens, huge])
    done = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.pages: the timing process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
