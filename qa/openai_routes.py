"""The OpenAI-compatible routes of `docqa serve`: POST /v1/chat/completions, POST /v1/embeddings,
GET /v1/models and GET /v1/models/{model}. A body is read within a size cap and checked by
openai_api; the Service answers, with the same turns at the model as the web UI. The blocking work
runs on worker threads of the API's own, so questions waiting for a turn never hold the threads
the web UI needs. A client that goes away stops its answer: the model's stream is closed at the
next piece, and a question still waiting for its turn gives up its place."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid

import anyio
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from embeddings.errors import DocqaError, QuestionError, Transient
from qa import openai_api
from qa.assistant import AnswerStream
from qa.openai_api import ApiError
from qa.rewrites import Rewrites
from qa.service import Busy, Empty, Left, NotReady, Service

log = logging.getLogger("docqa.openai")
MAX_BODY_BYTES = 1_000_000
MAX_EMBEDDINGS_BODY_BYTES = 16_000_000  # 2,048 texts of the embedding model's longest
EMBEDDING_BATCH = 256  # texts embedded between checks that the client is still there
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
ROUTES = "POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models and GET /v1/models/{model}"


def router(service: Service) -> APIRouter:
    api = APIRouter(prefix="/v1")
    threads = anyio.CapacityLimiter(service.slots.size + service.slots.max_waiting + 2)
    # Embedding keeps the CPU busy by itself: one request at a time, on a thread of its own, so
    # that a flood of embedding requests never holds the threads the questions need.
    embedding, embedding_thread = anyio.Lock(), anyio.CapacityLimiter(1)
    started = int(time.time())
    rewrites = Rewrites()

    async def run(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=threads)

    @api.api_route("/models", methods=["GET", "HEAD"])
    @_errors
    async def models() -> Response:
        return JSONResponse(openai_api.models(service.generator.name, service.embedder.name, started))

    @api.api_route("/models/{model:path}", methods=["GET", "HEAD"])
    @_errors
    async def model(model: str) -> Response:
        served = openai_api.models(service.generator.name, service.embedder.name, started)["data"]
        if found := [m for m in served if m["id"] == model]:
            return JSONResponse(found[0])
        names = " and ".join(m["id"] for m in served)
        raise ApiError(404, f"docqa serves no model {model!r}: it serves {names}", "model", "model_not_found")

    @api.post("/chat/completions")
    @_errors
    async def chat(request: Request) -> Response:
        asked = openai_api.chat_request(await _json(request), service.assistant.index.embedder.name)
        # A scope is read against the index: off the event loop.
        stream = await run(_ask, service, asked, rewrites)
        reply, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        try:
            first = await _first(stream, request, run)  # Busy comes before any header
        except Left:
            stream.close()
            return Response(status_code=204)  # nobody to answer
        except BaseException:
            stream.close()
            raise
        if asked.stream:
            events = _events(stream, first, reply, created, run, asked, rewrites)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
                                     background=BackgroundTask(stream.close))  # fmt: skip
        try:
            piece = first
            while piece is not None:
                if await request.is_disconnected():
                    return Response(status_code=204)  # nobody to answer; the finally stops the model
                piece = await run(next, stream, None)
            rewrites.keep(asked, stream.answer.text, stream.answer)
            return JSONResponse(openai_api.completion(stream.answer, reply, created))
        finally:
            stream.close()

    @api.post("/embeddings")
    @_errors
    async def embeddings(request: Request) -> Response:
        body = await _json(request, MAX_EMBEDDINGS_BODY_BYTES)
        embedder = service.embedder
        asked = openai_api.embeddings_request(body, embedder.name, embedder.dim)
        vectors = []
        async with embedding:
            try:  # every text's length first: a text too long is refused before any is embedded
                tokens = await anyio.to_thread.run_sync(service.tokens, asked.texts, limiter=embedding_thread)
            except QuestionError as e:
                raise ApiError(400, str(e), "input") from None
            for first in range(0, len(asked.texts), EMBEDDING_BATCH):
                if await request.is_disconnected():  # nobody to answer (a client that timed out)
                    return Response(status_code=204)
                texts = asked.texts[first : first + EMBEDDING_BATCH]
                vectors.append(await anyio.to_thread.run_sync(service.embed, texts, limiter=embedding_thread))
        return JSONResponse(
            openai_api.embeddings(np.concatenate(vectors), tokens, embedder.name, asked.base64)
        )

    @api.api_route("", methods=METHODS, include_in_schema=False)
    @api.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
    async def unknown(request: Request, path: str = "") -> Response:
        where = f"/v1/{path}" if path else "/v1"
        return _error(ApiError(404, f"docqa has no route {request.method} {where}; it serves {ROUTES}"))

    return api


def _ask(service: Service, asked: openai_api.ChatRequest, rewrites: Rewrites) -> AnswerStream:
    """The answer's stream (checked now, read later), asked in the conversation of the earlier
    messages if any (their follow-ups as this server rewrote them); or a 400 naming what docqa
    cannot ask: the question, or a scope that holds no document or names one the index lacks."""
    try:
        if conversation := openai_api.turns(asked.earlier, rewrites.get):
            return service.chat(conversation, asked.question, asked.scope)
        return service.ask(asked.question, asked.scope)
    except QuestionError as e:
        scoped = asked.scope is not None and _fine(service, asked.question)
        raise ApiError(400, str(e), "docqa.scope" if scoped else "messages") from None


def _fine(service: Service, question: str) -> bool:
    try:
        service.assistant.check(question)
    except QuestionError:
        return False
    return True


async def _first(stream: AnswerStream, request: Request, run) -> str | None:
    """The stream's first piece, which waits for a turn with the model: a client that goes away
    meanwhile gives up its place (the stream raises Left) instead of having the model answer no one."""
    reading = asyncio.ensure_future(run(next, stream, None))
    try:
        while not (await asyncio.wait({reading}, timeout=0.5))[0]:
            if await request.is_disconnected():
                stream.gone.set()
        return reading.result()
    finally:
        if not reading.done():  # this request was cancelled (the server stops)
            stream.gone.set()


async def _events(stream: AnswerStream, first: str | None, reply: str, created: int, run,
                  asked: openai_api.ChatRequest, rewrites: Rewrites):  # fmt: skip
    """The reply as server-sent events: the model's text piece by piece, then (when docqa's checks
    withdrew it) a piece that says so, then a last chunk with the docqa field, then (when asked)
    the usage, then [DONE]."""
    chunk, event = openai_api.chunk, openai_api.event
    streamed = first or ""
    try:
        yield event(chunk(reply, created, {"role": "assistant", "content": streamed}))
        while (piece := await run(next, stream, None)) is not None:
            streamed += piece
            yield event(chunk(reply, created, {"content": piece}))
        answer = stream.answer
        note = openai_api.withdrawal(streamed, answer)
        if note:
            yield event(chunk(reply, created, {"content": note}))
        rewrites.keep(asked, streamed + note, answer)
        yield event(chunk(reply, created, {}, answer))
        if asked.usage:
            yield event(openai_api.usage_chunk(reply, created, answer))
        yield openai_api.DONE
    except Exception as e:  # the headers are sent: the error goes in the stream, as OpenAI's do
        yield event(_failure(e).body)
    finally:
        stream.close()


def _errors(endpoint):
    """docqa's errors as OpenAI error replies, each with the status a client can act on."""

    @functools.wraps(endpoint)
    async def answered(*args, **kwargs) -> Response:
        try:
            return await endpoint(*args, **kwargs)
        except Exception as e:
            error = _failure(e)
            return _error(error, _AFTER.get(error.status))

    return answered


