"""The whole app of `docqa serve` (OpenAI API, web UI, key guard) running in uvicorn on a free port
with fake models, driven over real HTTP: clients that leave, turns shared with the page, bodies
that are too big or broken, and the key on every route."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from embeddings.config import Config
from embeddings.errors import DocqaError
from qa.answer import NOT_IN_DOCUMENTS
from qa.service import Service, Slots
from qa.web import app
from tests.fakes import FakeEmbedder, FakeGenerator, write_docs

KEY = "test-key-0123456789abcdef"
QUESTION = "Who mediated the meeting in Tehran?"
DOCS = {
    "talks.txt": "The meeting in Tehran was mediated by Ismail Khan. The talks ended without result.",
    "wheat.txt": "India sent 50,000 tonnes of wheat to Afghanistan through Iran.",
}


class Paced(FakeGenerator):
    """A reply written a word at a time, only while `open` is set; counts the words each stream
    wrote and how many streams ran at once."""

    def __init__(self, reply: str, pause: float = 0.0) -> None:
        super().__init__(reply)
        self.pause, self.open, self.ended = pause, threading.Event(), threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.written: list[int] = []

    def stream(self, messages, max_new_tokens):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        count = 0
        try:
            self.open.wait()
            for word in super().stream(messages, max_new_tokens):
                time.sleep(self.pause)
                count += 1
                yield word
        finally:
            with self.lock:
                self.running -= 1
                self.written.append(count)
            self.ended.set()


LONG = "The meeting was mediated by Ismail Khan. [1] " + "It went on. " * 1000


def make_service(tmp_path: Path, generator, **settings) -> Service:
    docs = write_docs(tmp_path / "docs", DOCS)
    config = Config(docs=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4, min_relevance=0.0,
                    support_threshold=0.0, min_grounding=0.0, answer_tokens=5000)  # fmt: skip
    return Service(replace(config, **settings), generator, FakeEmbedder()).start(background=False)


class Running:
    """An ASGI app served by uvicorn from a thread, on a free localhost port."""

    def __init__(self, asgi) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        until(lambda: self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def serving() -> Iterator:
    started: list[Running] = []

    def start(service: Service, key: str | None = None, origins: tuple[str, ...] = ()) -> str:
        started.append(Running(app(service, key, origins)))
        return started[-1].url

    yield start
    for running in started:
        running.stop()


def until(condition, seconds: float = 60) -> None:
    """Wait for something the server does in its own time (a bound, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not get there")
        time.sleep(0.02)


def chat(**fields) -> dict:
    return {"model": "docqa", "messages": [{"role": "user", "content": QUESTION}], **fields}


def test_streamed_and_whole_replies_through_the_openai_client(tmp_path, serving):
    service = make_service(tmp_path, FakeGenerator("The meeting was mediated by Ismail Khan. [1]"))
    client = openai.OpenAI(base_url=serving(service) + "/v1", api_key="unused")
    whole = client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}])
    assert whole.choices[0].message.content == "The meeting was mediated by Ismail Khan. [1]"
    assert whole.docqa["citations"][0]["doc_id"] == "talks.txt" and not whole.docqa["abstained"]
    chunks = list(client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True))  # fmt: skip
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 3 and "".join(pieces) == whole.choices[0].message.content
    assert whole.choices[0].finish_reason == "stop" and not whole.docqa["cut"]
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].docqa == whole.docqa | {
        "seconds": chunks[-1].docqa["seconds"]
    }
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > whole.usage.completion_tokens
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    counted = list(client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}],
                                                  stream=True, stream_options={"include_usage": True}))  # fmt: skip
    assert counted[-1].choices == [] and counted[-1].usage == whole.usage
    assert all(c.usage is None for c in counted[:-1]) and chunks[-1].usage is None, "only when asked"
    assert [m.id for m in client.models.list()] == ["docqa", "fake-embedder"]
    assert client.models.retrieve("docqa").owned_by == "docqa"
    with pytest.raises(openai.NotFoundError, match="serves no model 'gpt-4o'"):
        client.models.retrieve("gpt-4o")


