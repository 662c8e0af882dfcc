"""The official `openai` client against a real `docqa serve` (the small packaged model, an API key in
DOCQA_API_KEY): the sample article's question with and without streaming (scoped to the article),
its citations, an abstention, a scope that holds no document, embeddings, a wrong key, the routes
closed without the key, the README's example run as written, and a browser that brings the key.
The server log lands in test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import httpx
import numpy as np
import openai
import pytest

from qa.answer import NOT_IN_DOCUMENTS
from tests.conftest import ROOT, SEEDS
from tests.served import chromium, docqa_serve, require_chromium, shot

KEY = "docqa-test-key-5b1f0c7e9a2d"
QUESTION = "Who mediated the meeting between Massoud and Muttaqi?"
ARTICLE = "000_ef5301ee062fc8f6.txt"


def _models_listed(url: str) -> bool:  # 503 while the models load
    return httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("openai-server")
    shutil.copytree(SEEDS, folder / "docs")
    env = {**os.environ, "DOCQA_API_KEY": KEY}
    with docqa_serve(folder, folder / "docs", _models_listed, "openai-server.log", env) as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY)


def ask(client: openai.OpenAI, question: str, **options):
    return client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": question}],
                                          **options)  # fmt: skip


def test_the_sample_articles_question_is_answered_with_its_sources(client):
    reply = ask(client, QUESTION)
    text = reply.choices[0].message.content
    assert "Ismail Khan" in text and re.search(r"\[\d\]", text)
    assert reply.docqa["text"] == text and not reply.docqa["abstained"]
    article = (SEEDS / ARTICLE).read_text()
    cited = [c for c in reply.docqa["citations"] if c["supported"]]
    assert cited, f"no citation holds the answer: {reply.docqa['citations']}"
    for c in cited:
        assert c["doc_id"] == ARTICLE and c["title"] and 0 <= c["start"] < c["end"]
        assert c["text"] in article and "Ismail Khan" in c["text"] and c["support"] >= 0.5
        assert f"[{c['number']}]" in text


def test_a_streamed_answer_arrives_piece_by_piece_and_ends_with_its_sources(client):
    scope = {"doc_ids": [ARTICLE], "formats": ["txt"]}  # docqa's own field: the documents asked
    chunks = list(ask(client, QUESTION, stream=True, extra_body={"docqa": {"scope": scope}}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) >= 3 and "Ismail Khan" in "".join(pieces)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and all(
        c.choices[0].finish_reason is None for c in chunks[:-1]
    )
    assert any(c["doc_id"] == ARTICLE and c["supported"] for c in last.docqa["citations"])


def test_a_question_the_documents_do_not_answer_is_an_ordinary_reply_that_says_so(client):
    reply = ask(client, "What is the boiling point of tungsten?")
    assert reply.choices[0].message.content == NOT_IN_DOCUMENTS
    assert reply.docqa["abstained"] and "relevant" in reply.docqa["reason"] and reply.docqa["citations"] == []


def test_a_scope_that_holds_no_document_is_refused_with_what_to_do(client):
    with pytest.raises(openai.BadRequestError, match="no document 'notes.pdf' in the index") as refused:
        ask(client, QUESTION, extra_body={"docqa": {"scope": {"doc_ids": ["notes.pdf"]}}})
    assert refused.value.param == "docqa.scope"
    with pytest.raises(openai.BadRequestError, match=r"dated 2030-01-01 or later\): widen it"):
        ask(client, QUESTION, stream=True, extra_body={"docqa": {"scope": {"since": "2030-01-01"}}})


def test_embeddings_come_from_docqas_embedding_model(client):
    listed = [m.id for m in client.models.list()]
    assert listed == ["docqa", "all-MiniLM-L6-v2"]
    texts = [QUESTION, "Ismail Khan mediated the talks in Tehran.", "Tungsten melts at 3422 degrees."]
    vectors = np.array(
        [d.embedding for d in client.embeddings.create(model="all-MiniLM-L6-v2", input=texts).data]
    )
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_a_wrong_key_or_none_gets_nothing(server):
    with pytest.raises(openai.AuthenticationError, match="the API key is wrong"):
        ask(openai.OpenAI(base_url=f"{server}/v1", api_key="not-the-key-at-all", max_retries=0), QUESTION)
    for path in ("/", "/config", "/gradio_api/info", "/v1/models", "/gradio_api/file=/etc/passwd"):
        assert httpx.get(server + path).status_code == 401, path
    called = httpx.post(f"{server}/gradio_api/call/ask", json={"data": [QUESTION]})
    assert called.status_code == 401


def test_the_readme_example_prints_the_answer_and_its_source(server):
    readme = (ROOT / "README.md").read_text()
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from openai import OpenAI" in b
    ]
    assert example.count("http://127.0.0.1:7860/v1") == 1
    code = example.replace("http://127.0.0.1:7860/v1", f"{server}/v1")  # this server's free port
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DOCQA_API_KEY": KEY})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Ismail Khan" in run.stdout and ARTICLE in run.stdout


def test_serving_beyond_localhost_without_a_key_is_refused_with_how_to_set_one():
    env = {k: v for k, v in os.environ.items() if k != "DOCQA_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--host", "0.0.0.0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert (
        "needs an API key" in done.stderr and "DOCQA_API_KEY=" in done.stderr and "--api-key" in done.stderr
    )


@pytest.mark.browser
def test_a_browser_asks_for_the_key_and_then_works(server):
    require_chromium()
    from playwright.sync_api import Error

    from tests.test_browser import ask as ask_in_page

    with chromium() as browser:
        with pytest.raises(Error, match="ERR_INVALID_AUTH_CREDENTIALS"):  # asked; headless has no key
            browser.new_page().goto(server)
        wrong = browser.new_context(http_credentials={"username": "me", "password": "not-the-key-at-all"})
        assert wrong.new_page().goto(server).status == 401
        context = browser.new_context(http_credentials={"username": "me", "password": KEY})
        page = context.new_page()
        page.goto(server)
        page.get_by_text("· embeddings:").first.wait_for(timeout=60_000)
        ask_in_page(page, QUESTION)
        assert ARTICLE in page.locator("#sources .source").first.inner_text()
        shot(page, "answer-with-key")
