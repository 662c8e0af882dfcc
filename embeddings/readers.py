"""A folder of files -> documents with stable ids and content hashes.

Scanning is cheap (hash the bytes, note where each document lives); parsing happens only for
documents the index does not already hold, so an unchanged collection is never re-read in full.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import operator
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

from embeddings import formats, office
from embeddings.errors import ConfigError, UnreadableDocument
from embeddings.formats import EMPTY, UTF16_BOMS, iso_date, not_text, not_utf8
from embeddings.pages import PAGE_KEYS

PARSERS = {**formats.PARSERS, **office.PARSERS}
SUPPORTED = (*PARSERS, ".jsonl")
_SUPPORTED = frozenset(SUPPORTED)
# Each format's reader, numbered anew whenever it reads the same file into other text. A build
# reads again what an index holds from a reader since changed (the manifest records these).
# 2: PDF ligatures as letters; Word's content controls and tracked insertions; HTML5's blocks
# (HTML, EPUB); Markdown comments left out.
READERS = (
    {ext: 1 for ext in SUPPORTED}
    | dict.fromkeys((".docx", ".epub"), 2)
    # 3: titles on one line; a Markdown title keeps a "#" of its own ("C#") and its front matter
    # is not text; an HTML page's title is its own, not an inline image's or a hidden heading's
    | dict.fromkeys((".pdf", ".html", ".htm", ".md", ".markdown"), 3)
    | {".jsonl": 2}  # titles on one line
)


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
        """The document, parsed; UnreadableDocument says why it cannot be (gone since the scan, say)."""
        path = Path(self.path)
        try:
            if self.line_offset is None:
                data = path.read_bytes()
            else:
                with path.open("rb") as f:
                    f.seek(self.line_offset)
                    data = f.readline().strip()
        except OSError as e:
            raise UnreadableDocument(f"cannot be read: {e.strerror or e}", passing=True) from None
        if self.line_offset is not None:
            if _sha256(data) != self.hash:  # the line at this offset is no longer the one scanned
                raise UnreadableDocument(
                    "the file changed while it was being indexed; index again", passing=True
                )
            return _jsonl_document(_json_line(data), self.hash, self.source)
        title, text, metadata = PARSERS[path.suffix.lower()](data)
        title = " ".join((title or "").split()) or (Path(self.name).stem if self.name else _title_from(path))
        if self.name:
            metadata = {**metadata, "file": self.name}
        return Document(self.id, title, text, self.hash, self.source, metadata)


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str
    id: str | None = None  # the document id, where the file gives one
    folder: bool = False  # a folder that could not be listed: the documents indexed from it are kept
    passing: bool = (
        False  # not read at all (UnreadableDocument.passing), or a duplicate: not remembered as unreadable
    )


def _title_from(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(path: Path) -> str:
    """The hash a file's document is indexed with (DocumentInfo.hash): the same bytes, the same hash."""
    return _sha256(Path(path).read_bytes())


def scan(
    root: Path,
    prefix: str = "",
    names: Mapping[str, str] | None = None,
    seen: set[str] | None = None,
    known: Known | None = None,
    skip: Path | None = None,
) -> Iterator[Pending | Skipped]:
    """Every supported file under `root` (or `root` itself), in a stable order, and each file or
    folder that cannot be read. File ids are `prefix` + the path relative to `root`; `names` maps
    such a path to the name the user knows the file by; ids already in `seen` are reported as
    duplicates. `known` has what an earlier scan found in files that have not changed since, so
    those are not read again. The folder `skip` (an index kept inside `root`) is left out."""
    root = Path(os.path.abspath(root))
    if not root.exists():
        raise FileNotFoundError(root)
    problems: list[tuple[str, str, bool]] = []  # path relative to root, why, whether a folder
    if root.is_file():
        if extension(root.name) not in _SUPPORTED:
            raise ConfigError(
                f"{root.name}: docqa reads {' '.join(SUPPORTED)}; give a folder or one of those files"
            )
        files = [] if _bad_name(root.name, "", problems) else [(root.name, str(root), None)]
    else:
        links = _Links(os.path.realpath(root), os.path.realpath(skip) if skip else "")
        files = _walk(str(root), "", _as_under(root, skip) if skip else "", problems, links)
    seen = set() if seen is None else seen
    names = names or {}
    for relative, reason, folder in problems:
        yield Skipped(prefix + relative, reason, folder=folder)
    reached: dict[tuple[int, int], str] = {}  # each file's (device, inode) -> where it was first found
    for relative, where, stat in files:
        name = names.get(relative)
        source = name or prefix + relative
        try:
            stat = stat or os.stat(where)  # before the bytes: a change while they are read moves the time
            if not S_ISREG(stat.st_mode):  # reading a named pipe would wait for a writer for ever
                yield Skipped(source, "not a regular file (a named pipe, socket or device)", passing=True)
                continue
            first = reached.setdefault((stat.st_dev, stat.st_ino), source)
            if first != source:  # a link (or a hard link) into a folder a link reached already
                yield Skipped(
                    source, f"the same file as {first}, which is read under that name", passing=True
                )
                continue
            if known is not None and (items := known.get(where, stat)) is not None and _from(items, source):
                for item in items:
                    yield _once(item, seen)
                continue
            data = Path(where).read_bytes()
        except OSError as e:
            yield Skipped(source, f"cannot be read: {e.strerror or e}", prefix + relative)
            continue
        if extension(where) != ".jsonl":
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


