"""`docqa index --ray`: new and changed documents -> chunks -> vectors as a Ray Data pipeline.
Reading and chunking run in Ray tasks, embedding in a pool of actors that each load the model
once, a GPU each where the cluster has them. (Without GPUs, where the actors take every CPU,
Ray Data fuses both steps: each actor reads and chunks what it embeds, and no document is copied
between processes.) The first embedding actor describes the model it loaded with its first
results, so no other worker loads the model only to describe it. The builder still decides what
is new or changed, and consumes the results in the documents' order through the same Ingest and
SegmentWriter as on one machine, so the index it commits is the same; a failure leaves the
previous one as it was.

Imported only for `--ray`, so docqa runs without Ray installed."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from embeddings.chunker import Span
from embeddings.compressed import Encode
from embeddings.config import Config
from embeddings.embedder import Description, Embedder, Tokenizer, absolute
from embeddings.errors import ClusterError, ConfigError, DocqaError, UnreadableDocument
from embeddings.ingest import Embedded, Progress, chunk, embed_longest_first, passages
from embeddings.readers import READERS, Document, Pending, Skipped

try:
    import ray
    import ray.data
    from ray.data.exceptions import ExecutionTimeoutError
    from ray.exceptions import RayError
except ImportError:
    raise ConfigError(
        "`docqa index --ray` needs Ray: pip install 'docqa[ray]' (in a checkout: pip install -e '.[ray]')"
    ) from None

DOCS_PER_TASK = 16  # documents read and chunked by one Ray task
NO_PROGRESS_S = 600  # a build on the cluster with no document done for this long has stalled
_ERROR_LINE = re.compile(
    r"^(?:[\w.]+\.)?\w+(?:Error|Exception|Document|Missing|Mismatch|Corrupt|Busy): (.+)$", re.M
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The chunker, loaded without the model, must cut text exactly as the model's own tokenizer.
_SAMPLE = ["Ismail Khan mediated the talks in Tehran on 10 January 2022 — without result.", "naïve café"]


def default_actors(resources: dict[str, float]) -> int:
    """One embedding actor per GPU; without GPUs, one per CPU (each also reads and chunks)."""
    return int(resources.get("GPU", 0)) or max(1, int(resources.get("CPU", 1)))


def actor_threads(resources: dict[str, float], actors: int) -> int:
    """CPU threads for each embedding actor: the cluster's CPUs shared among the actors. (Ray
    would give an actor that asks for one CPU a single thread, leaving the rest of a machine idle
    when there are fewer actors than CPUs.)"""
    return max(1, int(resources.get("CPU", 1)) // actors)


class Cluster:
    """A Ray cluster to embed on; leaving the `with` block stops Ray if `connect` started it."""

    def __init__(self, actors: int | None = None, started: bool = False) -> None:
        resources = ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 0))
        self.actors = actors or default_actors(ray.available_resources())  # what other work leaves
        self.threads = actor_threads(resources, self.actors)
        self.started = started

    @classmethod
    def connect(cls, address: str | None = None, actors: int | None = None, quiet: bool = False) -> Cluster:
        """The Ray cluster at `address` (HOST:PORT or auto); None: the one this process has
        joined, or else the one `ray start` runs on this machine, or else a new local one.
        `quiet`: the workers' own output (their tracebacks, their models' loading bars) stays in
        Ray's logs; a failure is still reported, in one line."""
        if ray.is_initialized():
            return cls(actors)
        try:
            if address:
                _reachable(address)
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=not quiet)
            else:
                ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=not quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ClusterError(_cannot_join(address, e)) from None
        return cls(actors, started=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            ray.shutdown()

    def embedding(self, config: Config, fresh: list[Pending]) -> RayEmbedding:
        """The pipeline for `config`, started on `fresh`: returns once the first embedding actor
        has loaded the model and described it with its first results (with nothing to embed, a
        task describes the model). `close` it if its results are not read."""
        config = replace(config, embedding_model=absolute(config.embedding_model))  # as every node finds it
        gpus = 1 if self.gpus and (config.device is None or config.device.startswith("cuda")) else 0
        available = ray.available_resources()  # not what other work holds (Serve replicas, say)
        free = available.get("CPU", 0)
        _check_room(
            available.get("GPU", 0) if gpus else free, self.actors if fresh else 1, "GPU" if gpus else "CPU"
        )
        return RayEmbedding(config, fresh, self.actors, gpus, self.threads, spare_cpus=free > self.actors)


def _check_room(free: float, actors: int, kind: str) -> None:
    """Refuse a build whose embedding actors (one `kind` each) cannot all be placed, rather than
    wait for them without end while other work holds the cluster."""
    if free < actors:
        fewer = f"run it with --ray-actors {int(free)}, " if free >= 1 else ""
        raise ClusterError(
            f"the build's {actors} embedding actor{'s' if actors > 1 else ''} need a {kind} each and the "
            f"Ray cluster has {free:g} free (other work holds the rest): {fewer}wait for that work to "
            "end, or add nodes; the index was left as it was"
        )


class RayEmbedding:
    """Documents -> chunks (Ray tasks) -> vectors (an actor pool), yielded in the order given."""

    def __init__(self, config: Config, fresh: list[Pending], actors: int, gpus: int, threads: int,
                 spare_cpus: bool = False) -> None:  # fmt: skip
        self.config, self.fresh, self.actors, self.gpus, self.threads = config, fresh, actors, gpus, threads
        self.spare_cpus = spare_cpus  # CPUs the actors leave free
        self.seconds = 0.0
        self._pipeline: Generator[dict, None, None] | None = None
        self._rows: Iterator[dict] = iter(())
        started = time.perf_counter()
        try:
            if fresh:
                self._pipeline = iter(self._dataset(fresh).iter_rows())
                first = next(self._pipeline)
                self._rows = itertools.chain([first], self._pipeline)
                self.model = Description(**json.loads(first["model"]))
            else:
                self.model = ray.get(ray.remote(num_gpus=gpus)(describe).remote(config))
        except (RayError, ExecutionTimeoutError) as e:
            self.close()
            raise _failed(e) from None
        finally:
            self.seconds += time.perf_counter() - started

    def __call__(self, fresh: list[Pending], progress: Progress) -> Iterator[Embedded | Skipped]:
        if fresh is not self.fresh:
            raise ValueError("a RayEmbedding embeds the documents it was started on")
        started = time.perf_counter()
        try:
            for i, row in enumerate(self._rows):
                if row["i"] != i:  # preserve_order keeps them in order; the segment's rows depend on it
                    raise ClusterError(f"the Ray pipeline returned document {row['i']} before {i}")
                yield _result(fresh[i], row, self.model, progress)
        except (RayError, ExecutionTimeoutError) as e:
            raise _failed(e) from None
        finally:
            self.seconds += time.perf_counter() - started
            self.close()

    def close(self) -> None:
        """Stop the pipeline (its actors end with it) where its results will not all be read."""
        if self._pipeline is not None:
            self._pipeline.close()

    def shard_map(self, encode: Encode, trained: bytes, shards: Iterable[np.ndarray]) -> list[bytes]:
        return shard_map(encode, trained, shards, in_flight=self.actors + 1)

    def _dataset(self, fresh: list[Pending]) -> ray.data.Dataset:
        items = [{"i": i, "pending": json.dumps(asdict(p))} for i, p in enumerate(fresh)]
        # Blocks of DOCS_PER_TASK documents, and at least one for each actor.
        blocks = min(len(items), max(self.actors, math.ceil(len(items) / DOCS_PER_TASK)))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        # Where the actors leave CPUs free, reading and chunking run in tasks there, beside the
        # embedding. Otherwise Ray Data fuses both steps into the actors, as tasks would find no
        # CPU. (It does not fuse a step whose remote arguments a function gives, so one that
        # gives none is passed.)
        spare = {"ray_remote_args_fn": dict} if not self.gpus and self.spare_cpus else {}
        ds = ds.map_batches(_read_and_chunk, batch_size=None, batch_format="numpy",
                            fn_kwargs={"config": self.config}, **spare)  # fmt: skip
        ds = ds.map_batches(
            _Embed,
            fn_constructor_kwargs={"config": self.config, "threads": self.threads},
            batch_size=self.config.batch_size,  # documents: at least as many chunks
            batch_format="numpy",
            # Ray Data restarts an actor that dies and runs its batches again (max_restarts and
            # max_task_retries are -1 for its actor pools), so a lost worker costs time, not the build.
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_gpus=self.gpus or None,
        )
        ds.context.execution_options.preserve_order = True
        ds.context.enable_progress_bars = False  # the build's own bars count documents and chunks
        # A node lost with actors on it, and none free to restart them: the documents behind theirs
        # wait for ever. Reading, chunking and embedding a batch takes seconds, loading the model
        # on a node at most a minute or two: this long with none done, the build says so and ends.
        ds.context.execution_no_progress_timeout_s = NO_PROGRESS_S
        return ds


def shard_map(encode: Encode, trained: bytes, shards: Iterable[np.ndarray], in_flight: int) -> list[bytes]:
    """A large segment's IVF-PQ codes, a Ray task per shard (`in_flight` at once, so the object
    store holds a few shards, not every vector), results in the shards' order."""
    task = ray.remote(num_cpus=1)(encode)
    out: list[bytes] = []
    try:
        model = ray.put(trained)
        running = []
        for shard in shards:
            running.append(task.remote(model, shard))
            if len(running) >= in_flight:
                out.append(ray.get(running.pop(0)))
        out += ray.get(running)
    except RayError as e:
        raise _failed(e) from None
    return out


def _result(item: Pending, row: dict, model: Description, progress: Progress) -> Embedded | Skipped:
    """One document's row from the pipeline, from an actor whose model must be the first one's:
    another node's copy that differs would put vectors of another space in the index."""
    theirs = Description(**json.loads(row["model"]))
    if (theirs.fingerprint, theirs.dim) != (model.fingerprint, model.dim):
        raise ClusterError(
            f"the Ray workers' copies of {model.name} differ ({theirs.fingerprint}, {theirs.dim} dimensions on "
            f"one node; {model.fingerprint}, {model.dim} on another): install the same docqa on every node; the "
            "index was left as it was"
        )
    if json.loads(row.get("readers") or "null") != READERS:  # the index records this machine's readers
        raise ClusterError(
            "a Ray worker reads documents with another docqa than this machine's (its readers of some formats "
            "differ): install the same docqa on every node; the index was left as it was"
        )
    if row["skipped"]:
        if row["absent"] and Path(item.path).exists():  # here, but not on the node that read it
            raise ClusterError(
                f"a Ray worker found no {item.path}, which this machine indexes: put the documents at the same "
                "path on every node (and the index folder too: it holds the uploads), or index without --ray; "
                "the index was left as it was"
            )
        progress.read(0)
        return Skipped(item.source, row["skipped"], item.id, passing=bool(row["passing"]))
    doc = Document(**json.loads(row["document"]))
    spans = [Span(*s) for s in json.loads(row["spans"])]
    progress.read(len(spans))
    progress.embedded(len(spans))
    return doc, spans, np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(spans), model.dim)