def test_an_answer_cut_at_the_token_limit_ends_for_length_as_openai_says_it(tmp_path, serving):
    service = make_service(tmp_path, FakeGenerator(LONG), answer_tokens=8)
    client = openai.OpenAI(base_url=serving(service) + "/v1", api_key="unused")
    whole = client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}])
    assert whole.choices[0].finish_reason == "length" and whole.docqa["cut"] and not whole.docqa["abstained"]
    assert whole.choices[0].message.content.startswith("The meeting was mediated by")
    assert whole.usage.completion_tokens >= 8
    chunks = list(client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True))  # fmt: skip
    assert chunks[-1].choices[0].finish_reason == "length" and chunks[-1].docqa["cut"]


def test_a_question_scoped_in_the_docqa_field_is_asked_of_those_documents_only(tmp_path, serving):
    generator = FakeGenerator("India sent 50,000 tonnes of wheat. [1]")
    client = openai.OpenAI(base_url=serving(make_service(tmp_path, generator)) + "/v1", api_key="unused")
    question = [{"role": "user", "content": "What did India send through Iran, and who mediated in Tehran?"}]
    for stream in (False, True):
        reply = client.chat.completions.create(model="docqa", messages=question, stream=stream,
                                               extra_body={"docqa": {"scope": {"doc_ids": ["wheat.txt"]}}})  # fmt: skip
        docqa = list(reply)[-1].docqa if stream else reply.docqa
        assert {p["doc_id"] for p in docqa["passages"]} == {"wheat.txt"}
        prompt = "".join(m["content"] for m in generator.prompts[-1])
        assert "50,000 tonnes" in prompt and "Ismail Khan" not in prompt
    refusals = [
        ({"doc_ids": ["nope.txt"]}, question, "docqa.scope", "no document 'nope.txt' in the index"),
        ({"since": "2030-01-01"}, question, "docqa.scope", "no indexed document matches the scope (documents "
         "dated 2030-01-01 or later)"),
        ({"under": "reports"}, question, "docqa.scope", "widen it"),
        ({"doc_ids": ["wheat.txt"]}, [{"role": "user", "content": "x" * 3000}], "messages", "the limit is 2,000"),
    ]  # fmt: skip
    for scope, messages, param, says in refusals:
        for stream in (False, True):  # refused before anything is streamed
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="docqa", messages=messages, stream=stream,
                                               extra_body={"docqa": {"scope": scope}})  # fmt: skip
            assert refused.value.param == param and says in refused.value.message


def test_earlier_messages_are_the_conversation_a_follow_up_is_asked_in(tmp_path, serving):
    def reply(messages) -> str:
        user = messages[-1]["content"]
        if user.startswith("Conversation:"):  # the rewrite prompt
            return "Where did Ismail Khan mediate the meeting?"
        return "The meeting was mediated by Ismail Khan in Tehran. [1]"

    generator = FakeGenerator(reply)
    client = openai.OpenAI(base_url=serving(make_service(tmp_path, generator)) + "/v1", api_key="unused")
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Ismail Khan. [1]"},
                {"role": "user", "content": "Where did he mediate the meeting?"}]  # fmt: skip
    for stream in (False, True):
        reply_ = client.chat.completions.create(model="docqa", messages=messages, stream=stream)
        docqa = list(reply_)[-1].docqa if stream else reply_.docqa
        assert docqa["standalone"] == "Where did Ismail Khan mediate the meeting?" and not docqa["abstained"]
        prompt, rewrite = generator.prompts[-1][-1]["content"], generator.prompts[-2][-1]["content"]
        assert "Question: Where did Ismail Khan mediate the meeting?" in prompt, "the rewrite is asked"
        assert rewrite.startswith("Conversation:") and "Answer: Ismail Khan." in rewrite, (
            "from the earlier turn"
        )
    alone = client.chat.completions.create(model="docqa", messages=messages[-1:])
    assert alone.docqa["standalone"] is None, "a question alone is not rewritten"


