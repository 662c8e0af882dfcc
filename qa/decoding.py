"""Several questions decoded together: one thread owns the model and runs its batch.

Decoding one token on a CPU is bound by reading the weights, so a step for four sequences costs
little more than a step for one. Requests join the running batch between steps (or, for a
runtime that batches statically, when the batch is empty); a reader that stops listening makes
its request leave at the next step. Nothing here holds a lock while a caller is reading.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("docqa.decoding")


class Batch(Protocol):
    """A runtime's decoding state for the sequences it decodes together (greedy)."""

    capacity: int  # the most sequences decoded together
    # After each step, by sequence: the probability the model gave each token it made (greedy: the
    # highest), in order; a runtime that does not measure them leaves a sequence out.
    chances: dict[object, tuple[float, ...]]
    context: int  # the most tokens a sequence may take, its prompt and what is decoded together

    def free(self) -> int:
        """How many sequences may join now (0 while a static batch runs)."""
        ...

    def join(self, key: object, prompt: Sequence[int]) -> None: ...

    def step(self) -> dict[object, int | tuple[int, ...] | None]:
        """One unit of work (a prompt chunk or one decoding step): the next token of each
        sequence that made one (or its next tokens, where a step made several), or None for a
        sequence the runtime ended."""
        ...

    def leave(self, key: object) -> None: ...


_END = object()


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    max_new_tokens: int
    stop: frozenset[int]
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    made: int = 0
    chances: list[float | None] = field(default_factory=list)  # of each token put out, None: not measured


class TokenStream:
    """The generated token ids of one request, as they are decoded. `close()` (or dropping the
    stream) makes the request leave the batch."""

    def __init__(self, request: _Request, wake: threading.Event) -> None:
        self._request, self._wake, self._done = request, wake, False

    def __iter__(self) -> Iterator[int]:
        return self

    @property
    def chances(self) -> list[float | None]:
        """The probability the model gave each token read from this stream so far (None where the
        runtime does not measure it)."""
        return self._request.chances

    def __next__(self) -> int:
        if self._done:
            raise StopIteration
        item = self._request.out.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._request.cancelled.set()
            self._wake.set()

    def __del__(self) -> None:
        self.close()


class Scheduler:
    """Feeds requests to a Batch from one daemon thread, for as long as the process runs."""

    def __init__(self, batch: Batch, name: str = "docqa-decoder") -> None:
        self.batch = batch
        self._waiting: list[_Request] = []
        self._active: dict[int, _Request] = {}
        self._keys = itertools.count()  # never reused, unlike id(): a late token finds no one
        self._lock = threading.Lock()  # guards _waiting only; never held while decoding
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # A process that ends while a step runs (a stream closed early, then the script's end)
        # would tear the runtime down under it, and ONNX Runtime aborts the process: the step
        # ends first.
        atexit.register(self.stop)

    def stop(self, timeout: float = 30) -> None:
        """End the decoding thread once its step in progress is done (at the process's exit),
        then the batch's own thread, where it has one."""
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if not self._thread.is_alive() and (stop := getattr(self.batch, "stop", None)) is not None:
                stop(timeout)

    def submit(self, prompt: Sequence[int], max_new_tokens: int, stop: Sequence[int]) -> TokenStream:
        request = _Request(list(prompt), max_new_tokens, frozenset(stop))
        with self._lock:
            self._waiting.append(request)
        self._wake.set()
        return TokenStream(request, self._wake)

    @property
    def load(self) -> tuple[int, int]:
        """(requests decoding, requests waiting)."""
        with self._lock:
            return len(self._active), len(self._waiting)

    def _run(self) -> None:
        while not self._stopping:
            if not self._active and not self._waiting:
                self._wake.wait()
                if self._stopping:
                    return
            self._wake.clear()
            self._drop_cancelled()
            self._admit()
            if not self._active:
                self._wake.wait(0.05)  # the batch takes no one yet (a static batch still ending)
                continue
            try:
                tokens = self.batch.step()
            except BaseException as e:  # every waiting reader gets the error; the thread goes on
                log.exception("decoding failed")
                for key, request in list(self._active.items()):
                    request.out.put(e)
                    self._leave(key)
                continue
            for key, made in tokens.items():
                chances = self.batch.chances.get(key, ())
                for i, token in enumerate(made if isinstance(made, tuple) else (made,)):
                    request = self._active.get(key)  # type: ignore[call-overload]
                    if request is None:  # gone, or finished by a token before this one
                        break
                    if token is None or token in request.stop:
                        self._finish(key)
                        break
                    request.chances.append(chances[i] if i < len(chances) else None)  # before the token
                    request.out.put(token)
                    request.made += 1
                    if request.made >= request.max_new_tokens:
                        self._finish(key)

    def _admit(self) -> None:
        with self._lock:
            room = self.batch.free()
            joining, self._waiting = self._waiting[:room], self._waiting[room:]
        for request in joining:
            if request.cancelled.is_set() or request.max_new_tokens < 1:
                request.out.put(_END)
                continue
            key = next(self._keys)
            self._active[key] = request
            try:
                self.batch.join(key, request.prompt)
            except BaseException as e:  # a prompt the model cannot take: that reader's error alone
                del self._active[key]
                request.out.put(e)

    def _drop_cancelled(self) -> None:
        for key, request in list(self._active.items()):
            if request.cancelled.is_set():
                self._finish(key)
        with self._lock:
            gone = [r for r in self._waiting if r.cancelled.is_set()]
            self._waiting = [r for r in self._waiting if not r.cancelled.is_set()]
        for request in gone:
            request.out.put(_END)

    def _finish(self, key: int) -> None:
        self._active[key].out.put(_END)
        self._leave(key)

    def _leave(self, key: int) -> None:
        del self._active[key]
        try:
            self.batch.leave(key)
        except Exception:  # the batch's own bookkeeping; the request is over either way
            log.exception("leaving the batch failed")
