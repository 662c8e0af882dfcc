"""The live generation a build starts from, and the segments of the next: which carry over as
they are, which documents are deleted from each, which are merged or rewritten."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embeddings import store
from embeddings.errors import DocqaError
from embeddings.segment import Segment, SegmentWriter, Settle, plan

# A segment this large takes a while to write (its BM25 data, its HNSW graph past EXACT_LIMIT
# vectors): a build says so before it starts, as the progress bars are done by then.
LOUD_CHUNKS = 50_000


@dataclass
class Live:
    """The live generation's manifest and open segments; empty when everything is to be embedded
    again (no index yet, another model or chunking, or an index that cannot be used)."""

    manifest: dict = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    docs: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (content hash, segment)
    _sources: dict[str, str] | None = field(default=None, repr=False)  # id -> source, read when first asked

    @classmethod
    def read(cls, index_dir: Path, model: str, fingerprint: str, chunker: dict) -> tuple[Live, str | None]:
        """The generation to build on, or why everything must be embedded again."""
        try:
            folder = store.current(index_dir)
            if folder is None:
                return cls(), None
            manifest = store.read_manifest(folder)
            if manifest["format"] == 1:  # one folder, before segments: rewritten as one, not re-embedded
                store.check_files(folder, manifest)
                manifest = _legacy(folder, manifest)
            else:
                store.check_files(index_dir, manifest)
        except DocqaError as e:
            return cls(), f"the previous index cannot be used ({e})"
        why = _why_rebuild(manifest, model, fingerprint, chunker)
        if why:
            return cls(), why
        live = cls(manifest)
        try:
            for i, entry in enumerate(manifest["segments"]):
                legacy = entry.get("legacy", False)
                where = folder if legacy else store.segment_folder(index_dir, entry["name"])
                live.segments.append(Segment.open(where, terms=not legacy, vectors=False))
                deleted = set(entry["deleted"])
                live.docs |= {
                    d: (h, i) for d, h in live.segments[-1].table.hashes().items() if d not in deleted
                }
        except DocqaError as e:
            live.close()
            return cls(), f"the previous index cannot be used ({e})"
        return live, None

    def close(self) -> None:
        for segment in self.segments:
            segment.close()

    def held_under(self, folders: tuple[str, ...]) -> set[str]:
        """The live documents read from files under `folders` (relative paths ending in "/")."""
        return {doc_id for doc_id, source in self.sources().items() if source.startswith(folders)}

    def sources(self) -> dict[str, str]:
        """Where each live document was read from (a .jsonl record's: `file:line`)."""
        if self._sources is None:
            self._sources = {
                doc_id: source
                for i, segment in enumerate(self.segments)
                for doc_id, source in segment.table.sources().items()
                if self.docs.get(doc_id, ("", -1))[1] == i
            }
        return self._sources

    def next_segments(
        self, keep: set[str], new: dict | None, workspace: Path, with_titles: bool, dim: int, settle: Settle,
        log: Callable[[str], None] | None = None,
    ) -> tuple[list[dict], dict]:  # fmt: skip
        """The next generation's segment entries and the files it carries over: the live segments,
        every document not in `keep` (the unchanged ones) deleted from them, then `new` (written in
        `workspace`); the groups `plan` picks are merged, each where its first member was (`log`
        told of a large one, which takes a while)."""
        entries = [dict(e, deleted=list(e["deleted"])) for e in self.manifest.get("segments", [])]
        for doc_id, (_, i) in self.docs.items():
            if doc_id not in keep:
                entries[i]["deleted"].append(doc_id)
                entries[i]["deleted_chunks"] += self.segments[i].table.document(doc_id).chunks
        sources = list(self.segments)
        if new is not None:
            entries.append(new)
            sources.append(Segment.open(workspace / store.SEGMENTS / new["name"]))
        merged: dict[int, dict | None] = {}  # first position of a group -> its new segment
        try:
            for group in plan(entries):
                chunks = sum(entries[i]["chunks"] - entries[i]["deleted_chunks"] for i in group)
                if log is not None and chunks >= LOUD_CHUNKS:
                    log(f"merging {len(group)} segments of the index ({chunks:,} chunks) ...")
                writer = SegmentWriter(workspace / store.SEGMENTS / store.new_segment_name(), dim)
                for i in group:
                    writer.carry(sources[i], set(entries[i]["deleted"]))
                merged[group[0]] = writer.finish(with_titles, settle)
                merged |= {i: None for i in group[1:]}
        finally:
            if new is not None:
                sources[-1].close()
        entries = [m for i, e in enumerate(entries) if (m := merged.get(i, e)) is not None]
        names = {e["name"] for e in entries}
        for folder in (workspace / store.SEGMENTS).iterdir():  # written by this build, then merged
            if folder.name not in names:
                shutil.rmtree(folder)
        carried = {n: f for n, f in self.manifest.get("files", {}).items() if _segment_of(n) in names}
        return entries, carried


def _legacy(folder: Path, manifest: dict) -> dict:
    """A format-1 generation read as one segment (its files sit in the generation folder)."""
    entry = {"name": folder.name, "documents": manifest["counts"]["documents"],
             "chunks": manifest["counts"]["chunks"], "deleted": [], "deleted_chunks": 0, "legacy": True}  # fmt: skip
    return {**manifest, "segments": [entry], "files": {}}


def _why_rebuild(old: dict, model: str, model_fingerprint: str, chunker: dict) -> str | None:
    """Why vectors in `old` cannot be reused, or None when they can."""
    if old.get("embedding", {}).get("fingerprint") != model_fingerprint:
        return f"the embedding model changed ({old.get('embedding', {}).get('model')} -> {model})"
    if old.get("chunker") != chunker:
        return f"the chunk settings changed ({old.get('chunker')} -> {chunker})"
    return None


def _segment_of(file: str) -> str:
    """The segment a manifest's file belongs to: segments/NAME/..."""
    parts = file.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == store.SEGMENTS else ""
