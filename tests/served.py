"""A real `docqa serve` for the end-to-end tests: started in a subprocess on a free port with the
small packaged model, waited on until it is ready, stopped, its log kept in test-artifacts/; and
Debian's Chromium for the browser tests, never a downloaded browser."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from qa import models
from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_chromium() -> None:
    """Skip the calling test module without Chromium; CI installs it (see .ci/run) and sets
    DOCQA_BROWSER_TESTS=required, so there a missing browser fails the run instead."""
    if CHROMIUM.exists():
        return
    if os.environ.get("DOCQA_BROWSER_TESTS") == "required":
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    """A free port above Ray's worker ports (10002-19999) and below the kernel's ephemeral ones
    (32768 up): a port the kernel hands out for port 0 can be taken by one of Ray's processes,
    which bind port 0, before the server binds it ("Address already in use")."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def gradio_ready(url: str) -> bool:
    """The web UI answers and its index is open."""
    from gradio_client import Client

    return "embeddings:" in Client(url, verbose=False).predict(api_name="/status")


@contextmanager
def docqa_serve(
    folder: Path,
    docs: Path,
    ready: Callable[[str], bool] = gradio_ready,
    log_name: str = "server.log",
    env: dict[str, str] | None = None,
    timeout: float = 600,
    extra: Sequence[str] = (),
) -> Iterator[str]:
    """`docqa serve --docs DOCS` (and `extra` options) with its index in FOLDER; yields its URL
    once `ready(url)` holds."""
    port = free_port()
    log_path = folder / log_name
    command = [sys.executable, "-m", "qa.cli", "serve", "--port", str(port), "--docs", str(docs),
               "--index", str(folder / "index"), "--model", models.SMALL, *extra]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path, ready, timeout)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / log_name)


def _wait_ready(
    url: str, proc: subprocess.Popen, log: Path, ready: Callable[[str], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if ready(url):
                return
        except Exception:  # not listening yet, or still loading its models
            pass
        time.sleep(1)
    raise TimeoutError(f"the server was not ready in {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