def describe(config: Config) -> Description:
    """Runs on a worker: load the model as the embedding actors do, and describe it."""
    return Description.of(_load(config))


def _load(config: Config) -> Embedder:
    """The embedding model, after checking that its bare tokenizer (what chunking loads where the
    model is not) cuts text as the model does."""
    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
    if Tokenizer.load(config.embedding_model)(_SAMPLE) != embedder.tokenize(_SAMPLE):
        raise ConfigError(f"{config.embedding_model}'s tokenizer loads differently without the model; "
                          "index without --ray")  # fmt: skip
    return embedder


def _read_and_chunk(batch: dict[str, np.ndarray], config: Config) -> dict[str, np.ndarray]:
    """Runs in a Ray task: parse and chunk each document; with its passages, or why it is skipped."""
    tokenize = Tokenizer.load(config.embedding_model)
    out: dict[str, list] = {"i": [], "document": [], "spans": [], "passages": [], "skipped": [], "passing": [],
                            "absent": [], "readers": []}  # fmt: skip
    readers = json.dumps(READERS)  # what read them, as the index will record it
    for i, pending in zip(batch["i"], batch["pending"], strict=True):
        item = Pending(**json.loads(pending))
        passing = absent = False
        try:
            doc, spans = chunk(item, tokenize, config)
            texts, skipped = passages(doc, spans, tokenize, config.title_tokens), ""
        except UnreadableDocument as e:
            doc, spans, texts, skipped, passing = None, [], [], str(e), e.passing
            absent = not Path(item.path).exists()  # here, on this node
        out["passing"].append(passing)
        out["absent"].append(absent)
        out["readers"].append(readers)
        out["i"].append(int(i))
        out["document"].append(json.dumps(asdict(doc), default=str) if doc else "")
        out["spans"].append(json.dumps([[s.start, s.end, s.tokens] for s in spans]))
        out["passages"].append(json.dumps(texts))
        out["skipped"].append(skipped)
    return {k: np.array(v, dtype=np.int64 if k == "i" else object) for k, v in out.items()}


