"""`python -m evaluation`: run the harness and write the report. --smoke runs the same code on
a tiny sample with the small model, so CI notices if the harness breaks.

Every threshold the run chooses is chosen on one half of a set (the even-numbered XQuAD
articles) and reported on the other (the stages it did not choose for run docqa's settings, and
the report says which); the baselines (BM25 alone, dense alone, lead-3) are
measured in the same run; no number in the report is typed by hand."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError, DocqaError
from embeddings.index import Index
from evaluation import (
    answers,
    asked,
    contradictions,
    data,
    followups,
    injection,
    report,
    retrieval,
    summaries,
)
from evaluation.machine import machine, source
from qa import models
from qa.answer import Checks
from qa.assistant import Assistant
from qa.generator import from_config as load_generator
from qa.generator import load

STAGES = ["retrieval", "contradictions", "asked", "xquad", "news", "followups", "injection", "summaries"]
# Sized for well under an hour on a 2-core CPU with the default model on the CPU runtime (42
# minutes with the sureness sample's 60 answers, reports/eval.md; about 2 hours at the 30-45 s per
# answer of the bf16 model); the model-free stages (contradictions, asked, the relevance gate) use
# every case.
FULL = {
    "scifact_queries": None,
    "xquad": {"answerable": 30, "on_topic": 20, "off_topic": 20},
    "news": {"answerable": 20, "on_topic": 10, "off_topic": 10},
    "news_articles": None,
    # XQuAD questions of the calibration half the model answers to choose the sureness check on
    "sureness": {"answerable": 40, "on_topic": 20},
    "followups": None,  # every pair of the report half (25 there), 4-6 model calls each
    "gate_questions": None,
    "injection": ["report", "honest"],
    "injection_cases": None,
    "contradictions": None,
    "summeval": 6,
    "xsum": 6,
    "rated_summaries": None,  # every one of SummEval's 1,600
}
SMOKE = {
    "scifact_queries": 10,
    "xquad": {"answerable": 2, "on_topic": 1, "off_topic": 1},
    "news": {"answerable": 1, "on_topic": 1, "off_topic": 1},
    "news_articles": 40,
    "sureness": {"answerable": 2, "on_topic": 1},
    "followups": 1,
    "gate_questions": 30,
    "injection": ["report", "honest"],
    "injection_cases": 3,
    "contradictions": 150,
    "summeval": 1,
    "xsum": 1,
    "rated_summaries": 160,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/eval"), help="folder of the evaluation sets"
    )
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: reports/; smoke, --only or a calibration half asked: test-artifacts/eval)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path(".eval-work"), help="indexes built for the run")
    parser.add_argument("--smoke", action="store_true", help="tiny samples and the small model")
    parser.add_argument(
        "--model", default=None, help="generator (default: docqa's default; smoke: the small one)"
    )
    parser.add_argument(
        "--reference", choices=["transformers", "none"], default="transformers",
        help="XQuAD asked again of the same model under this runtime, to show what int4 costs (default: transformers)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--followups-from", choices=["report", "calibration"], default="report",
        help="the half whose follow-up pairs are asked: calibration to try a change, report (the default) to score it",
    )  # fmt: skip
    parser.add_argument(
        "--answers-from", choices=["report", "calibration"], default="report",
        help="the half whose questions the model answers in the xquad and news stages: calibration to try a change, report (the default) to score it",
    )  # fmt: skip
    parser.add_argument("--only", nargs="*", choices=STAGES, default=None)
    parser.add_argument(
        "--set", dest="changes", action="append", default=[], metavar="NAME=VALUE",
        help="a setting of Config changed for this run (top_k=5), to try it; such a run never writes reports/",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        changes = setting_changes(args.changes)
        model = args.model or (models.SMALL if args.smoke else Config().generator)
        config = Config(**({"generator": model} | changes))
    except ConfigError as e:
        parser.error(str(e))
    sizes = SMOKE if args.smoke else FULL
    out = args.out or report_folder(args, changes)
    work = args.work / ("smoke" if args.smoke else "full")
    started, measured = time.perf_counter(), source()  # the commit as the run starts
    # In STAGES' order whatever the order asked: a stage uses the thresholds the ones before it chose.
    stages = [s for s in STAGES if s in args.only] if args.only else STAGES
    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
    generator = (
        load_generator(config)
        if set(stages) & {"xquad", "news", "followups", "injection", "summaries"}
        else None
    )
    results: dict = {}
    missing: list[str] = []
    for stage in stages:
        print(f"evaluation: {stage} ...", file=sys.stderr)
        try:
            results[stage] = _stage(stage, args, sizes, work, config, embedder, generator, results)
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
        **measured,
    }
    if missing and out == Path("reports"):  # reports/ holds whole runs only
        out = Path("test-artifacts/eval")
        print(f"evaluation: data is missing, so the report goes to {out}, not reports/", file=sys.stderr)
    json_path, md_path = report.write(results, out)
    print(f"evaluation: wrote {json_path} and {md_path} in {results['run']['seconds'] / 60:.1f} min")
    return 1 if missing else 0


def report_folder(args: argparse.Namespace, changes: dict) -> Path:
    """Where the run's report goes by default: reports/ only for a whole run of the settings as
    shipped, scored on the report half, so every report there is what one command wrote about
    docqa as it is; test-artifacts/ for a smoke run, some stages, a calibration half asked or a
    setting changed."""
    if args.smoke:
        return Path("test-artifacts/eval-smoke")
    if args.only or changes or "calibration" in (args.answers_from, args.followups_from):
        return Path("test-artifacts/eval")
    return Path("reports")


def setting_changes(pairs: list[str]) -> dict:
    """`--set NAME=VALUE` pairs as Config keyword arguments, each value read as the type of the
    setting's default (text where the default is None)."""
    defaults = asdict(Config())
    out: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in defaults:
            raise ConfigError(f"--set takes NAME=VALUE with NAME a setting of Config, got {pair!r}")
        kind = type(defaults[name]) if defaults[name] is not None else str
        try:
            out[name] = kind(value.strip())
        except ValueError:
            raise ConfigError(f"--set {name}: {value!r} is not a {kind.__name__}") from None
    return out


