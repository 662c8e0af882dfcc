"""The embedder contract, and the real embedder's safety when threads share it."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from embeddings.embedder import Embedder, SentenceEmbedder, Tokenizer
from tests.conftest import ROOT
from tests.fakes import FakeEmbedder, check_contract


@pytest.mark.parametrize("runtime", [FakeEmbedder, SentenceEmbedder])
def test_the_fake_and_the_real_embedder_keep_the_same_contract(runtime):
    check_contract(runtime, Embedder, FakeEmbedder())


class _BorrowChecked:
    """A tokenizer that fails as a fast tokenizer does when two threads use it at once."""

    def __init__(self, both_inside: threading.Barrier) -> None:
        self.both_inside, self.busy = both_inside, threading.Lock()

    def __deepcopy__(self, memo) -> _BorrowChecked:
        return _BorrowChecked(self.both_inside)

    def __call__(self, texts, **settings):
        if not self.busy.acquire(blocking=False):
            raise RuntimeError("Already borrowed")
        try:
            self.both_inside.wait(timeout=30)  # both threads are inside a tokenizer call now
        finally:
            self.busy.release()
        return {"offset_mapping": [[(0, len(t))] for t in texts]}

    def num_special_tokens_to_add(self) -> int:
        return 2


class _Model:
    max_seq_length = 256
    device = torch.device("cpu")

    def __init__(self, tokenizer: _BorrowChecked) -> None:
        self.tokenizer = tokenizer

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts, **settings):
        self.tokenizer(texts, truncation=True)
        return torch.ones((len(texts), 4))

    def preprocess(self, texts):  # what embedding one text calls instead of `encode`
        self.tokenizer(texts, truncation=True)
        return {}

    def __call__(self, features):
        return {"sentence_embedding": torch.ones((1, 4))}


def test_chunking_and_embedding_at_once_never_share_a_tokenizer():
    # The server indexes an upload (chunking: no truncation) while it answers a question
    # (encode: truncation); one shared fast tokenizer fails with "Already borrowed".
    embedder = SentenceEmbedder(
        _Model(_BorrowChecked(threading.Barrier(2))), "fake", "0" * 16, "cpu", "float32"
    )
    errors: list[BaseException] = []
    results: list[object] = []

    def run(call) -> None:
        try:
            results.append(call())
        except BaseException as e:  # noqa: BLE001 (what the test looks for)
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=(lambda: embedder.tokenize(["Some text to chunk."]),)),
        threading.Thread(target=run, args=(lambda: embedder.embed(["A question?"]),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    vectors = [r for r in results if isinstance(r, np.ndarray)]
    spans = [r for r in results if not isinstance(r, np.ndarray)]
    assert len(vectors) == 1 and spans == [[[(0, 19)]]]


def test_a_question_alone_gets_the_vector_sentence_transformers_gives_it(minilm):
    questions = ["Who mediated the meeting between Massoud and Muttaqi?", "w1 w20 w300", "Tehran"]
    for q in questions:
        expected = minilm.model.encode([q], convert_to_tensor=True).float().numpy()[0]
        assert np.array_equal(minilm.embed([q])[0], expected / np.linalg.norm(expected)), q
    together = minilm.embed(questions)
    alone = np.stack([minilm.embed([q])[0] for q in questions])
    assert np.allclose(together, alone, atol=0.01)


def test_an_index_built_with_a_model_folder_given_by_a_relative_path_opens_from_anywhere(
    tmp_path, monkeypatch
):
    from embeddings.builder import build
    from embeddings.config import Config
    from embeddings.index import Index
    from embeddings.models import locate

    (tmp_path / "work").mkdir()
    (tmp_path / "work/mymodel").symlink_to(locate("all-MiniLM-L6-v2"), target_is_directory=True)
    (tmp_path / "work/docs").mkdir()
    (tmp_path / "work/docs/wheat.txt").write_text("India sent 50,000 tonnes of wheat to Afghanistan.")
    monkeypatch.chdir(tmp_path / "work")
    build(Config(docs="docs", index_dir="idx", embedding_model="mymodel"), progress=False, log=lambda m: None)
    monkeypatch.chdir(tmp_path)  # elsewhere: "mymodel" names nothing here
    index = Index.open(tmp_path / "work/idx")
    assert index.embedder.name == str(tmp_path / "work/mymodel")
    assert index.dense("wheat sent by India", 1)[0].chunk.doc_id == "wheat.txt"


def test_what_users_catch_and_configure_comes_from_the_packages_they_import():
    import embeddings
    import qa
    from embeddings import errors

    for package in (embeddings, qa):
        assert package.Config is embeddings.config.Config and "Config" in package.__all__
        for name in ("DocqaError", "QuestionError", "ConfigError", "IndexMissing", "IndexMismatch",
                     "IndexCorrupt", "IndexBusy"):  # fmt: skip
            assert getattr(package, name) is getattr(errors, name) and name in package.__all__
    assert embeddings.Embedder is embeddings.embedder.Embedder and "UnreadableDocument" in embeddings.__all__


def test_chunking_without_the_model_cuts_text_as_the_model_does(minilm):
    # A Ray build's chunking tasks and a Ray server's front end cut text with the bare tokenizer;
    # the index must hold the same chunks as one machine's, past the tokenizer file's own
    # 128-token truncation too.
    article = next((ROOT / "seeds").glob("*.txt")).read_text()
    texts = [article, "Ismail Khan — naïve café ÉCOLE 東京 😀 l'été\tx\n\ny", "ﬁne ＡＢＣ ①", " "]
    bare = Tokenizer.load("all-MiniLM-L6-v2")
    assert bare(texts) == minilm.tokenize(texts)
    assert len(bare([article])[0]) > 128


def test_processes_that_only_chunk_load_no_torch():
    # Each of a Ray build's chunking tasks would spend seconds importing torch on the CPUs the
    # embedding actor is loading the model on.
    code = (
        "import sys\n"
        "from embeddings.embedder import Tokenizer\n"
        "from qa import cli\n"
        "Tokenizer.load('all-MiniLM-L6-v2')(['Some text to chunk.'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_a_device_or_model_folder_that_is_not_one_is_an_error_that_says_what_to_give(tmp_path):
    from embeddings.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown device 'gpu': use cpu, cuda or cuda:N"):
        Embedder.load("all-MiniLM-L6-v2", "gpu")
    with pytest.raises(ConfigError, match=f"embedding model '{tmp_path}' cannot be loaded from {tmp_path}"):
        Embedder.load(str(tmp_path))
