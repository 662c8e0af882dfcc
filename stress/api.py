"""The OpenAI-compatible routes of a running `docqa serve` (started with an API key) under attack
and load: every route asked with no key, a wrong one and malformed ones; fuzzed bodies for
/v1/chat/completions and /v1/embeddings; many concurrent streams through the official `openai`
client; and clients that hang up mid-stream, whose answers must stop and free their turn."""

from __future__ import annotations

import base64
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import numpy as np

if TYPE_CHECKING:
    from stress.serving import Server

OFF_TOPIC = "What is the boiling point of tungsten?"  # docqa declines it before the model: fuzz stays cheap
LONG = "Tell everything the article says about the meeting, who took part, where, what was demanded and why."
CHAT = {"model": "docqa", "messages": [{"role": "user", "content": OFF_TOPIC}]}
EMBED = {"model": "all-MiniLM-L6-v2", "input": ["a short text", "another one"]}
ROUTES = [
    ("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/gradio_api/file=/etc/passwd"),
    ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/call/ask"), ("GET", "/gradio_api/queue/data"),
    ("GET", "/assets/index.js"), ("GET", "/favicon.ico"), ("GET", "/theme.css"), ("GET", "/login"),
    ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/nothing"),
    ("OPTIONS", "/v1/chat/completions"), ("GET", "/no-such-page"), ("GET", "/docs"), ("GET", "/openapi.json"),
]  # fmt: skip
ANSWERED = {200, 400, 404, 413, 429}  # anything else (a 500, a dropped connection) is a failure


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def keys(server: Server, key: str) -> dict:
    """No route answers without the key, with a wrong one or a malformed one; each answers with it."""
    wrong = {
        "no key": {}, "key in the query string": {}, "wrong bearer": {"Authorization": "Bearer " + "x" * len(key)},
        "empty bearer": {"Authorization": "Bearer"}, "key with more after it": {"Authorization": f"Bearer {key}x"},
        "key as the user name": {"Authorization": _basic(key, "")}, "wrong password": {"Authorization": _basic("a", "b")},
        "broken basic": {"Authorization": "Basic %%%"}, "other scheme": {"Authorization": f"Token {key}"},
        "key in another header": {"X-Api-Key": key}, "key in a cookie": {"Cookie": f"access-token={key}"},
    }  # fmt: skip
    right = {"bearer": {"Authorization": f"Bearer {key}"}, "basic": {"Authorization": _basic("anyone", key)}}
    failures, cases = [], 0
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=60) as http:
        for method, path in ROUTES:
            for how, headers in wrong.items():
                cases += 1
                query = {"api_key": key} if "query" in how else None
                reply = http.request(method, path, headers=headers, params=query)
                if reply.status_code != 401:
                    failures.append(f"{method} {path} with {how}: {reply.status_code}, not 401")
            for how, headers in right.items():
                cases += 1
                if http.request(method, path, headers=headers).status_code == 401:
                    failures.append(f"{method} {path} refused the right key ({how})")
    return {"test": "every route asked with no key, wrong and malformed keys, and the right one", "cases": cases,
            "failures": failures}  # fmt: skip


