"""The Gradio web UI: ask, summarise, manage documents. Every action is also a named API
endpoint (`/ask`, `/summarize`, `/documents`, `/upload`, `/retry`, `/remove`, `/status`)."""

from __future__ import annotations

import html
import logging
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

from embeddings.errors import DocqaError
from embeddings.readers import SUPPORTED
from qa.render import answer_html, final_answer_html, sources_html, summary_html
from qa.service import MAX_UPLOAD_BYTES, Service

log = logging.getLogger("docqa.web")
ALL = "__all__"  # the summarise choice for the whole collection

CSS = """
.answer {font-size: 1.1em; line-height: 1.5; padding: .5em 0}
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
"""


def _error(e: Exception) -> str:
    return f'<div class="error">{html.escape(str(e))}</div>'


class Handlers:
    """What each UI action does, against a Service; no Gradio objects, so tests call them plainly."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def ask(self, question: str) -> Iterator[tuple[str, str, dict]]:
        try:
            stream = self.service.ask(question)
            shown = ""
            yield answer_html("…"), "", {}
            for piece in stream:
                shown += piece
                yield answer_html(shown), "", {}
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

    def summarize(self, choice: str | None) -> Iterator[tuple[str, dict]]:
        doc_id = None if choice in (None, "", ALL) else choice
        updates: queue.Queue = queue.Queue()
        result: dict = {}

        def run() -> None:
            try:
                result["summary"] = self.service.summarize(doc_id, lambda d, t: updates.put((d, t)))
            except Exception as e:  # handed to the page below
                result["error"] = e
            updates.put(None)

        threading.Thread(target=run, daemon=True).start()
        yield '<p class="note">Summarising …</p>', {}
        while (update := updates.get()) is not None:
            done, total = update
            yield f'<p class="note">Summarising: {done} of about {total} parts done …</p>', {}
        if "error" in result:
            e = result["error"]
            if not isinstance(e, DocqaError):
                log.error("summarize failed", exc_info=e)
            yield _error(e), {"error": str(e)}
            return
        s = result["summary"]
        note = f"{s.seconds:.1f} s · {s.calls} model calls, {s.cached} from cache · {s.model}"
        yield summary_html(s.title, s.text, s.sources, note), s.to_dict()

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
        except DocqaError as e:
            return f"**Not indexed:** {e}"
        lines = [f"- refused {r}" for r in refused]
        failed = {u.stored: u for u in self.service.uploads() if u.status == "failed"}
        for u in stored:
            if u.stored in failed:
                lines.append(
                    f"- **{u.name}** could not be read: {failed[u.stored].error} (kept; remove it below)"
                )
            else:
                lines.append(f"- added **{u.name}**")
        if report is not None:
            lines.append(f"\n{report.summary()}")
        return "\n".join(lines)

    def retry(self) -> str:
        try:
            report, failing = self.service.retry()
        except DocqaError as e:
            return f"**Not indexed:** {e}"
        lines = [f"- **{u.name}** still not indexed: {u.error or u.status}" for u in failing]
        return "\n".join([*lines, f"\n{report.summary()}"])

    def remove(self, doc_id: str | None) -> str:
        if not doc_id:
            return "Choose a document to remove."
        try:
            if doc_id.startswith("stored:"):
                report = self.service.forget_upload(doc_id.removeprefix("stored:"))
            else:
                report = self.service.remove(doc_id)
        except DocqaError as e:
            return f"**Not removed:** {e}"
        return f"Removed. {report.summary()}"

    def status(self) -> str:
        s = self.service.status()
        if s.state != "ready":
            return f"**{html.escape(s.message)}**"
        return (
            f"{s.documents} documents · {s.chunks} chunks · embeddings: {s.embedding_model} · "
            f"generator: {s.generator_model} · device: {s.device}"
        )


def build_ui(service: Service):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    h = Handlers(service)
    limit = service.config.max_question_chars
    with gr.Blocks(title="docqa") as demo:
        gr.Markdown("# docqa\nAnswers from your documents, with sources. Everything runs on this machine.")
        status = gr.Markdown(h.status(), elem_id="status")
        timer = gr.Timer(2.0)
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                question = gr.Textbox(label="Question", placeholder="Ask about your documents …",
                                      max_length=limit, lines=2, elem_id="question")  # fmt: skip
                ask_button = gr.Button("Ask", variant="primary", elem_id="ask-button")
                answer = gr.HTML(elem_id="answer")
                sources = gr.HTML(elem_id="sources")
                answer_json = gr.JSON(visible=False)
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
                removable = gr.Dropdown(label="Remove a document", choices=[], elem_id="remove-choice")
                remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove-button")
                remove_report = gr.Markdown()

        def refresh():
            rows, upload_rows, choices = h.documents()
            failed = [
                (f"{r[0]} (upload, {r[1]})", f"stored:{r[4]}") for r in upload_rows if r[1] != "indexed"
            ]
            return (
                h.status(), rows, upload_rows,
                gr.Dropdown(choices=[("All documents", ALL), *choices], value=ALL),
                gr.Dropdown(choices=choices + failed, value=None),
            )  # fmt: skip

        listing = [status, table, uploads, choice, removable]

        def tick():
            ready = service.status().state != "loading"
            return (*refresh(), gr.Timer(active=not ready))

        timer.tick(tick, outputs=[*listing, timer], api_visibility="private", concurrency_limit=None)
        demo.load(refresh, outputs=listing, api_visibility="private", concurrency_limit=None)

        ask_event = dict(fn=h.ask, inputs=question, outputs=[answer, sources, answer_json], concurrency_id="model",
                         concurrency_limit=2)  # fmt: skip
        ask_button.click(**ask_event, api_name="ask")
        question.submit(**ask_event, api_visibility="private")
        summarize_button.click(h.summarize, inputs=choice, outputs=[summary, summary_json], api_name="summarize",
                               concurrency_id="model", concurrency_limit=2)  # fmt: skip

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


def serve(service: Service, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the UI on host:port (localhost only unless told otherwise; never a public link)."""
    demo = build_ui(service)
    from gradio.route_utils import FnIndexInferError

    demo.queue(max_size=64, default_concurrency_limit=4)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        max_file_size=MAX_UPLOAD_BYTES,
        blocked_paths=[str(Path(service.config.index_dir).resolve())],
        prevent_thread_lock=not block,
        show_error=True,  # validation errors reach API callers with their message
        ssr_mode=False,
        css=CSS,
        footer_links=["api"],
        app_kwargs={"exception_handlers": {FnIndexInferError: _unknown_endpoint}},
    )
    return demo


ENDPOINTS = ("/ask", "/summarize", "/documents", "/upload", "/retry", "/remove", "/status")


async def _unknown_endpoint(request, error: Exception):
    """A call to an API name docqa does not have: a 404 that lists the ones it has."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": f"{error}; docqa's endpoints are {', '.join(ENDPOINTS)}"}, status_code=404)
