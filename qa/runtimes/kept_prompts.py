"""The CPU runtime's kept prompts, written to disk for the next process to start from.

`docqa ask` runs a process for each question, and each would read its whole prompt again,
though the next question about the same documents shares most of it: the instructions always,
often the passages too. The runtime keeps the key/value caches of the last prompts it read
(qa/runtimes/ort.py); the command line writes them to one file after its answers and reads them
back when it starts, so that the next question reads only what is new (reports/bench.md times
`docqa ask` both ways).

A file holds the caches of one model under one version of ONNX Runtime (its `key`); any other
file is not used. The file is replaced whole, never written in place: a process reading it
sees an old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

Kept = list[tuple[list[int], list[np.ndarray]]]  # prompts, oldest first, each with its KV cache per input


def save(path: Path, kept: Kept, key: str) -> None:
    """Write `kept` to `path`, replacing the file there at once."""
    arrays: dict[str, np.ndarray] = {"key": np.array(key), "count": np.array(len(kept))}
    for i, (tokens, kv) in enumerate(kept):
        arrays[f"tokens_{i}"] = np.array(tokens, dtype=np.int64)
        arrays.update({f"kv_{i}_{j}": a for j, a in enumerate(kv)})
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with part.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def load(path: Path, key: str, inputs: int, kv_heads: int, head_size: int) -> Kept:
    """The prompts saved at `path` for `key`, each with a cache of `inputs` arrays of
    [1, kv_heads, its length, head_size] floats; none where there is no file or it was written
    for another model or runtime. A file that cannot be read, or holds caches of another shape,
    is not used either, and stderr says so: it is replaced after the next answer."""
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return []
            kept = []
            for i in range(int(saved["count"])):
                tokens, kv = saved[f"tokens_{i}"], [saved[f"kv_{i}_{j}"] for j in range(inputs)]
                if not all(isinstance(a, np.ndarray) for a in (tokens, *kv)):  # a header it could not read
                    raise ValueError(f"prompt {i} is damaged")
                tokens = tokens.tolist()
                shape = (1, kv_heads, len(tokens), head_size)
                if not tokens or any(a.shape != shape or a.dtype != np.float32 for a in kv):
                    raise ValueError(f"prompt {i}'s cache is not of shape {shape} in float32")
                kept.append((tokens, kv))
            return kept
    # Damage reaches zipfile and numpy in many ways (a bad header, an unknown compression
    # method, a member read as bytes): whatever it raises, the file is only a cache, not used.
    except Exception as e:  # noqa: BLE001
        print(f"docqa: not using the kept prompts in {path} ({e}); they are written anew after the next answer",
              file=sys.stderr, flush=True)  # fmt: skip
        return []
