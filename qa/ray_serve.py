"""`docqa serve --ray`: the models as Ray Serve deployments, the rest where it always runs.

The embedding model (questions, and the chunks of uploads and of a watched folder) and the
generator each run as a deployment on the cluster; the generator's replicas scale between the
bounds given, each decoding the questions routed to it together as one batch (qa/decoding.py).
The server process keeps the index, the web UI, the Gradio and OpenAI APIs and every check, and
holds no model: `ServedEmbedder` and `ServedGenerator` stand in for the models there, behind
the same protocols, so the answers are the ones one machine gives for the same question and
index. The index must be on storage the server process can read and write.

A replica that dies before the first piece of an answer is replaced by Serve and the answer is
asked again of another; one that dies part-way through ends that answer with a ReplicaLost error
that says to ask again (the page shows it), never a wait without end.

Imported only for `--ray`, so docqa runs without Ray installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace

import numpy as np

from embeddings.config import Config
from embeddings.embedder import Description, Embedder, Tokenizer
from embeddings.errors import ClusterError, ConfigError, DocqaError, Transient
from qa.generator import Messages
from qa.generator import from_config as load_generator

try:
    import ray
    from ray import serve
    from ray.exceptions import RayError, RayTaskError
    from ray.serve.exceptions import RayServeException
except ImportError:
    raise ConfigError(
        "`docqa serve --ray` needs Ray Serve: pip install 'docqa[ray]' (in a checkout: pip install -e '.[ray]')"
    ) from None

from embeddings.ray_build import Cluster, describe, error_line  # noqa: E402 (after the check that Ray is there)

# Each server deploys under a name of its own: two servers on one cluster neither replace nor
# take down each other's models.
APP = f"docqa-{socket.gethostname()}-{os.getpid()}"
EMBEDDER_CPUS = 0.5  # questions and upload batches: small next to the generator
GENERATOR_CPUS = 1.0  # logical CPUs a generator replica reserves (its ONNX Runtime uses the node's cores)
_END = object()
_LOST = (RayError, RayServeException)
RETRY_SECONDS = 120  # how long a call waits for Serve to replace lost replicas


class ReplicaLost(ClusterError, Transient):
    """A model replica stopped while it was answering."""


@dataclass(frozen=True)
class Replicas:
    """Generator replicas: `least` always running, up to `most` while questions wait."""

    least: int = 1
    most: int = 1

    @classmethod
    def parse(cls, text: str) -> Replicas:
        """ "2" (fixed) or "1:4" (autoscaled between the two)."""
        least, bounded, most = text.partition(":")
        try:
            replicas = cls(int(least), int(most if bounded else least))
        except ValueError:
            raise ConfigError(f"--replicas {text!r}: give a number (2) or bounds (1:4)") from None
        if not 1 <= replicas.least <= replicas.most:
            raise ConfigError(
                f"--replicas {text!r}: at least 1, and the first bound no larger than the second"
            )
        return replicas

    def options(self, batch: int, gpu: bool = False, turns: int = 2) -> dict:
        """The generator deployment's replica settings; each replica takes up to `batch` questions
        and, with `gpu`, holds a GPU of its own (Ray then places it on a node that has one free,
        and shows it only that one). docqa sends `turns` questions per replica of `most` at once
        (service.MODEL_TURNS): autoscaling aims at that many a replica, so that a full load asks
        for `most` replicas (aiming at `batch`, 4, eight questions asked for two of four)."""
        actor = {"ray_actor_options": {"num_cpus": GENERATOR_CPUS, "num_gpus": 1}} if gpu else {}
        if self.least == self.most:
            return {"num_replicas": self.least, "max_ongoing_requests": batch, **actor}
        return {
            "autoscaling_config": {"min_replicas": self.least, "max_replicas": self.most,
                                   "target_ongoing_requests": min(batch, turns)},
            "max_ongoing_requests": batch,
            **actor,
        }  # fmt: skip


@serve.deployment(ray_actor_options={"num_cpus": EMBEDDER_CPUS})
class EmbedderReplica:
    """The embedding model, loaded once per replica."""

    def __init__(self, config: Config) -> None:
        self.description = describe(config)  # also checks that a bare tokenizer cuts text as it does
        self.embedder = Embedder.load(config.embedding_model, config.device, config.dtype)

    def describe(self) -> Description:
        return self.description

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.embedder.embed(texts, batch_size)


@serve.deployment(ray_actor_options={"num_cpus": GENERATOR_CPUS})
class GeneratorReplica:
    """The generator, loaded once per replica; the questions routed to it are decoded together."""

    def __init__(self, config: Config) -> None:
        self.generator = load_generator(config)

    def describe(self) -> dict[str, str | int]:
        return {k: getattr(self.generator, k) for k in ("name", "device", "dtype", "runtime", "context")}

    def tokenize(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return self.generator.tokenize(texts)

    def count(self, text: str) -> int:
        return self.generator.count(text)

    def render(self, messages: Messages) -> str:
        return self.generator.render(messages)

    async def stream(self, messages: Messages, max_new_tokens: int) -> AsyncIterator[str]:
        """The reply's pieces. The model's own stream is read on a thread of its own, so the
        replica takes other questions meanwhile; a caller who leaves stops the decoding."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        left = threading.Event()

        def read() -> None:
            try:
                with closing(self.generator.stream(messages, max_new_tokens)) as replies:
                    for piece in replies:
                        if left.is_set():
                            return
                        loop.call_soon_threadsafe(pieces.put_nowait, piece)
                loop.call_soon_threadsafe(pieces.put_nowait, _END)
            except Exception as e:  # noqa: BLE001 (raised again to the caller below)
                loop.call_soon_threadsafe(pieces.put_nowait, e)

        threading.Thread(target=read, name="docqa-replica-stream", daemon=True).start()
        try:
            while (piece := await pieces.get()) is not _END:
                if isinstance(piece, Exception):
                    raise piece
                yield piece
        finally:
            left.set()


