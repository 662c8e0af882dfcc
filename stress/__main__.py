"""`python -m stress` (make stress): crash, fuzz, load and attack docqa, and check it loses
nothing. --ci runs the smaller version CI runs. Writes reports/reliability.json and .md and exits
non-zero when a promise is broken."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.index import Index
from evaluation import data, injection
from evaluation.injection_cases import TUNING
from evaluation.machine import machine, source
from qa import models
from qa.assistant import Assistant
from qa.generator import from_config as load_generator
from stress import crash, fuzz, replicas, report, security, serving

ROOT = Path(__file__).resolve().parent.parent
# api_*: the OpenAI routes' fuzzed bodies, streams at once, and streams dropped after their first piece
# replica_*: `docqa serve --ray` users asking while a generator replica is killed (not in CI, whose
# tests kill replicas on their own cluster)
FULL = {"index_kills": 100, "upload_kills": 10, "fuzz_scale": 1.0, "clients": 20, "questions_each": 5,
        "api_fuzz": 400, "api_streams": 20, "api_leavers": 20, "replica_clients": 6, "replica_kills": 3}  # fmt: skip
CI = {"index_kills": 10, "upload_kills": 3, "fuzz_scale": 0.15, "clients": 4, "questions_each": 1,
      "api_fuzz": 60, "api_streams": 2, "api_leavers": 4, "replica_clients": 4, "replica_kills": 0}  # fmt: skip
STAGES = ["crash", "fuzz", "security", "serving", "replicas", "injection"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    parser.add_argument(
        "--ci", action="store_true", help="the smaller version (fewer kills, cases and users)"
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"), help="evaluation sets (XQuAD)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: reports/; --ci or --only: test-artifacts/stress"
    )
    parser.add_argument("--work", type=Path, default=Path(".eval-work/stress"))
    parser.add_argument("--model", default=None, help="generator for the injection test (default: docqa's)")
    parser.add_argument("--only", nargs="*", choices=STAGES, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = CI if args.ci else FULL
    out = destination(args)
    stages = args.only or STAGES
    config = Config()
    model = args.model or (models.SMALL if args.ci else config.generator)
    started, measured = time.perf_counter(), source()  # the commit as the run starts
    embedder = Embedder.load(config.embedding_model, config.device, config.dtype)
    paragraphs, _ = data.xquad(args.data)
    results: dict = {}

    def bar(total: int, desc: str):
        return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)

    if "crash" in stages:
        with bar(sizes["index_kills"], "kill docqa index") as b:
            results["crash_index"] = crash.index_kills(args.work / "crash-index", paragraphs, embedder,
                                                       sizes["index_kills"], args.seed, lambda: b.update(1))  # fmt: skip
        with bar(sizes["upload_kills"], "kill an upload") as b:
            results["crash_upload"] = crash.upload_kills(args.work / "crash-upload", paragraphs, embedder,
                                                         sizes["upload_kills"], args.seed, lambda: b.update(1))  # fmt: skip
    generator = None
    seeds = args.work / "seed-index"  # the sample article, indexed for the bad questions and tampering
    if {"fuzz", "security"} & set(stages):
        build(
            replace(config, docs=ROOT / "seeds", index_dir=seeds),
            embedder,
            progress=False,
            log=lambda m: None,
        )
    if "fuzz" in stages:
        with bar(0, "bad files") as b:
            results["fuzz_files"] = fuzz.file_cases(args.work / "fuzz", embedder, config, args.seed,
                                                    sizes["fuzz_scale"], lambda: b.update(1))  # fmt: skip
        generator = load_generator(replace(config, generator=models.SMALL))
        # Short answers: this counts crashes, not answer quality, through the real model path.
        assistant = Assistant(
            Index.open(seeds, embedder), generator, replace(config, index_dir=seeds, answer_tokens=16)
        )
        with bar(0, "bad questions") as b:
            results["fuzz_questions"] = fuzz.question_cases(assistant, args.seed, sizes["fuzz_scale"],
                                                            lambda: b.update(1))  # fmt: skip
    if "security" in stages:
        results["security"] = [security.code_scan(), security.tampered_index(seeds), security.tampered_cache(),
                               security.tampered_model(), security.upload_names()]  # fmt: skip
    if "serving" in stages:
        print("stress: docqa serve under attack and load ...", file=sys.stderr)
        results["serving"] = serving.run(args.work / "serve", ROOT / "seeds", models.SMALL, sizes["clients"],
                                         sizes["questions_each"], args.seed, {"fuzz": sizes["api_fuzz"],
                                         "streams": sizes["api_streams"], "leavers": sizes["api_leavers"]})  # fmt: skip
    if "replicas" in stages and sizes["replica_kills"]:
        print("stress: docqa serve --ray, a generator replica killed under load ...", file=sys.stderr)
        results["replicas"] = replicas.run(args.work / "replicas", ROOT / "seeds", models.SMALL,
                                           sizes["replica_clients"], sizes["replica_kills"], args.seed)  # fmt: skip
    if "injection" in stages:
        if generator is None or generator.name != model:
            generator = load_generator(replace(config, generator=model))
        with bar(len(TUNING), "injected instructions") as b:
            results["injection"] = injection.run(args.work / "injection", embedder, generator, config, ["tuning"],
                                                 progress=lambda: b.update(1)) | {"model": generator.name}  # fmt: skip
    results["run"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m stress " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sizes": sizes,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        **measured,
        "models": {"embedding": embedder.name, "serving and bad questions": models.SMALL, "injection": model},
    }
    promises = report.promises(results)
    json_path, md_path = report.write(results, promises, out)
    broken = [p["promise"] for p in promises if not p["kept"]]
    print(f"stress: wrote {json_path} and {md_path}")
    for p in promises:
        print(f"  {'kept  ' if p['kept'] else 'BROKEN'} {p['promise']}: {p['figure']}")
    return 1 if broken else 0


def destination(args: argparse.Namespace) -> Path:
    """Where the report goes: reports/ only for a whole run, so that every report there is what one
    command wrote; a smaller or partial run writes beside the test artifacts, and nothing is merged."""
    if args.out:
        return args.out
    return Path("test-artifacts/stress") if args.ci or args.only else Path("reports")


if __name__ == "__main__":
    sys.exit(main())
