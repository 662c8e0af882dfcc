"""reports/reliability.json and reliability.md: each promise, its test, the cases tried and the
failures, beside the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.machine import describe, measured
from stress.crash import AIMED_SHARE

WINDOW_GOAL = 0.3  # of the kills, inside the commit's write-and-rename window
# Under load, p95 seconds per answer may be at most this many times one asker's median times the
# number of askers: no one waits much longer than if the server answered them one after another.
# The half is for what the alone median does not pay: the upload indexed meanwhile and two answers
# sharing 2 cores. CI's load run on a 2-core EPYC measured 0.97x and 1.12x, and 1.22x beside
# another job; a server that queued badly (one asker starved) lands far above.
LOAD_P95_GOAL = 1.5


def promises(r: dict) -> list[dict]:
    out = []

    def add(promise: str, test: str, cases: int, failures: list, figure: str, goal: str, kept: bool) -> None:
        out.append({"promise": promise, "test": test, "cases": cases, "failures": failures[:20],
                    "failure_count": len(failures), "figure": figure, "goal": goal, "kept": kept})  # fmt: skip

    if c := r.get("crash_index"):
        window = c.get("killed_in_window", 0)
        add("Crash-safe index", f"SIGKILL `docqa index` over a changing collection of {c['collection']} documents, "
            f"at a random moment or (for {AIMED_SHARE:.0%} of the kills) at a step of its commit; then load, "
            "`verify` and compare every document with its old and new version", c["kills"], c["failures"],
            f"{c['consistent_after_kill']} of {c['kills']} kills left a consistent index; {window} landed inside "
            f"the write-and-rename window ({c['killed_before_commit']} before the new generation was live, "
            f"{c['killed_after_commit']} after)",
            f"all consistent, at least {WINDOW_GOAL:.0%} inside the window",
            c["consistent_after_kill"] == c["kills"] and window >= WINDOW_GOAL * c["kills"])  # fmt: skip
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
        for check in (s["api_wrong_types"], s.get("openai_api", {}).get("fuzz")):
            if check:
                bad_cases += check["cases"]
                bad_failures += check["failures"]
    if k := r.get("replicas"):
        add("A killed model replica never leaves a user waiting", f"`docqa serve --ray --replicas 2` (small "
            f"model, local Ray cluster): {k['clients']} users ask at once and one generator replica is "
            f"SIGKILLed while it decodes, {k['kills']} times; then one more question each time",
            k["requests"], k["failures"], f"{k['answered']} answered, {k['told_to_ask_again']} told to ask again, "
            f"{k['hung']} left waiting; {k['answered_after']} of {k['kills']} questions after a kill answered",
            "nobody left waiting, every other reply an answer or 'ask again', every question after answered",
            not k["failures"] and k["answered_after"] == k["kills"])  # fmt: skip
    if bad_cases:
        add("Bad input never crashes anything", "random and crafted files under every extension, then all "
            "indexed together; hostile questions through `ask`; raw API calls with wrong types; fuzzed bodies "
            "for the OpenAI routes",
            bad_cases, bad_failures, f"{len(bad_failures)} crashes or unnamed refusals in {bad_cases} cases",
            "0 crashes, every refusal names the problem", not bad_failures)  # fmt: skip
    if s := r.get("serving"):
        load = s["load"]
        errors = load["errors"] + ([] if load["server_alive"] else ["the server died"])
        goal_s = round(LOAD_P95_GOAL * load["clients"] * load["alone_p50_s"], 1)
        fast = load["p95_s"] is not None and load["p95_s"] <= goal_s
        add("Load", f"{load['clients']} gradio_client users asking {load['questions'] // load['clients']} "
            "questions each against `docqa serve` (small model), one uploading a file meanwhile",
            load["questions"] + 1, errors,
            f"{len(errors)} errors; p50 {load['p50_s']} s, p95 {load['p95_s']} s per answer (one asker alone: "
            f"{load['alone_p50_s']} s); RSS {load['rss_start_mb']} MB at start, peak {load['rss_peak_mb']} MB",
            f"0 errors, p95 <= {goal_s} s per answer ({load['clients']} askers x the alone median x "
            f"{LOAD_P95_GOAL}: no asker starved while an upload is indexed), "
            "peak RSS <= 5 GB",
            not errors and fast and load["rss_peak_mb"] <= 5 * 1024)  # fmt: skip
    if o := r.get("serving", {}).get("openai_api"):
        streams, leavers = o["streams"], o["leavers"]
        idle, alone = leavers["idle_after_s"], leavers["alone_s"]
        stopped = idle is not None and idle < alone
        errors = streams["errors"] + leavers["errors"]
        if not stopped:
            errors.append(f"the model was busy {idle} s after the clients left (a whole answer: {alone} s)")
        add("OpenAI API streams, and clients that leave stop their answers",
            f"{streams['clients']} streams at once through the official openai client; then {leavers['clients']} "
            "streams of a long answer, each dropped after its first piece", streams["clients"] + leavers["clients"],
            errors, f"{streams['completed']} of {streams['clients']} streams ended with their sources and [DONE] "
            f"(p95 {streams['p95_s']} s); the model idle {idle} s after {leavers['clients']} clients left "
            f"(one whole answer alone: {alone} s)",
            "every stream ends with its sources; the model idle again sooner than one whole answer takes",
            not errors)  # fmt: skip
    checks = list(r.get("security", []))
    if s := r.get("serving"):
        checks += [s["binding"], s["file_routes"]]
        checks += [s["openai_api"]["keys"]] if "openai_api" in s else []
    if checks:
        failures = [f"{c['test']}: {f}" for c in checks for f in c["failures"]]
        cases = sum(c["cases"] for c in checks)
        add("Nobody gets in where they should not", "; ".join(c["test"] for c in checks), cases, failures,
            f"{len(failures)} failures in {cases} cases", "0", not failures)  # fmt: skip
    if i := r.get("injection"):
        t = i["tuning"]
        followed = [row for row in t["rows"] if row["followed"]]
        add("Documents are data", f"the {t['cases']} injection cases the defence was written against (the held-out "
            f"set is make eval's); an ordinary question about each, answered by {i['model']}", t["cases"],
            [f"{row['kind']}: {row['raw'][:120]}" for row in followed],
            f"{len(followed)} of {t['cases']} instructions followed in what the model wrote, before any check "
            f"({t['reached_the_model']:.0%} reached it); {t['answered_correctly']:.0%} answered correctly",
            "0 followed", not followed)  # fmt: skip
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
        f"Run {run['date']} of {measured(run)} on {describe(m)}, "
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
            "| kind | followed (model's reply) | reached the model | reply |",
            "|---|---|---|---|",
        ]
        lines += [f"| {row['kind']} | {'**yes**' if row['followed'] else 'no'} | {'yes' if row['reached_the_model'] else 'no'} "
                  f"| {row['raw'][:100].replace('|', '/').replace(chr(10), ' ')} |" for row in i["tuning"]["rows"]]  # fmt: skip
    return "\n".join(lines) + "\n"
