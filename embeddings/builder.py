"""Folder -> index: embed only what is new or changed into a new segment, keep the rest where it
is, swap the new generation in atomically."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from embeddings import changes, store
from embeddings.config import Config
from embeddings.embedder import Description, Embedder
from embeddings.errors import ConfigError, DocqaError, NoDocuments
from embeddings.generation import LOUD_CHUNKS, Live
from embeddings.ingest import Embedding, Ingest, LocalEmbedding
from embeddings.library import Library
from embeddings.models import fingerprint, locate
from embeddings.readers import READERS, SUPPORTED, Pending, Skipped
from embeddings.rereading import Rereading
from embeddings.scanned import Scanned
from embeddings.segment import SegmentWriter
from embeddings.vectors import Vectors

if TYPE_CHECKING:  # imported only with `--ray`: docqa runs without Ray installed
    from embeddings.ray_build import Cluster

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


@dataclass
class BuildReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    rebuilt_because: str | None = None
    read_again: int = 0  # as they were when last read, read again: their format's reader changed since

    @property
    def up_to_date(self) -> bool:
        return not (self.added or self.changed or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        counts = (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{len(self.skipped)} skipped, {self.unchanged} unchanged"
        )
        if self.read_again:
            counts += f"; {self.read_again} read again only because docqa now reads their format otherwise"
        total = f"{_count(self.documents, 'document')}, {_count(self.chunks, 'chunk')}"
        if self.up_to_date:
            return f"Index is up to date, nothing to embed: {total} ({counts}) in {self.seconds:.1f} s"
        rate = self.embedded / self.embed_seconds if self.embed_seconds else 0.0
        return (
            f"Indexed {total}: {counts}; embedded {_count(self.embedded, 'chunk')} "
            f"({rate:.0f} chunks/s) in {self.seconds:.1f} s"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def settings(config: Config, model: Description) -> dict:
    """What the vectors depend on, as the manifest records it."""
    return {
        "embedding": {
            "model": model.name,
            "fingerprint": model.fingerprint,
            "dim": model.dim,
            "dtype": model.dtype,
        },
        "chunker": _chunker(config),
    }


def _chunker(config: Config) -> dict:
    return {
        "chunk_tokens": config.chunk_tokens,
        "chunk_overlap": config.chunk_overlap,
        "title_tokens": config.title_tokens,
    }


def built_from(index_dir: Path) -> Path | None:
    """The documents folder (or file) the index at `index_dir` was last built from, where its
    manifest records one (builds before docqa recorded it do not)."""
    try:
        folder = store.current(index_dir)
        docs = store.read_manifest(folder).get("docs") if folder else None
    except DocqaError:
        return None
    return Path(docs) if isinstance(docs, str) else None


def as_built(config: Config) -> Config:
    """`config` with the embedding model and chunk settings that the index at `config.index_dir`
    was built with: its manifest, not the caller's defaults, says how it was built. Unchanged
    when there is no index yet (or none that can be read; a build then says why)."""
    try:
        folder = store.current(config.index_dir)
        manifest = store.read_manifest(folder) if folder else {}
    except DocqaError:
        return config
    model = (manifest.get("embedding") or {}).get("model")
    chunker = {k: v for k, v in (manifest.get("chunker") or {}).items() if k in _chunker(config)}
    if not model:
        return config
    return replace(config, embedding_model=model, **chunker)


def build(
    config: Config,
    embedder: Embedder | None = None,
    progress: bool = True,
    log: Log = _stderr,
    wait: float = 0,
    cluster: Cluster | None = None,
) -> BuildReport:
    """Bring the index at `config.index_dir` in line with the documents at `config.docs`. With
    `cluster`, what must be embedded is read, chunked and embedded on that Ray cluster (where
    the model is loaded; `embedder` is then not used); the index is the same either way."""
    started = time.perf_counter()
    if not config.docs.exists():
        raise ConfigError(f"no documents at {config.docs}: give a folder or file that exists")
    # Hashing the weights is enough to know whether anything must be embedded; the model
    # itself is loaded only when something must.
    name = embedder.name if embedder else config.embedding_model
    model_fingerprint = embedder.fingerprint if embedder else fingerprint(locate(name))
    with store.build_lock(config.index_dir, wait):
        report = BuildReport()
        library = Library(config.index_dir)
        library.uploads()  # a registry that cannot be read is an error before anything is written
        for stored in library.recover():
            log(f"found upload {stored} stored before an interruption; indexing it now")
        # The folder, then the live generation's tables: one after the other, as both are mostly
        # Python work (at a million chunks, in a thread each they took a third longer).
        with changes.no_cycle_collection():
            found = changes.scan_all(
                config.docs, library, Scanned(config.index_dir / "scanned.sqlite"), config.index_dir
            )
            live, report.rebuilt_because = Live.read(
                config.index_dir, name, model_fingerprint, _chunker(config)
            )
        try:
            excluded = library.excluded()
            rereading = Rereading(live.manifest)
            keep, fresh, left_out = changes.sort(found, live, excluded, report, rereading)
            for s in report.skipped:
                log(f"skipped {s.source}: {s.reason}")
            for doc_id in left_out:
                log(f"left out {doc_id}: removed from the index by hand; it is indexed again once it changes")
            library.include({p.id for p in fresh})  # any left out before has changed since
            unchanged = {p.id for p in keep}
            kept_unread: set[str] = set()
            if folders := tuple(s.source for s in report.skipped if s.folder):
                # A folder that could not be listed is not one whose files were deleted.
                kept_unread = live.held_under(folders) - {p.id for p in fresh} - excluded.keys()
                unchanged |= kept_unread
            unread = rereading.left_unread(kept_unread, live.sources)
            report.removed = len(live.docs) - len(unchanged) - sum(p.id in live.docs for p in fresh)
            legacy = any(e.get("legacy") for e in live.manifest.get("segments", []))
            if live.manifest and not fresh and report.up_to_date and not legacy and rereading.recorded:
                report.unchanged = len(unchanged)
                report.documents = live.manifest["counts"]["documents"]
                report.chunks = live.manifest["counts"]["chunks"]
                # A build killed after its commit may not have recorded its uploads: do it now.
                library.record(live.docs, report.skipped, found)
                report.seconds = time.perf_counter() - started
                return report
            if not (unchanged or fresh):
                library.record((), report.skipped, found)  # an upload that could not be read says why
                raise _nothing_readable(config, bool(live.manifest), report.skipped)
            if cluster is not None and fresh:  # the actors load the model before the first documents
                log(
                    f"starting {cluster.actors} embedding actor{'s' * (cluster.actors != 1)} on the Ray cluster ..."
                )
            embedding = _embedding(config, embedder, cluster, model_fingerprint, fresh)
            if report.rebuilt_because:
                log(f"Re-embedding everything: {report.rebuilt_because}")
            report.unchanged = len(unchanged)
            try:
                indexed = _write(config, embedding, live, unchanged, fresh, report, progress, log, unread)
            except NoDocuments:  # all that was new could not be read
                library.record((), report.skipped, found)
                raise
            finally:
                embedding.close()
        finally:
            live.close()
        library.record(indexed, report.skipped, found)
    report.seconds = time.perf_counter() - started
    return report


def _embedding(config: Config, embedder: Embedder | None, cluster: Cluster | None,
               model_fingerprint: str, fresh: list[Pending]) -> Embedding:  # fmt: skip
    """Where the documents are embedded: on the cluster (already embedding `fresh`), or here (the
    model loaded if need be)."""
    if cluster is None:
        local = LocalEmbedding(
            config, embedder or Embedder.load(config.embedding_model, config.device, config.dtype)
        )
        _check_room(config, local.model)
        return local
    embedding = cluster.embedding(config, fresh)
    try:
        if embedding.model.fingerprint != model_fingerprint:
            raise ConfigError(
                f"the Ray workers' copy of {config.embedding_model} differs from this machine's "
                f"({embedding.model.fingerprint}, not {model_fingerprint}): install the same docqa on both"
            )
        _check_room(config, embedding.model)
    except ConfigError:
        embedding.close()
        raise
    return embedding


def _write(config: Config, embedding: Embedding, live: Live, unchanged: set[str], fresh: list[Pending],
           report: BuildReport, progress: bool, log: Log, unread: list[str]) -> set[str]:  # fmt: skip
    """Write the next generation: a segment of what is new or changed, the live segments with
    what is gone deleted, merged where due; `unread`, the documents an older reader read that it
    keeps unread. Returns the ids of the documents it holds."""
    workspace = store.new_workspace(config.index_dir)
    try:
        writer = SegmentWriter(workspace / store.SEGMENTS / store.new_segment_name(), embedding.model.dim)
        ingest = Ingest(embedding, writer, report, progress, log)
        ingest(fresh, live.docs)
        settle = partial(Vectors.settle, compress_above=config.compress_above, shard_map=embedding.shard_map)
        if progress and report.embedded >= LOUD_CHUNKS:  # minutes with the bars done: say what it does
            log(f"building the search indexes of {_count(report.embedded, 'new chunk')} (BM25, vectors) ...")
        new = writer.finish(config.title_tokens > 0, settle)
        segments, files = live.next_segments(
            unchanged, new, workspace, config.title_tokens > 0, embedding.model.dim, settle,
            log if progress else None,
        )  # fmt: skip
        report.documents = sum(s["documents"] - len(s["deleted"]) for s in segments)
        report.chunks = sum(s["chunks"] - s["deleted_chunks"] for s in segments)
        if report.chunks == 0:
            raise _nothing_readable(config, bool(live.manifest), report.skipped)
        hashes = {p.id: p.hash for p in fresh}
        earlier = live.manifest.get("unreadable", {})
        manifest = {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "counts": {"documents": report.documents, "chunks": report.chunks},
            # The documents read that could not be parsed, as they were: (content hash, why), by id.
            # One that could not be read at all is tried again at the next build.
            "unreadable": {
                s.id: [hashes.get(s.id) or earlier[s.id][0], s.reason]
                for s in report.skipped
                if not s.passing and (s.id in hashes or s.id in earlier)
            },
            "segments": segments,
            "files": files,
            "docs": str(config.docs.resolve()),  # what `docqa serve` rebuilds from when not told
            "readers": READERS,  # what read the documents, but those
            "unread": unread,  # kept unread since an older reader read them (see embeddings/rereading.py)
            **settings(config, embedding.model),
        }
        store.commit(config.index_dir, workspace, manifest)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return unchanged | ingest.hashes.keys()


def _check_room(config: Config, model: Description) -> None:
    room = model.max_tokens - config.title_tokens - 1 if config.title_tokens else model.max_tokens
    if config.chunk_tokens > room:
        raise ConfigError(
            f"chunk_tokens={config.chunk_tokens} and title_tokens={config.title_tokens} are more than "
            f"{model.name} reads at once ({model.max_tokens} tokens); choose chunk_tokens {room} or less"
        )


def _nothing_readable(config: Config, indexed: bool, skipped: list[Skipped]) -> NoDocuments:
    """`indexed`: an index was built before, and is kept. `skipped`: what could not be read, and why."""
    said = f"no readable documents in {config.docs} (docqa reads {' '.join(SUPPORTED)})"
    if skipped:
        said += "; could not read " + "; ".join(f"{s.source} ({s.reason})" for s in skipped[:3])
        said += f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    if not indexed:
        return NoDocuments(f"{said}: add documents there, or give the folder that holds them", said)
    return NoDocuments(
        f"{said}; the index was left as it was (if the documents were removed on purpose, delete "
        f"{config.index_dir} to empty it)",
        said,
    )
