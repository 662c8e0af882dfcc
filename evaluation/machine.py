"""What machine a measurement ran on, for the reports: the CPU by name and the instructions
that decide how fast models run on it, and the generator runtime docqa picks there."""

from __future__ import annotations

import os
import platform
import subprocess


def machine() -> dict:
    import torch

    from embeddings.hardware import cpu, cpu_features, cpu_has_fast_bf16, pick_device
    from qa.generator import pick_runtime

    return {
        "cpu": cpu()[0],
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": cpu_features(),
        "bf16": cpu_has_fast_bf16(),
        "runtime": pick_runtime(pick_device(None), None),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def source() -> dict:
    """The commit measured, and whether files git tracks differed from it (a report of a changed
    tree describes no commit); none where this is not a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "changed": None}
    return {"commit": commit.stdout.strip(), "changed": bool(status.stdout.strip())}


def measured(run: dict) -> str:
    """The commit a report measured, as its header says it."""
    commit = run.get("commit")
    if not commit:
        return "commit unknown"
    return f"commit {commit[:10]}" + (" with changes not committed" if run.get("changed") else "")


def describe(m: dict) -> str:
    """One line naming the machine, for a report's header."""
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in m.get("flags", {}).items())
    return (f"{m['cpu']} ({m['cores']} cores; {flags}; GPU {m['gpu'] or 'none'}; generator runtime "
            f"{m.get('runtime', '?')}), torch {m['torch']}")  # fmt: skip