def _from(items: list[Pending | Skipped], source: str) -> bool:
    """Whether what a scan recorded for a file was found from the same root as this scan: ids and
    sources are paths relative to the root (a .jsonl file's are its lines, `source:N`)."""
    return not items or items[0].source == source or items[0].source.startswith(source + ":")


def _once(item: Pending | Skipped, seen: set[str]) -> Pending | Skipped:
    if isinstance(item, Pending):
        if item.id in seen:  # passing: the id is the indexed document's, never recorded as unreadable
            reason = f"duplicate document id {item.id!r}; ids must be unique"
            return Skipped(item.source, reason, item.id, passing=True)
        seen.add(item.id)
    return item


def _walk(
    folder: str, relative: str, skip: str, problems: list[tuple[str, str, bool]], links: _Links
) -> list[tuple[str, str, os.stat_result | None]]:
    """(path relative to the root, path, its stat) of each supported file, in path order; plain
    strings and scandir, as a large folder is walked at every build. Hidden files and folders,
    and the folder `skip`, are left out; what cannot be read goes into `problems`. A link is
    followed unless what it points to is indexed already (see _Links)."""
    found: list[tuple[str, str, os.stat_result | None]] = []
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=_name)
    except OSError as e:
        if not relative:
            raise ConfigError(
                f"cannot read the folder {folder} ({e.strerror or e}): check its permissions"
            ) from None
        problems.append((relative, f"cannot be read: {e.strerror or e}", True))
        return found
    for entry in entries:
        name = entry.name
        if name[0] == ".":
            continue
        if entry.is_symlink() and (why := links.indexed_as(entry, relative)):
            problems.append((relative + name, why, False))
            continue
        if entry.is_dir():
            if entry.path != skip and not _bad_name(f"{name}/", relative, problems):
                found += _walk(entry.path, f"{relative}{name}/", skip, problems, links)
        elif name[name.rfind(".") :].lower() in _SUPPORTED and not _bad_name(name, relative, problems):
            try:
                found.append((relative + name, entry.path, entry.stat()))
            except OSError:
                found.append((relative + name, entry.path, None))  # reported as unreadable when read
    return found


_name = operator.attrgetter("name")


def _as_under(root: Path, folder: Path) -> str:
    """`folder` as the walk of `root` spells it: an index inside the documents' folder, given by
    another path than the folder (a link to either), is still the folder the walk leaves out."""
    real_root, real = os.path.realpath(root), os.path.realpath(folder)
    if real.startswith(real_root + os.sep):
        return os.path.join(os.path.abspath(root), os.path.relpath(real, real_root))
    return os.path.abspath(folder)


class _Links:
    """Where the links met in one scan point. A link to a file or folder that the scan reaches
    under its own name, or to one an earlier link reached, would index the same documents
    twice (or walk a folder that links to itself for ever): it is reported, not followed."""

    def __init__(self, root: str, skip: str) -> None:
        self.root = root  # with every link resolved
        self.skip = skip
        self.followed: dict[str, str] = {}  # the real path -> the link's path relative to the root

    def indexed_as(self, entry: os.DirEntry[str], relative: str) -> str | None:
        """Why the link `entry` is not followed, or None to follow it."""
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return f"a broken link: {os.readlink(entry.path)} does not exist"
        inside = os.path.relpath(target, self.root)
        if target == self.root or target == self.skip or self.root.startswith(target + os.sep):
            return "a link to the folder being indexed or one that holds it: it is not followed"
        if inside != ".." and not inside.startswith(".." + os.sep):
            hidden = any(part[0] == "." for part in inside.split(os.sep))
            unsupported = os.path.isfile(target) and extension(target) not in _SUPPORTED
            skipped = self.skip and target.startswith(self.skip + os.sep)
            if not (hidden or unsupported or skipped):
                return f"a link to {inside.replace(os.sep, '/')}, which is read under that name"
        if target in self.followed:
            return f"a link to what {self.followed[target]} links to, which is read under that name"
        self.followed[target] = relative + entry.name
        return None


def extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _bad_name(name: str, relative: str, problems: list[tuple[str, str, bool]]) -> bool:
    """Whether `name` is not valid UTF-8 (Python holds such bytes as lone surrogates, which the
    index cannot store); if so it goes into `problems`, shown with the bytes escaped."""
    if _unicode(name):
        return False
    shown = os.fsencode(relative + name).decode(errors="backslashreplace")
    problems.append((shown, "its name is not valid UTF-8: rename it", False))
    return True


def _unicode(text: str) -> bool:
    """Whether `text` can be stored: no lone surrogate (how Python holds a name's bytes that are
    not UTF-8, and what an escaped "\\udce9" in JSON becomes)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _scan_jsonl(data: bytes, source: str, path: str) -> Iterator[Pending | Skipped]:
    if data.startswith(UTF16_BOMS):  # lines are found by their b"\n" bytes
        yield Skipped(source, "UTF-16 text: save it as UTF-8")
        return
    try:
        _text_file(data)
    except UnreadableDocument as e:
        yield Skipped(source, str(e))
        return
    for number, (start, line) in enumerate(_lines(data), start=1):
        where = f"{source}:{number}"
        if not line.strip():
            continue
        try:
            record = _json_line(line)
            doc_id = _jsonl_id(record)
            _jsonl_document(record, "", source)  # validate types now, not halfway through a build
        except (ValueError, UnreadableDocument, RecursionError) as e:
            why = "nested too deeply to read" if isinstance(e, RecursionError) else f"not JSON: {e}"
            yield Skipped(where, str(e) if isinstance(e, UnreadableDocument) else why)
            continue
        yield Pending(doc_id, _sha256(line.strip()), where, path, start)


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of `data`, one at a time: a large file is not held twice."""
    start = 0
    while start <= len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        yield start, data[start:end]
        start = end + 1


_SLICE = 1 << 20


def _text_file(data: bytes) -> None:
    """What `decode` checks of a UTF-8 file (not binary, valid UTF-8, not empty, a byte order
    mark left out), without the decoded text in memory beside the bytes: a slice at a time."""
    if b"\x00" in data[:8192]:
        raise not_text(data)
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(skip, len(data), _SLICE):
        carried = len(decoder.getstate()[0])  # the end of a character the last slice cut
        try:
            decoder.decode(view[start : start + _SLICE], final=start + _SLICE >= len(data))
        except UnicodeDecodeError as e:
            raise not_utf8(data, min(max(start - carried + e.start, 0), len(data) - 1)) from None
    # Text in ASCII is found at once; a file without any is decoded to be sure ("\u3000" is a space).
    if not _WRITTEN.search(data, skip) and not data[skip:].decode().strip():
        raise UnreadableDocument(EMPTY)


_WRITTEN = re.compile(rb"[!-~]")


def _json_line(line: bytes) -> object:
    """One line of a .jsonl file as JSON, NaN and Infinity (which Python writes by default, and
    JSON does not have) read as null."""
    return json.loads(line, parse_constant=lambda name: None)


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
    for name, value in (("id", doc_id), ("title", title), ("text", text)):
        if not _unicode(value):
            raise UnreadableDocument(f"document {doc_id!r} has a {name!r} that is not valid Unicode")
    metadata = {k: v for k, v in record.items() if k not in {"id", "_id", "title", "text", "metadata"}}
    if isinstance(record.get("metadata"), dict):
        metadata.update(record["metadata"])
    metadata = {k: v for k, v in metadata.items() if k not in PAGE_KEYS}  # docqa's own, for pages it reads
    date = iso_date(metadata.pop("date", None))
    if date:
        metadata["date"] = date
    return Document(doc_id, " ".join(title.split()) or doc_id, text, content_hash, source, metadata)
