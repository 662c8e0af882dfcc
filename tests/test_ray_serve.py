"""`docqa serve --ray` on a real local Ray cluster with the small model: the answer is the one a
single machine gives, the server process holds no model, and a generator replica killed while it
answers ends that answer with a clear error, never a hang, and the next question is answered."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from gradio_client import Client
from ray import serve

from embeddings.config import Config
from embeddings.errors import ClusterError, ConfigError
from qa import models
from qa.assistant import Assistant
from qa.ray_serve import (
    APP,
    RayServe,
    ReplicaLost,
    Replicas,
    ServedEmbedder,
    ServedGenerator,
    _check_gpus,
    _check_room,
    _why_not_deployed,
)
from qa.service import Service
from tests.conftest import SEEDS, ray_workers
from tests.served import docqa_serve

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who mediated the meeting between Massoud and Muttaqi?"


@pytest.fixture(scope="module")
def served(ray_cluster, seed_index):
    """The small model and MiniLM deployed on the test cluster, two generator replicas."""
    config = Config(docs=seed_index.parent / "docs", index_dir=seed_index, generator=models.SMALL)
    ray = RayServe(replicas=Replicas(2, 2))
    embedder, generator = ray.deploy(config)
    try:
        yield config, embedder, generator
    finally:
        ray.stop()


def generator_replicas() -> set[int]:
    return ray_workers("GeneratorReplica")


def test_the_answer_on_ray_serve_is_the_answer_of_one_machine(served, minilm):
    config, embedder, generator = served
    service = Service(config, generator=generator, embedder=embedder).start(background=False)
    assert isinstance(service.assistant.generator, ServedGenerator)
    assert isinstance(service.assistant.index.embedder, ServedEmbedder)
    on_ray = service.ask(QUESTION).answer
    alone = Assistant.open(config=config, embedder=minilm).ask(QUESTION)
    assert not on_ray.abstained and "Ismail Khan" in on_ray.text, on_ray.text
    assert on_ray.text == alone.text
    # The passages the answer's marks show; a mark the reply also made and the check rejected is
    # not compared (the same model in another process may open its reply with one, on some CPUs).
    assert [(c.doc_id, c.start, c.end) for c in on_ray.citations if c.supported] == [
        (c.doc_id, c.start, c.end) for c in alone.citations if c.supported
    ]
    assert "Ray Serve, 2 replicas" in service.status().runtime
    assert service.tokens(["Ismail Khan"]) == [len(minilm.tokenize(["Ismail Khan"])[0])]
    vectors = service.embed(["Ismail Khan"])  # the OpenAI embeddings route's path
    assert (
        vectors.shape == (1, 384) and abs(float((vectors[0] - minilm.embed(["Ismail Khan"])[0]).max())) < 1e-5
    )


def test_a_replica_killed_mid_answer_ends_it_with_a_clear_error_and_the_next_is_answered(served):
    config, embedder, generator = served
    service = Service(config, generator=generator, embedder=embedder).start(background=False)
    stream = service.ask("What did the NRF demand?")
    outcome: list[object] = []

    def read() -> None:
        try:
            for _ in stream:
                outcome.append("piece")
            outcome.append(stream.answer)
        except Exception as e:  # noqa: BLE001 (what the reader saw is the test)
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while "piece" not in outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "piece" in outcome, "the answer began"
    killed = generator_replicas()
    assert len(killed) == 2
    for pid in killed:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    reader.join(timeout=120)
    assert not reader.is_alive(), "the reader was not left waiting"
    assert isinstance(outcome[-1], ReplicaLost), outcome[-1]
    assert "ask again" in str(outcome[-1])
    answer = service.ask(QUESTION).answer  # Serve starts new replicas; the question waits for one
    assert "Ismail Khan" in answer.text
    assert generator_replicas() and not generator_replicas() & killed


def test_docqa_serve_ray_answers_through_the_web_api_and_holds_no_model(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "article.txt").write_text((SEEDS / "000_ef5301ee062fc8f6.txt").read_text())
    with docqa_serve(tmp_path, docs, log_name="server-ray.log", extra=["--ray", "--replicas", "1"]) as url:
        _, _, answer = Client(url, verbose=False).predict(QUESTION, api_name="/ask")
        assert "Ismail Khan" in answer["text"], answer
        # A server that runs the generator itself has ONNX Runtime's library mapped (its weights are
        # read into memory, not mapped); this one must not.
        mapped = Path(f"/proc/{server_pid(url)}/maps").read_text()
        assert "onnxruntime_pybind11_state" not in mapped, "the serving process runs no generator"


def server_pid(url: str) -> int:
    """The `docqa serve` process listening at `url`."""
    port = url.rsplit(":", 1)[1]
    for p in psutil.process_iter(["cmdline"]):
        command = p.info["cmdline"] or []
        if "qa.cli" in command and "serve" in command and port in command:
            return p.pid
    raise AssertionError(f"no docqa serve process on port {port}")


def test_replicas_are_a_number_or_autoscaling_bounds():
    assert Replicas.parse("2") == Replicas(2, 2)
    assert Replicas.parse("1:4").options(4, turns=2) == {  # docqa sends 2 a replica: 8 at most, 4 replicas
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
        "max_ongoing_requests": 4,
    }
    assert Replicas.parse("3").options(4) == {"num_replicas": 3, "max_ongoing_requests": 4}
    # On a cluster with GPUs each replica holds one, so Ray places it where one is free
    assert Replicas.parse("1:4").options(4, gpu=True)["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1}
    assert Replicas.parse("3").options(4, gpu=True)["ray_actor_options"]["num_gpus"] == 1
    for bad in ("0", "4:2", "two", "1:"):
        with pytest.raises(ConfigError, match="--replicas"):
            Replicas.parse(bad)


def test_replicas_the_cluster_cannot_hold_are_refused_rather_than_waited_for():
    _check_room(4.0, 4.0, Replicas(2, 4))  # the lower bound must fit; the rest scale as nodes allow
    with pytest.raises(ClusterError, match="need 3.5 CPUs; the Ray cluster has 2: ask for fewer"):
        _check_room(2.0, 2.0, Replicas(3, 3))
    _check_gpus(2.0, Replicas(2, 4))
    with pytest.raises(ClusterError, match="need a GPU each; the Ray cluster has 1 free"):
        _check_gpus(1.0, Replicas(2, 2))
    # CPUs that other work holds are not there to be had: Ray would wait for them without end
    with pytest.raises(ClusterError, match="has 1 free \\(other work holds the rest of its 4\\)"):
        _check_room(1.0, 4.0, Replicas(1, 1))


def test_serve_options_for_ray_fail_fast_with_what_to_do():
    def docqa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qa.cli", "serve", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)  # fmt: skip

    alone = docqa("--replicas", "2")
    assert alone.returncode == 2 and "--replicas is for --ray" in alone.stderr
    nowhere = docqa("--ray", "127.0.0.1:9")
    assert nowhere.returncode == 2 and "no Ray cluster answers at 127.0.0.1:9" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


@serve.deployment(ray_actor_options={"num_cpus": 0})
class _Broken:
    """A replica whose model raises what a real one may (a prompt past its cache, out of memory)."""

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict[str, str]:
        return {"name": "broken", "device": "cpu", "dtype": "float32", "runtime": "broken", "context": 4096}

    def render(self, messages) -> str:
        self.calls += 1
        raise ValueError("the prompt (5000 tokens) does not fit the 4096-token cache")

    async def stream(self, messages, max_new_tokens):
        self.calls += 1
        raise ValueError("the prompt (5000 tokens) does not fit the 4096-token cache")
        yield ""

    def made(self) -> int:
        return self.calls


@serve.deployment(ray_actor_options={"num_cpus": 0})
class _CannotStart:
    def __init__(self) -> None:
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu")


def test_an_error_a_replica_raises_reaches_the_caller_at_once_with_its_message(ray_cluster):
    serve.start(proxy_location="Disabled")
    serve.run(_Broken.bind(), name="broken", route_prefix=None)
    try:
        handle = serve.get_deployment_handle("_Broken", "broken")
        generator = ServedGenerator(handle, Replicas(1, 1))
        with pytest.raises(ClusterError, match="ValueError: the prompt \\(5000 tokens\\) does not fit"):
            generator.render([{"role": "user", "content": "hi"}])
        with pytest.raises(ClusterError, match="ValueError: the prompt \\(5000 tokens\\) does not fit"):
            generator.generate([{"role": "user", "content": "hi"}], 8)
        assert handle.made.remote().result() == 2, (
            "each asked once: the replica was not lost, so not asked again"
        )
    finally:
        serve.delete("broken")


def test_a_replica_that_cannot_start_says_why(ray_cluster):
    serve.start(proxy_location="Disabled")
    try:
        with pytest.raises(RuntimeError) as failed:
            serve.run(_CannotStart.bind(), name=APP, route_prefix=None)
        assert (
            _why_not_deployed(failed.value)
            == "device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu"
        )
    finally:
        serve.delete(APP)
