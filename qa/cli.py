"""The `docqa` command: index, search."""

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
    return parser


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
    handlers = {"index": _index, "search": _search}
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
