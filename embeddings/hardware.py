"""Which device and dtype the models run on when the user does not say. Torch is imported where a
device or dtype is picked, not with this module: processes that only read and chunk (a Ray
build's tasks, its driver) never load it."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from embeddings.errors import ConfigError

if TYPE_CHECKING:
    import torch

_DTYPES = ("float32", "bfloat16", "float16")


def pick_device(device: str | None) -> str:
    import torch

    if device:
        try:
            torch.device(device)
        except RuntimeError:
            raise ConfigError(
                f"unknown device {device!r}: use cpu, cuda or cuda:N (the GPU's number)"
            ) from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def cpu() -> tuple[str, frozenset[str]]:
    """The CPU's model name and its instruction-set flags (empty where /proc/cpuinfo is not)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU", frozenset()
    name, flags = parse_cpuinfo(info)
    return name or platform.processor() or "unknown CPU", flags


def parse_cpuinfo(info: str) -> tuple[str, frozenset[str]]:
    """The first model name and flag list of /proc/cpuinfo's text ("" and none where it has none;
    x86 names the flags "flags", ARM "Features")."""
    fields = [line.partition(":") for line in info.splitlines()]
    name = next((value.strip() for key, _, value in fields if key.strip() == "model name"), "")
    flags = next((value.split() for key, _, value in fields if key.strip() in ("flags", "Features")), [])
    return name, frozenset(flags)


def cpu_features() -> dict[str, bool]:
    """The instructions that decide how fast a model runs here."""
    flags = cpu()[1]
    return {
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_bf16" in flags or "amx_int8" in flags,
        "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
    }


def cpu_has_fast_bf16() -> bool:
    """bf16 matrix instructions (AVX512-BF16 or AMX) make bf16 2-3x faster than fp32 on CPU."""
    features = cpu_features()
    return features["avx512_bf16"] or features["amx"]


def pick_dtype(device: str, dtype: str | None) -> torch.dtype:
    import torch

    if dtype:
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.startswith("cpu") and cpu_has_fast_bf16() else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
