"""A folder of files -> documents with stable ids and content hashes.

Scanning is cheap (hash the bytes, note where each document lives); parsing happens only for
documents the index does not already hold, so an unchanged collection is never re-read in full.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from embeddings.errors import UnreadableDocument
from embeddings.formats import PARSERS, decode

SUPPORTED = (*PARSERS, ".jsonl")


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    hash: str
    source: str  # path relative to the scanned folder
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """A document found by a scan: known by id and hash, parsed only when `load`ed."""

    id: str
    hash: str
    source: str
    path: Path
    line_offset: int | None = None  # byte offset of the line in a .jsonl file
    name: str | None = None  # what the user called the file, when it is stored under another name

    def load(self) -> Document:
        if self.line_offset is None:
            title, text, metadata = PARSERS[self.path.suffix.lower()](self.path.read_bytes())
            title = title or (Path(self.name).stem if self.name else _title_from(self.path))
            if self.name:
                metadata = {**metadata, "file": self.name}
            return Document(self.id, title, text, self.hash, self.source, metadata)
        with self.path.open("rb") as f:
            f.seek(self.line_offset)
            return _jsonl_document(json.loads(f.readline()), self.hash, self.source)


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str
    id: str | None = None  # the document id, where the file gives one


def _title_from(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scan(
    root: Path, prefix: str = "", names: Mapping[str, str] | None = None, seen: set[str] | None = None
) -> Iterator[Pending | Skipped]:
    """Every supported file under `root` (or `root` itself), in a stable order. File ids are
    `prefix` + the path relative to `root`; `names` maps such a path to the name the user knows
    the file by; ids already in `seen` are reported as duplicates."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(root)
    files = [root] if root.is_file() else sorted(_walk(root))
    base = root.parent if root.is_file() else root
    seen = set() if seen is None else seen
    for path in files:
        relative = path.relative_to(base).as_posix()
        name = (names or {}).get(relative)
        source = name or prefix + relative
        try:
            data = path.read_bytes()
        except OSError as e:
            yield Skipped(source, f"cannot be read: {e.strerror or e}", prefix + relative)
            continue
        if path.suffix.lower() != ".jsonl":
            yield _once(Pending(prefix + relative, _sha256(data), source, path, name=name), seen)
            continue
        yield from (_once(item, seen) for item in _scan_jsonl(data, source, path))


def _once(item: Pending | Skipped, seen: set[str]) -> Pending | Skipped:
    if isinstance(item, Pending):
        if item.id in seen:
            return Skipped(item.source, f"duplicate document id {item.id!r}; ids must be unique", item.id)
        seen.add(item.id)
    return item


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not name.startswith(".") and path.suffix.lower() in SUPPORTED:
                yield path


def _scan_jsonl(data: bytes, source: str, path: Path) -> Iterator[Pending | Skipped]:
    try:
        decode(data)
    except UnreadableDocument as e:
        yield Skipped(source, str(e))
        return
    offset = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        where, start = f"{source}:{number}", offset
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            doc_id = _jsonl_id(record)
            _jsonl_document(record, "", source)  # validate types now, not halfway through a build
        except (ValueError, UnreadableDocument) as e:
            yield Skipped(where, str(e) if isinstance(e, UnreadableDocument) else f"not JSON: {e}")
            continue
        yield Pending(doc_id, _sha256(line.strip()), where, path, start)


def _jsonl_id(record: object) -> str:
    if not isinstance(record, dict):
        raise UnreadableDocument("each line must be a JSON object with id (or _id), title and text")
    doc_id = record.get("id", record.get("_id"))
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or str(doc_id).strip() == "":
        raise UnreadableDocument("the line has no usable 'id' or '_id' (a string or a number)")
    return str(doc_id)


def _jsonl_document(record: dict, content_hash: str, source: str) -> Document:
    doc_id = _jsonl_id(record)
    text, title = record.get("text"), record.get("title") or ""
    if not isinstance(text, str) or not text.strip():
        raise UnreadableDocument(f"document {doc_id!r} has no 'text' string")
    if not isinstance(title, str):
        raise UnreadableDocument(f"document {doc_id!r} has a 'title' that is not a string")
    metadata = {k: v for k, v in record.items() if k not in {"id", "_id", "title", "text", "metadata"}}
    if isinstance(record.get("metadata"), dict):
        metadata.update(record["metadata"])
    return Document(doc_id, title.strip() or doc_id, text, content_hash, source, metadata)
