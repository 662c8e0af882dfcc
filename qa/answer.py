"""What `ask` returns, and the pure steps that turn a model reply into it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from qa.citations import best_support, drop_unknown, is_refusal, sentences, set_marks, support
from qa.retriever import Passage

NOT_IN_DOCUMENTS = "The documents do not contain the answer to this question."


@dataclass(frozen=True)
class Citation:
    number: int  # the [n] in the answer text
    doc_id: str
    title: str
    text: str  # the passage
    start: int  # character offsets of the passage in its document
    end: int
    score: float  # the passage's cosine similarity to the question
    sentence: str  # the answer sentence that cites it
    support: float  # share of that sentence's content words the passage holds
    supported: bool
    inferred: bool = False  # the model cited nothing; docqa matched the sentence to this passage


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation]
    passages: list[Passage]  # what the model read, or the nearest passages when it abstained
    timings: dict[str, float]  # seconds: retrieve, generate, total
    model: str
    reason: str | None = None  # why docqa abstained
    raw: str = field(default="", repr=False)  # the model's reply before citation checks
    support: float = 0.0  # how well the passages hold the answer: mean over its sentences of the best support

    def to_dict(self) -> dict:
        return asdict(self)


def abstention(question: str, passages: list[Passage], reason: str, model: str, raw: str = "") -> Answer:
    return Answer(question, NOT_IN_DOCUMENTS, True, [], passages, {}, model, reason, raw)


def interpret(question: str, raw: str, passages: list[Passage], model: str, threshold: float) -> Answer:
    """A model reply -> an Answer with checked citations, or an abstention if it said it does not know."""
    if is_refusal(raw):
        return abstention(question, passages, "the model found no answer in the passages", model, raw)
    text = drop_unknown(raw.strip(), len(passages))
    cited = sentences(text)
    citations: list[Citation] = []
    texts = [p.text for p in passages]
    for s in reversed(cited):  # from the end, so rewriting marks keeps earlier offsets valid
        checked = [
            _citation(n, passages[n - 1], s.text, support(s.text, texts[n - 1]), threshold) for n in s.numbers
        ]
        if passages and not any(c.supported for c in checked):
            # No passage the sentence cites holds it: point to the one that does, if any.
            n, score = best_support(s.text, texts)
            if score >= threshold and n not in s.numbers:
                checked.append(_citation(n, passages[n - 1], s.text, score, threshold, inferred=True))
        # Every check is reported; the text keeps the marks that hold when any does.
        shown = [c.number for c in checked if c.supported] or [c.number for c in checked]
        text = set_marks(text, s, shown)
        citations[:0] = checked
    grounded = [best_support(s.text, texts)[1] for s in cited] if texts else []
    mean = round(sum(grounded) / len(grounded), 3) if grounded else 0.0
    return Answer(question, text, False, citations, passages, {}, model, None, raw, mean)


def _citation(
    n: int, p: Passage, sentence: str, score: float, threshold: float, inferred: bool = False
) -> Citation:
    return Citation(
        n, p.doc_id, p.title, p.text, p.start, p.end, round(p.score, 4), sentence, round(score, 3),
        score >= threshold, inferred,
    )  # fmt: skip
