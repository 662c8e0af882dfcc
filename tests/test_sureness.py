"""How sure the model was of its answer (qa/sureness.py), and the answer withdrawn when it was not."""

from __future__ import annotations

from dataclasses import replace

from qa import models
from qa.answer import Checks, interpret
from qa.generator import Piece
from qa.retriever import Passage
from qa.sureness import sureness


def pieces(*said: tuple[str, float]) -> list[Piece]:
    return [Piece(text, chance) for text, chance in said]


def test_the_least_likely_word_of_its_own_counts_not_those_copied_from_the_question():
    reply = pieces(("The", 0.2), (" meeting", 0.9), (" was", 0.3), (" mediated", 0.95), (" by", 0.99),
                   (" Ism", 0.7), ("ail", 0.4), (" Khan", 0.8), (".", 0.5), (" [", 0.1), ("1", 0.2), ("]", 0.3))  # fmt: skip
    # "The", "was", "by" are function words, "meeting" and "mediated" the question's; "Ismail" is
    # one word of two tokens, as likely as its least likely token; the citation mark is not a word
    assert sureness("Who mediated the meeting?", reply) == 0.4


def test_a_reply_of_the_questions_words_alone_is_sure_and_a_runtime_without_chances_is_not_measured():
    assert sureness("Who mediated the meeting?", pieces(("The", 0.1), (" meeting", 0.2))) == 1.0
    assert sureness("Who?", ["Ismail", " Khan"]) is None, "plain text: the runtime measured nothing"
    assert sureness("Who?", pieces(("Ismail", 0.9), (" Khan", None))) is None


def test_an_answer_the_model_was_unsure_of_is_withdrawn_with_the_reason_and_a_sure_one_stands():
    passages = [Passage("a.txt", "Talks", 0, 41, "The meeting was mediated by Ismail Khan.", 0.8)]
    checks = Checks(0.6, 0.0, sure=0.4)
    reply = "Ismail Khan mediated the meeting. [1]"
    unsure = interpret("Who mediated the meeting?", reply, passages, "m", checks, sure=0.25)
    assert unsure.abstained and unsure.withdrawn and unsure.sureness == 0.25
    assert "unsure of its answer" in unsure.reason and "0.250, below 0.400" in unsure.reason
    sure = interpret("Who mediated the meeting?", reply, passages, "m", checks, sure=0.6)
    assert not sure.abstained and sure.sureness == 0.6
    unmeasured = interpret("Who mediated the meeting?", reply, passages, "m", checks)
    assert not unmeasured.abstained and unmeasured.sureness is None


def test_ask_withdraws_an_answer_whose_own_word_the_model_found_unlikely(tmp_path):
    from embeddings.builder import build
    from embeddings.config import Config
    from embeddings.index import Index
    from qa.assistant import Assistant
    from tests.fakes import FakeEmbedder, FakeGenerator

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "wheat.txt").write_text("India sent 50,000 tonnes of wheat to Afghanistan through Iran.")
    config = Config(docs=docs, index_dir=tmp_path / "index", min_relevance=0.0, min_sureness=0.4)
    build(config, FakeEmbedder(), progress=False, log=lambda m: None)
    index = Index.open(config.index_dir, FakeEmbedder())

    def ask(chance: float):
        generator = FakeGenerator("India sent 50,000 tonnes of wheat. [1]", chances={"50,000": chance})
        return Assistant(index, generator, config).ask("How much wheat did India send?")

    unsure = ask(config.min_sureness - 0.1)
    assert unsure.abstained and unsure.withdrawn and "unsure of its answer" in unsure.reason
    sure = ask(config.min_sureness + 0.1)
    assert not sure.abstained and sure.sureness == config.min_sureness + 0.1
    shipped = replace(config, min_sureness=Config().min_sureness)  # the generator's own threshold

    def ask_shipped(name: str, chance: float, runtime: str = "onnx-int4"):
        generator = FakeGenerator(
            "India sent 50,000 tonnes of wheat. [1]", chances={"50,000": chance}, name=name
        )
        generator.runtime = runtime
        return Assistant(index, generator, shipped).ask("How much wheat did India send?")

    unknown = ask_shipped("some-local-model", 0.05)
    assert not unknown.abstained and unknown.sureness == 0.05, (
        "a model with no threshold: measured, not checked"
    )
    assert not ask_shipped(models.SMALL, 0.05).abstained, "none chosen for the small packaged model"
    threshold = models.KNOWN[models.DEFAULT].min_sureness
    assert threshold > 0, "make eval chose one for the default model"
    assert ask_shipped(models.DEFAULT, threshold - 0.01).abstained
    assert ask_shipped(models.DEFAULT, threshold - 0.01, "onnx-int4 on Ray Serve, 2 replicas").abstained
    assert not ask_shipped(models.DEFAULT, threshold + 0.01).abstained
    assert not ask_shipped(models.DEFAULT, 0.05, "transformers").abstained, "not chosen on that runtime"


def test_a_piece_keeps_its_chance_when_sent_to_another_process():
    import pickle

    piece = pickle.loads(pickle.dumps(Piece(" Khan", 0.42)))
    assert (piece, piece.chance, type(piece)) == (" Khan", 0.42, Piece)
