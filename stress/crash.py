"""Crash-safety: `docqa index` and an upload are killed with SIGKILL at random moments; after each
kill the index must load, agree with itself, and hold every document wholly in its old or wholly
in its new state. An interrupted upload is either refused as a whole or kept and indexed later."""

from __future__ import annotations

import html
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from embeddings.embedder import Embedder
from embeddings.library import Library
from embeddings.readers import Pending, scan
from embeddings.verify import generation, verify
from evaluation.data import Paragraph
from stress import killpoints

ROOT = Path(__file__).resolve().parent.parent
# Kill points inside the write-and-rename window of a commit; the crash test aims this share of
# its kills there (they are a few milliseconds of a build, so kills at random times almost never
# land in them) and the rest at random moments of the whole build.
AIMED = [f"before:{s}" for s in killpoints.WINDOW] + [f"after:{s}" for s in killpoints.WINDOW[1:-1]]
AIMED_SHARE = 0.4


def write_collection(folder: Path, paragraphs: list[Paragraph]) -> None:
    """One document per paragraph, in the three text formats, with a date line like the sample."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(paragraphs):
        body = f"2026-01-{1 + i % 28:02d}\n\n{p.text}\n"
        match i % 3:
            case 0:
                (folder / f"doc-{i:04d}.txt").write_text(body)
            case 1:
                (folder / f"doc-{i:04d}.md").write_text(f"# {p.article} {i}\n\n{body}")
            case _:
                (folder / f"doc-{i:04d}.html").write_text(
                    f"<html><head><title>{html.escape(p.article)} {i}</title></head>"
                    f"<body><p>{html.escape(body)}</p></body></html>"
                )


def mutate(folder: Path, paragraphs: list[Paragraph], rng: random.Random, share: float, round_: int) -> None:
    """Change, delete and add documents: about `share` of the collection is touched."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in rng.sample(files, max(1, int(len(files) * share))):
        action = rng.random()
        if action < 0.7:
            text = path.read_text()
            addition = f" Revision {round_}: {rng.choice(paragraphs).text[:300]}"
            path.write_text(
                text.replace("</p>", addition + "</p>") if path.suffix == ".html" else text + addition
            )
        elif action < 0.85:
            path.unlink()
        else:
            new = folder / f"added-{round_}-{path.stem}.txt"
            new.write_text(rng.choice(paragraphs).text + f"\n\nAdded in round {round_}.\n")


def hashes(folder: Path) -> dict[str, str]:
    return {p.id: p.hash for p in scan(folder) if isinstance(p, Pending)}


def _run(
    docs: Path, index: Path, kill_after: float | None, kill_at: str | None = None
) -> tuple[str, float, str]:
    """Run `docqa index`; kill it after `kill_after` seconds, or let it kill itself at `kill_at`
    (see killpoints.py). Returns ("killed"|"finished"|"failed: ...", seconds, where it was)."""
    started = time.perf_counter()
    log, marks = index.parent / "index.log", index.parent / "index.marks"
    marks.unlink(missing_ok=True)
    command = [sys.executable, "-m", "stress.killpoints", str(marks), kill_at or "-", "--", "index", "--quiet",
               str(docs.absolute()), "--index", str(index.absolute())]  # fmt: skip
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode == -signal.SIGKILL:
        return "killed", seconds, killpoints.landed(marks)
    if proc.returncode != 0:
        return f"failed: {log.read_text().strip()[-500:]}", seconds, killpoints.landed(marks)
    return "finished", seconds, killpoints.landed(marks)


def index_kills(work: Path, paragraphs: list[Paragraph], embedder: Embedder, kills: int, seed: int,
                progress) -> dict:  # fmt: skip
    """Kill `docqa index` `kills` times, each during a build over a freshly changed collection."""
    rng = random.Random(seed)
    shutil.rmtree(work, ignore_errors=True)
    docs, index = work / "docs", work / "index"
    write_collection(docs, paragraphs)
    status, full, _ = _run(docs, index, None)
    if status != "finished":
        raise RuntimeError(f"the first build did not finish: {status}")
    trials, failures = [], []
    held = verify(index, None).hashes  # what the live index holds: the last committed state
    durations = [full]  # of builds that ran to the end
    while len([t for t in trials if t["outcome"] == "killed"]) < kills:
        share = rng.uniform(0.05, 0.6)
        mutate(docs, paragraphs, rng, share, len(trials))
        after = hashes(docs)
        live = generation(index)
        killed = len([t for t in trials if t["outcome"] == "killed"])
        if aimed(killed):
            delay, kill_at = None, rng.choice(AIMED)
        else:  # anywhere from start-up to just past the end of a typical build of this collection
            delay, kill_at = rng.uniform(0.0, statistics.median(durations) * 1.1), None
        outcome, seconds, landed = _run(docs, index, delay, kill_at)
        trial = {"round": len(trials), "changed_share": round(share, 2),
                 "kill": kill_at or f"at {delay:.2f} s", "outcome": outcome, "seconds": round(seconds, 2),
                 "landed": landed, "in_window": outcome == "killed" and killpoints.in_window(landed)}  # fmt: skip
        verdict = verify(index, embedder, sample=6, seed=len(trials))
        problems = list(verdict.problems)
        if outcome.startswith("failed"):
            problems.append(f"the build failed on its own: {outcome}")
        committed = generation(index) != live
        trial["state"] = "new" if committed else "old"
        # Wholly old or wholly new: the index is exactly the last committed state, or exactly the
        # folder as this build read it.
        expected = after if committed else held
        wrong = sorted(
            d for d in expected.keys() | verdict.hashes.keys() if expected.get(d) != verdict.hashes.get(d)
        )
        if wrong:
            problems.append(f"{len(wrong)} documents differ from the {trial['state']} state: {wrong[:5]}")
        held = verdict.hashes
        trial["problems"] = problems
        trials.append(trial)
        if problems:
            failures.append(trial)
        if outcome == "killed":
            progress()
        elif delay is not None:
            durations = [*durations[-9:], seconds]
    killed = [t for t in trials if t["outcome"] == "killed"]
    return {
        "collection": len(paragraphs),
        "full_build_s": round(full, 1),
        "kills": len(killed),
        "killed_before_commit": sum(t["state"] == "old" for t in killed),
        "killed_after_commit": sum(t["state"] == "new" for t in killed),
        "killed_in_window": sum(t["in_window"] for t in killed),
        "landed": dict(Counter(t["landed"] for t in killed).most_common()),
        "finished_before_kill": len(trials) - len(killed),
        "consistent_after_kill": sum(not t["problems"] for t in killed),
        "trials": [{k: t[k] for k in ("round", "kill", "outcome", "landed", "state")} for t in trials],
        "failures": failures[:10],
    }