def test_an_earlier_follow_up_this_server_rewrote_reads_as_rewritten_in_the_next_one(tmp_path, serving):
    def reply(messages) -> str:
        user = messages[-1]["content"]
        if user.startswith("Conversation:"):  # the rewrite prompt: "he" named
            return user.rsplit("Latest question: ", 1)[1].replace(" he ", " Ismail Khan ")
        return "The meeting in Tehran was mediated by Ismail Khan. [1]"

    for stream in (False, True):  # a server of its own each: the rewrite kept is the one this way kept
        generator = FakeGenerator(reply)
        (folder := tmp_path / ("streamed" if stream else "whole")).mkdir()
        service = make_service(folder, generator)
        client = openai.OpenAI(base_url=serving(service) + "/v1", api_key="unused")
        messages = [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Ismail Khan. [1]"},
        ]
        for follow_up in ("Where did he mediate the meeting?", "Did the talks he mediated end?"):
            messages.append({"role": "user", "content": follow_up})
            answer = client.chat.completions.create(model="docqa", messages=messages, stream=stream)
            said = (
                "".join(c.choices[0].delta.content or "" for c in answer)
                if stream
                else answer.choices[0].message.content
            )
            messages.append({"role": "assistant", "content": said})
        rewrite = generator.prompts[-2][-1]["content"]
        assert "Question: Where did Ismail Khan mediate the meeting?" in rewrite, "as docqa searched it"
        assert "Question: Where did he mediate the meeting?" not in rewrite
    messages[-3]["content"] += " (kept by the client otherwise)"  # not the reply this server gave
    client.chat.completions.create(model="docqa", messages=messages[:-1])
    assert "Question: Where did he mediate the meeting?" in generator.prompts[-2][-1]["content"], "as asked"


