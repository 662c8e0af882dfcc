"""The `docqa` command: index, search, ask, chat, summarize, documents."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from embeddings.config import Config
from embeddings.errors import DocqaError, QuestionError
from qa.generator import RUNTIMES, remembering

if TYPE_CHECKING:
    from embeddings.scope import Scope

_DEFAULTS = Config()
RUNTIME_HELP = "default: onnx-int4 (4-bit) on a CPU, transformers on a GPU"
DTYPE_HELP = "the embedding model's precision, and the generator's on the transformers runtime"


def _positive(value: str, most: int | None = None, least: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if number < least or (most is not None and number > most):
        raise argparse.ArgumentTypeError(f"must be {least} or more, got {number}" if number < least else
                                         f"must be at most {most}, got {number}")  # fmt: skip
    return number


def _path(value: str) -> Path:
    """A path as given, "~" read as the home folder where the shell left it (make, zsh after "=")."""
    return Path(value).expanduser()


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value}")
    return seconds


def _port(value: str) -> int:
    return _positive(value, 65535)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docqa", description="Answer questions from your documents, locally."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="build or update the index from a folder of documents")
    index.add_argument(
        "docs", nargs="?", type=_path, default=_DEFAULTS.docs, help="folder or file (default: %(default)s)"
    )
    index.add_argument(
        "--index", type=_path, default=_DEFAULTS.index_dir, help="index folder (default: %(default)s)"
    )
    index.add_argument(
        "--model", default=_DEFAULTS.embedding_model, help="embedding model: name, Hub id or folder"
    )
    index.add_argument("--chunk-tokens", type=_positive, default=_DEFAULTS.chunk_tokens)
    index.add_argument("--chunk-overlap", type=int, default=_DEFAULTS.chunk_overlap)
    index.add_argument(
        "--batch-size", type=lambda v: _positive(v, _DEFAULTS.embed_window), default=_DEFAULTS.batch_size
    )
    index.add_argument(
        "--compress-above", type=_positive, default=_DEFAULTS.compress_above, metavar="CHUNKS",
        help="a segment of more chunks keeps IVF-PQ codes with an exact rerank, not an HNSW graph "
        "(default: %(default)s; at least 10000)",
    )  # fmt: skip
    index.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU when present)")
    index.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    index.add_argument("--wait", type=_seconds, default=0, help="seconds to wait for another build to finish")
    index.add_argument("--quiet", action="store_true", help="no progress bars")
    index.add_argument("--watch", action="store_true", help="then keep the index up to date as files change")
    index.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="read, chunk and embed on a Ray cluster: the one at ADDRESS (HOST:PORT), or a new local one",
    )  # fmt: skip
    index.add_argument(
        "--ray-actors", type=_positive, default=None, metavar="N",
        help="embedding actors on the cluster (default: one per GPU, else one per CPU)",
    )  # fmt: skip

    search = sub.add_parser("search", help="print the chunks that best match a query")
    search.add_argument("query")
    search.add_argument("--index", type=_path, default=_DEFAULTS.index_dir)
    search.add_argument("--k", type=_positive, default=5)
    search.add_argument("--method", choices=["dense", "bm25"], default="dense")
    search.add_argument("--json", action="store_true", help="print JSON instead of text")
    _scope_options(search)

    ask = sub.add_parser("ask", help="answer a question from the indexed documents, with sources")
    ask.add_argument("question")
    ask.add_argument("--draft", action="store_true",
                     help="also show the model's unchecked draft on stderr as it is written")  # fmt: skip
    _answer_options(ask)
    _scope_options(ask)

    chat = sub.add_parser(
        "chat", help="a conversation: questions line by line from stdin (or a prompt), follow-ups understood"
    )
    chat.add_argument("--draft", action="store_true",
                      help="also show the model's unchecked draft on stderr as it is written")  # fmt: skip
    _answer_options(chat, "print one JSON object per turn, a line each")
    _scope_options(chat)

    summarize = sub.add_parser(
        "summarize", aliases=["summarise"], help="summarise one document, or all of them"
    )
    summarize.add_argument("doc_id", nargs="?", help="a document id (see `docqa documents`); none: all")
    summarize.add_argument("--sentences", type=lambda v: _positive(v, 20), default=_DEFAULTS.summary_sentences,
                           help="the longest summary, in sentences (1 to 20)")  # fmt: skip
    _answer_options(summarize, passages=False)

    serve = sub.add_parser("serve", help="serve the web UI (builds the index of DOCS first if there is none)")
    serve.add_argument(
        "--docs", type=_path, default=None,
        help=f"folder to index (default: {_DEFAULTS.docs} when there is no index), then watch for changes",
    )  # fmt: skip
    serve.add_argument("--index", type=_path, default=_DEFAULTS.index_dir)
    serve.add_argument("--model", default=_DEFAULTS.generator, help="generator: name, Hub id or folder")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: localhost only; any other needs an API key)")  # fmt: skip
    serve.add_argument("--port", type=_port, default=7860)
    serve.add_argument("--api-key", default=os.environ.get("DOCQA_API_KEY") or None,
                       help="key every request must bring (default: $DOCQA_API_KEY, which, unlike this "
                            "option, does not show in the process list)")  # fmt: skip
    serve.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                       help="a web page's origin allowed to call docqa from a browser, such as "
                            "http://localhost:3000 (repeatable; * for any, with an API key only)")  # fmt: skip
    serve.add_argument("--device", default=None)
    serve.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help=DTYPE_HELP)
    serve.add_argument("--runtime", default=None, choices=list(RUNTIMES), help=RUNTIME_HELP)
    serve.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run the models as Ray Serve deployments on the cluster at ADDRESS (HOST:PORT; without "
             "it, the one `ray start` runs here, or a new local one); this process holds no model",
    )  # fmt: skip
    serve.add_argument(
        "--replicas", default="1", metavar="N|MIN:MAX",
        help="with --ray: generator replicas, a number or autoscaling bounds (default: 1)",
    )  # fmt: skip

    check = sub.add_parser("check", help="check that the index agrees with itself (vectors, chunks, BM25)")
    check.add_argument("--index", type=_path, default=_DEFAULTS.index_dir)
    check.add_argument("--sample", type=lambda v: _positive(v, least=0), default=16,
                       help="chunks to embed again and compare (0: none)")  # fmt: skip

    documents = sub.add_parser("documents", help="list the indexed documents")
    documents.add_argument("--index", type=_path, default=_DEFAULTS.index_dir)
    documents.add_argument("--json", action="store_true")
    return parser


def _answer_options(
    parser: argparse.ArgumentParser, json_help: str = "print the whole result as JSON", passages: bool = True
) -> None:
    parser.add_argument("--index", type=_path, default=_DEFAULTS.index_dir)
    parser.add_argument("--model", default=_DEFAULTS.generator, help="generator: name, Hub id or folder")
    if passages:  # a summary reads whole documents, not the passages a search finds
        parser.add_argument(
            "--k",
            type=_positive,
            default=_DEFAULTS.top_k,
            help="passages given to the model (a short document that holds them all is shown whole)",
        )
        parser.add_argument("--answer-tokens", type=lambda v: _positive(v, 2048), default=_DEFAULTS.answer_tokens,
                            help="the longest answer the model may write, in tokens; a longer one is cut there")  # fmt: skip
    parser.add_argument("--context-tokens", type=lambda v: _positive(v, least=256), default=_DEFAULTS.context_tokens,
                        help="the most tokens of prompt the model reads for one reply (256 or more)")  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: GPU when present)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help=DTYPE_HELP)
    parser.add_argument("--runtime", default=None, choices=list(RUNTIMES), help=RUNTIME_HELP)
    parser.add_argument("--json", action="store_true", help=json_help)


def _scope_options(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_argument_group("scope", "ask only some documents (all must hold)")
    scope.add_argument("--doc", action="append", default=[], metavar="ID", help="this document (repeatable)")
    scope.add_argument("--under", metavar="PATH", help="documents in this folder of the indexed one")
    scope.add_argument("--since", metavar="DATE", help="documents dated on or after YYYY-MM-DD")
    scope.add_argument("--until", metavar="DATE", help="documents dated on or before YYYY-MM-DD")
    scope.add_argument(
        "--format", action="append", default=[], metavar="EXT", help="of this file type: pdf, docx ..."
    )


def _scope(args: argparse.Namespace):
    from embeddings.scope import Scope

    return Scope.parse(args.doc, args.under, args.since, args.until, args.format)


_DISK_ERRORS = frozenset(
    [
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
    ]
)


def _disk_problem(e: OSError | sqlite3.Error) -> bool:
    """Whether `e` is the file system refusing docqa (full, read-only, a path that is not a
    folder), which the user can fix, rather than a fault to show whole."""
    if isinstance(e, sqlite3.Error):
        return any(w in str(e) for w in ("disk", "readonly", "unable to open"))
    return e.errno in _DISK_ERRORS


def _stdout_gone() -> bool:
    """Whether the reader of standard output has gone (asked of the pipe, without writing)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no file behind stdout, or no poll here
        return False


