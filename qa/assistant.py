"""The Python API: open an index, ask questions (alone or in a conversation), stream answers,
summarise."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from pathlib import Path

from embeddings import store
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import QuestionError
from embeddings.index import Index
from embeddings.scope import Scope, Selection
from qa.answer import Answer, Checks, abstention, interpret
from qa.conversation import (
    RESOLVE_TOKENS,
    REWRITE_TOKENS,
    Turn,
    choose_messages,
    exchange,
    fitting,
    history_block,
    names_said,
    pronoun,
    read_choice,
    read_referent,
    read_rewrite,
    recent,
    refers_back,
    resolve_messages,
    rewrite_messages,
    search_text,
    substitute,
)
from qa.generator import Generator, engine, tokens_made, within_context
from qa.generator import from_config as load_generator
from qa.models import min_sureness
from qa.prompt import Messages, answer_messages, fit
from qa.retriever import Passage, Retrieval, Retriever
from qa.summarize import Summarizer, Summary, SummaryCache
from qa.sureness import sureness


def checked(question: str, limit: int) -> str:
    """The question, cleaned, or a QuestionError that says what is wrong with it (no model needed)."""
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, not {type(question).__name__}")
    if len(question) > limit:
        raise QuestionError(f"the question is {len(question):,} characters long; the limit is {limit:,}")
    cleaned = "".join(ch for ch in question if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise QuestionError("the question is empty: type a question about your documents")
    if not any(ch.isalnum() for ch in cleaned):
        raise QuestionError(f"the question {cleaned!r} has no words: type a question about your documents")
    return cleaned


class AnswerStream:
    """The answer's text as the model writes it (iterate over the stream), then the checked answer.

    `answer` is the checked answer once the text has been read to its end; reading `answer`
    earlier reads (and generates) the rest first. `close()`, or leaving a `with` block, stops the
    model where it is: a stream closed early has no answer (None). In a conversation,
    `standalone` is the question as retrieval searches it, once the follow-up is rewritten.
    `gone` is set by a reader that went away before the first piece came: a stream still waiting
    for a turn with the model (`Service`) gives up its place."""

    def __init__(self, pieces: Callable[[Callable[[Answer], None]], Iterator[str]]) -> None:
        self.standalone: str | None = None
        self.gone = threading.Event()
        self._answer: Answer | None = None
        self._closed = False
        self._closing = False  # closed while another thread read it: it closes at its next piece
        self._pieces = pieces(self._done)

    def _done(self, answer: Answer) -> None:
        self._answer = answer

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        piece = next(self._pieces)
        if self._closing:
            self._pieces.close()
            raise StopIteration
        return piece

    @property
    def answer(self) -> Answer | None:
        if self._answer is None and not self._closed:
            for _ in self:
                pass
        return self._answer

    def close(self) -> None:
        """Stop the model; the text so far stays what was read, and there is no checked answer.
        From another thread than the one reading (a server stopping), the stream gives up its
        place if it waits for a turn, and stops at its next piece."""
        if self._answer is None:
            self._closed = True
        try:
            self._pieces.close()
        except ValueError as e:  # "generator already executing": another thread is reading it now
            if "already executing" not in str(e):
                raise
            self._closing = True
            self.gone.set()

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Conversation:
    """A thread of questions to one Assistant. A follow-up is rewritten from the recent turns into
    a question that stands alone (one short model call; the first question is asked as it is;
    a second where the rewrite kept a pronoun, asking what it stands for, and where that reply is
    not taken a third, asking which of the names said it stands for), retrieval searches with
    the rewrite, and, while the rewrite still refers back, the answer prompt shows the recent
    turns' questions and checked answers. `turns` holds every finished turn; `last_rewrite` the
    model's reply to the latest rewrite prompt and why it was refused ("" when it was taken),
    `last_resolve` its reply to the latest pronoun and `last_choice` to the latest choice of names
    ("" when none was asked). Not for two threads at once."""

    def __init__(self, assistant: Assistant, turns: list[Turn] | None = None) -> None:
        self.assistant = assistant
        self.turns: list[Turn] = list(turns or [])
        self.last_rewrite: tuple[str, str] = ("", "")
        self.last_resolve = ""
        self.last_choice = ""

    def ask(self, question: str, scope: Scope | None = None) -> Answer:
        """The checked answer to `question` in the light of the conversation so far."""
        answer = self.stream(question, scope).answer  # reads the whole stream
        assert answer is not None
        return answer

    def stream(self, question: str, scope: Scope | None = None) -> AnswerStream:
        a = self.assistant
        asked = a.check(question)  # fail here, before anything is streamed
        within = a.within(scope) if scope else None
        earlier = [exchange(t) for t in recent(self.turns, a.config.conversation_turns)]
        # The rewriting prompts read the turns too: within the history budget, like the answer's
        pairs = fitting(earlier, a.config.history_tokens, a.generator.count)

        def pieces(done: Callable[[Answer], None]) -> Iterator[str]:
            started = time.perf_counter()
            rewritten = self.rewrite(asked, pairs) if pairs else asked
            stream.standalone = rewritten
            rewriting = round(time.perf_counter() - started, 3)
            history = ""  # a question that stands alone is answered from the documents as if asked alone
            if refers_back(rewritten):  # the earlier turns say what it refers to: they come first,
                # with at most half of what the instructions and the question leave
                left = a.config.context_tokens - a.count(answer_messages(rewritten, []))
                share = min(a.config.history_tokens, max(left, 0) // 2)
                history = history_block(fitting(pairs, share, a.generator.count))

            def finish(answer: Answer) -> None:
                answer.question, answer.standalone = asked, rewritten
                total = answer.timings.get("total", 0.0) + rewriting
                answer.timings = {"rewrite": rewriting, **answer.timings, "total": round(total, 3)}
                self.turns.append(Turn(asked, rewritten, answer))
                done(answer)

            yield from a.respond(rewritten, within, finish, history, search_text(rewritten, pairs))

        stream = AnswerStream(pieces)
        return stream

    def rewrite(self, question: str, pairs: list[tuple[str, str]]) -> str:
        """The model calls: `question` rewritten to stand alone after the (question, answer)
        `pairs` (the question as asked when the rewrite fails its checks), then any pronoun it
        kept resolved."""
        generator = self.assistant.generator
        self.last_resolve = self.last_choice = ""
        reply = generator.generate(rewrite_messages(question, pairs), REWRITE_TOKENS)
        rewritten, refused = read_rewrite(reply, question, pairs)
        self.last_rewrite = (reply, refused)
        if rewritten is not None:
            try:
                rewritten = self.assistant.check(rewritten)
            except QuestionError as e:
                self.last_rewrite = (reply, f"not a question docqa takes ({e})")
                rewritten = None
        return self._resolve(rewritten or question, pairs)

    def _resolve(self, question: str, pairs: list[tuple[str, str]]) -> str:
        """The model calls where a rewrite kept a pronoun: what it stands for, put in its place when
        the conversation holds that name word for word and the question does not, or else the
        one of the conversation's names that the model chooses."""
        word = pronoun(question)
        if word is None:
            return question
        generator = self.assistant.generator
        reply = generator.generate(resolve_messages(question, word, pairs), RESOLVE_TOKENS)
        self.last_resolve = reply
        name = read_referent(reply, pairs, question)
        names = names_said(question, pairs) if name is None else []
        if names:  # not taken: the model chooses among the names the conversation said
            self.last_choice = generator.generate(
                choose_messages(question, word, pairs, names), RESOLVE_TOKENS
            )
            name = read_choice(self.last_choice, names)
        if name is None:
            return question
        with suppress(QuestionError):  # too long now, say: the question as it was
            return self.assistant.check(substitute(question, word, name))
        return question


