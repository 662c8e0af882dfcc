"""One running docqa (the web UI's service): it serves the index as it was built."""

from __future__ import annotations

from pathlib import Path

from embeddings.builder import build
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import ConfigError
from qa.service import Service
from tests.fakes import FakeEmbedder, FakeGenerator
from tests.test_builder import make_docs


def test_the_server_uses_the_model_and_chunk_settings_the_index_was_built_with(tmp_path: Path, monkeypatch):
    # As after `docqa index --model fake-special --chunk-tokens 16`: the server must not load the
    # default model, and an upload must not re-embed everything with the default chunk settings.
    docs, index_dir = make_docs(tmp_path / "docs"), tmp_path / "index"
    model = FakeEmbedder("fake-special")
    settings = dict(embedding_model="fake-special", chunk_tokens=16, chunk_overlap=2, title_tokens=0)
    build(Config(docs=docs, index_dir=index_dir, **settings), model, progress=False, log=lambda m: None)
    loaded = []

    def load(name: str, device: str | None = None, dtype: str | None = None) -> FakeEmbedder:
        loaded.append(name)
        if name != "fake-special":
            raise ConfigError(f"no embedding model {name!r} here")
        return model

    monkeypatch.setattr(Embedder, "load", load)
    service = Service(Config(docs=docs, index_dir=index_dir), FakeGenerator()).start(background=False)
    assert service.status().embedding_model == "fake-special"
    upload = tmp_path / "harvest.txt"
    upload.write_text("The harvest festival in the valley drew farmers from every village.")
    model.embedded.clear()
    before = service.assistant.index
    stored, refused, report = service.upload([("harvest.txt", upload)])
    assert refused == [] and report.rebuilt_because is None
    assert report.embedded == len(model.embedded) and all("harvest" in t for t in model.embedded)
    assert set(loaded) == {"fake-special"}
    assert service.assistant.index.segments[0] is before.segments[0], "the segments already open are shared"
    assert service.assistant.ask("Who came to the harvest festival?").passages[0].doc_id.startswith("upload:")
