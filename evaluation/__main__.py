"""`python -m evaluation`: run the harness and write the report. --smoke runs the same code on
a tiny sample with the small model, so CI notices if the harness breaks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import DocqaError
from evaluation import answers, report, retrieval, summaries
from evaluation.machine import machine
from qa import models
from qa.generator import Generator

FULL = {
    "scifact_queries": None,
    "answerable": 80,
    "on_topic": 60,
    "off_topic": 60,
    "summeval": 20,
    "xsum": 20,
}
SMOKE = {"scifact_queries": 10, "answerable": 3, "on_topic": 2, "off_topic": 2, "summeval": 1, "xsum": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/eval"), help="folder of the evaluation sets"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: reports/, smoke: test-artifacts/eval-smoke)",
    )
    parser.add_argument("--work", type=Path, default=Path(".eval-work"), help="indexes built for the run")
    parser.add_argument("--smoke", action="store_true", help="tiny samples and the small model")
    parser.add_argument(
        "--model", default=None, help="generator (default: docqa's default; smoke: the small one)"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--only", nargs="*", choices=["retrieval", "xquad", "summaries"], default=None)
    parser.add_argument("--rescore", type=Path, default=None,
                        help="recompute the answer and refusal scores of an eval.json with today's settings")  # fmt: skip
    args = parser.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore)
    sizes = SMOKE if args.smoke else FULL
    out = args.out or (Path("test-artifacts/eval-smoke") if args.smoke else Path("reports"))
    work = args.work / ("smoke" if args.smoke else "full")
    config = Config(generator=args.model or (models.SMALL if args.smoke else Config().generator))
    started = time.perf_counter()
    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
    stages = args.only or ["retrieval", "xquad", "summaries"]
    results: dict = {}
    missing: list[str] = []
    generator = (
        Generator.load(config.generator, config.device, config.dtype) if set(stages) - {"retrieval"} else None
    )
    for stage in stages:
        try:
            if stage == "retrieval":
                results["retrieval"] = retrieval.run(
                    args.data, work, config, embedder, sizes["scifact_queries"], args.seed
                )
            elif stage == "xquad":
                results["xquad"] = answers.run(args.data, work, config, embedder, generator, sizes, args.seed)
            else:
                results["summaries"] = summaries.run(
                    args.data, work, config, embedder, generator, sizes, args.seed
                )
        except DocqaError as e:  # a missing set: say so, go on with the others, fail at the end
            print(f"evaluation: {stage}: {e}", file=sys.stderr)
            missing.append(f"{stage}: {e}")
    results["run"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m evaluation " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "models": {
            "embedding": f"{embedder.name} ({embedder.fingerprint}, {embedder.dtype})",
            "generator": f"{config.generator} ({generator.dtype if generator else 'not loaded'})",
        },  # fmt: skip
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(replace(config)).items()},
        "sizes": sizes,
        "seed": args.seed,
        "machine": machine(),
        "missing": missing,
    }
    json_path, md_path = report.write(results, out)
    print(f"evaluation: wrote {json_path} and {md_path} in {results['run']['seconds'] / 60:.1f} min")
    return 1 if missing else 0


def rescore(path: Path) -> int:
    """Score the saved replies again under the current thresholds (no model is run)."""
    results = json.loads(path.read_text())
    x = results["xquad"]
    config = replace(Config(), generator=results["run"]["settings"]["generator"])
    x["answers"] = answers.answer_scores([r for r in x["records"] if r["group"] == "answerable"], config)
    x["refusals"] = answers.refusal_scores(x["records"], x["top_scores"], config)
    results["run"]["settings"].update(min_relevance=config.min_relevance, min_support=config.min_support)
    results["run"]["rescored"] = datetime.now(UTC).isoformat(timespec="seconds")
    json_path, md_path = report.write(results, path.parent)
    print(f"evaluation: rescored {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