def _disk_advice(e: OSError | sqlite3.Error) -> str:
    number = getattr(e, "errno", None)
    if number in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in str(e):
        return "free disk space"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable, or give another --index"
    return "check that the paths given are folders docqa can write to"


def _index(args: argparse.Namespace) -> int:
    from embeddings.builder import build

    config = Config(
        docs=args.docs,
        index_dir=args.index,
        embedding_model=args.model,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        compress_above=args.compress_above,
        device=args.device,
        dtype=args.dtype,
    )
    if args.quiet:
        _no_loading_bars()
    if args.ray is None:
        if args.ray_actors is not None:
            raise DocqaError("--ray-actors is for --ray: a build on this machine embeds in this process")
        if args.watch:  # the watch builds first, and goes on where that build fails (the index busy, say)
            return _watch(config, args)
        report = build(config, progress=not args.quiet, wait=args.wait)
    else:
        report = _build_on_ray(config, args)
    print(report.summary())
    return 0


def _build_on_ray(config: Config, args: argparse.Namespace):
    if args.watch:
        raise DocqaError("--watch builds on this machine: leave out --ray to watch a folder")
    from embeddings.builder import build
    from embeddings.ray_build import Cluster  # says how to install Ray where it is missing

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the build's own bars say how far it is
    with Cluster.connect(args.ray or None, args.ray_actors, quiet=args.quiet) as cluster:
        return build(config, progress=not args.quiet, wait=args.wait, cluster=cluster)