def bodies(rng: random.Random, count: int) -> Iterator[tuple[str, str, bytes]]:
    """(kind, route, body): random bytes, broken and mistyped JSON, fields set to anything."""
    values = [None, True, 0, -1, 2, 1.5, 1e308, float("nan"), "", "x" * 5000, "\x00\ud800\u202e", [], [1, 2],
              [[1, 2]], {}, {"a": {"b": []}}, "docqa", ["text"], [{"role": "user"}], [{"type": "image_url"}],
              [{"role": "user", "content": [{"type": "text", "text": OFF_TOPIC}]}], {"type": "json_object"},
              {"scope": {"doc_ids": ["nope.txt"]}}, {"scope": {"since": "yesterday", "until": 3}},
              {"scope": {"under": "../..", "formats": [None]}}, {"scope": []}, {"scope": {"doc_id": "x"}}]  # fmt: skip
    fields = ["model", "messages", "stream", "n", "temperature", "tools", "stop", "docqa", "response_format",
              "max_tokens", "stream_options", "logprobs", "input", "encoding_format", "dimensions", "user", "ω"]  # fmt: skip
    for i in range(count):
        route, base = rng.choice([("/v1/chat/completions", CHAT), ("/v1/embeddings", EMBED)])
        match i % 8:
            case 0:
                yield "random bytes", route, rng.randbytes(rng.randint(0, 3000))
            case 1:
                text = json.dumps(base)
                yield "truncated JSON", route, text[: rng.randint(0, len(text) - 1)].encode()
            case 2:
                depth = rng.choice([50, 1000, 100_000])
                nested = json.dumps({**base, "messages": None}).replace("null", "[" * depth + "]" * depth)
                yield "deep nesting", route, nested.encode()
            case 3:
                yield "not an object", route, json.dumps(rng.choice([[base], "text", 42, None])).encode()
            case 4:
                body = dict(base)
                body.pop(rng.choice(list(body)))
                yield "a field left out", route, json.dumps(body).encode()
            case _:
                body = {**base, rng.choice(fields): rng.choice(values)}
                if rng.random() < 0.3:
                    body[rng.choice(fields)] = rng.choice(values)
                yield "fields set to anything", route, json.dumps(body).encode()
    yield "2 MB body", "/v1/chat/completions", b" " * 2_000_000
    yield "embeddings of token ids", "/v1/embeddings", json.dumps({**EMBED, "input": [[1, 2, 3]]}).encode()
    yield "embeddings too long", "/v1/embeddings", json.dumps({**EMBED, "input": "word " * 400}).encode()
    yield "a lone surrogate", "/v1/embeddings", json.dumps({**EMBED, "input": ["a \ud800 b"]}).encode()
    yield "a lone surrogate", "/v1/chat/completions", json.dumps({**CHAT, "messages": [
        {"role": "user", "content": "Who \udfff mediated?"}]}).encode()  # fmt: skip


def fuzz_bodies(server: Server, seed: int, count: int) -> dict:
    """Every fuzzed body gets an answer or an OpenAI error with a message; never a 500 or a drop."""
    failures, outcomes = [], Counter()
    cases = list(bodies(random.Random(seed), count))
    with httpx.Client(base_url=server.url.rstrip("/"), headers=server.headers, timeout=120) as http:
        for kind, route, body in cases:
            try:
                reply = http.post(route, content=body, headers={"Content-Type": "application/json"})
                problem = _problem(reply)
            except httpx.HTTPError as e:
                problem, reply = f"{type(e).__name__}: {e}", None
            outcomes[f"{reply.status_code if reply is not None else 'no reply'}"] += 1
            if problem:
                failures.append(f"{kind} to {route} ({body[:80]!r}): {problem}")
            if not server.alive():
                failures.append(f"{kind} to {route}: the server died")
                break
    return {"test": "fuzzed bodies for /v1/chat/completions and /v1/embeddings", "cases": len(cases),
            "failures": failures, "outcomes": dict(outcomes)}  # fmt: skip


def _problem(reply: httpx.Response) -> str | None:
    """What is wrong with a reply to a fuzzed body, or None."""
    if reply.status_code not in ANSWERED:
        return f"status {reply.status_code}: {reply.text[:200]}"
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        ended = reply.text.rstrip().endswith("data: [DONE]")
        return None if ended else f"a stream that did not end: {reply.text[-200:]}"
    try:
        data = reply.json()
    except ValueError:
        return f"status {reply.status_code} without JSON: {reply.text[:200]}"
    error = data.get("error") if isinstance(data, dict) else None
    if reply.status_code != 200 and not (isinstance(error, dict) and error.get("message")):
        return f"status {reply.status_code} without an error message: {reply.text[:200]}"
    return None


