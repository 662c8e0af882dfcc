"""What docqa reads of the machine: the CPU's name and flags, the precision it picks, and the
cores a container lets ONNX Runtime use. Pure parsing, tested on the texts each platform writes."""

from __future__ import annotations

import torch

from embeddings import hardware
from embeddings.hardware import parse_cpuinfo, pick_dtype
from qa.runtimes.ort import quota_cores

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu avx2 fma avx512f avx512_bf16 avx512_vnni
"""
ARM = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd sve bf16 i8mm
CPU part\t: 0xd40
"""


def test_the_cpu_name_and_flags_are_read_on_x86_and_arm_and_a_malformed_line_is_no_crash():
    assert parse_cpuinfo(X86) == (
        "AMD EPYC 9R14",
        frozenset(["fpu", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"]),
    )
    name, flags = parse_cpuinfo(ARM)
    assert name == "" and {"bf16", "sve"} <= flags
    assert parse_cpuinfo("model name\nflags") == ("", frozenset())  # lines without a colon
    assert parse_cpuinfo("") == ("", frozenset())


def test_a_numbered_cpu_device_gets_the_precision_the_plain_one_does(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert pick_dtype("cpu", None) == pick_dtype("cpu:0", None) == torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert pick_dtype("cpu:0", None) == torch.float32
    assert pick_dtype("cpu:0", "bfloat16") == torch.bfloat16


def test_a_containers_cpu_limit_caps_the_runtimes_threads():
    assert quota_cores("200000 100000\n") == 2
    assert quota_cores("150000 100000") == 1  # 1.5 CPUs: 1 thread, none waiting for time it lacks
    assert quota_cores("50000 100000") == 1
    assert quota_cores("max 100000") is None
    assert quota_cores("") is None