def _stage(
    stage: str, args, sizes: dict, work: Path, config: Config, embedder, generator, results: dict
) -> dict:
    if stage == "retrieval":
        return retrieval.run(args.data, work, config, embedder, sizes["scifact_queries"], args.seed)
    if stage == "contradictions":
        return contradictions.run(args.data, args.seed, limit=sizes["contradictions"])
    if stage == "asked":
        return asked.run(args.data, embedder)
    if stage in ("xquad", "news"):
        if stage == "xquad":
            corpus, calibration, report_half, info = answers.xquad_corpus(
                args.data, work / "xquad" / "paragraphs.jsonl"
            )
        else:
            corpus, calibration, report_half, info = answers.news_corpus(
                args.data, work / "news" / "passages.jsonl", sizes["news_articles"]
            )
        settings = answers.settings(config, corpus, work / f"{stage}-index")
        build(settings, embedder, progress=True)
        # The checks' thresholds as their own stages chose them in this run, else as configured.
        checks = Checks(
            results.get("contradictions", {}).get("threshold", config.support_threshold),
            results.get("asked", {}).get("threshold", config.min_grounding),
            results.get("asked", {}).get("weight", config.grounding_similarity),
            results.get("asked", {}).get("near", config.term_closeness),
            0.0,  # the sureness check is scored as a lever of its own, beside the rule without it
        )
        index = Index.open(settings.index_dir, embedder)
        reference = _reference(config, generator, args.reference) if stage == "xquad" else None
        # The answer check with the question's terms alone, as chosen beside the weight of meaning.
        alone = results.get("asked", {}).get("terms_alone")
        levers = (
            {
                "calibrated, terms alone": replace(
                    checks, grounding=alone["threshold"], similarity=0.0, near=1.0
                )
            }
            if alone
            else {}
        )
        # The sureness check, a lever: chosen on replies to XQuAD's calibration half, used as chosen on the news-style set.
        sure_sizes = sizes["sureness"] if stage == "xquad" else None
        sure = ((results.get("xquad") or {}).get("sureness") or {}).get("threshold")
        apart_from = sizes["xquad"] if stage == "news" else None  # XQuAD's own sample is not asked again
        out = answers.run(stage, index, generator, settings, calibration, report_half, sizes[stage], args.seed,
                          checks, sizes["gate_questions"], reference, args.answers_from, levers, sure_sizes, sure,
                          apart_from)  # fmt: skip
        return out | {"corpus": info, "checks_from": _checks_from(results)}
    if stage == "followups":
        corpus, calibration, report_half, _ = answers.xquad_corpus(
            args.data, work / "xquad" / "paragraphs.jsonl"
        )
        settings = answers.settings(config, corpus, work / "xquad-index")
        build(settings, embedder, progress=True)
        # The gate and checks as this run's stages chose them, else as configured.
        gate = results.get("xquad", {}).get("gate", {})
        settings = replace(
            settings,
            min_relevance=gate.get("min_relevance", config.min_relevance),
            min_lexical=gate.get("min_lexical", config.min_lexical),
            support_threshold=results.get("contradictions", {}).get("threshold", config.support_threshold),
            min_grounding=results.get("asked", {}).get("threshold", config.min_grounding),
            grounding_similarity=results.get("asked", {}).get("weight", config.grounding_similarity),
            term_closeness=results.get("asked", {}).get("near", config.term_closeness),
        )
        assistant = Assistant(Index.open(settings.index_dir, embedder), generator, settings)
        paragraphs, _ = data.xquad(args.data)
        half = calibration if args.followups_from == "calibration" else report_half
        return followups.run(assistant, paragraphs, half, sizes["followups"], args.seed) | {
            "half": args.followups_from
        }
    if stage == "injection":
        limit = sizes["injection_cases"]
        return injection.run(work / "injection", embedder, generator, config, sizes["injection"], limit)
    return summaries.run(args.data, work, config, embedder, generator, sizes, args.seed)


def _checks_from(results: dict) -> str:
    """Where the answer stages' support and answer-check thresholds came from."""
    return "; ".join(
        f"{what} {'chosen on the calibration half by this run' if stage in results else 'as configured (its stage did not run)'}"
        for what, stage in (("support", "contradictions"), ("answer check", "asked"))
    )


def _reference(config: Config, generator, runtime: str):
    """The same model under `runtime` (in the precision the hardware suits), when the run's own
    generator uses another one; None when there is nothing to compare."""
    if runtime == "none" or generator.runtime == runtime:
        return None
    return load(config.generator, config.device, None, runtime, config.generator_batch)


if __name__ == "__main__":
    sys.exit(main())
