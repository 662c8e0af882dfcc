"""What `pip install` ships: only the packages users import, with dependencies at safe versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_wheel_holds_only_what_users_import(tmp_path):
    # Built from a copy: setuptools leaves build/ behind, and a stale one would mask the answer.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "test-artifacts")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("docqa-*.whl")
    names = [name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info" not in name]
    top = {name.split("/")[0] for name in names}
    assert top == {"embeddings", "qa"}, "benchmarks, evaluation and stress run from the checkout"
    assert {"qa/runtimes/ort.py", "qa/runtimes/hf.py"} <= set(names), "the generator runtimes ship too"


def test_the_harnesses_still_run_from_the_checkout():
    for harness in ("bench", "stress", "evaluation"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import importlib.util as u; print(u.find_spec('{harness}.__main__').origin)",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert Path(done.stdout.strip()).is_relative_to(ROOT / harness)


def test_gradio_is_floored_where_its_file_read_advisories_are_fixed():
    # CVE-2023-51449, CVE-2024-1561 and GHSA-j36p-7w88-g82j (the last fixed in 6.16.0).
    (gradio,) = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("gradio")]
    floors = [Version(s.version) for s in gradio.specifier if s.operator == ">="]
    assert floors and min(floors) >= Version("6.16.0")
