"""Nobody gets in where they should not: tampered index files and models are refused with a clear
error and never unpickled; uploaded names never become paths; uploads have a size cap and a type
check; no product code can unpickle or evaluate what it reads. (The HTTP side is in serving.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from embeddings import store
from embeddings.errors import ConfigError, DocqaError
from embeddings.index import Index
from embeddings.library import Library
from qa import models
from qa.summarize import SummaryCache

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("embeddings", "qa")
# What would run or unpickle data read from disk. torch.load appears only with weights_only=True.
_DANGEROUS = re.compile(r"\bpickle\.loads?\(|\bjoblib\.load\(|(?<![.\w])eval\(|(?<![.\w])exec\(|allow_pickle=True|"
                        r"torch\.load\((?![^)]*weights_only=True)|\byaml\.load\(|\bmarshal\.loads?\(")  # fmt: skip


class _Payload:
    """Unpickling this writes a marker file: proof that something unpickled attacker data."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _pickle_bomb(marker: Path) -> bytes:
    payload = _Payload()
    payload.marker = marker
    return pickle.dumps(payload)


def code_scan() -> dict:
    hits = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _DANGEROUS.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return {
        "test": "no pickle, eval, exec or unsafe load in embeddings/ and qa/",
        "cases": 1,
        "failures": hits,
    }


