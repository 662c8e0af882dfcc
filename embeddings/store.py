"""The index folder on disk: generations swapped in atomically, a manifest, and a build lock.

    INDEX/CURRENT          the name of the live generation, replaced with one rename
    INDEX/gen-.../         manifest.json, vectors.faiss, chunks.sqlite, bm25/
    INDEX/tmp-.../         a build in progress; never read, removed by the next build
    INDEX/.lock            held by the one build allowed at a time

A build killed at any moment leaves CURRENT naming a complete generation, so the previous index
always loads. Every file of a generation is listed in its manifest with size and sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from embeddings.errors import IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_REBUILD = "run `docqa index` (or `make index`) to rebuild it"


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: float = 0) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / ".lock")
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise IndexBusy(
            f"another docqa build is updating {index_dir} right now; wait for it to finish, then run again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def current(index_dir: Path) -> Path | None:
    """The live generation folder, or None when nothing was ever built here."""
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    folder = index_dir / name
    if not name.startswith("gen-") or "/" in name or not folder.is_dir():
        raise IndexCorrupt(f"{pointer} names no generation of the index ({name!r}); {_REBUILD}")
    return folder


def read_manifest(folder: Path, verify: bool = True) -> dict:
    """The manifest of a generation, after checking that every file it lists is intact."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"the index manifest in {folder} cannot be read ({e}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexMismatch(
            f"the index in {folder.parent} has format {found!r}; this docqa reads format "
            f"{FORMAT_VERSION}: {_REBUILD}"
        )
    for name, expected in (manifest.get("files") or {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != expected["bytes"]:
            raise IndexCorrupt(f"index file {path} is missing or has the wrong size; {_REBUILD}")
        if verify and sha256_file(path) != expected["sha256"]:
            raise IndexCorrupt(f"index file {path} is damaged (its checksum changed); {_REBUILD}")
    return manifest


def open_current(index_dir: Path) -> tuple[Path, dict]:
    folder = current(index_dir)
    if folder is None:
        raise IndexMissing(f"no index in {index_dir}: build one with `docqa index DOCS --index {index_dir}`")
    return folder, read_manifest(folder)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def new_workspace(index_dir: Path) -> Path:
    """A fresh folder for a build; call only while holding the build lock."""
    for stale in index_dir.glob("tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = index_dir / f"tmp-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    return folder


def commit(index_dir: Path, workspace: Path, manifest: dict) -> Path:
    """Seal the workspace as the live generation; the previous one stays until the next commit."""
    files = sorted(p for p in workspace.rglob("*") if p.is_file())
    manifest = {
        **manifest,
        "format": FORMAT_VERSION,
        "files": {
            p.relative_to(workspace).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files
        },
    }
    _write_synced(workspace / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    for path in files:
        _fsync(path)
    generation = index_dir / f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    previous = None
    with contextlib.suppress(IndexCorrupt):  # a damaged pointer is what this commit repairs
        previous = current(index_dir)
    os.replace(workspace, generation)
    _write_synced(index_dir / "CURRENT.tmp", generation.name + "\n")
    os.replace(index_dir / "CURRENT.tmp", index_dir / "CURRENT")
    _fsync(index_dir)
    # Keep the generation just replaced, so a reader that opened it a moment ago can finish.
    for old in index_dir.glob("gen-*"):
        if old not in {generation, previous}:
            shutil.rmtree(old, ignore_errors=True)
    return generation


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
