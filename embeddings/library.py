"""What the user added to or took out of an index by hand, beside the folder it is built from:
uploaded files (stored under generated names, with a registry of what each was called and how
its indexing went) and documents excluded from the folder. Builds honour both."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from embeddings.errors import ConfigError
from embeddings.readers import SUPPORTED, Pending, Skipped

UPLOAD_PREFIX = "upload:"  # document ids of uploads (a folder's .jsonl record may start with it too)


@dataclass(frozen=True)
class Upload:
    stored: str  # the generated file name under INDEX/uploads/
    name: str  # what the user called it; shown, never used as a path
    bytes: int
    added_at: str
    status: str  # "pending" (stored, not yet indexed), "indexed" or "failed"
    error: str | None = None

    @property
    def doc_id(self) -> str:
        return UPLOAD_PREFIX + self.stored


class Library:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.uploads_dir = self.index_dir / "uploads"
        self._registry = self.index_dir / "uploads.json"
        self._excluded = self.index_dir / "excluded.json"
        self._lock = threading.Lock()

    # Uploads
    def store(self, name: str, source: Path, max_bytes: int) -> Upload:
        """Copy an uploaded file in under a generated name; it is kept even if indexing fails."""
        display = Path(name.replace("\\", "/")).name or "upload"
        ext = Path(display).suffix.lower()
        if ext not in SUPPORTED:
            raise ConfigError(
                f"{display}: docqa does not read {ext or 'files without an extension'}; "
                f"it reads {' '.join(SUPPORTED)}"
            )
        size = source.stat().st_size
        if size > max_bytes:
            raise ConfigError(
                f"{display}: {size:,} bytes is over the upload limit of {max_bytes:,} bytes ({max_bytes / 1e6:.0f} MB)"
            )
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        stored = _stored_name(ext)
        partial = self.uploads_dir / f".{stored}.part"
        shutil.copyfile(source, partial)
        os.replace(partial, self.uploads_dir / stored)
        upload = Upload(stored, display, size, _now(), "pending")
        with self._lock:
            self._write(self._registry, {**self._read(self._registry, {}), stored: asdict(upload)})
        return upload

    def uploads(self) -> list[Upload]:
        return [Upload(**entry) for entry in self._read(self._registry, {}).values()]

    def recover(self) -> list[str]:
        """After a crash: a stored file the registry missed is registered as pending (so the next
        build indexes it), and half-copied files are removed. Returns what was adopted."""
        if not self.uploads_dir.is_dir():
            return []
        with self._lock:
            registry = self._read(self._registry, {})
            adopted = []
            for path in sorted(self.uploads_dir.iterdir()):
                if path.name.startswith(".") and path.name.endswith(".part"):
                    path.unlink(missing_ok=True)
                elif path.is_file() and path.name not in registry:
                    stat = path.stat()
                    registry[path.name] = asdict(
                        Upload(path.name, path.name, stat.st_size, _now(), "pending")
                    )
                    adopted.append(path.name)
            if adopted:
                self._write(self._registry, registry)
        return adopted

    def names(self) -> dict[str, str]:
        """Stored file name -> the user's name for it, for titles and messages."""
        return {u.stored: u.name for u in self.uploads()}

    def record(
        self, indexed: Collection[str], skipped: list[Skipped], found: list[Pending | Skipped]
    ) -> None:
        """Mark each upload indexed or failed after a build, from the ids the live index holds
        (`indexed`), what the build skipped and `found` (what it scanned), by the documents read
        from the upload's file: a .jsonl upload's are its records, with ids of their own."""
        failed = {s.id: s.reason for s in skipped if s.id}
        # By file: the reason one was not read at all, or a .jsonl record was skipped ("faq.jsonl:3").
        unread: dict[str, str] = {}
        for s in skipped:
            file, _, line = s.source.rpartition(":")
            unread.setdefault(file if line.isdigit() else s.source, s.reason)
        folder = os.path.abspath(self.uploads_dir) + os.sep
        read: dict[str, list[str]] = {}  # stored file name -> the ids of the documents read from it
        for item in found:
            if isinstance(item, Pending) and item.path.startswith(folder):
                read.setdefault(os.path.basename(item.path), []).append(item.id)
        results = {}
        left_out = self.excluded()
        for upload in self.uploads():
            ids = read.get(upload.stored, [upload.doc_id])
            if any(i in indexed for i in ids):
                results[upload.stored] = None
            elif all(i in left_out for i in ids):  # a .jsonl upload whose records were removed one by one
                results[upload.stored] = (
                    "its documents were removed from the index: remove the upload to delete its file"
                )
            elif reason := next((failed[i] for i in ids if i in failed), None) or unread.get(upload.name):
                results[upload.stored] = reason
        self.mark(results)

    def mark(self, results: dict[str, str | None]) -> None:
        """Record how indexing went: stored name -> None (indexed) or the reason it failed."""
        with self._lock:
            registry = self._read(self._registry, {})
            for stored, error in results.items():
                if stored in registry:
                    registry[stored].update(status="failed" if error else "indexed", error=error)
            self._write(self._registry, registry)

    def delete(self, stored: str) -> None:
        with self._lock:
            registry = self._read(self._registry, {})
            if stored not in registry:
                raise ConfigError(f"no upload {stored!r}")
            (self.uploads_dir / stored).unlink(missing_ok=True)
            del registry[stored]
            self._write(self._registry, registry)

    def version(self) -> str:
        """Changes whenever an upload is stored, marked or removed, or a document left out: a
        digest of its lists as written (their times may not move between two writes in a second)."""
        return " ".join(_digest(p) for p in (self._registry, self._excluded))

    # Documents of the folder left out of the index
    def excluded(self) -> dict[str, str | None]:
        """Each document left out -> the hash of the content that was left out: written anew
        (another hash), the document is indexed again. (None: left out by an earlier docqa, which
        kept no hash: for good.)"""
        kept = self._read(self._excluded, {})
        return dict.fromkeys(kept) if isinstance(kept, list) else kept

    def exclude(self, doc_id: str, content_hash: str) -> None:
        with self._lock:
            self._write(self._excluded, {**self.excluded(), doc_id: content_hash})

    def include(self, doc_ids: Collection[str]) -> None:
        """Lift the exclusion of `doc_ids` (their content changed since)."""
        with self._lock:
            excluded = self.excluded()
            if any(d in excluded for d in doc_ids):
                self._write(self._excluded, {d: h for d, h in excluded.items() if d not in doc_ids})

    def _read(self, path: Path, empty):
        """The JSON file at `path` (`empty` when there is none); a ConfigError when it is not
        what docqa writes there."""
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            return empty
        except ValueError as e:
            raise ConfigError(f"{path} is damaged ({e}); delete it to start afresh") from None
        registry = path == self._registry
        if not isinstance(value, dict | list) or (registry and not _a_registry(value)):
            raise ConfigError(f"{path} is not the list docqa keeps there; delete it to start afresh")
        return value

    def _write(self, path: Path, value) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False))
        os.replace(tmp, path)


def _digest(path: Path) -> str:
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
    except FileNotFoundError:
        return "-"


def _a_registry(value: object) -> bool:
    """Whether `value` is the uploads registry as docqa writes it: stored name -> its fields."""
    return isinstance(value, dict) and all(isinstance(v, dict) and "stored" in v for v in value.values())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stored_name(ext: str) -> str:
    """A generated name that sorts after every earlier one, older installs' plain hex names
    included ("u" sorts after hex digits): builds read uploads in name order, and where two share
    a document id the first read keeps it, so an upload never takes the id of an earlier one.
    Within a process the names' times strictly increase, even where the clock is coarse or is set
    back."""
    global _last_ns
    with _naming:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return f"u{_last_ns:020d}-{uuid.uuid4().hex[:8]}{ext}"


_naming, _last_ns = threading.Lock(), 0
