"""An answer (or several) as Markdown: the question, the answer with its marks, and each cited
passage quoted under its document's name, page and verdict; the web page offers it as a file."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import markdown_it
import pytest

from qa import models
from qa.answer import NOT_IN_DOCUMENTS, Answer, Citation, abstention
from qa.export import answer_from_dict, to_markdown
from qa.retriever import Passage
from qa.web import EXPORT_HOURS, Handlers
from tests.conftest import ROOT
from tests.served import free_port
from tests.test_web import service  # noqa: F401 (the fixture)

PASSAGE = Passage("report.pdf", "Farm report", 120, 190, "The barley harvest in Kettleby\ndoubled this year.", 0.71,
                  {"date": "2024-03-05"}, 3, "p. 3")  # fmt: skip
CITATION = Citation(1, "report.pdf", "Farm report", PASSAGE.text, 120, 190, 0.71, "The harvest doubled.", 0.8, True,
                    page=3, page_label="p. 3")  # fmt: skip


def test_an_answer_becomes_markdown_with_its_sources_quoted():
    answer = Answer(
        "How did the harvest do?", "The harvest doubled. [1]", False, [CITATION], [PASSAGE], {}, "qwen"
    )
    text = to_markdown([("How did the harvest do?", answer)])
    assert text.startswith("# Answers from docqa\n\n## How did the harvest do?\n\nThe harvest doubled. [1]\n")
    assert (
        "**[1] Farm report** — `report.pdf`, 2024-03-05, p. 3, characters 120–190 · supports the answer (80%)"
        in text
    )
    assert "> The barley harvest in Kettleby\n> doubled this year." in text


def test_what_the_user_and_the_documents_wrote_reads_literally_in_the_file():
    passage = Passage("html.md", "The <title> element and **bold** tricks", 0, 60,
                      "# Results\nThe <title> element names the page.", 0.7)  # fmt: skip
    cited = Citation(1, "html.md", passage.title, passage.text, 0, 60, 0.7, "It names the page.", 0.8, True)
    question = "What does the <title> element hold?"
    answer = Answer(question, "It names the page. [1]", False, [cited], [passage], {}, "qwen")
    page = markdown_it.MarkdownIt("commonmark", {"html": True}).render(to_markdown([(question, answer)]))
    assert "<h2>What does the &lt;title&gt; element hold?</h2>" in page, page
    assert "<strong>[1] The &lt;title&gt; element and **bold** tricks</strong>" in page, page
    assert "<h1>Results</h1>" not in page and "# Results" in page, "a passage's line is quoted, not a heading"
    code = Passage("notes.txt", "R&D notes", 0, 60,
                   "Example:\n\n    total = a_b * c\nTotals\n======\nSteps\n12. mix\n- - -\n+ bake", 0.7)  # fmt: skip
    answer = Answer("Q?", "It adds. [1]", False, [replace(cited, title=code.title)], [code], {}, "qwen")
    page = markdown_it.MarkdownIt("commonmark", {"html": True}).render(to_markdown([("Q?", answer)]))
    assert "total = a_b * c" in page and "<pre>" not in page and "Totals</h" not in page, page
    assert "12. mix" in page and "+ bake" in page and "<ol" not in page and "<hr" not in page, page
    assert "R&amp;D notes" in page, "shown as written, not read as an entity"


def test_an_answer_cut_at_its_token_limit_says_so_in_the_file_as_on_the_page():
    answer = Answer("How did the harvest do?", "The harvest doubled [1] and prices then", False, [CITATION],
                    [PASSAGE], {}, "qwen", cut=True)  # fmt: skip
    assert "*Cut at the answer's token limit: it may end mid-sentence.*" in to_markdown([("Q?", answer)])
    answer.cut = False
    assert "token limit" not in to_markdown([("Q?", answer)])


def test_several_answers_and_an_abstention_in_one_document():
    first = Answer("Q1?", "The harvest doubled. [1]", False, [CITATION], [PASSAGE], {}, "qwen")
    second = abstention("Who won the cup?", [PASSAGE], "no passage is relevant enough", "qwen")
    text = to_markdown([("Q1?", first), ("Who won the cup?", second)])
    assert text.index("## Q1?") < text.index("## Who won the cup?")
    assert f"{NOT_IN_DOCUMENTS}\n\n*Why: no passage is relevant enough.*" in text
    assert "### Nearest passages (none holds the answer)" in text


def test_the_json_form_of_an_answer_comes_back_whole():
    answer = Answer("Q?", "The harvest doubled. [1]", False, [CITATION], [PASSAGE], {"total": 1.0}, "qwen")
    assert answer_from_dict({**answer.to_dict(), "some_later_field": 1}) == answer


def test_the_page_offers_the_answer_as_a_markdown_file(service):  # noqa: F811
    handlers = Handlers(service)
    *_, (_, _, data) = handlers.ask("Who mediated the meeting in Tehran?")
    path = Path(handlers.export(data))
    text = path.read_text()
    assert path.suffix == ".md" and "## Who mediated the meeting in Tehran?" in text
    assert (
        "**[1] The meeting in Tehran" in text and "`talks.txt`" in text and "> The meeting in Tehran" in text
    )
    assert handlers.export({"error": "the question is empty"}) is None


def test_downloads_hold_passages_so_they_stay_an_hour_in_the_page_s_own_folder_and_go_with_it(service):  # noqa: F811
    handlers = Handlers(service)
    *_, (_, _, data) = handlers.ask("Who mediated the meeting in Tehran?")
    first, second = Path(handlers.export(data)), Path(handlers.export(data))
    assert first != second and first.read_text() == second.read_text(), "two downloads never collide"
    folder = first.parent.parent
    assert folder.name.startswith("docqa-export-") and second.parent.parent == folder
    an_hour_ago = time.time() - EXPORT_HOURS * 3600 - 60
    os.utime(first.parent, (an_hour_ago, an_hour_ago))
    handlers.export(data)
    assert not first.exists() and second.exists(), "a download older than an hour is removed"
    del handlers
    gc.collect()
    assert not folder.exists(), "the page's downloads go with it"


@pytest.mark.parametrize("after", [0, 3], ids=["at once", "while its models load"])
def test_a_server_stopped_as_systemd_or_docker_stops_it_leaves_no_downloads_behind(tmp_path, after):
    """Stopped 3 s after it listens, the server is still loading its models (and building the
    index) in the background; tearing the interpreter down around that thread aborted it (rc -6)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    command = [sys.executable, "-m", "qa.cli", "serve", "--port", str(port), "--index", str(tmp_path / "index"),
               "--model", models.SMALL]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not list(temp.glob("docqa-export-*")) or not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.5)
        time.sleep(after)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "a stop asked for is not a failure"
    finally:
        proc.kill()
    assert not list(temp.glob("docqa-export-*")), "the page's downloads went with the server"


