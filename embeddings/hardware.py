"""Which device and dtype the models run on when the user does not say."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from embeddings.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str | None) -> str:
    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def cpu_has_fast_bf16() -> bool:
    """bf16 matrix instructions (AVX512-BF16 or AMX) make bf16 2-3x faster than fp32 on CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(device: str, dtype: str | None) -> torch.dtype:
    if dtype:
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        return _DTYPES[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device == "cpu" and cpu_has_fast_bf16() else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
