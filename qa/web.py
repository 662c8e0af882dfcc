"""The Gradio web UI: ask, chat (follow-up questions), summarise, manage documents. Every action is also a named API
endpoint (`/ask`, `/summarize`, `/documents`, `/upload`, `/retry`, `/remove`, `/status`).
`serve` runs it beside the OpenAI-compatible API (/v1), behind the API key when there is one."""

from __future__ import annotations

import contextlib
import errno
import html
import logging
import os
import queue
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from embeddings.errors import ConfigError, DocqaError, NoDocuments
from embeddings.readers import SUPPORTED
from embeddings.scope import Scope
from qa.access import KeyGuard
from qa.assistant import AnswerStream
from qa.conversation import Turn
from qa.export import answer_from_dict, literal, to_markdown
from qa.render import (
    answer_html,
    asked_as_html,
    counted,
    draft_html,
    final_answer_html,
    sources_html,
    summary_html,
    turn_html,
)
from qa.service import MAX_UPLOAD_BYTES, Left, NotIndexed, Service
from qa.summarize import Stopped

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("docqa.web")
T = TypeVar("T")
ALL = "__all__"  # the summarise choice for the whole collection
KEPT_TURNS = 20  # a browser keeps the latest turns of its conversation (each with its passages)
EXPORT_HOURS = 1.0  # a Markdown download is kept this long (it holds passages of the documents)

CSS = """
.answer {font-size: 1.1em; line-height: 1.5; padding: .5em 0}
.draft .answer {color: #777}
.withdrawn {color: #777; font-size: .9em}
.withdrawn s {color: #999}
.note {color: #666; font-size: .85em}
.error {color: #b00020; font-weight: 600}
.source {border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; margin: .6em 0}
.source-meta {color: #666; font-size: .8em; margin: .2em 0 .4em}
.source-text {line-height: 1.5}
.source-text .passage {background: #eef5ff}
.source-text mark {background: #ffe066; padding: 0 1px}
.supported {color: #1b7f3b; font-size: .85em; margin-left: .5em}
.unsupported {color: #b00020; font-size: .85em; margin-left: .5em}
a.cite {text-decoration: none; font-weight: 600}
.asked-as {font-style: italic; margin: 0 0 .3em}
.turn .sources h4 {margin: .6em 0 .2em}
"""


def _error(e: Exception) -> str:
    return f'<div class="error">{html.escape(str(e))}</div>'