class Assistant:
    def __init__(
        self, index: Index, generator: Generator, config: Config | None = None, answers: bool = True
    ) -> None:
        """`answers`: it will answer questions, so a context budget and an answer must fit what
        the model reads (a ConfigError here, before any question, where they do not); one that only
        summarises checks a summary's length instead, at each summary."""
        self.index, self.generator = index, generator
        self.config = config or Config(index_dir=index.folder.parent)
        c = self.config
        if answers:
            within_context(
                generator, c.context_tokens, c.answer_tokens, "--context-tokens or --answer-tokens"
            )
        self.retriever = Retriever.of(index, c)
        self.summarizer = Summarizer(
            generator,
            index,
            SummaryCache(index.folder.parent / "summaries.sqlite"),
            c.context_tokens,
            c.support_threshold,
        )

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        config: Config | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        answers: bool = True,
    ) -> Assistant:
        """Open the index at `index_dir` (default: config.index_dir) with the configured models:
        the embedding model that made its vectors, on config.device in config.dtype, unless
        `embedder` is given. `answers`: see __init__."""
        config = config or Config()
        folder = Path(index_dir if index_dir is not None else config.index_dir)
        if embedder is None:  # the model its manifest names, loaded before the index is opened once
            _, manifest = store.open_current(folder)
            embedder = Embedder.load(manifest["embedding"]["model"], config.device, config.dtype)
        index = Index.open(folder, embedder)
        generator = generator or load_generator(config)
        return cls(index, generator, config, answers)

    def check(self, question: str) -> str:
        """The question, cleaned, or a QuestionError that says what is wrong with it."""
        return checked(question, self.config.max_question_chars)

    def ask(self, question: str, scope: Scope | None = None) -> Answer:
        """The checked answer to `question`, from the documents in `scope` (default: all)."""
        answer = self.stream(question, scope).answer  # reads the whole stream
        assert answer is not None
        return answer

    def stream(self, question: str, scope: Scope | None = None) -> AnswerStream:
        question = self.check(question)  # fail here, before anything is streamed
        within = self.within(scope) if scope else None
        return AnswerStream(lambda done: self.respond(question, within, done))

    def chat(self) -> Conversation:
        """A new conversation: its follow-up questions are read in the light of its earlier turns."""
        return Conversation(self)

    def respond(
        self,
        question: str,
        within: Selection | None,
        done: Callable[[Answer], None],
        history: str = "",
        search: str | None = None,
    ) -> Iterator[str]:
        """The answering path: retrieve for the (checked) `question`, ask the model, check its reply;
        the reply's pieces as they come, then `done(answer)`. `history`: earlier turns as prompt
        text; `search`: what retrieval searches, when not the question itself."""
        started = time.perf_counter()
        found = self.search(search or question, within)
        model = self.generator.name
        if not found.passages or not self.relevant(found):
            c = self.config
            reason = (
                f"no passage is relevant enough (best similarity {found.top_score:.2f}, threshold "
                f"{c.min_relevance:.2f}; best word match {found.lexical:.2f}, threshold {c.min_lexical:.2f})"
            )
            answer = abstention(question, found.passages, reason, model)
            answer.timings = _timings(found.seconds, 0.0, started)
            answer.runtime = runtime(self.generator)
            done(answer)
            yield answer.text
            return
        messages, shown = self.prompt(question, found, history)
        generating = time.perf_counter()
        raw = []
        first = 0.0  # until the first piece: the prompt read (and any wait for a place in the batch)
        with closing(self.generator.stream(messages, self.config.answer_tokens)) as replies:
            for piece in replies:  # closing this stream early closes the model's too
                first = first or time.perf_counter() - generating
                raw.append(piece)
                if piece:
                    yield piece
        generated = time.perf_counter() - generating
        c = self.config
        checks = Checks(c.support_threshold, c.min_grounding, c.grounding_similarity, c.term_closeness,
                        min_sureness(c.min_sureness, self.generator.name, engine(self.generator)))  # fmt: skip
        sure = sureness(question, raw)
        answer = interpret(question, "".join(raw), shown, model, checks, self.similarity, self.alike, sure)
        if answer.abstained:
            answer.passages = found.passages
        answer.timings = _timings(found.seconds, generated, started, first)
        made = tokens_made(raw)
        completion = self.generator.count("".join(raw)) if made is None else made
        answer.tokens = {"prompt": self.count(messages), "completion": completion}
        answer.cut = not answer.abstained and answer.tokens["completion"] >= c.answer_tokens
        answer.runtime = runtime(self.generator)
        done(answer)

    def search(self, question: str, within: Selection | None = None) -> Retrieval:
        """The passages retrieval finds for `question` (within a scope's selection when given),
        best first, their overlaps cut for the configured passage order."""
        return self.retriever(question, within, self.config.passage_order == "reading")

    def prompt(self, question: str, found: Retrieval, history: str = "") -> tuple[Messages, list[Passage]]:
        """The answer prompt for `question` from the passages `found`, within the context budget,
        and the passages it shows, numbered as in it."""
        c = self.config
        return fit(question, found.passages, c.context_tokens, self.count, history, c.passage_order)

    def count(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the prompt `messages` as the generator reads it."""
        return self.generator.count(self.generator.render(messages))

    def similarity(self, text: str, other: str) -> float:
        """How close two texts are in meaning: the cosine of their vectors by the index's embedder."""
        first, second = self.index.embedder.embed([text, other])
        return float(first @ second)

    def alike(self, words: list[str], others: list[str]) -> list[float]:
        """Each of `words`' closeness in meaning to the closest of `others`: the best cosine of
        their vectors by the index's embedder."""
        vectors = self.index.embedder.embed([*words, *others])
        return [float(v) for v in (vectors[: len(words)] @ vectors[len(words) :].T).max(axis=1)]

    def relevant(self, found: Retrieval) -> bool:
        """The relevance gate: dense or lexical evidence that some passage is about the question."""
        return found.top_score >= self.config.min_relevance or found.lexical >= self.config.min_lexical

    def within(self, scope: Scope) -> Selection:
        """The index's chunks in `scope`, or a QuestionError that says why it holds none."""
        return self.index.within(scope)

    def summarize(
        self,
        doc_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Summary:
        """A summary of one document, or of the whole collection when `doc_id` is None; setting
        `stop` (the caller went away) stops it at once (Stopped)."""
        sentences = self.config.summary_sentences
        if doc_id is None:
            return self.summarizer.collection(sentences, progress, stop)
        return self.summarizer.document(doc_id, sentences, progress, stop)


def runtime(generator: Generator) -> str:
    """How the generator runs, as users see it: "onnx-int4 (int4, cpu)"."""
    return f"{generator.runtime} ({generator.dtype}, {generator.device})"


def _timings(retrieve: float, generate: float, started: float, first_token: float = 0.0) -> dict[str, float]:
    total = time.perf_counter() - started
    return {"retrieve": round(retrieve, 3), "generate": round(generate, 3),
            "first_token": round(first_token, 3), "total": round(total, 3)}  # fmt: skip