def aimed(killed: int) -> bool:
    """Whether the next kill is aimed at the write-and-rename window: spread over the run, so
    that AIMED_SHARE of the kills are."""
    return int((killed + 1) * AIMED_SHARE) > int(killed * AIMED_SHARE)


_UPLOAD = """
import sys
from pathlib import Path
from stress import killpoints
killpoints.install(Path(sys.argv[4]))
from embeddings.builder import build
from embeddings.config import Config
from qa.service import MAX_UPLOAD_BYTES
from embeddings.library import Library
docs, index, source = map(Path, sys.argv[1:4])
Library(index).store("report.txt", source, MAX_UPLOAD_BYTES)
build(Config(docs=docs, index_dir=index), progress=False)
"""


def upload_kills(work: Path, paragraphs: list[Paragraph], embedder: Embedder, kills: int, seed: int,
                 progress) -> dict:  # fmt: skip
    """Kill an upload (store, then index, as the web UI does it) at random moments."""
    rng = random.Random(seed)
    shutil.rmtree(work, ignore_errors=True)
    docs, index = work / "docs", work / "index"
    write_collection(docs, paragraphs[:40])
    _run(docs, index, None)
    started = time.perf_counter()
    _upload(work, docs, index, paragraphs, 0, None)
    whole = time.perf_counter() - started
    trials, failures = [], []
    for i in range(kills):
        delay = rng.uniform(0.0, whole * 1.1)
        uploads_dir = Library(index).uploads_dir
        before = {p.name for p in uploads_dir.iterdir() if not p.name.startswith(".")}
        trial = {
            "round": i,
            "kill_at_s": round(delay, 2),
            **_upload(work, docs, index, paragraphs, i + 1, delay),
        }
        problems = verify(index, embedder, sample=4, seed=i).problems
        on_disk = {p.name for p in uploads_dir.iterdir() if not p.name.startswith(".")}
        trial["stored"] = bool(on_disk - before)  # this round's file reached the library before the kill
        # Nothing lost: the next build indexes every stored upload, the interrupted one included.
        _run(docs, index, None)
        after = verify(index, None)
        problems += after.problems
        listed = {u.stored: u for u in Library(index).uploads()}
        in_index = {d.removeprefix("upload:") for d in after.hashes if d.startswith("upload:")}
        if on_disk - listed.keys():
            problems.append(f"uploaded files on disk but not listed: {sorted(on_disk - listed.keys())}")
        missing = {s for s, u in listed.items() if u.status != "indexed" or s not in in_index}
        if missing:
            problems.append(f"uploads stored but not indexed after recovery: {sorted(missing)}")
        trial["problems"] = problems
        trials.append(trial)
        if problems:
            failures.append(trial)
        progress()
    return {
        "kills": kills,
        "landed": dict(Counter(t["landed"] for t in trials if t["killed"]).most_common()),
        "killed_before_stored": sum(not t["stored"] for t in trials),
        "killed_after_stored": sum(t["stored"] for t in trials),
        "consistent_after_kill": sum(not t["problems"] for t in trials),
        "failures": failures[:10],
    }


def _upload(work: Path, docs: Path, index: Path, paragraphs: list[Paragraph], n: int,
            kill_after: float | None) -> dict:  # fmt: skip
    source = work / f"upload-{n}.txt"
    source.write_text(
        "\n\n".join(p.text for p in paragraphs[40 + n % 100 : 43 + n % 100]) + f"\nUpload {n}.\n"
    )
    marks = work / "upload.marks"
    marks.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _UPLOAD, *(str(p.absolute()) for p in (docs, index, source, marks))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"})  # fmt: skip
    try:
        proc.wait(timeout=kill_after)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
    return {"killed": killed, "landed": killpoints.landed(marks)}