def _watch(config: Config, args: argparse.Namespace) -> int:
    from embeddings.builder import build
    from embeddings.embedder import Embedder
    from embeddings.watch import follow

    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)  # once, not at each change

    def rebuild() -> None:  # the first catches what changed before the watch began
        print(build(config, embedder, progress=not args.quiet, wait=args.wait).summary(), flush=True)

    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    ready = lambda: say(f"Watching {config.docs} for files added, changed or removed (Ctrl-C stops) ...")  # noqa: E731
    stop = threading.Event()

    def interrupted(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C stops a build in progress (the index keeps the last)
        stop.set()  # the watch ends at its next step, or once the build in progress finishes
        say("docqa index: stopping (Ctrl-C again stops a build in progress at once)")

    # Our own handler, installed whatever the shell left (ignored or blocked): the watch then ends
    # by its stop event rather than by an exception unwinding through the file watcher.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        follow(config.docs, config.index_dir, rebuild, say, stop=stop, ready=ready)
    say("docqa index: stopped watching; the index holds the last build that finished")
    return 0


def _holds(index_dir: Path, scope: Scope | None, doc_id: str | None = None) -> None:
    """A QuestionError, before the models load, where the index lacks the document `doc_id` or
    holds none in `scope`: a typo costs no wait."""
    from embeddings.index import Index

    if not scope and doc_id is None:
        return
    index = Index.open(index_dir)
    try:
        if scope:
            index.within(scope)
        if doc_id is not None and index.document(doc_id) is None:
            raise QuestionError(f"no document {doc_id!r} in the index; `docqa documents` lists the ids")
    finally:
        index.close()


def _search(args: argparse.Namespace) -> int:
    from embeddings.index import Index

    if not args.query.strip():
        raise DocqaError("the query is empty: give some words to search for")
    index = Index.open(args.index)
    scope = _scope(args)
    if scope:
        index.within(scope)  # a document the index lacks, or a scope that holds none, says so
    search = index.dense if args.method == "dense" else index.lexical
    hits = search(args.query, args.k, scope)
    if args.json:
        print(
            json.dumps([_hit_json(rank, h) for rank, h in enumerate(hits, 1)], indent=2, ensure_ascii=False)
        )
        return 0
    if not hits:
        print("No matching chunks.")
    for rank, hit in enumerate(hits, 1):
        c = hit.chunk
        print(f"{rank}. [{hit.score:.3f}] {c.title} ({c.doc_id}, chars {c.start}-{c.end})")
        print("   " + " ".join(c.text.split()))
    return 0


def _assistant(args: argparse.Namespace, answers: bool = True, **settings):
    from qa.assistant import Assistant

    _say("docqa: loading the models ...")
    _no_loading_bars()

    config = Config(
        index_dir=args.index,
        generator=args.model,
        top_k=getattr(args, "k", _DEFAULTS.top_k),
        candidates=max(getattr(args, "k", _DEFAULTS.top_k), _DEFAULTS.candidates),
        context_tokens=args.context_tokens,
        answer_tokens=getattr(args, "answer_tokens", _DEFAULTS.answer_tokens),
        device=args.device,
        dtype=args.dtype,
        runtime=args.runtime,
        **settings,
    )
    assistant = Assistant.open(config=config, answers=answers)
    _say("")
    return assistant


def _ask(args: argparse.Namespace) -> int:
    from qa.assistant import checked

    checked(args.question, _DEFAULTS.max_question_chars)  # before the models load: a typo costs no wait
    scope = _scope(args)
    _holds(args.index, scope)
    assistant = _assistant(args)
    with remembering(assistant.generator):
        if args.json:  # the draft, asked for, on stderr as ever
            answer = _show(assistant.stream(args.question, scope), args) if args.draft else None
            answer = answer or assistant.ask(args.question, scope)
            print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
            return 0
        answer = _show(assistant.stream(args.question, scope), args)
        print(answer.text)
        _print_sources(answer)
    return 0


def _show(stream, args: argparse.Namespace):
    """Read `stream` to its end and return the checked answer. Only the checked answer reaches
    stdout (the caller prints it): the draft may yet be withdrawn, so while the model writes,
    stderr shows how far it is (or, with --draft, the draft itself, marked as such)."""
    from qa.render import counted

    words = 0
    if args.draft:
        print("draft (unchecked): ", end="", file=sys.stderr, flush=True)
    else:
        _say("docqa: searching, then reading the passages ...")
    for piece in stream:
        words += len(piece.split())
        if args.draft:
            print(piece, end="", file=sys.stderr, flush=True)
        else:
            _say(f"docqa: the model is writing ({counted(words, 'word')}) ...")
    answer = stream.answer
    if args.draft:
        verdict = f"withdrawn: {answer.reason}" if answer.withdrawn else "checked"
        print(f"\n[draft {verdict}]", file=sys.stderr, flush=True)
    else:
        _say("")
    return answer


def _no_loading_bars() -> None:
    """transformers' bar for reading a model's weights, which takes a moment and says nothing a
    user needs (docqa says what it is doing itself)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _say(message: str) -> None:
    """What docqa is doing, on a terminal: one line, rewritten by the next (empty: cleared)."""
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)


def _chat(args: argparse.Namespace) -> int:
    scope = _scope(args)  # a date that is not one is an error before the models load
    _holds(args.index, scope)
    assistant = _assistant(args)
    conversation = assistant.chat()
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about your documents; follow-up questions may say he, it or there. Ctrl-D ends.",
              file=sys.stderr)  # fmt: skip
    with remembering(assistant.generator):
        for question in _lines(interactive):
            if not question.strip():
                continue
            try:  # the question is checked as it is asked, and against the budget as it is read
                stream = conversation.stream(question, scope)
                answer = stream.answer if args.json and not args.draft else _show(stream, args)
            except QuestionError as e:  # one bad line does not end the conversation
                _say("")
                print(f"{chr(10) if args.draft else ''}docqa chat: {e}", file=sys.stderr, flush=True)
                if args.json:  # a line out for each line in
                    print(json.dumps({"question": question, "error": str(e)}, ensure_ascii=False), flush=True)
                continue
            if args.json:
                turn = {
                    "question": answer.question,
                    "standalone": answer.standalone,
                    "answer": answer.to_dict(),
                }
                print(json.dumps(turn, ensure_ascii=False), flush=True)
                continue
            if answer.standalone != answer.question:
                print(f"(asked as: {answer.standalone})")
            print(answer.text)
            _print_sources(answer)
            print(flush=True)
    return 0


def _lines(interactive: bool):
    """The questions: typed at a prompt, or read line by line from stdin, until it ends."""
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            print("? ", end="", file=sys.stderr, flush=True)  # stdout holds only the answers
            yield input()
        except EOFError:
            print(file=sys.stderr)
            return


def _print_sources(answer) -> None:
    if answer.cut:
        print(
            f"(the answer was cut at the limit of {answer.tokens['completion']} tokens; --answer-tokens raises it)"
        )
    if answer.abstained:
        print(f"({answer.reason})\nNearest passages:")
        for p in answer.passages[:3]:
            page = f", {p.page_label}" if p.page_label else ""
            print(f"  - [{p.score:.2f}] {p.title} ({p.doc_id}{page}, chars {p.start}-{p.end})")
        return
    print("\nSources:")
    for c in answer.citations:
        mark = (
            "supported" if c.supported else "NOT supported" + (" (its mark taken out)" if c.dropped else "")
        )
        how = ", added by docqa" if c.inferred else ""
        why = f"; {c.problem}" if c.problem else ""
        page = f", {c.page_label}" if c.page_label else ""
        print(
            f"  [{c.number}] {c.title} ({c.doc_id}{page}, chars {c.start}-{c.end}; {mark}, {c.support:.0%}{how}{why})"
        )
    t = answer.timings
    first = f" (first token after {t['first_token']:.1f} s)" if t.get("first_token") else ""
    print(
        f"({t['total']:.1f} s: retrieve {t['retrieve']:.2f} s, generate {t['generate']:.1f} s{first}; "
        f"{answer.model}, {answer.runtime})"
    )


def _summarize(args: argparse.Namespace) -> int:
    from qa.render import caveats, counted, drawn_from

    _holds(args.index, None, args.doc_id)
    assistant = _assistant(args, answers=False, summary_sentences=args.sentences)
    summary = assistant.summarize(args.doc_id, progress=None if args.json else _progress)
    _say("")  # the progress line is done
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"{summary.title}\n\n{summary.text}\n")
    for line in caveats(
        summary.left_out, summary.supported, summary.skipped, summary.shortened, summary.unfinished
    ):
        print(line)
    docs = sorted({p.doc_id for p in summary.sources})
    more = f" and {len(docs) - 10} more" if len(docs) > 10 else ""
    print(f"{drawn_from(summary.sources)}: {', '.join(docs[:10])}{more}")
    print(
        f"({summary.seconds:.1f} s, {counted(summary.calls, 'model call')}, {summary.cached} from cache; {summary.model})"
    )
    return 0


def _progress(done: int, total: int) -> None:
    """How far a summary is: one line rewritten on a terminal, a line each in a log."""
    if sys.stderr.isatty():
        print(f"\r\033[Ksummarising: {done}/{total} parts", end="", file=sys.stderr, flush=True)
    else:
        print(f"summarising: {done}/{total} parts", file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> NoReturn:
    from qa.access import check_binding, check_origins
    from qa.service import Service
    from qa.web import serve

    check_binding(args.host, args.api_key)
    check_origins(args.cors, args.api_key)
    config = Config(
        docs=args.docs or _served_docs(args.index), index_dir=args.index, generator=args.model, device=args.device,
        dtype=args.dtype, runtime=args.runtime,
    )  # fmt: skip
    url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
    keyed = "; every request needs the API key" if args.api_key else ""
    ray = _ray_serve(args)
    where = " on the Ray cluster" if ray else ""
    print(f"docqa: serving the web UI on {url} and the OpenAI API on {url}/v1 (models load in the "
          f"background{where}{keyed})", file=sys.stderr)  # fmt: skip
    service = Service(config, ray=ray)
    code = 0
    try:
        serve(service.start(watch=args.docs is not None), args.host, args.port, args.api_key, args.cors)
    except SystemExit as stop:  # uvicorn's own exit (the app did not start)
        code = stop.code if isinstance(stop.code, int) else 0
    except KeyboardInterrupt:
        print("docqa serve: interrupted", file=sys.stderr)
        code = 130
    finally:
        service.stop()
    _leave(code)


def _served_docs(index_dir: Path) -> Path:
    """Without --docs: the folder the index was built from (uploads and removals rebuild the
    index, and a build from another folder would drop its documents), else the default."""
    from embeddings.builder import built_from

    if (docs := built_from(index_dir)) is not None:
        return docs
    if (index_dir / "CURRENT").exists():
        print(f"docqa serve: {index_dir} does not record the folder it was built from (built by an older "
              f"docqa); uploads and removals rebuild it from {_DEFAULTS.docs}: give --docs", file=sys.stderr)  # fmt: skip
    return _DEFAULTS.docs


def _leave(code: int) -> NoReturn:
    """Exit now, once the exit handlers have run (they remove the page's downloads): a model may
    still be loading, or an index building, in a background thread, and tearing the interpreter
    down around one can abort the process (SIGABRT) or hang it."""
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _ray_serve(args: argparse.Namespace):
    """The Ray Serve settings of `docqa serve --ray`, or None without it."""
    if args.ray is None:
        if args.replicas != "1":
            raise DocqaError("--replicas is for --ray: one process runs one generator")
        return None
    from qa.ray_serve import RayServe, Replicas  # says how to install Ray where it is missing

    logging.getLogger("ray").setLevel(logging.WARNING)
    ray = RayServe(args.ray or None, Replicas.parse(args.replicas))
    ray.join()  # an address that does not answer fails here, before anything is served
    return ray


def _documents(args: argparse.Namespace) -> int:
    from embeddings.index import Index

    docs = Index.open(args.index).documents()
    if args.json:
        print(json.dumps([d.__dict__ for d in docs], indent=2, ensure_ascii=False))
        return 0
    for d in docs:
        date = d.metadata.get("date", "")
        print(
            f"{d.id}\t{d.title}\t{date}\t{d.chunks} chunk{'' if d.chunks == 1 else 's'}\tindexed {d.indexed_at}"
        )
    return 0


def _check(args: argparse.Namespace) -> int:
    from embeddings.errors import IndexCorrupt, IndexMismatch
    from embeddings.index import Index
    from embeddings.verify import verify

    embedder = None
    if args.sample > 0:
        with contextlib.suppress(IndexCorrupt, IndexMismatch):  # damaged: verify says how, as a problem
            embedder = Index.open(args.index).embedder
    verdict = verify(args.index, embedder, args.sample)
    for problem in verdict.problems:
        print(f"problem: {problem}")
    if not verdict.ok:
        print(f"docqa check: {len(verdict.problems)} problems in {args.index}; rebuild it with "
              f"`docqa index DOCS --index {args.index}` after deleting it", file=sys.stderr)  # fmt: skip
        return 1
    docs, chunks = verdict.documents, verdict.chunks
    print(f"Index OK: {docs} document{'s' * (docs != 1)}, {chunks} chunk{'s' * (chunks != 1)}; vectors, "
          "chunk table, BM25 and manifest agree")  # fmt: skip
    return 0


def _hit_json(rank: int, hit) -> dict:
    c = hit.chunk
    return {
        "rank": rank,
        "score": round(hit.score, 4),
        "doc_id": c.doc_id,
        "title": c.title,
        "start": c.start,
        "end": c.end,
        "text": c.text,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "index": _index,
        "search": _search,
        "ask": _ask,
        "chat": _chat,
        "summarize": _summarize,
        "summarise": _summarize,
        "documents": _documents,
        "check": _check,
        "serve": _serve,
    }
    try:
        return handlers[args.command](args)
    except DocqaError as e:
        print(f"docqa {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # another pipe or socket: a fault to show whole
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        return 141  # the reader of the output went away (`docqa ask ... | head`)
    except (OSError, sqlite3.OperationalError) as e:
        if not _disk_problem(e):
            raise
        kept = "; the index was left as it was" if args.command == "index" else ""
        print(f"docqa {args.command}: could not read or write a file ({e}): {_disk_advice(e)}, then run it "
              f"again{kept}", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        kept = "; the index was left as it was" if args.command == "index" else ""
        print(f"docqa {args.command}: interrupted{kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