def test_a_streamed_answer_docqa_withdraws_ends_with_a_piece_that_says_so(tmp_path, serving):
    service = make_service(tmp_path, FakeGenerator("I don't know."))
    client = openai.OpenAI(base_url=serving(service) + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("I don't know.") and text.endswith(NOT_IN_DOCUMENTS) and "withdrew" in text
    assert chunks[-1].docqa["abstained"] and "no answer" in chunks[-1].docqa["reason"]


def test_a_client_that_leaves_stops_the_model(tmp_path, serving):
    generator = Paced(LONG, pause=0.01)
    service = make_service(tmp_path, generator)
    url = serving(service)
    with httpx.stream("POST", url + "/v1/chat/completions", json=chat(stream=True), timeout=60) as reply:
        lines = reply.iter_lines()
        read = [line for line, _ in zip(lines, range(8), strict=False) if line.startswith("data:")]
    assert len(read) >= 3  # the reply was streaming when the client hung up
    until(generator.ended.is_set)
    assert generator.written[-1] < 1000, "the model stopped long before the end of its reply"
    until(lambda: service.slots.load == (0, 0))

    generator.ended.clear()
    with pytest.raises(httpx.ReadTimeout):  # a client that gives up on a whole reply
        httpx.post(url + "/v1/chat/completions", json=chat(), timeout=1.0)
    until(generator.ended.is_set)
    assert generator.written[-1] < 1000
    until(lambda: service.slots.load == (0, 0))


def test_a_client_that_leaves_while_waiting_for_its_turn_gives_up_its_place(tmp_path, serving):
    generator = Paced("The meeting was mediated by Ismail Khan. [1]")
    service = make_service(tmp_path, generator)
    service.slots = Slots(1)
    url = serving(service)
    generator.open.clear()  # the first question holds the model's only turn
    first: list[httpx.Response] = []
    holding = threading.Thread(target=lambda: first.append(httpx.post(url + "/v1/chat/completions", json=chat(),
                                                                      timeout=60)))  # fmt: skip
    holding.start()
    until(lambda: service.slots.load == (1, 0))
    for stream in (False, True):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", json=chat(stream=stream), timeout=1.0)
        until(lambda: service.slots.load == (1, 0))  # its place in the queue is given up
    generator.open.set()
    holding.join(60)
    assert first[0].status_code == 200
    time.sleep(0.5)  # a question that kept its place would reach the model now
    assert len(generator.written) == 1, "only the question whose client stayed was answered"


@pytest.mark.parametrize("tab", ["ask", "chat"])
def test_a_page_that_goes_away_while_waiting_for_its_turn_gives_up_its_place(tmp_path, tab):
    from qa.web import Handlers

    generator = Paced("The meeting was mediated by Ismail Khan. [1]")
    service = make_service(tmp_path, generator)
    service.slots = Slots(1)
    generator.open.clear()  # the first question holds the model's only turn
    holder = service.ask(QUESTION)
    holding = threading.Thread(target=lambda: list(holder))
    holding.start()
    until(lambda: service.slots.load == (1, 0))
    page = Handlers(service).ask(QUESTION) if tab == "ask" else Handlers(service).chat(QUESTION, [])
    next(page), next(page)  # "…" shown, then again while it waits for its turn
    assert service.slots.load == (1, 1)
    page.close()  # the page went away: Gradio closes its handler
    until(lambda: service.slots.load == (1, 0))
    generator.open.set()
    holding.join(60)
    time.sleep(0.5)  # a question that kept its place would reach the model now
    assert len(generator.written) == 1, "only the question whose page stayed was answered"


def test_the_api_and_the_page_take_turns_at_the_model_together(tmp_path, serving):
    from gradio_client import Client

    generator = Paced("The meeting was mediated by Ismail Khan. [1]")
    service = make_service(tmp_path, generator)
    url = serving(service)
    generator.open.clear()  # every stream waits at its first word
    replies: list[int] = []
    api = [threading.Thread(target=lambda: replies.append(
        httpx.post(url + "/v1/chat/completions", json=chat(), timeout=120).status_code)) for _ in range(3)]  # fmt: skip
    for t in api:
        t.start()
    page = Client(url + "/", verbose=False).submit(QUESTION, api_name="/ask")
    until(lambda: service.slots.load == (2, 2))  # two at the model, the page and one API call waiting
    assert generator.most == 2
    generator.open.set()
    for t in api:
        t.join(120)
    assert replies == [200, 200, 200]
    assert page.result(timeout=120)[2]["citations"][0]["doc_id"] == "talks.txt"
    assert generator.most == 2


def test_when_too_many_wait_a_client_is_told_to_retry(tmp_path, serving):
    generator = Paced("The meeting was mediated by Ismail Khan. [1]")
    service = make_service(tmp_path, generator)
    service.slots = Slots(1, waiting=0)
    url = serving(service)
    generator.open.clear()
    first: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: first.append(httpx.post(url + "/v1/chat/completions", json=chat(),
                                                                      timeout=60)))  # fmt: skip
    waiting.start()
    until(lambda: service.slots.load == (1, 0))
    busy = httpx.post(url + "/v1/chat/completions", json=chat(), timeout=60)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "5"
    assert busy.json()["error"]["code"] == "busy" and "ask again" in busy.json()["error"]["message"]
    generator.open.set()
    waiting.join(60)
    assert first[0].status_code == 200


