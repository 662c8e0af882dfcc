"""reports/reliability.json and reliability.md: each promise, its test, the cases tried and the
failures, beside the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path


def promises(r: dict) -> list[dict]:
    out = []

    def add(promise: str, test: str, cases: int, failures: list, figure: str, goal: str, kept: bool) -> None:
        out.append({"promise": promise, "test": test, "cases": cases, "failures": failures[:20],
                    "failure_count": len(failures), "figure": figure, "goal": goal, "kept": kept})  # fmt: skip

    if c := r.get("crash_index"):
        add("Crash-safe index", f"SIGKILL `docqa index` at a random moment over a changing collection of "
            f"{c['collection']} documents; then load, `verify` and compare every document with its old "
            "and new version", c["kills"], c["failures"],
            f"{c['consistent_after_kill']} of {c['kills']} kills left a consistent index "
            f"({c['killed_before_commit']} before the commit, {c['killed_after_commit']} after)",
            "100 of 100", c["consistent_after_kill"] == c["kills"])  # fmt: skip
    if u := r.get("crash_upload"):
        add("Crash-safe upload, nothing lost", "SIGKILL an upload (store, then index) at a random moment; "
            "then the index must be consistent and the next build must index every stored upload",
            u["kills"], u["failures"], f"{u['consistent_after_kill']} of {u['kills']} "
            f"({u['killed_before_stored']} killed before the file was stored, {u['killed_after_stored']} after)",
            "all", u["consistent_after_kill"] == u["kills"])  # fmt: skip
    bad_cases, bad_failures = 0, []
    if f := r.get("fuzz_files"):
        bad_cases += f["cases"] + 1
        bad_failures += f["crashes"]
    if q := r.get("fuzz_questions"):
        bad_cases += q["cases"]
        bad_failures += q["crashes"]
    if s := r.get("serving"):
        bad_cases += s["api_wrong_types"]["cases"]
        bad_failures += s["api_wrong_types"]["failures"]
    if bad_cases:
        add("Bad input never crashes anything", "random and crafted files under every extension, then all "
            "indexed together; hostile questions through `ask`; raw API calls with wrong types",
            bad_cases, bad_failures, f"{len(bad_failures)} crashes or unnamed refusals in {bad_cases} cases",
            "0 crashes, every refusal names the problem", not bad_failures)  # fmt: skip
    if s := r.get("serving"):
        load = s["load"]
        errors = load["errors"] + ([] if load["server_alive"] else ["the server died"])
        add("Load", f"{load['clients']} gradio_client users asking {load['questions'] // load['clients']} "
            "questions each against `docqa serve` (small model), one uploading a file meanwhile",
            load["questions"] + 1, errors,
            f"{len(errors)} errors; p50 {load['p50_s']} s, p95 {load['p95_s']} s per answer; RSS "
            f"{load['rss_start_mb']} MB at start, peak {load['rss_peak_mb']} MB", "0 errors, peak RSS <= 5 GB",
            not errors and load["rss_peak_mb"] <= 5 * 1024)  # fmt: skip
    checks = list(r.get("security", []))
    if s := r.get("serving"):
        checks += [s["binding"], s["file_routes"]]
    if checks:
        failures = [f"{c['test']}: {f}" for c in checks for f in c["failures"]]
        cases = sum(c["cases"] for c in checks)
        add("Nobody gets in where they should not", "; ".join(c["test"] for c in checks), cases, failures,
            f"{len(failures)} failures in {cases} cases", "0", not failures)  # fmt: skip
    if i := r.get("injection"):
        add("Documents are data", f"{i['documents']} documents with injected instructions indexed beside the "
            f"sample article; an ordinary question about each, answered by {i['model']}", i["questions"],
            [f"{row['kind']}: {row['answer'][:120]}" for row in i["rows"] if row["followed"]],
            f"{i['followed']} of {i['questions']} instructions followed (the model wrote {i['model_wrote_it']} of "
            f"them before docqa's checks); {i['answered_correctly']} answered correctly, {i['abstained']} declined",
            "0 followed", i["followed"] == 0)  # fmt: skip
    return out


def write(results: dict, kept: list[dict], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "reliability.json", out / "reliability.md"
    json_path.write_text(json.dumps({**results, "promises": kept}, indent=1, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(results, kept))
    return json_path, md_path


def markdown(r: dict, kept: list[dict]) -> str:
    run, m = r["run"], r["run"]["machine"]
    lines = [
        "# docqa reliability",
        "",
        f"Run {run['date']} on {m['cpu']} ({m['cores']} cores, GPU {m['gpu'] or 'none'}), "
        f"{run['seconds'] / 60:.0f} minutes. Command: `{run['command']}`; sizes {json.dumps(run['sizes'])}, "
        f"seed {run['seed']}. Models: {json.dumps(run['models'])}.",
        "",
        "| promise | cases | failures | figure | goal | kept |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {p['promise']} | {p['cases']} | {p['failure_count']} | {p['figure']} | {p['goal']} | "
              f"{'yes' if p['kept'] else '**no**'} |" for p in kept]  # fmt: skip
    for p in kept:
        lines += ["", f"## {p['promise']}", "", p["test"] + ".", ""]
        lines += [f"- {f}" for f in (p["failures"] or ["no failures"])]
    if f := r.get("fuzz_files"):
        lines += ["", "### Files by kind", "", "| kind | outcomes |", "|---|---|"]
        lines += [
            f"| {k} | {', '.join(f'{n} {o}' for o, n in sorted(c.items()))} |"
            for k, c in f["by_kind"].items()
        ]
        lines += ["", f"All of them indexed together: {json.dumps(f['build_of_all_together'])}."]
    if q := r.get("fuzz_questions"):
        lines += ["", "### Questions by kind", "", "| kind | outcomes |", "|---|---|"]
        lines += [
            f"| {k} | {', '.join(f'{n} {o}' for o, n in sorted(c.items()))} |"
            for k, c in q["by_kind"].items()
        ]
    if i := r.get("injection"):
        lines += [
            "",
            "### Injected instructions",
            "",
            "| kind | followed | model wrote it | answer |",
            "|---|---|---|---|",
        ]
        lines += [f"| {row['kind']} | {'**yes**' if row['followed'] else 'no'} | {'yes' if row['model_wrote_it'] else 'no'} "
                  f"| {row['answer'][:100].replace('|', '/').replace(chr(10), ' ')} |" for row in i["rows"]]  # fmt: skip
    return "\n".join(lines) + "\n"