def tampered_index(index_dir: Path) -> dict:
    """Damage each file of a real index in turn (flip bytes, truncate, swap in a pickle, even with
    the manifest's checksums forged to match); every load must fail with a message that says
    what to run, and nothing may be unpickled."""
    failures, cases = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "UNPICKLED"
        bomb = _pickle_bomb(marker)
        live = store.current(index_dir)
        assert live is not None
        manifest_name = f"{live.name}/{store.MANIFEST}"  # every file, by its path in the index folder
        for name in [*sorted(store.read_manifest(live)["files"]), manifest_name]:
            for how in ("flip", "truncate", "pickle", "pickle, checksums forged"):
                cases += 1
                copy = Path(tmp) / "index"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(index_dir, copy, ignore=shutil.ignore_patterns("uploads", "*.sqlite-journal"))
                target = copy / name
                data = target.read_bytes()
                match how:
                    case "flip":
                        target.write_bytes(
                            data[: len(data) // 2]
                            + bytes([data[len(data) // 2] ^ 0xFF])
                            + data[len(data) // 2 + 1 :]
                        )
                    case "truncate":
                        target.write_bytes(data[: len(data) // 3])
                    case _:
                        target.write_bytes(bomb)
                if how.endswith("forged") and name != manifest_name:
                    manifest_path = copy / manifest_name
                    manifest = json.loads(manifest_path.read_text())
                    manifest["files"][name] = {
                        "bytes": target.stat().st_size,
                        "sha256": store.sha256_file(target),
                    }
                    manifest_path.write_text(json.dumps(manifest))
                outcome = _open(copy)
                if marker.exists():
                    failures.append(f"{name} ({how}): the pickle was unpickled")
                    marker.unlink()
                elif outcome is None and how != "pickle, checksums forged":
                    failures.append(f"{name} ({how}): the damaged index loaded without complaint")
                elif outcome is not None and "docqa index" not in outcome:
                    failures.append(f"{name} ({how}): the error does not say what to run: {outcome}")
        for pointer in ("../../etc", "gen-missing", ""):
            cases += 1
            copy = Path(tmp) / "pointer"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(index_dir, copy, ignore=shutil.ignore_patterns("uploads"))
            (copy / "CURRENT").write_text(pointer)
            outcome = _open(copy)
            if outcome is None or "docqa index" not in outcome:
                failures.append(f"CURRENT -> {pointer!r}: {outcome or 'loaded'}")
    return {"test": "each index file flipped, truncated, replaced by a pickle (also with forged checksums); "
                    "CURRENT pointed elsewhere", "cases": cases, "failures": failures}  # fmt: skip


def _open(index_dir: Path) -> str | None:
    """None when the index opened and answered a search; else the error message."""
    try:
        index = Index.open(index_dir)
        try:
            index.lexical("meeting", 3)
            index.vectors.search(index.vectors.get([0]), 3)
            index.documents()
        finally:
            index.close()
    except DocqaError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 (the failure this test looks for)
        return f"UNHANDLED {type(e).__name__}: {e}"
    return None


def tampered_cache() -> dict:
    """A damaged summary cache is a clear error or a cache miss, never a crash or an unpickle."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "summaries.sqlite"
        marker = Path(tmp) / "UNPICKLED"
        path.write_bytes(_pickle_bomb(marker))
        try:
            SummaryCache(path).get("key")
        except DocqaError:
            pass
        except Exception as e:  # noqa: BLE001
            failures.append(f"summary cache replaced by a pickle: {type(e).__name__}: {e}")
        if marker.exists():
            failures.append("the summary cache was unpickled")
    return {"test": "summary cache replaced by a pickle", "cases": 1, "failures": failures}


def tampered_model() -> dict:
    """A packaged model whose bytes do not hash to the known sha256 is refused, and nothing it
    wrote is left behind. The check gives the conversion a cache folder of its own (DOCQA_CACHE),
    so that whatever it leaves there, hidden work folders included, is seen (but the empty lock
    file beside each model's folder, which stays)."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp, _cache_at(Path(tmp)):
        model = replace(models.QWEN_CODER_05B, sha256="0" * 64, name="tampered-model")
        try:
            models.converted(model, report=lambda m: None)
            failures.append("a model with the wrong sha256 was converted and loaded")
        except DocqaError as e:
            if "checksum" not in str(e) or "Reinstall" not in str(e):
                failures.append(f"unclear refusal: {e}")
        left = sorted(  # the empty lock file that lets one process convert at a time is no model's
            p.relative_to(tmp).as_posix()
            for p in Path(tmp).rglob("*")
            if (not p.is_dir() or any(p.iterdir())) and p.suffix != ".lock"
        )
        if [p for p in left if p != "models"]:
            failures.append(f"a refused model left files behind: {left}")
    return {"test": "packaged model with a different sha256", "cases": 1, "failures": failures}


@contextlib.contextmanager
def _cache_at(folder: Path) -> Iterator[None]:
    before = os.environ.get("DOCQA_CACHE")
    os.environ["DOCQA_CACHE"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["DOCQA_CACHE"]
        else:
            os.environ["DOCQA_CACHE"] = before


HOSTILE_NAMES = ["../../escape.txt", "/etc/cron.d/evil.txt", "..\\..\\windows.txt", "a/../../b.md",
                 "%2e%2e%2fencoded.txt", "name\x00.txt", ".hidden.md", "CON.txt", "x" * 300 + ".txt",
                 "dir/sub/deep.html", "~/.bashrc.md", "file:///etc/passwd.txt"]  # fmt: skip


def upload_names() -> dict:
    """Uploaded names never become paths; size cap and type check hold."""
    failures, cases = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        library = Library(root / "index")
        source = root / "source.bin"
        source.write_text("An ordinary uploaded document.")
        for name in HOSTILE_NAMES:
            cases += 1
            before = {p for p in root.rglob("*")}
            try:
                upload = library.store(name, source, 1000)
            except (ConfigError, OSError) as e:
                if not str(e):
                    failures.append(f"{name!r}: refused without a reason")
                continue
            created = {p for p in root.rglob("*")} - before
            outside = [p for p in created if p != library.index_dir and library.index_dir not in p.parents]
            if outside or not re.fullmatch(r"u[0-9]{20}-[0-9a-f]{8}\.[a-z]+", upload.stored):
                failures.append(f"{name!r}: stored as {upload.stored!r}, created {outside}")
        for name, size, expect in (("big.txt", 2000, "limit"), ("tool.exe", 10, "does not read"),
                                   ("noext", 10, "does not read")):  # fmt: skip
            cases += 1
            source.write_bytes(b"x" * size)
            try:
                library.store(name, source, 1000)
                failures.append(f"{name}: accepted")
            except ConfigError as e:
                if expect not in str(e):
                    failures.append(f"{name}: unclear refusal: {e}")
    return {"test": "hostile upload names, an oversized upload, unsupported types", "cases": cases,
            "failures": failures}  # fmt: skip
