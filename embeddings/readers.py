"""A folder of files -> documents with stable ids and content hashes.

Scanning is cheap (hash the bytes, note where each document lives); parsing happens only for
documents the index does not already hold, so an unchanged collection is never re-read in full.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from embeddings import formats, office
from embeddings.errors import UnreadableDocument
from embeddings.formats import decode, iso_date

PARSERS = {**formats.PARSERS, **office.PARSERS}
SUPPORTED = (*PARSERS, ".jsonl")
_SUPPORTED = frozenset(SUPPORTED)


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    hash: str
    source: str  # path relative to the scanned folder
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: a scan of a large folder makes one per file, and frozen is slow
class Pending:
    """A document found by a scan: known by id and hash, parsed only when `load`ed."""

    id: str
    hash: str
    source: str
    path: str  # a string, not a Path: a scan of a large folder makes one for every file, every build
    line_offset: int | None = None  # byte offset of the line in a .jsonl file
    name: str | None = None  # what the user called the file, when it is stored under another name

    def load(self) -> Document:
        path = Path(self.path)
        if self.line_offset is None:
            title, text, metadata = PARSERS[path.suffix.lower()](path.read_bytes())
            title = title or (Path(self.name).stem if self.name else _title_from(path))
            if self.name:
                metadata = {**metadata, "file": self.name}
            return Document(self.id, title, text, self.hash, self.source, metadata)
        with path.open("rb") as f:
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
    root: Path,
    prefix: str = "",
    names: Mapping[str, str] | None = None,
    seen: set[str] | None = None,
    known: Known | None = None,
) -> Iterator[Pending | Skipped]:
    """Every supported file under `root` (or `root` itself), in a stable order. File ids are
    `prefix` + the path relative to `root`; `names` maps such a path to the name the user knows
    the file by; ids already in `seen` are reported as duplicates. `known` has what an earlier
    scan found in files that have not changed since, so those are not read again."""
    root = Path(root).absolute()
    if not root.exists():
        raise FileNotFoundError(root)
    files = [(root.name, str(root), None)] if root.is_file() else _walk(str(root), "")
    seen = set() if seen is None else seen
    names = names or {}
    for relative, where, stat in files:
        try:
            stat = stat or os.stat(where)  # before the bytes: a change while they are read moves the time
            if known is not None and (items := known.get(where, stat)) is not None:
                for item in items:
                    yield _once(item, seen)
                continue
            data = Path(where).read_bytes()
        except OSError as e:
            yield Skipped(
                names.get(relative) or prefix + relative,
                f"cannot be read: {e.strerror or e}",
                prefix + relative,
            )
            continue
        name = names.get(relative)
        source = name or prefix + relative
        if os.path.splitext(where)[1].lower() != ".jsonl":
            items = [Pending(prefix + relative, _sha256(data), source, where, name=name)]
        else:
            items = list(_scan_jsonl(data, source, where))
        if known is not None:
            known.put(where, stat, items)
        for item in items:
            yield _once(item, seen)


class Known(Protocol):
    """What an earlier scan found in a file, for as long as the file is unchanged (see scanned.py)."""

    def get(self, path: str, stat: os.stat_result) -> list[Pending | Skipped] | None: ...

    def put(self, path: str, stat: os.stat_result, items: list[Pending | Skipped]) -> None: ...


def _once(item: Pending | Skipped, seen: set[str]) -> Pending | Skipped:
    if isinstance(item, Pending):
        if item.id in seen:
            return Skipped(item.source, f"duplicate document id {item.id!r}; ids must be unique", item.id)
        seen.add(item.id)
    return item


def _walk(folder: str, relative: str) -> list[tuple[str, str, os.stat_result | None]]:
    """(path relative to the root, path, its stat) of each supported file, in path order; plain
    strings and scandir, as a large folder is walked at every build. Hidden files and folders
    are left out."""
    found: list[tuple[str, str, os.stat_result | None]] = []
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=_name)
    except OSError:
        return found
    for entry in entries:
        name = entry.name
        if name[0] == ".":
            continue
        if entry.is_dir(follow_symlinks=False):
            found += _walk(entry.path, f"{relative}{name}/")
        elif name[name.rfind(".") :].lower() in _SUPPORTED:
            try:
                found.append((relative + name, entry.path, entry.stat()))
            except OSError:
                found.append((relative + name, entry.path, None))  # reported as unreadable when read
    return found


_name = operator.attrgetter("name")


def _scan_jsonl(data: bytes, source: str, path: str) -> Iterator[Pending | Skipped]:
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
    date = iso_date(metadata.pop("date", None))
    if date:
        metadata["date"] = date
    return Document(doc_id, title.strip() or doc_id, text, content_hash, source, metadata)
