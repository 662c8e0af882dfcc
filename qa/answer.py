"""What `ask` returns, and the pure steps that turn a model reply into it: citations checked
against the passages, and the answer withdrawn when a sentence of it is not supported or it does
not answer the question asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from qa.citations import declines, drop_unknown, framing, is_refusal, marked, sentences, set_marks
from qa.question import Alike, relevance
from qa.retriever import Passage
from qa.support import HEDGED, Support, around, best, rest, support
from qa.words import content

NOT_IN_DOCUMENTS = "The documents do not contain the answer to this question."

Similarity = Callable[[str, str], float]  # two texts -> their cosine similarity in meaning


@dataclass(frozen=True)
class Checks:
    """The thresholds an answer must pass (Config.support_threshold, Config.min_grounding,
    Config.grounding_similarity, Config.term_closeness)."""

    support: float  # share of a sentence's content words its passage's window must hold
    grounding: float  # how far the passages around the answer must be about the question ...
    similarity: float = 0.0  # ... counting their closeness in meaning to it at this weight ...
    near: float = 1.0  # ... and a question's term held by a word this close to it (1: itself only)
    sure: float = 0.0  # the least probability the model may give a word of its own (qa/sureness.py)


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
    support: float  # share of that sentence's content words the passage's aligned sentence holds
    supported: bool  # that share is enough, the key words are there and no negation disagrees
    inferred: bool = False  # the model cited nothing that holds; docqa matched the sentence to this passage
    problem: str | None = None  # why the passage does not hold the sentence, beyond its score
    page: int | None = None  # the page (or slide) the passage begins on, where its document has pages
    page_label: str | None = None  # "p. 12", "pp. 12–13", "slide 3"
    dropped: bool = False  # it does not hold the sentence and another it cites does: its mark was taken out


def verdict(cites: list[Citation]) -> str:
    """What the citations of one passage say of it, in words."""
    if any(c.supported for c in cites):
        return "supports the answer"
    if all(c.dropped for c in cites):
        return "does not support the sentence the model cited it for (docqa took the mark out)"
    return "does not support the sentence that cites it"


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation]
    passages: list[Passage]  # what the model read, or the nearest passages when it abstained
    timings: dict[str, float]  # seconds: retrieve, generate (first_token of it), total
    model: str
    reason: str | None = None  # why docqa abstained
    raw: str = field(default="", repr=False)  # the model's reply before any check
    support: float = 0.0  # the weakest sentence's support (0 for one whose key words or negation fail)
    grounding: float = 0.0  # how far the passages around the answer are about the question (Checks)
    withdrawn: bool = False  # the model wrote an answer (streamed as it came) that docqa withdrew
    runtime: str = ""  # how the model ran: runtime, precision, device (qa/generator.py)
    standalone: str | None = None  # in a conversation: the question as retrieval searched it (rewritten)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})  # its model call's
    cut: bool = False  # the model's reply reached answer_tokens and was cut there, maybe mid-sentence
    # How sure the model was of its reply: the probability of its least likely word of its own
    # (qa/sureness.py); None where the runtime does not measure it.
    sureness: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def abstention(question: str, passages: list[Passage], reason: str, model: str, raw: str = "",
               withdrawn: bool = False) -> Answer:  # fmt: skip
    return Answer(question, NOT_IN_DOCUMENTS, True, [], passages, {}, model, reason, raw, withdrawn=withdrawn)


def interpret(question: str, raw: str, passages: list[Passage], model: str, checks: Checks,
              similar: Similarity | None = None, alike: Alike | None = None,
              sure: float | None = None) -> Answer:  # fmt: skip
    """A model reply -> an Answer with checked citations; an abstention if the model said it does
    not know, if a sentence of the answer is not held by any passage, if the answer does not
    answer the question, or if the model was unsure of it (`sure`, its sureness, below
    `checks.sure`; not checked when None). `similar`: how close two texts are in meaning, `alike`:
    how close words are (both by the index's embedder), read where `checks.similarity` and
    `checks.near` use them."""
    if checks.similarity and similar is None:
        raise ValueError("checks that weigh closeness in meaning need `similar` to measure it")
    if checks.near < 1 and alike is None:
        raise ValueError("checks that hold a term by a word close to it need `alike` to measure it")
    if is_refusal(raw):
        return abstention(question, passages, "the model found no answer in the passages", model, raw)
    text = drop_unknown(marked(raw.strip()), len(passages))
    cited = sentences(text)
    frames = framing(text, cited)  # a heading, a table's header, a line naming the sources
    # ... and a sentence, citing nothing, that says the documents do not hold a part of what was
    # asked ("The documents do not say who built it."): no claim for a passage to hold
    frames |= {i for i, s in enumerate(cited) if not s.numbers and declines(s.text)}
    texts, titles = [p.text for p in passages], [p.title for p in passages]
    citations: list[Citation] = []
    for s in reversed(
        [s for i, s in enumerate(cited) if i not in frames]
    ):  # from the end: offsets stay valid
        checked = [_citation(n, passages[n - 1], s.text, question, checks.support) for n in s.numbers]
        if passages and not any(c.supported for c in checked):
            # No passage the sentence cites holds it: point to the one that does, if any.
            n, found = best(s.text, texts, question, titles, checks.support)
            if found.holds(checks.support) and n not in s.numbers:
                checked.append(_cited(n, passages[n - 1], s.text, found, checks.support, inferred=True))
        # Every check is reported; the text keeps the marks that hold when any does.
        shown = [c.number for c in checked if c.supported] or [c.number for c in checked]
        text = set_marks(text, s, shown)
        citations[:0] = [replace(c, dropped=c.number not in shown) for c in checked]
    # What the answer states: not a line that only leads into a list ("The key points are:").
    claims = [
        s.text for i, s in enumerate(cited)
        if i not in frames and content(s.text) and not (s.text.endswith(":") and not s.numbers)
    ]  # fmt: skip
    if not passages or not claims:
        return abstention(
            question, passages, "the reply states nothing the passages could hold", model, raw, True
        )
    weakest, failing, context = 1.0, None, []
    for claim in claims:
        n, found = best(claim, texts, question, titles, checks.support)
        score = found.score if found.problem is None else 0.0
        if score < weakest:
            weakest = score
        if not found.holds(checks.support) and failing is None:
            failing = (claim, found)
        window = around(texts[n - 1], found.start, found.end)
        context += [window, titles[n - 1]]
        joined = rest(claim, texts, window, question)  # a claim joined from two passage sentences
        if joined is not None:
            m, start, end = joined
            context += [around(texts[m - 1], start, end), titles[m - 1]]
    around_answer = "\n".join(context)
    closeness = similar(question, around_answer) if similar is not None and checks.similarity else 0.0
    verdict = relevance(
        question, " ".join(claims), around_answer, closeness, checks.similarity, alike, checks.near
    )
    answer = Answer(question, text, False, citations, passages, {}, model, None, raw, round(weakest, 3),
                    verdict.grounding, sureness=sure)  # fmt: skip
    if failing is not None:  # the reason never repeats the withdrawn sentence or its words
        claim, found = failing
        if found.contradicts:
            why = "the passage says the opposite"
        elif found.missing:
            n = len(found.missing)
            why = f"{n} of its key words {'is' if n == 1 else 'are'} not in the passage"
        elif found.hedged:
            why = HEDGED
        else:
            why = f"support {found.score:.2f}, below {checks.support:.2f}"
        reason = f"the passages do not hold sentence {claims.index(claim) + 1} of the model's reply ({why})"
    elif not verdict.holds(checks.grounding):
        reason = f"the reply does not answer the question: {verdict.problem}"
    elif sure is not None and sure < checks.sure:
        reason = (
            f"the model was unsure of its answer (its least likely word of its own had probability "
            f"{sure:.3f}, below {checks.sure:.3f})"
        )
    else:
        return answer
    withdrawn = abstention(question, passages, reason, model, raw, withdrawn=True)
    withdrawn.support, withdrawn.grounding, withdrawn.sureness = answer.support, answer.grounding, sure
    return withdrawn


def _citation(n: int, p: Passage, sentence: str, question: str, threshold: float) -> Citation:
    return _cited(n, p, sentence, support(sentence, p.text, question, p.title), threshold)


def _cited(
    n: int, p: Passage, sentence: str, s: Support, threshold: float, inferred: bool = False
) -> Citation:
    return Citation(
        n, p.doc_id, p.title, p.text, p.start, p.end, round(p.score, 4), sentence, s.score,
        s.holds(threshold), inferred, s.problem, p.page, p.page_label,
    )  # fmt: skip