def test_a_server_with_a_page_open_stops_at_once_without_a_traceback(tmp_path):
    """An open page holds a heartbeat stream (gradio_client opens the same one); the server ends
    it when asked to stop, instead of waiting for it and then printing the cancelled tasks."""
    from gradio_client import Client

    port = free_port()
    command = [sys.executable, "-m", "qa.cli", "serve", "--port", str(port), "--index", str(tmp_path / "index"),
               "--model", models.SMALL]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline, client = time.monotonic() + 120, None
        while client is None:  # its heartbeat stream stays open
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            with contextlib.suppress(Exception):  # not listening yet, or too busy loading to answer
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            time.sleep(0.5)
        assert client.predict(api_name="/status")
        proc.send_signal(signal.SIGTERM)  # the same shutdown as Ctrl-C's, wherever SIGINT is ignored
        assert proc.wait(timeout=60) == 0, "a stop asked for is not a failure"
        said = proc.stderr.read()
    finally:
        proc.kill()
    assert "graceful shutdown exceeded" not in said and "Traceback" not in said, said[-2000:]


# A server whose SIGTERM arrives while a finaliser runs: each old event loop that is collected runs
# BaseEventLoop.__del__, and a handler that raised there had its exception swallowed.
_STOPPED_IN_A_FINALISER = """
import os, signal, sys
from pathlib import Path
import qa.web as web
from embeddings.config import Config
from qa.service import Service
from tests.fakes import FakeEmbedder, FakeGenerator, write_docs
from tests.test_web import DOCS, reply

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, inside the finaliser

built = web.app
def app(*args, **kwargs):
    page = built(*args, **kwargs)
    Finaliser()  # collected at once: the stop is asked for before the server starts
    return page

web.app = app
folder = Path(sys.argv[1])
config = Config(docs=write_docs(folder / "docs", DOCS), index_dir=folder / "index", chunk_tokens=32, chunk_overlap=4)
web.serve(Service(config, FakeGenerator(reply), FakeEmbedder()).start(background=False), port=int(sys.argv[2]))
print("stopped")
"""


def test_a_stop_asked_for_while_a_finaliser_runs_stops_the_server(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _STOPPED_IN_A_FINALISER, str(tmp_path), str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "stopped", proc.stderr[-2000:]


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False
