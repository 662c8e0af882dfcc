"""The index folder on disk: immutable segments, generations that list them, and a build lock.

    INDEX/CURRENT                  the name of the live generation, replaced with one rename
    INDEX/gen-.../manifest.json    one generation: settings, counts, its segments (with the
                                   documents deleted from each), and every file's size, sha256
                                   and modification time
    INDEX/segments/seg-.../        chunks.sqlite, vectors.faiss, terms/; never changed once written
    INDEX/tmp-.../                 a build in progress; never read, removed by the next build
    INDEX/.lock                    held by the one build allowed at a time

A build writes only new segments and a new manifest, so what it costs follows what changed, not
the size of the index. A build killed at any moment leaves CURRENT naming a complete generation.
Checksums are read where they matter: a build records them for what it writes, `docqa check`
reads every byte, and opening an index hashes only a file whose size or time is not the recorded
one. Segments that no recent generation lists are removed; a reader holding one open keeps it.
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

from embeddings.errors import ConfigError, IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SEGMENTS = "segments"
_REBUILD = "run `docqa index` (or `make index`) to rebuild it"
_KEEP = 2  # generations kept: the live one and the one before it


def _a_folder(index_dir: Path) -> None:
    if index_dir.exists() and not index_dir.is_dir():
        raise ConfigError(
            f"{index_dir} is a file, not an index folder: give --index a folder (made if missing)"
        )


# What docqa writes in an index folder besides its generations (gen-...) and builds (tmp-...):
# a folder that holds none of them is another program's, and a build must not write there.
_OURS = frozenset([".lock", "CURRENT", "CURRENT.tmp", SEGMENTS, "scanned.sqlite", "summaries.sqlite", "uploads",
                   "uploads.json", "excluded.json", "browser-secret"])  # fmt: skip


def _ours(index_dir: Path) -> None:
    """Refuse (ConfigError) a folder that holds files but no index of docqa's: a build would
    write its own CURRENT over another program's, or take its files for uploads."""
    try:
        names = [e.name for e in os.scandir(index_dir)]
    except FileNotFoundError:
        return
    if names and not any(n in _OURS and n != "CURRENT" or n.startswith(("gen-", "tmp-")) for n in names):
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(
            f"{index_dir} holds files that are not a docqa index ({shown}); give --index a new or empty "
            "folder, where docqa keeps its index"
        )


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: float = 0) -> Iterator[None]:
    _a_folder(index_dir)
    try:
        _ours(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(index_dir / ".lock")
        lock.acquire(timeout=wait)
    except PermissionError as e:
        raise ConfigError(
            f"cannot write the index in {index_dir} ({e.strerror}): check its permissions, or give --index "
            "another folder"
        ) from None
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
    name = _pointer(index_dir)
    if name is None:
        return None
    folder = index_dir / name
    if not name.startswith("gen-") or "/" in name or not folder.is_dir():
        raise IndexCorrupt(f"{index_dir / 'CURRENT'} names no generation of the index ({name!r}); {_REBUILD}")
    return folder


def _pointer(index_dir: Path) -> str | None:
    _a_folder(index_dir)
    try:
        return (index_dir / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    except PermissionError as e:
        raise ConfigError(
            f"cannot read the index in {index_dir} ({e.strerror}): check its permissions"
        ) from None


def read_manifest(folder: Path) -> dict:
    """The manifest of a generation (format 1, before segments, is read too, for migration)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"the index manifest in {folder} cannot be read ({e}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in (1, FORMAT_VERSION):
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexMismatch(
            f"the index in {folder.parent} has format {found!r}; this docqa reads format "
            f"{FORMAT_VERSION}: {_REBUILD}"
        )
    return manifest


def check_files(index_dir: Path, manifest: dict, full: bool = False) -> None:
    """Every file the manifest lists is there with its size; its sha256 is read when `full`, or
    when its modification time is not the one recorded (a copy, or a change by hand)."""
    for name, expected in (manifest.get("files") or {}).items():
        path = index_dir / name
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or stat.st_size != expected["bytes"]:
            raise IndexCorrupt(f"index file {path} is missing or has the wrong size; {_REBUILD}")
        if (full or stat.st_mtime_ns != expected.get("mtime_ns")) and sha256_file(path) != expected["sha256"]:
            raise IndexCorrupt(f"index file {path} is damaged (its checksum changed); {_REBUILD}")


def open_current(index_dir: Path) -> tuple[Path, dict]:
    """The live generation and its manifest, its files checked by size and time. A build may
    replace it meanwhile (and remove it two builds later): then the new live one is read."""
    for _ in range(10):
        pointer = _pointer(index_dir)
        try:
            folder = current(index_dir)
            if folder is None:
                raise IndexMissing(
                    f"no index in {index_dir}: build one with `docqa index DOCS --index {index_dir}`"
                )
            manifest = read_manifest(folder)
            if manifest["format"] != FORMAT_VERSION:
                raise IndexMismatch(
                    f"the index in {index_dir} was written by an older docqa (format {manifest['format']}); "
                    "`docqa index` brings it up to date without embedding anything again"
                )
            check_files(index_dir, manifest)
            return folder, manifest
        except IndexCorrupt:
            if _pointer(index_dir) != pointer:
                continue
            raise
    raise IndexBusy(f"{index_dir} is being rebuilt faster than it can be opened; try again in a moment")


def replaced(index_dir: Path, folder: Path) -> bool:
    """Whether the live generation is no longer `folder` (a build committed meanwhile)."""
    return _pointer(index_dir) != folder.name


def segment_folder(index_dir: Path, name: str) -> Path:
    if not name.startswith("seg-") or "/" in name:
        raise IndexCorrupt(f"the manifest of {index_dir} names a segment {name!r}; {_REBUILD}")
    return index_dir / SEGMENTS / name


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
    (folder / SEGMENTS).mkdir(parents=True)
    return folder


def new_segment_name() -> str:
    return f"seg-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def commit(index_dir: Path, workspace: Path, manifest: dict) -> Path:
    """Seal the workspace's new segments and `manifest` as the live generation. The manifest's
    segments are those in the workspace and live ones it carries; `manifest["files"]` already
    lists the carried ones' files, and the new ones' are added here."""
    files = dict(manifest.get("files") or {})
    new = sorted(p for p in (workspace / SEGMENTS).rglob("*") if p.is_file())
    for path in new:
        _fsync(path)
        stat = path.stat()
        files[f"{SEGMENTS}/{path.relative_to(workspace / SEGMENTS).as_posix()}"] = {
            "bytes": stat.st_size, "sha256": sha256_file(path), "mtime_ns": stat.st_mtime_ns,
        }  # fmt: skip
    manifest = {**manifest, "format": FORMAT_VERSION, "files": files}
    _write_synced(workspace / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    (index_dir / SEGMENTS).mkdir(exist_ok=True)
    for folder in sorted((workspace / SEGMENTS).iterdir()):
        os.replace(folder, index_dir / SEGMENTS / folder.name)  # listed by no generation yet
    (workspace / SEGMENTS).rmdir()
    _fsync(index_dir / SEGMENTS)
    generation = index_dir / f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    os.replace(workspace, generation)
    _write_synced(index_dir / "CURRENT.tmp", generation.name + "\n")
    os.replace(index_dir / "CURRENT.tmp", index_dir / "CURRENT")
    _fsync(index_dir)
    _collect(index_dir, generation)
    return generation


def _collect(index_dir: Path, live: Path) -> None:
    """Remove all but the last generations, and the segments none of those lists. An index
    opened from a removed one keeps working: its files stay readable while they are open."""
    generations = sorted(index_dir.glob("gen-*"), key=lambda p: (p != live, -p.stat().st_mtime_ns))
    kept: set[str] = set()
    for folder in generations[:_KEEP]:
        with contextlib.suppress(IndexCorrupt, IndexMismatch):
            kept |= {s["name"] for s in read_manifest(folder).get("segments", [])}
    for folder in generations[_KEEP:]:
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (index_dir / SEGMENTS).glob("seg-*"):
        if folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)


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