def test_bodies_too_big_broken_or_mistyped_get_openai_errors_and_the_server_goes_on(tmp_path, serving):
    url = serving(make_service(tmp_path, FakeGenerator("The meeting was mediated by Ismail Khan. [1]")))
    post = lambda path, **kw: httpx.post(url + path, timeout=60, **kw)  # noqa: E731

    def chunked(size: int) -> Iterator[bytes]:  # no Content-Length: the cap holds as the body arrives
        for _ in range(size // 65536):
            yield b" " * 65536

    cases = [
        (post("/v1/chat/completions", content=b"x" * 1_100_000), 413, "over 1,000,000 bytes"),
        (post("/v1/chat/completions", content=chunked(2_000_000)), 413, "over 1,000,000 bytes"),
        (post("/v1/chat/completions", content=b'{"model": "docqa", '), 400, "not valid JSON"),
        (post("/v1/chat/completions", content=b"[" * 100_000), 400, "nested too deeply"),
        (post("/v1/chat/completions", content=b"\xff\xfe\x00garbage"), 400, "not valid JSON"),
        (post("/v1/chat/completions", json=chat(messages=[{"role": "user", "content": {"a": 1}}])), 400, "content"),
        (post("/v1/chat/completions", json=chat(messages=[{"role": "user", "content": "x" * 3000}])), 400,
         "the limit is 2,000"),
        (post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x"}), 404, "fake-embedder"),
        (post("/v1/completions", json={"model": "docqa", "prompt": "hi"}), 404, "it serves POST /v1/chat"),
        (httpx.get(url + "/v1/chat/completions"), 404, "it serves POST /v1/chat/completions"),
        (httpx.get(url + "/v1"), 404, "no route GET /v1; it serves"),
        (post("/v1/chat/completions", content=json.dumps(chat(docqa={"x\ud800": 1}))), 400, "no option docqa.x"),
        (post("/v1/embeddings", content=b"x" * 1_100_000), 400, "not valid JSON"),  # under its own cap
        (post("/v1/embeddings", content=b"x" * 16_100_000), 413, "over 16,000,000 bytes"),
    ]  # fmt: skip
    for reply, status, says in cases:
        assert reply.status_code == status, reply.text
        assert says in reply.json()["error"]["message"]
    assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == "docqa"
    assert (
        httpx.head(url + "/v1/models").status_code == httpx.head(url + "/v1/models/docqa").status_code == 200
    )


def test_embeddings_are_the_index_models_and_a_text_too_long_for_it_is_refused(tmp_path, serving):
    service = make_service(tmp_path, FakeGenerator())
    client = openai.OpenAI(base_url=serving(service) + "/v1", api_key="unused")
    made = client.embeddings.create(model="fake-embedder", input=["wheat from India", "the Tehran talks"])
    assert [len(d.embedding) for d in made.data] == [64, 64] and made.usage.prompt_tokens == 6
    assert made.data[0].embedding == pytest.approx(
        FakeEmbedder().embed(["wheat from India"])[0].tolist(), abs=1e-6
    )
    with pytest.raises(openai.BadRequestError, match="reads at most 254: split it") as refused:
        client.embeddings.create(model="fake-embedder", input="word " * 300)
    assert refused.value.param == "input"


def test_a_client_that_gives_up_on_many_embeddings_stops_them_and_a_long_text_is_named_by_its_place(
    tmp_path, serving
):
    service = make_service(tmp_path, FakeGenerator())
    embedder, embedded = service.assistant.index.embedder, []
    embed = embedder.embed

    def slow(texts):
        time.sleep(0.2 * len(texts) / 256)  # embedding takes a while, as on a busy CPU
        embedded.append(len(texts))
        return embed(texts)

    embedder.embed = slow
    url = serving(service)
    texts = [f"text {i}" for i in range(2048)]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/embeddings", json={"model": "fake-embedder", "input": texts}, timeout=0.5)
    time.sleep(2.0)  # a server that went on would embed every text meanwhile
    assert 0 < sum(embedded) < len(texts), "embedding stopped once its client had gone"
    texts[300] = "word " * 300
    refused = httpx.post(url + "/v1/embeddings", json={"model": "fake-embedder", "input": texts}, timeout=60)
    assert refused.status_code == 400 and "input[300] is" in refused.json()["error"]["message"]


def test_embedding_requests_are_embedded_one_at_a_time(tmp_path, serving):
    service = make_service(tmp_path, FakeGenerator())
    embedder, batches = service.assistant.index.embedder, []
    embed = embedder.embed

    def slow(texts):
        batches.append(texts[0][0])  # which request the batch is of
        time.sleep(0.05)
        return embed(texts)

    embedder.embed = slow
    url = serving(service)

    def ask(letter: str) -> None:
        texts = [f"{letter} text {i}" for i in range(600)]
        httpx.post(url + "/v1/embeddings", json={"model": "fake-embedder", "input": texts}, timeout=60)

    both = [threading.Thread(target=ask, args=(letter,)) for letter in "ab"]
    for t in both:
        t.start()
    for t in both:
        t.join(60)
    assert sorted(batches) == list("aaabbb") and batches in (list("aaabbb"), list("bbbaaa")), batches


def test_before_the_models_load_the_api_says_so(tmp_path, serving):
    url = serving(Service(Config(docs=tmp_path, index_dir=tmp_path / "index")))
    for reply in (httpx.get(url + "/v1/models"), httpx.post(url + "/v1/chat/completions", json=chat())):
        assert reply.status_code == 503 and "still starting" in reply.json()["error"]["message"]
        assert reply.headers["retry-after"] == "10"


def test_a_model_replica_lost_mid_answer_is_a_503_to_ask_again_after(tmp_path, serving):
    from qa.ray_serve import ReplicaLost

    def lost(messages) -> str:
        raise ReplicaLost(
            "the generator replica answering stopped part-way; ask again: another replica will answer"
        )

    reply = httpx.post(
        serving(make_service(tmp_path, FakeGenerator(lost))) + "/v1/chat/completions", json=chat()
    )
    assert reply.status_code == 503 and "ask again" in reply.json()["error"]["message"]
    assert reply.headers["retry-after"] == "10" and "x-should-retry" not in reply.headers


def test_models_that_could_not_start_are_an_error_to_fix_not_to_retry(tmp_path, serving):
    service = Service(
        Config(docs=tmp_path / "docs", index_dir=tmp_path / "index"), FakeGenerator(""), FakeEmbedder()
    )
    with pytest.raises(DocqaError):
        service.start(background=False)  # an empty folder: nothing to index
    url = serving(service)
    for reply in (httpx.get(url + "/v1/models"), httpx.post(url + "/v1/chat/completions", json=chat())):
        message = reply.json()["error"]["message"]
        assert reply.status_code == 500 and "could not start" in message and "try again" not in message
        assert reply.headers["x-should-retry"] == "false"
    asked = []

    def counting(request: httpx.Request) -> None:
        asked.append(request)

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", http_client=httpx.Client(
        event_hooks={"request": [counting]}))  # fmt: skip
    with pytest.raises(openai.InternalServerError, match="could not start"):
        client.models.list()
    assert len(asked) == 1, "the openai client does not ask again"


