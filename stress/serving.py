"""A real `docqa serve` (started with an API key) under attack and under load: its file routes
probed with `../`, absolute paths and encoded variants; API calls with wrong types; its OpenAI
routes (stress/api.py); then concurrent `gradio_client` users asking questions while one uploads a
file. The server must answer every request, serve no file from outside its own data, and stay
within bounded memory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stress import api as openai_routes

QUESTIONS = [
    "Who mediated the meeting between Massoud and Muttaqi?",
    "Where did the meeting take place?",
    "How much wheat did India give?",
    "What did the NRF demand?",
    "What was the outcome of the meeting?",
]
SECRET = "docqa-stress-secret-8d2f"  # written beside the data; must never come back over HTTP
KEY = "docqa-stress-key-5e0b9a1c7d3f"  # the server's API key; every probe but the key checks brings it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`docqa serve` in a subprocess; its peak memory read from /proc."""

    def __init__(
        self, work: Path, docs: Path, model: str, key: str | None = None, extra: list[str] | None = None
    ) -> None:
        self.work, self.port = work, _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.index = work / "index"
        self.log = (work / "server.log").open("w")
        env = {k: v for k, v in os.environ.items() if k != "DOCQA_API_KEY"}
        if key:
            env["DOCQA_API_KEY"] = key
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index", str(self.index),
             "--model", model, "--port", str(self.port), *(extra or [])],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 600) -> float:
        from gradio_client import Client

        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docqa serve exited: see {self.log.name}")
            with contextlib.suppress(Exception):  # not listening yet
                status = Client(self.url, headers=self.headers, verbose=False).predict(api_name="/status")
                if "embeddings:" in status:
                    return time.perf_counter() - started
                if "could not start" in status:
                    raise RuntimeError(status)
            time.sleep(1)
        raise TimeoutError(f"docqa serve was not ready after {timeout} s")

    def rss_mb(self, field: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def listening_addresses(self) -> list[str]:
        """Local addresses the server's port is bound to (from /proc/net/tcp*)."""
        found = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    address, port = local.rsplit(":", 1)
                    if int(port, 16) == self.port and state == "0A":  # LISTEN
                        found.append(_address(address))
        return found

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _address(hex_address: str) -> str:
    if len(hex_address) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read(2_000_000)
    except urllib.error.HTTPError as e:
        return e.code, e.read(2_000_000)
    except (urllib.error.URLError, ValueError, OSError) as e:
        return 0, str(e).encode()


def file_route_paths(server: Server) -> Iterator[str]:
    secret = (server.work / "secret.txt").resolve()
    index = server.index.resolve()
    targets = [
        "/etc/passwd",
        str(secret),
        str(index / "CURRENT"),
        str(index / "uploads.json"),
        "/proc/self/environ",
    ]
    for target in targets:
        rel = "../" * 12 + target.lstrip("/")
        for form in (target, rel, rel.replace("/", "%2f"), rel.replace("../", "%2e%2e/"),
                     rel.replace("../", "%252e%252e%252f"), rel.replace("/", "\\"), "//" + target.lstrip("/"),
                     target.replace("/", "/./"), f"file://{target}"):  # fmt: skip
            for route in (
                "gradio_api/file=",
                "file=",
                "gradio_api/file/",
                "static/",
                "assets/",
                "gradio_api/upload/",
            ):
                yield route + form


def file_routes(server: Server) -> dict:
    (server.work / "secret.txt").write_text(SECRET)
    secret_bytes = [SECRET.encode(), b"root:x:0:0", b"gen-", b'"stored"', b"PATH="]
    failures, cases = [], 0
    for path in file_route_paths(server):
        cases += 1
        status, body = _get(server.url + path, server.headers)
        if status == 200 and any(s in body for s in secret_bytes):
            failures.append(f"GET /{path} returned a file from outside the app ({status})")
    return {"test": "Gradio file routes with ../, absolute paths and encoded variants", "cases": cases,
            "failures": failures}  # fmt: skip


def _call(server: Server, api: str, data: list) -> str:
    """POST a raw API call (no client-side checks) and read the event stream to its end."""
    request = urllib.request.Request(server.url + f"gradio_api/call/{api}", json.dumps({"data": data}).encode(),
                                     {"Content-Type": "application/json", **server.headers})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            event = json.loads(r.read())["event_id"]
    except urllib.error.HTTPError as e:
        return f"http {e.code}: {e.read(500).decode(errors='replace')}"
    status, body = _get(server.url + f"gradio_api/call/{api}/{event}", server.headers)
    return f"http {status}: {body.decode(errors='replace')}"


WRONG_TYPES = [
    ("ask", [None]), ("ask", [42]), ("ask", [["who"]]), ("ask", [{"q": 1}]), ("ask", [""]),
    ("ask", ["\x00\x01\x02"]), ("ask", ["why " * 250_000]), ("ask", []), ("ask", ["a", "b", "c"]),
    ("summarize", ["no-such-document"]), ("summarize", [42]), ("summarize", [["x"]]),
    ("remove", ["no-such-document"]), ("remove", [None]), ("remove", [{"id": 1}]), ("remove", ["stored:../../x"]),
    ("upload", [None]), ("upload", [[]]), ("upload", ["not a file"]), ("upload", [[{"path": "/etc/passwd"}]]),
    ("upload", [[{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]]),
    ("upload", [[{"path": "../../../etc/passwd", "orig_name": "x.txt", "meta": {"_type": "gradio.FileData"}}]]),
    ("upload", [[{"url": "file:///etc/passwd", "meta": {"_type": "gradio.FileData"}}]]),
    ("documents", [1, 2]), ("status", ["extra"]), ("nonexistent", ["x"]),
]  # fmt: skip


def api_wrong_types(server: Server) -> dict:
    """Each call is answered, or refused with a message that names the problem; the server keeps
    serving; no server file is taken in as an upload."""
    failures, outcomes = [], []
    for api, data in WRONG_TYPES:
        reply = _call(server, api, data)
        outcome = _outcome(reply)
        outcomes.append({"api": api, "data": repr(data)[:60], "outcome": outcome, "reply": reply[-300:]})
        if not server.alive():
            failures.append(f"/{api} {data!r:.60}: the server died")
            break
        if "root:x:0:0" in reply:
            failures.append(f"/{api}: leaked /etc/passwd")
        if outcome == "unexplained":
            failures.append(
                f"/{api} {data!r:.60}: refused without a message naming the problem: {reply[-200:]}"
            )
    uploads = server.index / "uploads"
    if uploads.is_dir() and any(b"root:x:0:0" in p.read_bytes() for p in uploads.iterdir() if p.is_file()):
        failures.append("a server file was taken in as an upload")
    return {"test": "API calls with wrong types and hostile file references", "cases": len(WRONG_TYPES),
            "failures": failures, "replies": outcomes}  # fmt: skip


def _outcome(reply: str) -> str:
    """'answered', 'refused' (with a message) or 'unexplained', from a raw API reply."""
    status, _, body = reply.partition(": ")
    if status != "http 200":
        return "refused" if re.search(r'"error":\s*"', body) else "unexplained"
    if "event: error" in body:
        message = body.split("data:", 1)[-1].strip()
        return "unexplained" if message.startswith('{"error": null') else "refused"
    if '"error":' in body or "Choose " in body:
        return "refused"  # docqa's own message in the page
    return "answered" if "event: complete" in body else "unexplained"


def load(server: Server, clients: int, questions_each: int, upload: Path) -> dict:
    """`clients` users asking at once through gradio_client, one uploading meanwhile."""
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    errors: list[str] = []
    peak = [server.rss_mb()]
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.5):
            with contextlib.suppress(OSError):
                peak.append(server.rss_mb())

    def user(n: int) -> None:
        try:
            client = Client(server.url, headers=server.headers, verbose=False)
        except Exception as e:  # noqa: BLE001 (counted as this user's error)
            errors.append(f"user {n}: could not connect: {e}")
            return
        for i in range(questions_each):
            q = QUESTIONS[(n + i) % len(QUESTIONS)]
            started = time.perf_counter()
            try:
                _, _, answer = client.predict(q, api_name="/ask")
                if "error" in answer or not answer.get("text"):
                    errors.append(f"user {n}: {q!r} -> {answer.get('error', answer)}")
                latencies.append(time.perf_counter() - started)
            except Exception as e:  # noqa: BLE001
                errors.append(f"user {n}: {q!r} -> {type(e).__name__}: {e}")
        if n == 0:
            try:
                report = client.predict([handle_file(str(upload))], api_name="/upload")[0]
                if "added" not in report:
                    errors.append(f"upload: {report}")
            except Exception as e:  # noqa: BLE001
                errors.append(f"upload: {type(e).__name__}: {e}")

    alone = []
    client = Client(server.url, headers=server.headers, verbose=False)
    for q in QUESTIONS[:3]:  # one asker alone first: the time the others are held to
        started = time.perf_counter()
        client.predict(q, api_name="/ask")
        alone.append(time.perf_counter() - started)
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    users = [threading.Thread(target=user, args=(n,)) for n in range(clients)]
    # The uploader starts its upload while the others are asking.
    for t in users:
        t.start()
    for t in users:
        t.join()
    done.set()
    return {
        "clients": clients,
        "questions": clients * questions_each,
        "answered": len(latencies),
        "errors": errors,
        "p50_s": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "p95_s": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
        "alone_p50_s": round(float(np.median(alone)), 2),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_start_mb": round(peak[0]),
        "rss_peak_mb": round(max(peak)),
        "rss_end_mb": round(server.rss_mb()),
        "server_alive": server.alive(),
    }


def run(work: Path, docs: Path, model: str, clients: int, questions_each: int, seed: int, api: dict) -> dict:
    """`api`: sizes of the OpenAI routes' checks (stress/api.py's `fuzz`, `streams`, `leavers`)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    upload = work / "field-notes.txt"
    upload.write_text(
        "Field notes. The expedition reached the northern glacier on 4 March and counted 112 seals."
    )
    server = Server(work, docs, model, KEY)
    try:
        ready = server.wait_ready()
        bound = server.listening_addresses()
        binding = {"test": "serves on localhost only, no share link", "cases": 1,
                   "failures": [] if bound and all(a in ("127.0.0.1", "::1") for a in bound) else [f"bound to {bound}"]}  # fmt: skip
        if "gradio.live" in Path(server.log.name).read_text():
            binding["failures"].append("a public share link was opened")
        routes = file_routes(server)
        wrong = api_wrong_types(server)
        openai_api = openai_routes.run(server, KEY, QUESTIONS, seed, **api)
        loaded = load(server, clients, questions_each, upload)
        loaded["started_in_s"] = round(ready, 1)
    finally:
        server.stop()
    return {"binding": binding, "file_routes": routes, "api_wrong_types": wrong, "openai_api": openai_api,
            "load": loaded}  # fmt: skip
