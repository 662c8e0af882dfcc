from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def minilm():
    """The real default embedding model, loaded once for the whole run."""
    from embeddings.embedder import Embedder

    return Embedder.load("all-MiniLM-L6-v2")


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture(scope="session")
def seed_index(minilm, tmp_path_factory) -> Path:
    """The sample article indexed with the real MiniLM model, once per run."""
    from embeddings.builder import build
    from embeddings.config import Config

    folder = tmp_path_factory.mktemp("seed-index")
    docs = folder / "docs"
    shutil.copytree(SEEDS, docs)
    build(Config(docs=docs, index_dir=folder / "index"), minilm, progress=False)
    return folder / "index"


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster for the whole run, shut down at its end: no dashboard, and 4
    logical CPUs on these 2 cores, so that the Serve tests' two generator replicas and embedder fit
    beside each other; builds on it use two embedding actors."""
    import ray

    from embeddings.ray_build import Cluster

    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING")
    try:
        yield Cluster(actors=2)
    finally:
        ray.shutdown()


def ray_workers(actor: str) -> set[int]:
    """Process ids of this run's Ray workers for `actor` (Ray names a worker's process after its
    actor: `_Embed` for the embedding actors, `GeneratorReplica` for the Serve replicas)."""
    import psutil

    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if actor in " ".join(p.cmdline()):
                found.add(p.pid)
        except psutil.Error:
            pass
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a test that failed, so fixtures can keep evidence (the browser tests' screenshots)."""
    outcome = yield
    if call.when == "call" and outcome.get_result().failed:
        item.failed = True