# What a client is told to do after an error: 429 and 503 (busy, loading) pass, so ask again
# after a while; a 500 is docqa's to fix (the message says how), so asking again only repeats it
# (the openai clients retry a 500 unless told not to).
_AFTER = {
    429: {"Retry-After": "5"},
    503: {"Retry-After": "10"},
    500: {"x-should-retry": "false"},
    409: {"x-should-retry": "false"},
}


def _failure(e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, QuestionError):
        return ApiError(400, str(e), "messages")
    if isinstance(e, Busy):
        return ApiError(429, str(e), code="busy")
    if isinstance(e, Empty):  # until someone adds a document: asking again will not help
        return ApiError(409, str(e), code="no_documents")
    if isinstance(e, NotReady):
        return ApiError(503, f"{e}; try again in a moment")
    if isinstance(e, Transient):  # a Ray replica lost mid-answer, say: another answers
        return ApiError(503, str(e))
    if isinstance(e, DocqaError):  # the index or the models: the operator's to fix, as the message says
        return ApiError(500, str(e))
    log.exception("an OpenAI API request failed")
    return ApiError(500, f"docqa failed ({type(e).__name__}: {e}); its log has the details")


def _error(error: ApiError, headers: dict | None = None) -> Response:
    """The error as JSON, non-ASCII escaped: a name the client sent may hold a lone surrogate."""
    return Response(
        json.dumps(error.body), status_code=error.status, headers=headers, media_type="application/json"
    )


async def _json(request: Request, limit: int = MAX_BODY_BYTES) -> object:
    """The request body as JSON, read no further than `limit` bytes."""
    too_big = ApiError(413, f"the request body is over {limit:,} bytes; send less at a time")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    try:
        return json.loads(body)
    except ValueError as e:
        raise ApiError(400, f"the request body is not valid JSON ({e}); send a JSON object") from None
    except RecursionError:
        raise ApiError(400, "the request body's JSON is nested too deeply to read") from None