class _Embed:
    """An embedding actor: loads the model once, then embeds batches of chunked documents, each
    row with the model's description."""

    def __init__(self, config: Config, threads: int) -> None:
        import torch  # here, not with the module: the driver and the chunking tasks never load it

        torch.set_num_threads(threads)
        self.embedder = _load(config)
        self.model = json.dumps(asdict(Description.of(self.embedder)))
        self.batch_size = config.batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [json.loads(p) for p in batch["passages"]]
        vectors = embed_longest_first(self.embedder, [t for ts in texts for t in ts], self.batch_size)
        out, row = [], 0
        for ts in texts:
            out.append(vectors[row : row + len(ts)].tobytes())
            row += len(ts)
        rest = {k: v for k, v in batch.items() if k != "passages"}
        model = np.array([self.model] * len(out), dtype=object)
        return {**rest, "vectors": np.array(out, dtype=object), "model": model}


def _reachable(address: str) -> None:
    """Fail fast where no cluster answers: Ray itself would retry for minutes."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT (like 10.0.0.5:6379) or auto")
    try:
        probe = socket.create_connection((host, int(port)), timeout=5)
    except OSError as e:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({e.strerror or e}): start one there with "
            "`ray start --head`, or leave out the address to start one on this machine"
        ) from None
    with probe:  # Ray's cluster (its GCS) speaks gRPC; anything else there (Ray's dashboard, say)
        try:  # would leave Ray retrying without end
            probe.sendall(_HTTP2_PREFACE)
            probe.settimeout(2)
            reply = probe.recv(16)
        except OSError:
            reply = b""  # no word either way: Ray will say
    if reply and reply[3:4] != b"\x04":  # gRPC's first words are an HTTP/2 SETTINGS frame
        raise ClusterError(
            f"something other than a Ray cluster answers at {address} (a web server, say): give the "
            "address `ray start --head` printed (port 6379 unless it was given another; 8265 is Ray's dashboard)"
        )


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # how a gRPC client opens a connection


def _cannot_join(address: str | None, e: Exception) -> str:
    if not address:
        return f"cannot start or join a Ray cluster on this machine ({e})"
    why = f"cannot join the Ray cluster at {address} ({e})"
    if os.environ.get("RAY_AUTH_MODE") is None:  # Ray sends no token to an address it is given unless asked
        why += (": if it asks for a token (Ray's default), set RAY_AUTH_MODE=token, with its token "
                "in ~/.ray/auth_token or RAY_AUTH_TOKEN")  # fmt: skip
    return why


def error_line(report: str, last: bool = False) -> str | None:
    """The message of the first (or `last`) error a Ray report names: the worker's own words."""
    named = _ERROR_LINE.findall(_ANSI.sub("", report))
    return (named[-1] if last else named[0]) if named else None


def _failed(e: Exception) -> DocqaError:
    """A worker's own docqa error as it is, where Ray kept it; a pipeline that stopped making
    progress as one that says what to look at; anything else as a build that failed on the
    cluster, with the first error Ray's report names (a worker's message is in its text)."""
    if isinstance(e, ExecutionTimeoutError):
        return ClusterError(
            f"the build on the Ray cluster did nothing for {NO_PROGRESS_S // 60} minutes (a node lost with "
            "embedding actors on it, and no room to start them again?): see `ray status`, then build again, "
            "or without --ray; the index was left as it was"
        )
    cause = getattr(e, "cause", None)
    if isinstance(cause, DocqaError):
        return cause
    text = _ANSI.sub("", str(e))
    first = error_line(text) or next((line.strip() for line in text.splitlines() if line.strip()), "")
    return ClusterError(f"the build failed on the Ray cluster: {first or type(e).__name__}; "
                        "the index was left as it was")  # fmt: skip