class Handlers:
    """What each UI action does, against a Service; no Gradio objects, so tests call them plainly."""

    def __init__(self, service: Service) -> None:
        self.service = service
        # Downloads hold passages of the user's documents: they live in one folder of this UI's,
        # removed with it (and at exit), each download no longer than EXPORT_HOURS.
        self._exports = tempfile.TemporaryDirectory(prefix="docqa-export-")

    def _export_file(self, name: str, text: str) -> str:
        """`text` written to a new file `name` for the browser to download; older downloads removed."""
        root = Path(self._exports.name)
        cutoff = time.time() - EXPORT_HOURS * 3600
        for old in root.iterdir():
            with contextlib.suppress(OSError):  # another page's download may be removing it too
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
        path = Path(tempfile.mkdtemp(dir=root)) / name  # a folder each: two downloads never collide
        path.write_text(text, encoding="utf-8")
        return str(path)

    def ask(
        self, question: str, docs: list[str] | None = None, since: str | None = None, until: str | None = None
    ) -> Iterator[tuple[str, str, dict]]:
        """The answer as it streams, then with its sources; from `docs` and the dates given, if any."""
        try:
            picked = [docs] if isinstance(docs, str) else docs or []  # one id, as an API caller may send
            shown = ""
            # A page closed mid-answer drops this generator: leaving the block stops the model.
            with self.service.ask(
                question, Scope.parse(picked, since=since, until=until, named=_DATES)
            ) as stream:
                waiting = answer_html("…"), "", {"draft": shown, "checked": False}
                yield waiting
                first = yield from _first(stream, waiting)
                for piece in _then(first, stream):
                    shown += piece
                    # A draft until checked: API callers see it marked so, and the page says so.
                    yield draft_html(shown), "", {"draft": shown, "checked": False}
                answer = stream.answer
            yield (
                final_answer_html(answer),
                sources_html(answer, self.service.document_text),
                answer.to_dict(),
            )
        except DocqaError as e:
            yield _error(e), "", {"error": str(e)}
        except Exception as e:  # the page says so, the log keeps the traceback, the server keeps serving
            log.exception("ask failed")
            yield _error(RuntimeError(f"something went wrong: {e}")), "", {"error": str(e)}

    def chat(
        self,
        question: str,
        stored: list[dict] | None,
        docs: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[tuple[list[dict], list[dict] | None]]:
        """A question in this browser's conversation (`stored`: its turns as the browser keeps
        them), from `docs` and the dates given, if any: the chat as the answer streams, then with
        the checked answer, the question as it was searched, and the answer's own sources; with it
        the turns to keep (`stored` itself, unchanged, until the answer is checked)."""
        turns = _turns(stored)
        before = self.chat_view(turns)
        said = _asked(question)
        try:
            draft = ""
            with self.service.chat(
                turns, question, Scope.parse(docs or [], since=since, until=until, named=_DATES)
            ) as stream:
                waiting = [*before, said, _reply(answer_html("…"))], stored
                yield waiting
                first = yield from _first(stream, waiting)
                for piece in _then(first, stream):
                    draft += piece
                    shown = asked_as_html(question, stream.standalone) + draft_html(draft)
                    yield [*before, said, _reply(shown)], stored
                answer = stream.answer
            turn = Turn(answer.question, answer.standalone or answer.question, answer)
            kept = [t.to_dict() for t in [*turns, turn][-KEPT_TURNS:]]
            yield [*before, said, _reply(turn_html(answer, len(turns), self._text_of))], kept
        except DocqaError as e:
            yield [*before, said, _reply(_error(e))], stored
        except Exception as e:  # the page says so, the log keeps the traceback, the server keeps serving
            log.exception("chat failed")
            yield [*before, said, _reply(_error(RuntimeError(f"something went wrong: {e}")))], stored

    def chat_view(self, turns: list[Turn]) -> list[dict]:
        """The chat's messages for a conversation's turns, after a note where earlier turns were
        let go (a browser keeps the latest KEPT_TURNS)."""
        view = []
        if len(turns) >= KEPT_TURNS:
            view.append(_reply(f'<div class="note">This conversation keeps its latest {KEPT_TURNS} turns: earlier '
                               "ones are let go as it goes on.</div>"))  # fmt: skip
        for i, t in enumerate(turns):
            view += [
                _asked(t.question),
                _reply(turn_html(t.answer, i, self._text_of)),
            ]
        return view

    def export_chat(self, stored: list[dict] | None) -> str | None:
        """The conversation written to a Markdown file to download; None when it has no turn."""
        turns = _turns(stored)
        if not turns:
            return None
        pairs = [(t.question, t.answer) for t in turns]
        return self._export_file("docqa-conversation.md", to_markdown(pairs, "Conversation with docqa"))

    def _text_of(self, doc_id: str) -> str:
        try:
            return self.service.document_text(doc_id)
        except DocqaError:  # still loading: the sources show their passages alone
            return ""

    def export(self, data: dict | None) -> str | None:
        """The answer (as the page holds it) written to a Markdown file to download; None when
        there is no answer to export."""
        if not data or "text" not in data:
            return None
        return self._export_file("docqa-answer.md", to_markdown([(data["question"], answer_from_dict(data))]))

    def summarize(self, choice: str | None) -> Iterator[tuple[str, dict]]:
        doc_id = None if choice in (None, "", ALL) else choice
        updates: queue.Queue = queue.Queue()
        result: dict = {}

        gone = threading.Event()  # the page went away: the summary stops (see Service.summarize)

        def run() -> None:
            try:
                result["summary"] = self.service.summarize(doc_id, lambda d, t: updates.put((d, t)), gone)
            except (Left, Stopped):  # no one to tell
                pass
            except Exception as e:  # handed to the page below
                result["error"] = e
            updates.put(None)

        threading.Thread(target=run, daemon=True).start()
        try:
            yield '<p class="note">Summarising …</p>', {}
            while (update := updates.get()) is not None:
                done, total = update
                yield f'<p class="note">Summarising: {done} of about {total} parts done …</p>', {}
        finally:  # also when the page goes away and its stream is closed
            gone.set()
        if "error" in result:
            e = result["error"]
            if not isinstance(e, DocqaError):
                log.error("summarize failed", exc_info=e)
            yield _error(e), {"error": str(e)}
            return
        s = result["summary"]
        note = f"{s.seconds:.1f} s · {counted(s.calls, 'model call')}, {s.cached} from cache · {s.model}"
        page = summary_html(s.title, s.text, s.sources, note, s.left_out, s.supported, s.skipped, s.shortened,
                            s.unfinished)  # fmt: skip
        yield page, s.to_dict()

    def documents(self) -> tuple[list[list], list[list], list[tuple[str, str]]]:
        """(indexed documents table, uploads table, summarise/remove choices)."""
        try:
            docs = self.service.documents()
        except DocqaError:
            docs = []
        rows = [[d.title, str(d.metadata.get("date", "")), d.chunks, d.indexed_at, d.id] for d in docs]
        uploads = [[u.name, u.status, u.error or "", u.added_at, u.stored] for u in self.service.uploads()]
        choices = [(f"{d.title} ({d.id})", d.id) for d in docs]
        return rows, uploads, choices

    def upload(self, paths: list[str] | None, names: list[str] | None = None) -> str:
        if not paths:
            return "Choose one or more files first."
        names = names or [Path(p).name for p in paths]
        try:
            stored, refused, report = self.service.upload(list(zip(names, map(Path, paths), strict=True)))
        except NotIndexed as e:
            failed = {u.stored for u in self.service.uploads() if u.status == "failed"}
            kept = [
                f"- kept **{literal(u.name)}**: "
                + (
                    "it could not be read; remove it below"
                    if u.stored in failed
                    else "retry it when the index is free"
                )
                for u in e.stored
            ]
            return "\n".join(
                [
                    f"**Not indexed:** {literal(_said(e))}",
                    *[f"- refused {literal(r)}" for r in e.refused],
                    *kept,
                ]
            )
        except DocqaError as e:
            return f"**Not indexed:** {literal(_said(e))}"
        lines = [f"- refused {literal(r)}" for r in refused]
        failed = {u.stored: u for u in self.service.uploads() if u.status == "failed"}
        for u in stored:
            if u.stored in failed:
                lines.append(
                    f"- **{literal(u.name)}** could not be read: {literal(failed[u.stored].error or '')} (kept; remove it below)"
                )
            else:
                lines.append(f"- added **{literal(u.name)}**")
        if report is not None:
            lines.append(f"\n{report.summary()}")
        return "\n".join(lines)

    def retry(self) -> str:
        try:
            report, failing = self.service.retry()
        except DocqaError as e:
            return f"**Not indexed:** {literal(_said(e))}"
        lines = [
            f"- **{literal(u.name)}** still not indexed: {literal(u.error or u.status)}" for u in failing
        ]
        return "\n".join([*lines, f"\n{report.summary()}"])

    def remove(self, doc_id: str | None) -> str:
        if not doc_id:
            return "Choose a document to remove."
        try:
            if doc_id.startswith("stored:") and self._not_indexed(doc_id.removeprefix("stored:")):
                report = self.service.forget_upload(doc_id.removeprefix("stored:"))
            else:
                report = self.service.remove(doc_id)
        except DocqaError as e:
            return f"**Not removed:** {literal(_said(e))}"
        return f"Removed. {report.summary()}" if report else "Removed; there is still nothing indexed."

    def _not_indexed(self, stored: str) -> bool:
        """Whether `stored` names an upload listed to remove as not indexed (a document's id, a
        .jsonl record's, may start with "stored:" too)."""
        return any(u.stored == stored and u.status != "indexed" for u in self.service.uploads())

    def status(self) -> str:
        s = self.service.status()
        if s.state != "ready":
            return f"**{html.escape(s.message)}**"
        busy = f" · answering {s.working}, {s.waiting} waiting" if s.working or s.waiting else ""
        return (
            f"{counted(s.documents, 'document')} · {counted(s.chunks, 'chunk')} · embeddings: {s.embedding_model} · "
            f"generator: {s.generator_model} · {s.runtime}{busy}"
        )


_DATES = ("Dated from", "Dated until")  # the page's fields


def _said(e: DocqaError) -> str:
    """An error as the page says it: an empty folder's without the command line's advice."""
    return e.found if isinstance(e, NoDocuments) else str(e)


def _reply(content: str) -> dict:
    return {"role": "assistant", "content": _one_block(content)}


def _asked(question: str) -> dict:
    return {"role": "user", "content": _one_block(f'<div class="question">{html.escape(question)}</div>')}


def _one_block(content: str) -> str:
    """HTML as the chat takes it: it reads messages as Markdown, and HTML that opens with a tag
    stays HTML, unread, up to a blank line. So no line break is left raw: a document's text can
    never end the block and have a link, an image from elsewhere or a heading read from it."""
    return content.replace("\r", "&#13;").replace("\n", "&#10;")


def _first(stream: AnswerStream, waiting: T) -> Generator[T, None, str | None]:
    """The stream's first piece, which waits for a turn with the model, read on a thread of its
    own while the page is shown `waiting` every half second: a page that goes away meanwhile
    (Gradio closes its handler at the next one) gives up its place instead of having the model
    answer no one."""
    read: queue.SimpleQueue = queue.SimpleQueue()

    def first() -> None:
        try:
            read.put((next(stream, None), None))
        except BaseException as e:  # handed to the page's handler, never lost in this thread
            read.put((None, e))

    threading.Thread(target=first, name="docqa-first-piece", daemon=True).start()
    try:
        while True:
            try:
                piece, error = read.get(timeout=0.5)
                break
            except queue.Empty:
                yield waiting
    except GeneratorExit:
        stream.gone.set()
        raise
    if error is not None:
        raise error
    return piece


def _then(first: str | None, stream: AnswerStream) -> Iterator[str]:
    """The first piece (None: the stream had none), then the rest of the stream."""
    if first is not None:
        yield first
        yield from stream


def _turns(stored: object) -> list[Turn]:
    """The turns a browser kept; anything it holds that is not one (an older form) is left out."""
    turns = []
    for data in stored if isinstance(stored, list) else []:
        try:
            turns.append(Turn.from_dict(data))
        except (TypeError, KeyError, AttributeError):
            continue
    return turns


def build_ui(service: Service):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    h = Handlers(service)
    limit = service.config.max_question_chars
    hour = int(EXPORT_HOURS * 3600)  # Gradio's own copies of the downloads go as soon as ours
    with gr.Blocks(title="docqa", delete_cache=(hour, hour)) as demo:
        gr.Markdown("# docqa\nAnswers from your documents, with sources. Everything runs on this machine.")
        status = gr.Markdown(h.status(), elem_id="status")
        timer = gr.Timer(2.0)
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                question = gr.Textbox(label="Question", placeholder="Ask about your documents …",
                                      max_length=limit, lines=2, elem_id="question")  # fmt: skip
                with gr.Row():  # the scope: leave empty to ask every document
                    picked = gr.Dropdown(label="Only these documents", choices=[], multiselect=True, scale=3,
                                         allow_custom_value=True,  # API callers name ids; unknown ones are reported
                                         elem_id="scope-docs")  # fmt: skip
                    since = gr.DateTime(
                        label="Dated from", include_time=False, type="string", elem_id="since"
                    )
                    until = gr.DateTime(
                        label="Dated until", include_time=False, type="string", elem_id="until"
                    )
                ask_button = gr.Button("Ask", variant="primary", elem_id="ask-button")
                answer = gr.HTML(elem_id="answer")
                sources = gr.HTML(elem_id="sources")
                answer_json = gr.JSON(visible=False)
                download = gr.DownloadButton(
                    "Download as Markdown", visible=False, size="sm", elem_id="download"
                )
            with gr.Tab("Chat", id="chat"):
                # render.py escapes every text it shows, so the chat takes its HTML as it is.
                chatbot = gr.Chatbot(label="Conversation", height=560, sanitize_html=False, latex_delimiters=[],
                                     feedback_options=None, elem_id="chat",
                                     placeholder="Ask a question, then follow-ups that say he, it or there.")  # fmt: skip
                with gr.Row():
                    chat_question = gr.Textbox(label="Question", placeholder="Ask, or follow up …", max_length=limit,
                                               lines=1, scale=5, elem_id="chat-question")  # fmt: skip
                    chat_button = gr.Button("Send", variant="primary", scale=1, elem_id="chat-button")
                with gr.Row():
                    new_chat = gr.Button("New conversation", size="sm", elem_id="new-conversation")
                    chat_download = gr.DownloadButton("Download conversation as Markdown", visible=False, size="sm",
                                                      elem_id="chat-download")  # fmt: skip
                with gr.Row():  # the scope of the next question: leave empty to ask every document
                    chat_picked = gr.Dropdown(label="Only these documents", choices=[], multiselect=True, scale=3,
                                              allow_custom_value=True,  # one removed since is reported, not dropped
                                              elem_id="chat-scope-docs")  # fmt: skip
                    chat_since = gr.DateTime(label="Dated from", include_time=False, type="string",
                                             elem_id="chat-since")  # fmt: skip
                    chat_until = gr.DateTime(label="Dated until", include_time=False, type="string",
                                             elem_id="chat-until")  # fmt: skip
            with gr.Tab("Summarise", id="summarise"):
                choice = gr.Dropdown(
                    label="Document", choices=[("All documents", ALL)], value=ALL, elem_id="summary-choice"
                )
                summarize_button = gr.Button("Summarise", variant="primary", elem_id="summarize-button")
                summary = gr.HTML(elem_id="summary")
                summary_json = gr.JSON(visible=False)
            with gr.Tab("Documents", id="documents"):
                table = gr.Dataframe(headers=["Title", "Date", "Chunks", "Indexed", "Id"], interactive=False,
                                     elem_id="documents-table")  # fmt: skip
                files = gr.File(label=f"Add documents ({' '.join(SUPPORTED)}; up to {MAX_UPLOAD_BYTES // 1_000_000} MB each)",
                                file_count="multiple", file_types=list(SUPPORTED), elem_id="upload")  # fmt: skip
                add_button = gr.Button("Add to index", elem_id="add-button")
                upload_report = gr.Markdown(elem_id="upload-report")
                uploads = gr.Dataframe(headers=["File", "Status", "Reason", "Added", "Stored as"], interactive=False,
                                       label="Uploads", elem_id="uploads-table")  # fmt: skip
                retry_button = gr.Button(
                    "Retry uploads that were not indexed", size="sm", elem_id="retry-button"
                )
                # API callers name ids (the handler checks them), as with the scope pickers.
                removable = gr.Dropdown(
                    label="Remove a document", choices=[], elem_id="remove-choice", allow_custom_value=True
                )
                remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove-button")
                remove_report = gr.Markdown()

        def refresh(summarising: str | None = ALL, removing: str | None = None):
            """The page's lists as the index has them, each choice kept while it is still one (a
            picked scope is kept even then: a question asked of a document gone says so)."""
            rows, upload_rows, choices = h.documents()
            failed = [
                (f"{r[0]} (upload, {r[1]})", f"stored:{r[4]}") for r in upload_rows if r[1] != "indexed"
            ]
            summarisable, removable_now = [("All documents", ALL), *choices], choices + failed
            return (
                h.status(), rows, upload_rows,
                gr.Dropdown(choices=summarisable, value=_kept(summarising, summarisable, ALL)),
                gr.Dropdown(choices=removable_now, value=_kept(removing, removable_now, None)),
                gr.Dropdown(choices=choices),
                gr.Dropdown(choices=choices),
            )  # fmt: skip

        listing = [status, table, uploads, choice, removable, picked, chat_picked]

        seen = gr.State("")  # the service's version this page shows: refreshed only when it moves on

        def tick(last: str, summarising: str | None, removing: str | None):
            now = service.version()
            if now == last:  # the status alone, for how busy the model is
                return h.status(), *(gr.skip() for _ in listing[1:]), last
            return (*refresh(summarising, removing), now)

        timer.tick(tick, inputs=[seen, choice, removable], outputs=[*listing, seen], api_visibility="private",
                   concurrency_limit=None)  # fmt: skip
        demo.load(refresh, outputs=listing, api_visibility="private", concurrency_limit=None)

        # The model's turns (service.slots) are shared with the OpenAI API; the queue shows a
        # page's place in line until one of its turns is free.
        turns = service.slots.size
        ask_event = dict(fn=h.ask, inputs=[question, picked, since, until], outputs=[answer, sources, answer_json],
                         concurrency_id="model", concurrency_limit=turns)  # fmt: skip
        offer = dict(fn=lambda data: gr.DownloadButton(value=h.export(data), visible=bool(data and "text" in data)),
                     inputs=answer_json, outputs=download, api_visibility="private")  # fmt: skip
        hide = dict(fn=lambda: gr.DownloadButton(visible=False), outputs=download, api_visibility="private",
                    concurrency_limit=None)  # fmt: skip
        ask_button.click(**hide).then(**ask_event, api_name="ask").then(**offer)
        question.submit(**hide).then(**ask_event, api_visibility="private").then(**offer)
        # Each browser keeps its own conversation (encrypted in its localStorage), so a reload
        # brings it back and users never see each other's; the server keeps none.
        kept = gr.BrowserState(
            [], storage_key="docqa-conversation", secret=_browser_secret(service.config.index_dir)
        )

        def chat(question: str, stored, docs, since, until):
            for view, turns in h.chat(question, stored, docs, since, until):
                yield view, gr.skip() if turns is stored else turns, ""

        def offer_chat(stored):
            return gr.DownloadButton(value=h.export_chat(stored), visible=bool(_turns(stored)))

        chat_event = dict(fn=chat, inputs=[chat_question, kept, chat_picked, chat_since, chat_until], outputs=[chatbot, kept, chat_question],
                          concurrency_id="model", concurrency_limit=turns, api_visibility="private")  # fmt: skip
        offer_event = dict(fn=offer_chat, inputs=kept, outputs=chat_download, api_visibility="private")
        asking = [chat_button.click(**chat_event), chat_question.submit(**chat_event)]
        for event in asking:
            event.then(**offer_event)
        # Starting over stops an answer still coming, which would otherwise bring the old turns back.
        new_chat.click(lambda: ([], [], gr.DownloadButton(visible=False)), outputs=[chatbot, kept, chat_download],
                       api_visibility="private", concurrency_limit=None, cancels=asking)  # fmt: skip
        # The chat's own clear button starts over too, in the browser's keeping as on the page.
        chatbot.clear(lambda: ([], gr.DownloadButton(visible=False)), outputs=[kept, chat_download],
                      api_visibility="private", concurrency_limit=None, cancels=asking)  # fmt: skip
        demo.load(lambda stored: (h.chat_view(_turns(stored)), offer_chat(stored)), inputs=kept,
                  outputs=[chatbot, chat_download], api_visibility="private", concurrency_limit=None)  # fmt: skip
        summarize_button.click(h.summarize, inputs=choice, outputs=[summary, summary_json], api_name="summarize",
                               concurrency_id="model", concurrency_limit=turns)  # fmt: skip

        # The named endpoints take what they always took (API callers pass only that).
        def upload(paths, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (how Gradio asks for it)
            progress(0, desc="Storing and indexing …")
            return (h.upload(paths), *refresh())

        add_button.click(upload, inputs=files, outputs=[upload_report, *listing], api_name="upload",
                         concurrency_id="index", concurrency_limit=1).then(lambda: None, outputs=files, api_visibility="private")  # fmt: skip
        retry_button.click(lambda: (h.retry(), *refresh()), outputs=[upload_report, *listing], api_name="retry",
                           concurrency_id="index", concurrency_limit=1)  # fmt: skip
        remove_button.click(lambda d: (h.remove(d), *refresh()), inputs=removable, outputs=[remove_report, *listing],
                            api_name="remove", concurrency_id="index", concurrency_limit=1)  # fmt: skip
        gr.Button(visible=False).click(
            lambda: h.documents()[0], outputs=table, api_name="documents", concurrency_limit=None
        )
        gr.Button(visible=False).click(h.status, outputs=status, api_name="status", concurrency_limit=None)
    return demo


def _kept(value: str | None, choices: list[tuple[str, str]], otherwise: str | None) -> str | None:
    """`value` while it is one of `choices` (label, value), else `otherwise`."""
    return value if any(value == v for _, v in choices) else otherwise


def _browser_secret(index_dir: Path) -> str:
    """The key the browsers' kept conversations are encrypted with: made once and kept beside the
    index (readable by its owner only), so a conversation outlives a restart of docqa."""
    path = Path(index_dir) / "browser-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        # O_EXCL: another process that made it first wins, and both use its secret.
        with (
            contextlib.suppress(FileExistsError),
            os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f,
        ):
            f.write(secret)
        return path.read_text().strip()


def app(service: Service, key: str | None = None, origins: Sequence[str] = ()):
    """Everything `docqa serve` answers on one port: the OpenAI-compatible API under /v1 and the
    web UI with its Gradio API and files, all behind `key` when there is one. Web pages from
    `origins` may call it from a browser (CORS; check them with access.check_origins)."""
    demo = build_ui(service)
    import gradio as gr
    from fastapi import FastAPI
    from gradio.route_utils import FnIndexInferError

    from qa.openai_routes import router

    demo.queue(max_size=64, default_concurrency_limit=4)
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.include_router(router(service))  # before the UI, which is mounted at / and takes every other path
    gr.mount_gradio_app(
        root,
        demo,
        path="/",
        footer_links=["api"],
        blocked_paths=[str(Path(service.config.index_dir).resolve())],
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=True,  # validation errors reach API callers with their message
        ssr_mode=False,
        css=CSS,
        app_kwargs={"exception_handlers": {FnIndexInferError: _unknown_endpoint}},
    )
    if key:
        root.add_middleware(KeyGuard, key=key)
    if origins:  # outside the key guard: a browser asks before it sends a key, and sends none then
        from fastapi.middleware.cors import CORSMiddleware

        # Any request header: the openai clients send their own (X-Stainless-Lang ...); the key
        # check still applies. A page may read when to ask again.
        root.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST"],
                            allow_headers=["*"], expose_headers=["Retry-After", "x-should-retry"],
                            max_age=600)  # fmt: skip
    return root


def serve(service: Service, host: str = "127.0.0.1", port: int = 7860, key: str | None = None,
          origins: Sequence[str] = ()) -> None:  # fmt: skip
    """Serve until interrupted (localhost only unless told otherwise; never a public link). Call
    access.check_binding first: this serves whatever it is given."""
    import uvicorn

    listening = listen(host, port)
    stop = _Stop()
    # SIGTERM, as systemd or docker stops a service, ends the server as Ctrl-C does, so that every
    # cleanup runs (the page's downloads hold passages of the user's documents). Handlers belong to
    # the main thread; uvicorn puts its own in place while it serves, then raises the signal again.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    config = uvicorn.Config(app(service, key, origins), log_level="warning", timeout_graceful_shutdown=5)
    stop.serve(_server(config), listening)


def listen(host: str, port: int) -> socket.socket:
    """The socket docqa serves on: `host` as given ([::1] as in a URL; :: every address, IPv4's
    too, as uvicorn binds it), or a ConfigError that says what to do."""
    address = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        both = address == "::" and socket.has_dualstack_ipv6()
        return socket.create_server((address, port), family=family, dualstack_ipv6=both)
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            advice = "is docqa already running there? Choose another port with --port"
        else:  # a name that does not resolve, an address not of this machine
            advice = "give --host an address of this machine (127.0.0.1, or 0.0.0.0 for every one)"
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e}): {advice}") from None


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server for `config`'s app, which ends the UI's session streams when it shuts
    down. Each open page (and gradio_client) holds a heartbeat stream that Gradio ends once its
    app's stop event is set, as Gradio's own launch does on close; left open, each held the
    shutdown until timeout_graceful_shutdown, which then printed a traceback of cancelled tasks."""
    import uvicorn
    from starlette.routing import Mount

    ui = next(route.app for route in config.app.routes if isinstance(route, Mount))  # Gradio, at /

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            ui.stop_event.set()  # in the server's event loop, where the streams wait on it
            await super().shutdown(sockets)

    return Server(config)


class _Stop:
    """SIGTERM's handler around uvicorn's: it asks the server to stop and never raises, since an
    exception raised in a signal handler can land in a finaliser (an old event loop's __del__),
    which swallows it, and the server would serve on."""

    def __init__(self) -> None:
        self.asked = False
        self.server: uvicorn.Server | None = None  # once there is one

    def __call__(self, signum: int, frame: object) -> None:
        self.asked = True
        if self.server is not None:
            self.server.should_exit = True

    def serve(self, server: uvicorn.Server, listening: socket.socket) -> None:
        self.server = server
        server.should_exit = self.asked  # asked while the app was being built: start, then stop at once
        server.run(sockets=[listening])


ENDPOINTS = ("/ask", "/summarize", "/documents", "/upload", "/retry", "/remove", "/status")


async def _unknown_endpoint(request, error: Exception):
    """A call to an API name docqa does not have: a 404 that lists the ones it has."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": f"{error}; docqa's endpoints are {', '.join(ENDPOINTS)}"}, status_code=404)