ROUTES = [
    ("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/gradio_api/info/"),
    ("GET", "/gradio_api/file=/etc/passwd"), ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/call/status"),
    ("GET", "/gradio_api/queue/data"), ("GET", "/assets/index.js"), ("GET", "/favicon.ico"), ("GET", "/theme.css"),
    ("GET", "/static/img/logo.svg"), ("GET", "/login"), ("GET", "/no-such-page"), ("GET", "/docs"),
    ("GET", "/openapi.json"), ("GET", "/v1/models"), ("GET", "/v1/models/docqa"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
    ("OPTIONS", "/v1/models"), ("OPTIONS", "/gradio_api/upload"), ("GET", "/v1"),
]  # fmt: skip


def test_a_web_page_of_an_origin_allowed_calls_the_api_from_a_browser_and_no_other_does(tmp_path, serving):
    page = "http://localhost:3000"
    url = serving(make_service(tmp_path, FakeGenerator("The meeting was mediated by Ismail Khan. [1]")), KEY,
                  (page,))  # fmt: skip
    asks = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-lang,x-stainless-os",
    }  # as the openai JavaScript client sends them
    preflight = httpx.options(url + "/v1/chat/completions", headers={"Origin": page, **asks})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == page
    keyed = {"Authorization": f"Bearer {KEY}"}
    reply = httpx.post(
        url + "/v1/chat/completions", json=chat(), headers={"Origin": page, **keyed}, timeout=60
    )
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == page
    assert "retry-after" in reply.headers["access-control-expose-headers"].lower()
    assert reply.json()["docqa"]["citations"][0]["doc_id"] == "talks.txt"
    other = {"Origin": "http://elsewhere.example"}
    assert httpx.options(url + "/v1/chat/completions", headers={**other, **asks}).status_code == 400
    reply = httpx.post(url + "/v1/chat/completions", json=chat(), headers={**other, **keyed}, timeout=60)
    assert "access-control-allow-origin" not in reply.headers, "the browser keeps the reply from that page"
    assert httpx.post(url + "/v1/chat/completions", json=chat(), headers={"Origin": page}).status_code == 401


