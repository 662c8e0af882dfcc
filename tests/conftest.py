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
