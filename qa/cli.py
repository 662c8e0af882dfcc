"""The `docqa` command: index, search, ask, summarize, documents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from embeddings.config import Config
from embeddings.errors import DocqaError

_DEFAULTS = Config()


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docqa", description="Answer questions from your documents, locally."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="build or update the index from a folder of documents")
    index.add_argument(
        "docs", nargs="?", type=Path, default=_DEFAULTS.docs, help="folder or file (default: %(default)s)"
    )
    index.add_argument(
        "--index", type=Path, default=_DEFAULTS.index_dir, help="index folder (default: %(default)s)"
    )
    index.add_argument(
        "--model", default=_DEFAULTS.embedding_model, help="embedding model: name, Hub id or folder"
    )
    index.add_argument("--chunk-tokens", type=_positive, default=_DEFAULTS.chunk_tokens)
    index.add_argument("--chunk-overlap", type=int, default=_DEFAULTS.chunk_overlap)
    index.add_argument("--batch-size", type=_positive, default=_DEFAULTS.batch_size)
    index.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU when present)")
    index.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    index.add_argument("--wait", type=float, default=0, help="seconds to wait for another build to finish")
    index.add_argument("--quiet", action="store_true", help="no progress bars")

    search = sub.add_parser("search", help="print the chunks that best match a query")
    search.add_argument("query")
    search.add_argument("--index", type=Path, default=_DEFAULTS.index_dir)
    search.add_argument("--k", type=_positive, default=5)
    search.add_argument("--method", choices=["dense", "bm25"], default="dense")
    search.add_argument("--json", action="store_true", help="print JSON instead of text")

    ask = sub.add_parser("ask", help="answer a question from the indexed documents, with sources")
    ask.add_argument("question")
    _answer_options(ask)

    summarize = sub.add_parser("summarize", help="summarise one document, or all of them")
    summarize.add_argument("doc_id", nargs="?", help="a document id (see `docqa documents`); none: all")
    summarize.add_argument("--sentences", type=_positive, default=_DEFAULTS.summary_sentences)
    _answer_options(summarize)

    serve = sub.add_parser("serve", help="serve the web UI (builds the index of DOCS first if there is none)")
    serve.add_argument(
        "--docs", type=Path, default=_DEFAULTS.docs, help="folder to index if there is no index"
    )
    serve.add_argument("--index", type=Path, default=_DEFAULTS.index_dir)
    serve.add_argument("--model", default=_DEFAULTS.generator, help="generator: name, Hub id or folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    serve.add_argument("--port", type=_positive, default=7860)
    serve.add_argument("--device", default=None)
    serve.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])

    check = sub.add_parser("check", help="check that the index agrees with itself (vectors, chunks, BM25)")
    check.add_argument("--index", type=Path, default=_DEFAULTS.index_dir)
    check.add_argument("--sample", type=int, default=16, help="chunks to embed again and compare (0: none)")

    documents = sub.add_parser("documents", help="list the indexed documents")
    documents.add_argument("--index", type=Path, default=_DEFAULTS.index_dir)
    documents.add_argument("--json", action="store_true")
    return parser


def _answer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, default=_DEFAULTS.index_dir)
    parser.add_argument("--model", default=_DEFAULTS.generator, help="generator: name, Hub id or folder")
    parser.add_argument("--k", type=_positive, default=_DEFAULTS.top_k, help="passages given to the model")
    parser.add_argument("--context-tokens", type=_positive, default=_DEFAULTS.context_tokens)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: GPU when present)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def _index(args: argparse.Namespace) -> int:
    from embeddings.builder import build

    config = Config(
        docs=args.docs,
        index_dir=args.index,
        embedding_model=args.model,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
    )
    report = build(config, progress=not args.quiet, wait=args.wait)
    print(report.summary())
    return 0


def _search(args: argparse.Namespace) -> int:
    from embeddings.index import Index

    if not args.query.strip():
        raise DocqaError("the query is empty: give some words to search for")
    index = Index.open(args.index)
    hits = index.dense(args.query, args.k) if args.method == "dense" else index.lexical(args.query, args.k)
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


def _assistant(args: argparse.Namespace, **settings):
    from qa.assistant import Assistant

    config = Config(
        index_dir=args.index,
        generator=args.model,
        top_k=args.k,
        candidates=max(args.k, _DEFAULTS.candidates),
        context_tokens=args.context_tokens,
        device=args.device,
        dtype=args.dtype,
        **settings,
    )
    return Assistant.open(config=config)


def _ask(args: argparse.Namespace) -> int:
    assistant = _assistant(args)
    if args.json:
        print(json.dumps(assistant.ask(args.question).to_dict(), indent=2, ensure_ascii=False))
        return 0
    stream = assistant.stream(args.question)
    for piece in stream:
        print(piece, end="", flush=True)
    answer = stream.answer
    print()
    if answer.text != "".join(answer.raw).strip() and not answer.abstained:
        print(f"\n(checked) {answer.text}")
    _print_sources(answer)
    return 0


def _print_sources(answer) -> None:
    if answer.abstained:
        print(f"\n{answer.text} ({answer.reason})\nNearest passages:")
        for p in answer.passages[:3]:
            print(f"  - [{p.score:.2f}] {p.title} ({p.doc_id}, chars {p.start}-{p.end})")
        return
    print("\nSources:")
    for c in answer.citations:
        mark = "supported" if c.supported else "NOT supported"
        how = ", added by docqa" if c.inferred else ""
        print(f"  [{c.number}] {c.title} ({c.doc_id}, chars {c.start}-{c.end}; {mark}, {c.support:.0%}{how})")
    t = answer.timings
    print(
        f"({t['total']:.1f} s: retrieve {t['retrieve']:.2f} s, generate {t['generate']:.1f} s; {answer.model})"
    )


def _summarize(args: argparse.Namespace) -> int:
    assistant = _assistant(args, summary_sentences=args.sentences)
    summary = assistant.summarize(args.doc_id, progress=None if args.json else _progress)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"\r{summary.title}\n\n{summary.text}\n")
    docs = sorted({p.doc_id for p in summary.sources})
    print(f"Drawn from {len(summary.sources)} passages of {len(docs)} document(s): {', '.join(docs[:10])}")
    print(
        f"({summary.seconds:.1f} s, {summary.calls} model calls, {summary.cached} from cache; {summary.model})"
    )
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rsummarising: {done}/{total} parts", end="", file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from qa.service import Service
    from qa.web import serve

    config = Config(
        docs=args.docs, index_dir=args.index, generator=args.model, device=args.device, dtype=args.dtype
    )
    print(f"docqa: serving http://{args.host}:{args.port} (models load in the background)", file=sys.stderr)
    serve(Service(config).start(), args.host, args.port)
    return 0


def _documents(args: argparse.Namespace) -> int:
    from embeddings.index import Index

    docs = Index.open(args.index).documents()
    if args.json:
        print(json.dumps([d.__dict__ for d in docs], indent=2, ensure_ascii=False))
        return 0
    for d in docs:
        date = d.metadata.get("date", "")
        print(f"{d.id}\t{d.title}\t{date}\t{d.chunks} chunks\tindexed {d.indexed_at}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from embeddings.index import Index
    from embeddings.verify import verify

    embedder = Index.open(args.index).embedder if args.sample > 0 else None
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
        "summarize": _summarize,
        "documents": _documents,
        "check": _check,
        "serve": _serve,
    }
    try:
        return handlers[args.command](args)
    except DocqaError as e:
        print(f"docqa {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"docqa {args.command}: interrupted; the index was left as it was", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
