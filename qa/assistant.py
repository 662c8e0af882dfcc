"""The Python API: open an index, ask questions, stream answers, summarise."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import QuestionError
from embeddings.index import Index
from qa.answer import Answer, abstention, interpret
from qa.generator import Generator
from qa.prompt import fit
from qa.retriever import Retriever
from qa.summarize import Summarizer, Summary, SummaryCache


class AnswerStream:
    """Iterate for the answer's text as the model writes it; `.answer` is set once it is done."""

    def __init__(self, pieces: Callable[[AnswerStream], Iterator[str]]) -> None:
        self._pieces = pieces(self)
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        return self._pieces


class Assistant:
    def __init__(self, index: Index, generator: Generator, config: Config | None = None) -> None:
        self.index, self.generator = index, generator
        self.config = config or Config(index_dir=index.folder.parent)
        c = self.config
        self.retriever = Retriever(index, c.top_k, c.candidates, c.rrf_k)
        self.summarizer = Summarizer(
            generator, index, SummaryCache(index.folder.parent / "summaries.sqlite"), c.context_tokens
        )

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        config: Config | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        """Open the index at `index_dir` (default: config.index_dir) with the configured models."""
        config = config or Config()
        index = Index.open(index_dir if index_dir is not None else config.index_dir, embedder)
        generator = generator or Generator.load(config.generator, config.device, config.dtype)
        return cls(index, generator, config)

    def check(self, question: str) -> str:
        """The question, cleaned, or a QuestionError that says what is wrong with it."""
        if not isinstance(question, str):
            raise QuestionError(f"the question must be text, not {type(question).__name__}")
        limit = self.config.max_question_chars
        if len(question) > limit:
            raise QuestionError(f"the question is {len(question):,} characters long; the limit is {limit:,}")
        cleaned = "".join(ch for ch in question if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
        cleaned = " ".join(cleaned.split())
        if not cleaned:
            raise QuestionError("the question is empty: type a question about your documents")
        return cleaned

    def ask(self, question: str) -> Answer:
        stream = self.stream(question)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def stream(self, question: str) -> AnswerStream:
        question = self.check(question)  # fail here, before anything is streamed

        def pieces(stream: AnswerStream) -> Iterator[str]:
            started = time.perf_counter()
            found = self.retriever(question)
            model = self.generator.name
            if not found.passages or found.top_score < self.config.min_relevance:
                reason = (
                    f"no passage is relevant enough (best similarity {found.top_score:.2f}, "
                    f"threshold {self.config.min_relevance:.2f})"
                )
                answer = abstention(question, found.passages, reason, model)
                answer.timings = _timings(found.seconds, 0.0, started)
                stream.answer = answer
                yield answer.text
                return
            count = lambda messages: self.generator.count(self.generator.render(messages))  # noqa: E731
            messages, shown = fit(question, found.passages, self.config.context_tokens, count)
            generating = time.perf_counter()
            raw = []
            for piece in self.generator.stream(messages, self.config.answer_tokens):
                raw.append(piece)
                yield piece
            generated = time.perf_counter() - generating
            answer = interpret(question, "".join(raw), shown, model, self.config.support_threshold)
            if not answer.abstained and answer.support < self.config.min_support:
                reason = f"the passages do not hold the answer the model wrote (support {answer.support:.2f})"
                answer = abstention(question, shown, reason, model, answer.raw)
            if answer.abstained:
                answer.passages = found.passages
            answer.timings = _timings(found.seconds, generated, started)
            stream.answer = answer

        return AnswerStream(pieces)

    def summarize(
        self, doc_id: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> Summary:
        """A summary of one document, or of the whole collection when `doc_id` is None."""
        sentences = self.config.summary_sentences
        if doc_id is None:
            return self.summarizer.collection(sentences, progress)
        return self.summarizer.document(doc_id, sentences, progress)


def _timings(retrieve: float, generate: float, started: float) -> dict[str, float]:
    total = time.perf_counter() - started
    return {"retrieve": round(retrieve, 3), "generate": round(generate, 3), "total": round(total, 3)}