def concurrent_streams(server: Server, key: str, questions: list[str], clients: int) -> dict:
    """`clients` streams at once through the official client: each ends with its sources and [DONE]."""
    import openai

    errors, seconds = [], []

    def one(n: int) -> None:
        client = openai.OpenAI(base_url=server.url + "v1", api_key=key, max_retries=0, timeout=900)
        started = time.perf_counter()
        try:
            chunks = list(client.chat.completions.create(model="docqa", stream=True, messages=[
                {"role": "user", "content": questions[n % len(questions)]}]))  # fmt: skip
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            last = chunks[-1]
            if not text or last.choices[0].finish_reason != "stop" or "docqa" not in last.model_extra:
                errors.append(f"stream {n}: ended without text or sources: {text[:100]!r}")
            seconds.append(time.perf_counter() - started)
        except Exception as e:  # noqa: BLE001 (counted as this stream's error)
            errors.append(f"stream {n}: {type(e).__name__}: {e}")

    _at_once(one, clients)
    if not server.alive():
        errors.append("the server died")
    return {"clients": clients, "errors": errors, "completed": len(seconds),
            "p95_s": round(float(np.percentile(seconds, 95)), 2) if seconds else None}  # fmt: skip


def clients_that_leave(server: Server, key: str, clients: int) -> dict:
    """`clients` streams of a long answer, each dropped after its first piece: every answer must
    stop, so the model is idle again well before one whole answer alone would have ended."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "docqa", "stream": True, "messages": [{"role": "user", "content": LONG}]}
    started = time.perf_counter()
    with httpx.Client(base_url=server.url.rstrip("/"), headers=headers, timeout=900) as http:
        whole = http.post("/v1/chat/completions", json={**body, "stream": False})
    alone_s = time.perf_counter() - started
    errors: list[str] = []

    def leave(n: int) -> None:
        try:
            url = server.url + "v1/chat/completions"
            with httpx.stream("POST", url, json=body, headers=headers, timeout=900) as reply:
                for line in reply.iter_lines():
                    if '"content": "' in line and '"content": ""' not in line:
                        return  # the first piece of text: hang up
                errors.append(f"leaver {n}: the stream ended before any text")
        except httpx.HTTPError as e:
            errors.append(f"leaver {n}: {type(e).__name__}: {e}")

    _at_once(leave, clients)
    left = time.perf_counter()
    idle_s = _until_idle(server, deadline_s=max(120.0, 3 * alone_s))
    if idle_s is None:
        errors.append("the model was still busy with answers nobody reads")
    if whole.status_code != 200:
        errors.append(f"the long answer alone: {whole.status_code} {whole.text[:200]}")
    elif not whole.json()["docqa"]["seconds"]["generate"]:
        errors.append("the long question never reached the model, so no answer was there to stop")
    if not server.alive():
        errors.append("the server died")
    return {"clients": clients, "errors": errors,
            "alone_s": round(alone_s, 1), "idle_after_s": None if idle_s is None else round(idle_s - left, 1)}  # fmt: skip


def _until_idle(server: Server, deadline_s: float) -> float | None:
    """The time the server's status first shows no answer at the model nor waiting, or None."""
    from gradio_client import Client

    client = Client(server.url, headers=server.headers, verbose=False)
    deadline = time.perf_counter() + deadline_s
    while time.perf_counter() < deadline:
        with contextlib.suppress(Exception):
            if "answering" not in client.predict(api_name="/status"):
                return time.perf_counter()
        time.sleep(0.2)
    return None


def run(
    server: Server, key: str, questions: list[str], seed: int, fuzz: int, streams: int, leavers: int
) -> dict:
    return {"keys": keys(server, key), "fuzz": fuzz_bodies(server, seed, fuzz),
            "streams": concurrent_streams(server, key, questions, streams),
            "leavers": clients_that_leave(server, key, leavers)}  # fmt: skip


def _at_once(client: Callable[[int], None], clients: int) -> None:
    """Run `client(0)` ... `client(clients - 1)` each in its own thread, all at once; wait for all."""
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
