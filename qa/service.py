"""One running docqa: its models (loaded in the background), its index, and the document
library, shared by every user of the web UI. Each method is one thing a user can do."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embeddings.builder import BuildReport, as_built, build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError, DocqaError, NoDocuments, QuestionError
from embeddings.index import Index
from embeddings.library import UPLOAD_PREFIX, Library, Upload
from embeddings.readers import content_hash
from embeddings.scope import Scope
from embeddings.table import DocumentInfo
from embeddings.watch import follow
from qa.assistant import AnswerStream, Assistant, Conversation, runtime
from qa.conversation import Turn
from qa.generator import Generator, remembering
from qa.generator import from_config as load_generator
from qa.summarize import Summary

if TYPE_CHECKING:  # imported only with `--ray`: docqa runs without Ray installed
    from qa.ray_serve import RayServe

MAX_UPLOAD_BYTES = 50_000_000
# Answers and summaries at the model at once, from the page and the OpenAI API together: the page's
# own bound before there was an API. More at once would not be done sooner on a CPU, where a
# prompt's prefill costs as much batched as not; it would only delay every answer.
MODEL_TURNS = 2
MAX_WAITING = 32  # answers and summaries waiting for a turn; beyond that callers are told to retry


class NotReady(DocqaError):
    """The models are still loading."""


class Empty(NotReady):
    """The models are loaded, and the documents folder holds nothing to index yet."""


class Busy(DocqaError):
    """As many questions are waiting for the model as docqa lets wait."""


class Failed(DocqaError):
    """The models could not start: the message says what to fix; asking again will not help."""


class NotIndexed(DocqaError):
    """Uploads stored but not indexed: the build could not run (another one holds the index, say).
    What was stored can be retried; what was refused, and why, is still said."""

    def __init__(self, why: DocqaError, stored: list[Upload], refused: list[str]) -> None:
        super().__init__(why.found if isinstance(why, NoDocuments) else str(why))
        self.stored, self.refused = stored, refused


class Left(Exception):
    """The caller went away while its question waited for a turn with the model."""


class Slots:
    """The model's turns, shared by every caller of one process (the web UI and the OpenAI API):
    at most `size` answers and summaries at once, and at most `waiting` more waiting for a turn,
    served in the order they came; beyond that a caller is told that docqa is busy rather than
    left waiting without end."""

    def __init__(self, size: int, waiting: int = MAX_WAITING) -> None:
        self.size, self.max_waiting = size, waiting
        self._count = threading.Lock()  # guards the two below
        self._running = 0  # turns given out, to callers that hold them or are waking to
        self._queue: deque[threading.Event] = deque()  # the waiting callers, first come first

    @contextmanager
    def turn(self, gone: threading.Event | None = None) -> Iterator[None]:
        """Wait for a turn with the model and hold it for the block (Busy at once when the turns
        are taken and as many callers as may wait are waiting; Left when `gone` is set while
        waiting: a caller who went away gives up its place rather than using the model later)."""
        with self._count:
            ticket = None
            if self._running < self.size and not self._queue:
                self._running += 1
            elif len(self._queue) >= self.max_waiting:
                raise Busy(
                    f"docqa is busy: {len(self._queue)} questions wait for the model; ask again shortly"
                )
            else:
                ticket = threading.Event()
                self._queue.append(ticket)
        if ticket is not None:
            try:
                while not ticket.wait(0.2):
                    if gone is not None and gone.is_set():
                        raise Left("the caller went away before its turn with the model")
            except BaseException:
                self._give_up(ticket)
                raise
        try:
            yield
        finally:
            self._release()

    def _give_up(self, ticket: threading.Event) -> None:
        """The caller of `ticket` stops waiting: out of the line, or, where it was given a turn
        just now, the turn passed on to the next in line."""
        with self._count:
            if not ticket.is_set():
                self._queue.remove(ticket)
                return
        self._release()

    def _release(self) -> None:
        """A turn ends: it goes to the first caller waiting, if any."""
        with self._count:
            if self._queue:
                self._queue.popleft().set()
            else:
                self._running -= 1

    @property
    def load(self) -> tuple[int, int]:
        """(answers and summaries the model is working on, those waiting for a turn)."""
        with self._count:
            return self._running, len(self._queue)


@dataclass(frozen=True)
class Status:
    state: str  # "loading", "empty" (no documents yet), "ready" or "failed"
    message: str
    documents: int = 0
    chunks: int = 0
    embedding_model: str = ""
    generator_model: str = ""
    device: str = ""
    runtime: str = ""
    working: int = 0  # answers and summaries the model is working on
    waiting: int = 0  # and those waiting for a turn


class Service:
    def __init__(
        self,
        config: Config,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        ray: RayServe | None = None,
    ):
        """With `ray`, the models are deployed on a Ray cluster (Ray Serve) rather than loaded here."""
        self.config = config
        self.library = Library(config.index_dir)
        self._generator, self._embedder, self._ray = generator, embedder, ray
        self._assistant: Assistant | None = None
        self._state, self._message = "loading", "Starting ..."
        self._index_lock = threading.Lock()  # one index update at a time from this process
        self._watch, self._stop = False, threading.Event()  # watching the folder; set to stop watching
        self._held = ExitStack()  # what `stop` lets go of: the generator's kept prompts
        self.slots = Slots(MODEL_TURNS * (ray.replicas.most if ray else 1))  # each replica decodes its own

    # Start-up
    def start(self, background: bool = True, watch: bool = False) -> Service:
        """Load the models and open (or first build) the index; the UI serves meanwhile. With
        `watch`, the documents folder is then watched and the index kept up to date."""
        self._watch = watch
        if background:
            threading.Thread(target=self._load_in_background, name="docqa-load", daemon=True).start()
        else:
            self._load()
        return self

    def _load_in_background(self) -> None:
        """`_load`, saying a failure the user can fix (the page and status say it too) in one
        line, not a traceback; one docqa did not foresee keeps its traceback."""
        try:
            self._load()
        except DocqaError:
            print(f"docqa: {self._message}", file=sys.stderr, flush=True)

    def _follow(self) -> None:
        """Update the index from the folder now (it may have changed while docqa was down), then
        after each change in it; questions are answered from each new index once it is built."""
        say = lambda message: print(f"docqa: {message}", file=sys.stderr, flush=True)  # noqa: E731

        def rebuild() -> None:
            report = self.reindex(log=say)
            say(report.summary())

        follow(self.config.docs, self.config.index_dir, rebuild, say, self._stop)

    def _load(self) -> None:
        try:
            started = time.perf_counter()
            self.config = as_built(self.config)  # an index built with --model or --chunk-tokens keeps them
            if self._ray is not None and self._embedder is None:
                self._message = "Deploying the models on the Ray cluster (each replica loads its own) ..."
                self._embedder, self._generator = self._ray.deploy(self.config)
            self._message = f"Loading the embedding model {self.config.embedding_model} ..."
            embedder = self._embedder or Embedder.load(
                self.config.embedding_model, self.config.device, self.config.dtype
            )
            self._embedder = embedder
            empty: NoDocuments | None = None
            if not (self.config.index_dir / "CURRENT").exists():
                self._message = f"Building the index of {self.config.docs} ..."
                try:
                    build(self.config, embedder, progress=False, wait=60)
                except NoDocuments as e:  # the page starts all the same, to take uploads
                    if not self._watch:  # the watch says it when it first looks
                        print(f"docqa: {e}", file=sys.stderr, flush=True)
                    empty = e
            self._message = f"Loading the generator {self.config.generator} (the first start converts it once, about a minute) ..."
            generator = self._generator or load_generator(self.config)
            self._generator = generator
            # Start from the prompts the last docqa command or server read; this server's are
            # written for the next when it stops.
            self._held.enter_context(remembering(generator))
            if empty:
                self._state, self._message = "empty", self._no_documents(empty)
            else:
                self._assistant = Assistant(
                    Index.open(self.config.index_dir, embedder), generator, self.config
                )
                self._state, self._message = (
                    "ready",
                    f"Ready (models loaded in {time.perf_counter() - started:.0f} s)",
                )
            if self._watch:
                threading.Thread(target=self._follow, name="docqa-watch", daemon=True).start()
        except Exception as e:  # shown on the page and in status; the server keeps serving
            self._state, self._message = "failed", f"docqa could not start: {e}"
            raise

    def _no_documents(self, why: NoDocuments) -> str:
        watched = " (docqa indexes what is added there)" if self._watch else " and restart docqa"
        return f"Nothing indexed yet: {why.found}. Add documents to {self.config.docs}{watched}, or upload them under Documents"

    @property
    def assistant(self) -> Assistant:
        if self._assistant is None:
            if self._state == "failed":
                raise Failed(self._message)
            if self._state == "empty":
                raise Empty(self._message)
            raise NotReady(f"docqa is still starting: {self._message}")
        return self._assistant

    def version(self) -> str:
        """Changes whenever what the page shows may have: the start-up state, a new index, or the
        uploads (one removed rebuilds nothing, yet every page must stop listing it)."""
        index = self._assistant.index.folder.name if self._assistant else ""
        return f"{self._state} {self._message} {index} {self.library.version()}"

    def status(self) -> Status:
        if self._assistant is None:
            return Status(self._state, self._message)
        a = self._assistant
        docs, chunks = a.index.table.count()
        return Status(
            self._state, self._message, docs, chunks, a.index.manifest["embedding"]["model"],
            a.generator.name, a.generator.device, runtime(a.generator), *self.slots.load,
        )  # fmt: skip

    # Asking and summarising: each takes a turn with the model (see Slots)
    def ask(self, question: str, scope: Scope | None = None) -> AnswerStream:
        """The answer as a stream, from the documents in `scope` if given. The question (and the
        scope) are checked now; reading the stream waits for a turn with the model (Busy when too
        many wait) and holds it until the stream ends, is closed, or is dropped."""
        return self._taking_turns(self.assistant.stream(question, scope))

    def chat(self, turns: list[Turn], question: str, scope: Scope | None = None) -> AnswerStream:
        """A question in the conversation of `turns` (the caller keeps them: the web UI in each
        browser), as `ask` answers one alone; the rewrite takes the same turn with the model."""
        return self._taking_turns(Conversation(self.assistant, turns).stream(question, scope))

    def _taking_turns(self, answering: AnswerStream) -> AnswerStream:
        def pieces(done: Callable) -> Iterator[str]:
            with self.slots.turn(stream.gone), answering:  # leaving closes the model's stream
                for piece in answering:
                    stream.standalone = answering.standalone
                    yield piece
                done(answering.answer)

        stream = AnswerStream(pieces)
        return stream

    def summarize(
        self,
        doc_id: str | None,
        progress: Callable[[int, int], None] | None = None,
        gone: threading.Event | None = None,
    ) -> Summary:
        """A summary (see Assistant.summarize) in its turn with the model. A caller that goes away
        (sets `gone`) gives up its place (Left) or stops the model at once (Stopped)."""
        assistant = self.assistant
        with self.slots.turn(gone):
            return assistant.summarize(doc_id, progress, gone)

    def tokens(self, texts: list[str]) -> list[int]:
        """Each text's tokens by the index's embedding model; a text longer than the model reads
        is refused (QuestionError), never cut short."""
        embedder = self.embedder
        tokens = [len(t) for t in embedder.tokenize(texts)]
        for i, count in enumerate(tokens):
            if count > embedder.max_tokens:
                raise QuestionError(
                    f"input[{i}] is {count} tokens long; {embedder.name} reads at most "
                    f"{embedder.max_tokens}: split it into shorter texts"
                )
        return tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts` by the index's embedding model (check their length with `tokens`)."""
        return self.embedder.embed(texts)

    @property
    def embedder(self) -> Embedder:
        """The index's embedding model, loaded (NotReady while docqa starts); with nothing
        indexed yet, the one the first build will use."""
        if self._state == "empty" and self._embedder is not None:
            return self._embedder
        return self.assistant.index.embedder

    @property
    def generator(self) -> Generator:
        """The generator, loaded (NotReady while docqa starts), documents indexed or not."""
        if self._state == "empty" and self._generator is not None:
            return self._generator
        return self.assistant.generator

    def document_text(self, doc_id: str) -> str:
        return self.assistant.index.document_text(doc_id) or ""

    # The document library
    def documents(self) -> list[DocumentInfo]:
        if self._state == "empty":
            return []
        return self.assistant.index.documents()

    def uploads(self) -> list[Upload]:
        return self.library.uploads()

    def upload(self, files: list[tuple[str, Path]]) -> tuple[list[Upload], list[str], BuildReport | None]:
        """Store each (name, temporary path) under a generated name, then index them.
        Returns what was stored, what was refused (with reasons), and the build report."""
        stored, refused = [], []
        # A file whose very bytes are indexed already would only be found twice by every question.
        listed = self.documents()  # and NotReady before anything is stored, while docqa starts
        indexed = {d.hash: str(d.metadata.get("file") or d.id) for d in listed}
        waiting = {}  # uploads stored but not indexed (another build held the index, say)
        for u in self.library.uploads():
            if u.status != "indexed" and (kept := self.library.uploads_dir / u.stored).is_file():
                waiting[content_hash(kept)] = u
        for name, path in files:
            try:
                small = Path(path).stat().st_size <= MAX_UPLOAD_BYTES  # a larger one is refused below
                digest = content_hash(Path(path)) if small else ""
                if digest in indexed:
                    raise ConfigError(f"{Path(name).name}: the same file is indexed already, as "
                                      f"{indexed[digest]}; remove that one first to add it again")  # fmt: skip
                if digest in waiting and waiting[digest].status == "failed":
                    raise ConfigError(f"{Path(name).name}: the same file is stored already, as {waiting[digest].name}, and could "
                                      f"not be read ({waiting[digest].error}); remove that one, and add the file once it is mended")  # fmt: skip
                if digest in waiting:
                    raise ConfigError(f"{Path(name).name}: the same file is stored already, as {waiting[digest].name}, "
                                      "and not yet indexed: retry it (Retry uploads that were not indexed) rather than add it again")  # fmt: skip
                upload = self.library.store(name, Path(path), MAX_UPLOAD_BYTES)
                stored.append(upload)
                indexed[digest] = upload.name
            except (ConfigError, OSError) as e:
                refused.append(str(e))
        try:
            report = self.reindex() if stored else None
        except DocqaError as e:
            raise NotIndexed(e, stored, refused) from e
        return stored, refused, report

    def remove(self, doc_id: str) -> BuildReport:
        """Take a document out of the index: an upload is deleted, a folder document excluded.
        NotReady, with nothing changed, while docqa starts."""
        index = self.assistant.index
        if (info := index.document(doc_id)) is None:
            raise ConfigError(f"no document {doc_id!r} in the index")
        if index.table.count()[0] <= 1:
            raise ConfigError(
                f"{info.title} is the only document in the index, and docqa keeps no empty index: add "
                f"another before removing it (or stop docqa and delete {self.config.index_dir} to start over)"
            )
        # Left out first, its file kept until the index no longer holds it: where the build fails
        # (the rest of the folder went meanwhile, another build holds the index), the document
        # stays, as the index does, and a later build does not take it out either.
        self.library.exclude(doc_id, info.hash)
        try:
            report = self.reindex()
        except BaseException:
            self.library.include({doc_id})
            raise
        # A .jsonl record of the folder may have any id, one that reads like an upload's too.
        if (
            doc_id.startswith(UPLOAD_PREFIX)
            and (stored := doc_id.removeprefix(UPLOAD_PREFIX)) in self.library.names()
        ):
            self.library.delete(stored)
            self.library.include({doc_id})
        return report

    def forget_upload(self, stored: str) -> BuildReport | None:
        """Remove an upload that never made it into the index (NotReady, with nothing changed,
        while docqa starts); None where there is still nothing to index."""
        if self._state != "empty":
            self.assistant  # noqa: B018 (raises NotReady)
        self.library.delete(stored)
        self.library.include({UPLOAD_PREFIX + stored})  # nothing of it is left out any more
        try:
            return self.reindex()
        except NoDocuments:
            if self._state != "empty":
                raise
            return None

    def retry(self) -> tuple[BuildReport, list[Upload]]:
        """Index again every stored upload that is pending or failed; returns those still failing."""
        report = self.reindex()
        return report, [u for u in self.library.uploads() if u.status != "indexed"]

    def stop(self) -> None:
        """Stop watching the documents folder; write the prompts read for the next process; take
        down the models' Ray deployments, if any."""
        self._stop.set()
        self._held.close()
        if self._ray is not None:
            self._ray.stop()

    def reindex(self, log: Callable[[str], None] = lambda m: None) -> BuildReport:
        """Bring the index up to date (uploads included) and answer from the new one."""
        with self._index_lock:
            if self._state == "empty":
                return self._first_build(log)
            assistant = self.assistant
            self.config = config = as_built(self.config)
            embedder = assistant.index.embedder
            if embedder.name != config.embedding_model:  # rebuilt with another model meanwhile
                embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
            report = build(config, embedder, progress=True, wait=120, log=log)
            # The segments both generations list stay open and shared; the old index lets go of
            # the rest once the requests still using it are done (it is closed when collected).
            index = assistant.index.reopen(embedder)
            self._assistant = Assistant(index, assistant.generator, config)
        return report

    def _first_build(self, log: Callable[[str], None]) -> BuildReport:
        """The first index, of documents added to the folder or uploaded since docqa started
        without any (the index lock held); questions are answered from it once it is built."""
        assert self._embedder is not None and self._generator is not None
        try:
            report = build(self.config, self._embedder, progress=True, wait=120, log=log)
        except NoDocuments as e:  # what the page says is what this build found
            self._message = self._no_documents(e)
            raise
        self._assistant = Assistant(
            Index.open(self.config.index_dir, self._embedder), self._generator, self.config
        )
        self._state, self._message = "ready", "Ready"
        return report
