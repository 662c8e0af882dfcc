"""Summaries of one document or the whole collection, map-reduce style within the context
budget, with every model call cached by the hash of what it was asked."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from embeddings.chunker import chunk_text, sentences
from embeddings.errors import ConfigError, DocqaError, QuestionError
from embeddings.index import Index
from qa.citations import is_heading, is_list_item, plain
from qa.generator import Generator, engine, within_context
from qa.guard import defuse, neutralise
from qa.prompt import SUMMARY_SYSTEM, Messages, quote
from qa.retriever import Passage
from qa.support import best
from qa.words import content, key_words, negations

log = logging.getLogger("docqa.summaries")

PROMPT_VERSION = 2  # bump when the prompts change, so cached summaries are not reused
Progress = Callable[[int, int], None]  # (model calls done, calls planned so far)


class Stopped(Exception):
    """The caller went away: the summary stopped at once, its finished parts kept in the cache."""


class NoSummary(DocqaError):
    """The model wrote nothing for a summary."""


@dataclass
class Summary:
    doc_id: str | None  # None: the whole collection
    title: str
    text: str
    sources: list[Passage]  # the sections summarised, with offsets into their documents
    calls: int  # model calls made
    cached: int  # parts answered from the cache
    seconds: float
    model: str
    # Sentences of the model's summary the documents do not bear out, left out of `text`; when
    # none is borne out, `text` keeps them all and `supported` is False.
    left_out: list[str] = field(default_factory=list)
    supported: bool = True
    # What is not in the summary though the sources name it: the parts or documents the model
    # wrote nothing for ('part 3 of "Report"', '"notes.txt"'); their sections are not in `sources`.
    skipped: list[str] = field(default_factory=list)
    shortened: bool = False  # summaries of parts were cut to fit the prompt that combined them
    unfinished: str = ""  # the last sentence, left out: the model reached its length limit in it

    def to_dict(self) -> dict:
        """The summary as JSON: each source by its document and place in it, not its text (a
        collection's sources are the whole collection)."""
        out = asdict(self)
        for source in out["sources"]:
            del source["text"]
        return out


T = TypeVar("T")


class SummaryCache:
    """Text keyed by content hash, in SQLite beside the index generations. A cache found damaged
    (when opened, or in a page read or written later) is set aside and made afresh: summaries can
    be made again. A disk that is full or cannot be written is not damage (OperationalError)."""

    def __init__(self, path: Path) -> None:
        self.path, self._lock, self._db = path, threading.Lock(), None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                self._db = self._afresh(e)
        return self._db

    def _afresh(self, e: sqlite3.DatabaseError) -> sqlite3.Connection:
        if self._db is not None:
            self._db.close()
            self._db = None
        damaged = self.path.with_name(self.path.name + ".damaged")
        os.replace(self.path, damaged)
        log.warning("summary cache %s was damaged (%s); moved to %s, starting afresh", self.path, e, damaged)
        return self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS summaries (key TEXT PRIMARY KEY, text TEXT NOT NULL)")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _run(self, use: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return use(self._connect())
            except sqlite3.DatabaseError as e:
                if not _damaged(e):  # a full or read-only disk, a lock, a fault of ours: not the file's
                    raise
                self._db = self._afresh(e)  # "database disk image is malformed"
                return use(self._db)

    def get(self, key: str) -> str | None:
        row = self._run(lambda db: db.execute("SELECT text FROM summaries WHERE key = ?", (key,)).fetchone())
        return row[0] if row else None

    def put(self, key: str, text: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?)", (key, text))
            db.commit()

        self._run(write)


def _damaged(e: sqlite3.DatabaseError) -> bool:
    """Whether `e` says the database file itself is damaged or is no database."""
    return getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def part_messages(title: str, text: str, sentences: int, part: tuple[int, int] | None = None) -> Messages:
    title = " ".join(neutralise(title).split())
    what = f'part {part[0]} of {part[1]} of the document "{title}"' if part else f'the document "{title}"'
    user = f"Summarise {what} in at most {sentences} sentences.\n\nThe document, quoted:\n{quote(text)}"
    return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": user}]


def combine_messages(
    title: str | None, summaries: list[tuple[str, str]], sentences: int, documents: int = 0,
    grouped: bool = False, whole: bool = True,
) -> Messages:  # fmt: skip
    """Merge summaries of parts of one document (title given) or of a collection's `documents`
    (title None): of documents or, in a later round of a large collection, of groups of them
    (`grouped`), into a summary of the `whole` document or collection or of these alone."""
    if title is not None:
        title = " ".join(neutralise(title).split())
        scope = "the whole document" if whole else "these parts together"
        intro = (f'These are summaries of consecutive parts of the document "{title}". Combine them into '
                 f"one summary of {scope} in at most {sentences} sentences.")  # fmt: skip
    else:
        documents, kind = documents or len(summaries), "groups" if grouped else "documents"
        what = (f"the {documents} documents" if documents == len(summaries) and not grouped else
                f"{len(summaries)} {'groups ' if grouped else ''}of the {documents} documents")  # fmt: skip
        scope = "the whole collection" if whole else f"these {kind} together"
        intro = (f"These are summaries of {what} of a collection. Write one summary of {scope} "
                 f"in at most {sentences} sentences.")  # fmt: skip
    # Summaries are made from documents, so they are quoted like documents.
    body = "\n\n".join(
        f"{' '.join(neutralise(label).split())}, quoted:\n{quote(text)}" for label, text in summaries
    )
    return [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": f"{defuse(intro)}\n\n{body}"},
    ]


def unfinished(text: str) -> tuple[str, str]:
    """(the text, "") or, where its last sentence has no end mark, (the text before it, that
    sentence): for a reply that reached its length limit, the sentence (or a list's last item)
    the model was cut off in. A reply of one sentence does not lose it."""
    spans = sentences(text)
    said = [text[a:b].strip() for a, b in spans]
    if len(said) < 2 or said[-1].rstrip("\"'”’)]」』）").endswith(ENDS):
        return text, ""
    return text[: spans[-1][0]].rstrip(), said[-1]


def check(text: str, sources: list[Passage], threshold: float) -> tuple[str, list[str], bool]:
    """(the summary's sentences a source holds, those left out, whether any was held), by the
    support check answers pass (qa/support.py), the sources' titles given. When no sentence is
    held, the text stays whole and is marked as not supported. A line that only frames what
    follows (see `frames`) is not checked: it is kept, on a line of its own, where a kept sentence
    follows it."""
    said = _said(text)
    listed = any(is_list_item(s) for s in said)
    passages, titles = [p.text for p in sources], [p.title for p in sources]
    sourced = set(content(" ".join([*passages, *titles])))
    framing = [frames(s, sourced) for s in said]
    # A summary names its documents by their titles ('The "Pricing" page lists ...'): a title's
    # words need only stand in that passage's own title.
    held = [
        not frame
        and bool(passages)
        and best(plain(s), passages, "", titles, threshold, named=True)[1].holds(threshold)
        for s, frame in zip(said, framing, strict=True)
    ]
    if not any(held):
        return text, [], False
    kept = [(s, frame) for i, (s, frame) in enumerate(zip(said, framing, strict=True))
            if held[i] or (frame and any(held[j] for j in _framed(said, framing, i)))]  # fmt: skip
    joined = ""
    for i, (s, frame) in enumerate(kept):  # a list stays a list; a frame stands on its own line
        apart = listed or frame or (i > 0 and kept[i - 1][1])
        joined += ("\n" if apart else " ") + s if i else s
    left_out = [s for s, ok, frame in zip(said, held, framing, strict=True) if not ok and not frame]
    return joined, left_out, True


def _said(text: str) -> list[str]:
    """The summary's sentences and lines, a numbered item's number kept with its words ("1. The
    council ..."), as sentences() splits it off."""
    said: list[str] = []
    for a, b in sentences(text):
        if said and _NUMBER.fullmatch(said[-1]) and "\n" not in text[a - 1 : a]:
            said[-1] += " " + text[a:b].strip()
        else:
            said.append(text[a:b].strip())
    return said


_NUMBER = re.compile(r"\d{1,2}[.)]")


def _framed(said: list[str], framing: list[bool], i: int) -> range:
    """The lines the frame `said[i]` introduces: the list right after it, else those up to the
    next frame."""
    end = i + 1
    if end < len(said) and is_list_item(said[end]):
        while end < len(said) and is_list_item(said[end]):
            end += 1
    else:
        while end < len(said) and not framing[end]:
            end += 1
    return range(i + 1, end)


def frames(line: str, sourced: set[str]) -> bool:
    """Whether a summary's `line` only frames what follows, a heading ("## Key Findings") or a
    short lead-in ("**Key points:**"): no claim of its own, so few words and no key word (a
    number; a name, unless every word is capitalised as a heading's are); a lead-in also no
    negation and no word but those that frame ("points", "summary") and those the sources say
    (`sourced`, as `content` reads them): "The council rejected the plan:", where no source says
    "rejected", is a claim."""
    bare = line.strip().strip("*_").strip()
    heading = is_heading(bare)
    if not (heading or bare.endswith(":")) or len(bare.split()) > 12:
        return False
    bare = bare.lstrip("#").strip()
    titled = all(w[:1].isupper() for w in bare.split() if len(w) > 3)
    if key_words(bare.lower() if titled else bare):
        return False
    return heading or (not negations(bare) and all(w in _FRAMING or w in sourced for w in content(bare)))


_FRAMING = set(content(
    "key main important general brief short points findings summary summarised summarized overview "
    "highlights takeaways conclusions notes details topics themes ideas facts background context "
    "document text article report page collection section part following follows below here "
    "include covers discusses describes mentions says information contents outline recap results"
))  # fmt: skip


ENDS = (".", "!", "?", "…", "。", "！", "？")  # what a finished sentence ends with


def pack(
    items: list[tuple[str, str]], fits: Callable[[list[tuple[str, str]]], bool]
) -> list[list[tuple[str, str]]]:
    """Consecutive groups of items, each as large as `fits` allows (at least one item each)."""
    groups: list[list[tuple[str, str]]] = [[]]
    for item in items:
        if groups[-1] and not fits([*groups[-1], item]):
            groups.append([])
        groups[-1].append(item)
    return groups


@dataclass
class _Run:
    """Counters of one summarisation, so concurrent ones do not mix."""

    progress: Progress | None
    stop: threading.Event | None = None  # set when the caller goes away
    expected: int = 0
    calls: int = 0
    cached: int = 0
    started: float = 0.0
    skipped: list[str] = field(default_factory=list)  # what the model wrote nothing for (Summary.skipped)
    unused: list[Passage] = field(default_factory=list)  # their sections
    shortened: bool = False


class Summarizer:
    def __init__(
        self, generator: Generator, index: Index, cache: SummaryCache, budget: int, threshold: float
    ) -> None:
        self.generator, self.index, self.cache, self.budget = generator, index, cache, budget
        self.threshold = threshold  # Config.support_threshold: what a summary sentence must pass

    def document(
        self,
        doc_id: str,
        sentences: int,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> Summary:
        """A summary of one document; Stopped as soon as `stop` is set (the caller went away)."""
        self._fits(sentences)
        info, text = self.index.document(doc_id), self.index.document_text(doc_id)
        if info is None or text is None:
            raise QuestionError(f"no document {doc_id!r} in the index (removed since?): pick one it lists")
        run = _Run(progress, stop, started=time.perf_counter())
        sections = self._sections(info.title, doc_id, text, info.metadata, sentences)
        run.expected = len(sections) + (len(sections) > 1)
        summary = self._document(info.title, sections, sentences, run)
        return self._done(doc_id, info.title, summary, sections, run, sentences)

    def collection(
        self, sentences: int, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> Summary:
        """A summary of every document; Stopped as soon as `stop` is set (the caller went away)."""
        self._fits(sentences)
        run = _Run(progress, stop, started=time.perf_counter())
        plan = [
            (info.title, self._sections(info.title, info.id, self.index.document_text(info.id) or "",
                                        info.metadata, sentences))
            for info in self.index.documents()
        ]  # fmt: skip
        run.expected = sum(len(s) + (len(s) > 1) for _, s in plan) + (len(plan) > 1)
        summaries = []
        for title, sections in plan:
            skipped = len(run.skipped)
            summaries.append((f'"{title}"', self._document(title, sections, sentences, run)))
            if not summaries[-1][1]:  # nothing of it: the document, not each of its parts
                del run.skipped[skipped:]
                run.skipped.append(f'"{title}" ({sections[0].doc_id})' if sections else f'"{title}"')
                run.unused += sections
        sources = [p for _, sections in plan for p in sections]
        text = summaries[0][1] if len(summaries) == 1 else self._combine(None, summaries, sentences, run)
        return self._done(None, "All documents", text, sources, run, sentences)

    def _fits(self, sentences: int) -> None:
        within_context(
            self.generator, self.budget, reply_tokens(sentences), "--context-tokens or --sentences"
        )

    def _sections(self, title: str, doc_id: str, text: str, metadata: dict, sentences: int) -> list[Passage]:
        """The document cut on sentence ends into parts that each fit one summary prompt."""
        room = max(self.budget - self._tokens(part_messages(title, "", sentences, (99, 99))), 64)
        while True:  # quoting adds a few tokens a sentence: cut smaller until every part fits
            spans = chunk_text(text, self.generator.tokenize, room, 0)
            prompts = [part_messages(title, text[s.start : s.end], sentences, (99, 99)) for s in spans]
            if room <= 64 or all(self._tokens(m) <= self.budget for m in prompts):
                break
            room = max(int(room * 0.9), 64)
        return [Passage(doc_id, title, s.start, s.end, text[s.start : s.end], 1.0, metadata) for s in spans]

    def _document(self, title: str, sections: list[Passage], sentences: int, run: _Run) -> str:
        if len(sections) == 1:
            return self._call(part_messages(title, sections[0].text, sentences), sentences, run)
        parts = []
        for i, p in enumerate(sections, 1):
            text = self._call(part_messages(title, p.text, sentences, (i, len(sections))), sentences, run)
            parts.append((f"Part {i}", text))
            if not text:
                run.skipped.append(f'part {i} of {len(sections)} of "{title}"')
                run.unused.append(p)
        return self._combine(title, parts, sentences, run)

    def _combine(self, title: str | None, summaries: list[tuple[str, str]], sentences: int, run: _Run) -> str:
        """Summaries of summaries until one remains; each call stays within the budget. A summary
        the model left empty is left out (the caller records what it covered in run.skipped)."""
        for label, text in summaries:
            if not text:
                log.warning("the model wrote no summary of %s; the summary goes on without it", label)
        summaries = [(label, text) for label, text in summaries if text]
        if not summaries:
            return ""
        documents, grouped = len(summaries), False  # of the collection's documents, when title is None

        def message(group: list[tuple[str, str]], whole: bool) -> Messages:
            return combine_messages(title, group, sentences, documents, grouped, whole)

        def fits(group: list[tuple[str, str]]) -> bool:  # as the round's last prompt or one of several
            return all(self._tokens(message(group, whole)) <= self.budget for whole in (True, False))

        fitted = [self._fitted(title, s, sentences, fits) for s in summaries]
        run.shortened |= fitted != summaries
        summaries = fitted
        while len(summaries) > 1:
            groups = pack(summaries, fits)
            if len(groups) == len(summaries):  # not even two fit one prompt: a round would never end
                summaries, run.shortened = self._shorten(title, summaries, sentences, fits), True
                groups = pack(summaries, fits)
            if len(groups) == 1:
                return self._call(message(groups[0], True), sentences, run)
            run.expected += len(groups)  # a round more than planned: a call per group
            label = "Part" if title else "Group"
            summaries = [
                (f"{label} {i}", self._call(message(g, False), sentences, run))
                for i, g in enumerate(groups, 1)
            ]
            grouped = True
        return summaries[0][1]

    def _fitted(
        self, title: str | None, summary: tuple[str, str], sentences: int, fits: Callable
    ) -> tuple[str, str]:
        """The summary, cut where the budget ends when it does not fit a combining prompt alone."""
        if fits([summary]):
            return summary
        room = self.budget - self._tokens(combine_messages(title, [(summary[0], "")], sentences))
        advice = "to combine summaries: raise the context budget (--context-tokens)"
        return self._cut([summary], room, fits, advice)[0]

    def _shorten(
        self, title: str | None, summaries: list[tuple[str, str]], sentences: int, fits: Callable
    ) -> list[tuple[str, str]]:
        """Each summary cut to its share of one prompt, so that the first two fit together."""
        empty = combine_messages(title, [(label, "") for label, _ in summaries[:2]], sentences)
        share = (self.budget - self._tokens(empty)) // 2
        advice = (
            f"to combine summaries of {sentences} sentences: ask for fewer sentences or raise the context "
            f"budget (--context-tokens)"
        )
        return self._cut(summaries, share, lambda cut: fits(cut[:2]), advice)

    def _cut(
        self, summaries: list[tuple[str, str]], room: int, fits: Callable, advice: str
    ) -> list[tuple[str, str]]:
        """Each summary cut to its first `room` tokens, `room` shrinking until `fits` the cuts."""
        while room > 0:
            cut = [(label, self._first_tokens(text, room)) for label, text in summaries]
            if fits(cut):
                return cut
            room -= max(1, room // 8)
        raise ConfigError(f"the context budget ({self.budget} tokens) leaves no room {advice}")

    def _first_tokens(self, text: str, tokens: int) -> str:
        offsets = self.generator.tokenize([text])[0]
        return text if len(offsets) <= tokens else text[: offsets[tokens - 1][1]]

    def _call(self, messages: Messages, sentences: int, run: _Run) -> str:
        """The model's summary for `messages`, from the cache when it was asked before. An empty
        reply is not kept (asked again, it is asked of the model)."""
        if run.stop is not None and run.stop.is_set():
            raise Stopped("the summary was stopped: its caller went away")
        g = self.generator  # another runtime or precision of the model writes its own summary
        key = hashlib.sha256(
            json.dumps([PROMPT_VERSION, g.name, engine(g), g.dtype, messages]).encode()
        ).hexdigest()
        text = self.cache.get(key)
        if text is None:
            text = self._generate(messages, reply_tokens(sentences), run.stop).strip()
            if text:
                self.cache.put(key, text)
        else:
            run.cached += 1
        run.calls += 1
        if run.progress:
            run.progress(run.calls, max(run.expected, run.calls))
        return text

    def _generate(self, messages: Messages, max_new_tokens: int, stop: threading.Event | None) -> str:
        """The model's reply; Stopped, the model's stream closed, as soon as `stop` is set."""
        pieces = []
        with closing(self.generator.stream(messages, max_new_tokens)) as replies:
            for piece in replies:
                if stop is not None and stop.is_set():
                    raise Stopped("the summary was stopped: its caller went away")
                pieces.append(piece)
        return "".join(pieces)

    def _tokens(self, messages: Messages) -> int:
        return self.generator.count(self.generator.render(messages))

    def _done(
        self, doc_id: str | None, title: str, text: str, sources: list[Passage], run: _Run, sentences: int
    ) -> Summary:
        if not text:
            raise NoSummary(
                f"the model wrote no summary of {title!r}: ask for another number of sentences, or use "
                "another model"
            )
        cut = ""
        if self.generator.count(text) >= reply_tokens(sentences) - 2:  # the reply reached its limit
            text, cut = unfinished(text)
        text, left_out, supported = check(text, sources, self.threshold)
        unused = {id(p) for p in run.unused}
        sources = [p for p in sources if id(p) not in unused]
        seconds = round(time.perf_counter() - run.started, 3)
        return Summary(doc_id, title, text, sources, run.calls, run.cached, seconds, self.generator.name,
                       left_out, supported, run.skipped, run.shortened, cut)  # fmt: skip


def reply_tokens(sentences: int) -> int:
    """The longest reply asked for a summary of `sentences` sentences."""
    return 48 * sentences + 16