def test_origins_that_are_not_one_or_every_page_without_a_key_are_refused():
    from qa.access import check_origins

    with pytest.raises(DocqaError, match="every web page the user opens"):
        check_origins(["*"], None)
    with pytest.raises(DocqaError, match="is not an origin: give scheme://host"):
        check_origins(["localhost:3000"], KEY)
    with pytest.raises(DocqaError, match="with no path"):
        check_origins(["http://localhost:3000/chat"], KEY)
    check_origins(["*"], KEY)
    check_origins(["http://localhost:3000", "https://chat.example.org"], None)


def test_with_a_key_no_route_answers_without_it(tmp_path, serving):
    from gradio_client import Client

    url = serving(make_service(tmp_path, FakeGenerator("The meeting was mediated by Ismail Khan. [1]")), KEY)
    basic = "Basic " + base64.b64encode(f"me:{KEY}".encode()).decode()
    for method, path in ROUTES:
        bare = httpx.request(method, url + path, timeout=30)
        wrong = httpx.request(method, url + path, headers={"Authorization": "Bearer " + "x" * 24}, timeout=30)
        assert (bare.status_code, wrong.status_code) == (401, 401), (
            f"{method} {path} answered without the key"
        )
        assert "root:" not in bare.text and "wrong" in wrong.text
        if path.startswith("/v1"):
            assert (
                bare.json()["error"]["code"] == "invalid_api_key"
                and "Bearer" in bare.json()["error"]["message"]
            )
        else:  # a browser asks for the key
            assert bare.headers["www-authenticate"].startswith("Basic") and "password" in bare.text
    page = httpx.get(url + "/", headers={"Authorization": basic})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(url + "/config", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    status = Client(url + "/", headers={"Authorization": f"Bearer {KEY}"}, verbose=False).predict(
        api_name="/status"
    )
    assert "2 documents" in status
    keyed = openai.OpenAI(base_url=url + "/v1", api_key=KEY)
    assert keyed.chat.completions.create(**chat()).docqa["citations"][0]["doc_id"] == "talks.txt"
    with pytest.raises(openai.AuthenticationError, match="the API key is wrong"):
        openai.OpenAI(base_url=url + "/v1", api_key="not-the-key", max_retries=0).models.list()


def test_with_nothing_indexed_the_api_lists_its_models_and_embeds_but_says_so_of_questions(tmp_path, serving):
    (tmp_path / "docs").mkdir()
    service = Service(Config(docs=tmp_path / "docs", index_dir=tmp_path / "index"), FakeGenerator(""),
                      FakeEmbedder()).start(background=False)  # fmt: skip
    url = serving(service)
    assert httpx.get(url + "/v1/models").status_code == 200
    embedded = httpx.post(url + "/v1/embeddings", json={"model": service.embedder.name, "input": ["a text"]})
    assert embedded.status_code == 200, embedded.text
    reply = httpx.post(url + "/v1/chat/completions", json=chat())
    assert reply.status_code == 409 and "Nothing indexed yet" in reply.json()["error"]["message"]
    assert reply.headers["x-should-retry"] == "false" and "retry-after" not in reply.headers
