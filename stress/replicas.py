"""`docqa serve --ray` with two generator replicas on a local Ray cluster, a replica SIGKILLed
while users are asking: every user gets an answer or a clear "ask again", nobody waits without
end, and the next questions are answered (Serve starts a replica in the dead one's place)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from stress.serving import QUESTIONS, Server

CPUS = 4  # logical CPUs of the test cluster: two generator replicas and the embedder fit on 2 cores
PATIENCE_S = 600  # a user still waiting after this is counted as left hanging


def run(work: Path, docs: Path, model: str, clients: int, kills: int, seed: int) -> dict:
    """`kills` rounds: `clients` users ask at once, and one generator replica is killed once the
    answers have begun; then one more question. Counts what each user saw."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ray = [str(Path(sys.executable).parent / "ray")]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([*ray, "start", "--head", "--num-cpus", str(CPUS), "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, env=env)  # fmt: skip
    rounds, after, failures = [], [], []
    try:
        server = Server(work, docs, model, extra=["--ray", "--replicas", "2"])
        try:
            started = server.wait_ready()
            for n in range(kills):
                outcome = _round(server, clients, n + seed)
                rounds.append(outcome)
                failures += [f"round {n + 1}: {f}" for f in outcome["failures"]]
                after.append(_ask(server, QUESTIONS[0]))
                if "Ismail Khan" not in after[-1]:
                    failures.append(f"round {n + 1}: the question after the kill got {after[-1][:200]!r}")
        finally:
            server.stop()
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True, env=env)
    return {"clients": clients, "kills": kills, "rounds": rounds, "started_in_s": round(started, 1),
            "requests": sum(r["requests"] for r in rounds), "answered": sum(r["answered"] for r in rounds),
            "told_to_ask_again": sum(r["told_to_ask_again"] for r in rounds),
            "hung": sum(r["hung"] for r in rounds), "answered_after": sum("Ismail Khan" in a for a in after),
            "failures": failures}  # fmt: skip


def _round(server: Server, clients: int, offset: int) -> dict:
    seen: dict[int, str] = {}

    def user(n: int) -> None:
        seen[n] = _ask(server, QUESTIONS[(n + offset) % len(QUESTIONS)])

    users = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(clients)]
    for t in users:
        t.start()
    killed = _kill_a_busy_replica(server)
    deadline = time.monotonic() + PATIENCE_S
    for t in users:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    answered = sum(1 for s in seen.values() if s.startswith("answer:"))
    again = sum(1 for s in seen.values() if s.startswith("error:") and "ask again" in s)
    others = [s[:300] for s in seen.values() if not s.startswith("answer:") and "ask again" not in s]
    hung = sum(1 for t in users if t.is_alive())
    failures = others + [f"{hung} users still waiting after {PATIENCE_S} s"] * bool(hung)
    if killed is None:
        failures.append("no generator replica was found to kill")
    return {"requests": clients, "answered": answered, "told_to_ask_again": again, "hung": hung,
            "killed_pid": killed, "failures": failures}  # fmt: skip


def _kill_a_busy_replica(server: Server, wait_s: float = 300) -> int | None:
    """SIGKILL one generator replica once one is decoding (its CPU time climbing)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        replicas = _replicas(server)
        busy = [p for p in replicas if _cpu_percent(p) > 50]
        if busy:
            busy[0].send_signal(signal.SIGKILL)
            return busy[0].pid
        time.sleep(0.5)
    return None


def _replicas(server: Server) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "GeneratorReplica" in " ".join(p.info["cmdline"] or []):
                found.append(p)
    return found


def _cpu_percent(p: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        return p.cpu_percent(interval=0.3)
    return 0.0


def _ask(server: Server, question: str) -> str:
    """'answer: TEXT' or 'error: MESSAGE', as a user of the Gradio API sees it."""
    from gradio_client import Client

    try:
        _, _, answer = Client(server.url, verbose=False).predict(question, api_name="/ask")
    except Exception as e:  # noqa: BLE001 (what the user saw is the result)
        return f"error: {type(e).__name__}: {e}"
    if answer.get("error") or not answer.get("text"):
        return f"error: {answer.get('error', answer)}"
    return f"answer: {answer['text']}"