class ServedEmbedder:
    """The Embedder protocol over the embedding deployment. Chunking uses the model's tokenizer
    here (no weights); the vectors come from a replica."""

    def __init__(self, handle: serve.handle.DeploymentHandle) -> None:
        self._handle = handle
        self._description: Description = _call(handle.describe)
        d = self._description
        self.name, self.fingerprint, self.device, self.dtype = (
            d.name,
            d.fingerprint,
            f"ray:{d.device}",
            d.dtype,
        )
        self._tokenizer = Tokenizer.load(d.name)

    @property
    def dim(self) -> int:
        return self._description.dim

    @property
    def max_tokens(self) -> int:
        return self._description.max_tokens

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self._tokenizer(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _call(self._handle.embed, list(texts), batch_size)


class ServedGenerator:
    """The Generator protocol over the generator deployment."""

    def __init__(self, handle: serve.handle.DeploymentHandle, replicas: Replicas) -> None:
        self._handle, self._streaming = handle, handle.options(stream=True)
        d = _call(handle.describe)
        self.name, self.dtype, self.device = d["name"], d["dtype"], f"ray:{d['device']}"
        self.context = d["context"]
        shown = (
            f"{replicas.least}" if replicas.least == replicas.most else f"{replicas.least}-{replicas.most}"
        )
        self.runtime = f"{d['runtime']} on Ray Serve, {shown} replica{'s' if replicas.most > 1 else ''}"

    def tokenize(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return _call(self._handle.tokenize, list(texts)) if texts else []

    def count(self, text: str) -> int:
        return _call(self._handle.count, text)

    def render(self, messages: Messages) -> str:
        return _call(self._handle.render, messages)

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        """The reply's pieces. A replica lost before the first piece: asked again (of another, or
        of the one Serve starts in its place) for up to RETRY_SECONDS; lost after: ReplicaLost.
        Closing this stops the replica's decoding."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            replies = self._streaming.stream.remote(messages, max_new_tokens)
            given = False
            try:
                for piece in replies:
                    given = True
                    yield piece
                return
            except _LOST as e:
                _raise_own_error(e)
                if given:
                    raise ReplicaLost(
                        f"the generator replica answering stopped part-way ({_first_line(e)}); ask again: "
                        "another replica will answer"
                    ) from None
                _wait_or_give_up(e, deadline)
            finally:
                replies.cancel()  # a reader who stops early (or a failure) frees its place in the batch

    def generate(self, messages: Messages, max_new_tokens: int) -> str:
        return "".join(self.stream(messages, max_new_tokens))


@dataclass
class RayServe:
    """Where and how `docqa serve --ray` deploys the models."""

    address: str | None = None  # None: a new local cluster, or the one `ray start` runs here
    replicas: Replicas = Replicas()
    cluster: Cluster | None = None  # once deployed

    def join(self) -> Cluster:
        """Join (or start) the cluster, and check that it has room for the replicas asked for."""
        if self.cluster is None:
            self.cluster = Cluster.connect(self.address)
            try:
                _check_room(ray.available_resources().get("CPU", 0.0), self.cluster.cpus, self.replicas)
            except ClusterError:
                self.stop()
                raise
        return self.cluster

    def deploy(self, config: Config) -> tuple[ServedEmbedder, ServedGenerator]:
        """Deploy both models on the cluster (waiting for their replicas to load them) and return
        the stand-ins the server uses in their place."""
        cluster = self.join()
        gpu = bool(cluster.gpus) and (config.device is None or config.device.startswith("cuda"))
        if gpu:
            try:
                _check_gpus(ray.available_resources().get("GPU", 0.0), self.replicas)
            except ClusterError:
                self.stop()
                raise
        app = _application(config, self.replicas, gpu)
        try:
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
            quiet = {"log_level": "WARNING"}
            serve.start(proxy_location="Disabled", logging_config=quiet)  # docqa serves HTTP itself
            serve.run(app, name=APP, route_prefix=None, logging_config=quiet)
            embedder = ServedEmbedder(serve.get_deployment_handle("EmbedderReplica", APP))
            generator = ServedGenerator(serve.get_deployment_handle("GeneratorReplica", APP), self.replicas)
        except (*_LOST, RuntimeError) as e:  # serve.run: RuntimeError where a replica cannot start
            raise ClusterError(
                f"the models could not be deployed on Ray Serve: {_why_not_deployed(e)}"
            ) from None
        return embedder, generator

    def stop(self) -> None:
        """Take the deployments down; the cluster stays, unless this process started it."""
        if self.cluster is not None:
            with contextlib.suppress(RayServeException, RayError):  # never deployed, or already gone
                serve.delete(APP)
            self.cluster.__exit__()
            self.cluster = None


def _application(config: Config, replicas: Replicas, gpu: bool) -> serve.Application:
    from qa.service import MODEL_TURNS

    settings = replicas.options(config.generator_batch, gpu, MODEL_TURNS)
    generator = GeneratorReplica.options(**settings).bind(config)
    # The embedder reserves no GPU: on a cluster with GPUs it runs on its node's CPUs (a question is
    # a few milliseconds of MiniLM there), not on a GPU a generator replica holds as its own.
    embedder = replace(config, device="cpu", dtype=None) if gpu and config.device is None else config
    # The embedder is not an ingress of the generator: both are deployed as one application with a
    # small router in front, so `serve.run` waits for every replica of both.
    return _Models.bind(EmbedderReplica.bind(embedder), generator)


@serve.deployment(ray_actor_options={"num_cpus": 0})
class _Models:
    """The application's ingress: holds the two deployments so they deploy (and go) together."""

    def __init__(self, embedder: serve.handle.DeploymentHandle, generator: serve.handle.DeploymentHandle):
        self.embedder, self.generator = embedder, generator

    def __call__(self) -> str:
        return "docqa models"


def _why_not_deployed(e: Exception) -> str:
    """What stopped a replica from starting, as its constructor raised it (a device torch does
    not see, say): Serve's own error says only that the deployment failed."""
    with contextlib.suppress(Exception):  # the status is a better message where Serve has one
        for deployment in serve.status().applications[APP].deployments.values():
            if said := error_line(deployment.message or "", last=True):
                return said
    return _first_line(e)


def _check_room(free: float, cpus: float, replicas: Replicas) -> None:
    """Refuse a deployment that cannot be placed on the `free` of the cluster's `cpus` (other
    work holds the rest), rather than wait for it without end."""
    needed = EMBEDDER_CPUS + GENERATOR_CPUS * replicas.least
    if needed > free:
        has = f"{cpus:g}" if free >= cpus else f"{free:g} free (other work holds the rest of its {cpus:g})"
        held = (
            ""
            if free >= cpus
            else "; `serve status` shows what is deployed (a docqa server that was "
            "killed leaves its models there until `serve shutdown`)"
        )
        raise ClusterError(
            f"{replicas.least} generator replica{'s' if replicas.least > 1 else ''} and the embedder need "
            f"{needed:g} CPUs; the Ray cluster has {has}: ask for fewer replicas, or add nodes (a local "
            f"cluster can be started with more: `ray start --head --num-cpus N`){held}"
        )


def _check_gpus(free: float, replicas: Replicas) -> None:
    """On a cluster with GPUs each generator replica holds one: refuse replicas the free GPUs
    cannot hold, rather than wait for them (or share one GPU's memory among them)."""
    if replicas.least > free:
        raise ClusterError(
            f"{replicas.least} generator replica{'s' if replicas.least > 1 else ''} need a GPU each; the Ray "
            f"cluster has {free:g} free: ask for fewer replicas, add GPU nodes, or run them on CPUs (--device cpu)"
        )


def _call(method, *args):  # a deployment handle's method
    """The method's result, asked again while replicas that were lost are being replaced."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return method.remote(*args).result()
        except _LOST as e:
            _raise_own_error(e)
            _wait_or_give_up(e, deadline)


def _wait_or_give_up(e: Exception, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ReplicaLost(
            f"no model replica answered for {RETRY_SECONDS} s ({_first_line(e)}): check the Ray cluster "
            "(`ray status`), then ask again"
        ) from None
    time.sleep(1)


def _raise_own_error(e: Exception) -> None:
    """A replica's own error reaches the user at once: docqa's as it is (a prompt too long, say),
    any other its model raised (out of memory, say) with its message. Only a replica lost, or
    not there yet, is worth asking again."""
    if not isinstance(e, RayTaskError):
        return
    cause = e.cause
    if isinstance(cause, DocqaError):
        raise cause from None
    if cause is not None and not isinstance(cause, _LOST):
        raise ClusterError(f"the model replica failed: {type(cause).__name__}: {cause}") from None


def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
