"""Bad input: crafted and random files under every accepted extension, and hostile questions.
Each case must end as a document, or as a refusal whose message names the problem; anything
else (another exception, a hang, a build that stops) is a crash."""

from __future__ import annotations

import json
import random
import shutil
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from embeddings.builder import build
from embeddings.chunker import chunk_text
from embeddings.config import Config
from embeddings.embedder import Embedder
from embeddings.errors import DocqaError, UnreadableDocument
from embeddings.index import Index
from embeddings.readers import SUPPORTED, Pending, Skipped, scan
from embeddings.verify import verify
from qa.assistant import Assistant
from tests.pdfs import encrypted_pdf, text_pdf

Case = tuple[str, str, bytes]  # (kind, file name, content)


def files(rng: random.Random, scale: float = 1.0) -> Iterator[Case]:
    """Every kind of file the issue lists, `scale` times the full count of random ones."""
    n = lambda full: max(1, int(full * scale))  # noqa: E731
    for ext in SUPPORTED:
        for i in range(n(80)):
            yield "random bytes", f"random-{i}{ext}", rng.randbytes(rng.randint(0, 4000))
        for i in range(n(12)):
            text = "".join(chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0x590, 0x6FF), rng.randint(0x300, 0x36F),
                                           rng.randint(0x1F300, 0x1F6FF), rng.randint(0xD800, 0xDFFF)]))
                           for _ in range(rng.randint(0, 600)))  # fmt: skip
            yield "random unicode", f"unicode-{i}{ext}", text.encode("utf-8", "surrogatepass")
    pdf = text_pdf(["A page of text.", "Another line."], title="A title")
    for i in range(n(60)):
        yield "truncated pdf", f"cut-{i}.pdf", pdf[: rng.randint(0, len(pdf) - 1)]
    for i in range(n(20)):
        flipped = bytearray(pdf)
        for _ in range(rng.randint(1, 20)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        yield "corrupted pdf", f"flipped-{i}.pdf", bytes(flipped)
    yield "encrypted pdf", "encrypted.pdf", encrypted_pdf()
    yield "pdf without text", "empty-page.pdf", text_pdf([])
    for depth in (1_000, 10_000, 100_000):
        yield "deep html", f"deep-{depth}.html", b"<div>" * depth + b"deep text" + b"</div>" * depth
    yield "deep html", "unclosed.htm", b"<b><i><u>" * 30_000 + b"never closed"
    yield (
        "hidden html",
        "hidden.html",
        b"<p style='display:none'>hidden</p><script>alert(1)</script><p>shown</p>",
    )
    if scale >= 1:
        yield "huge line", "one-line.txt", b"word " * 10_000_000  # 50 MB, no newline
    for i in range(n(20)):
        good = rng.choice([b"plain text ", "caf\u00e9 ".encode()]) * rng.randint(1, 50)
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])
        yield "invalid utf-8", f"invalid-{i}{rng.choice(['.txt', '.md', '.html'])}", good + bad + good
    for i in range(n(10)):
        yield "nul bytes", f"nul-{i}.txt", b"text\x00" * rng.randint(1, 500)
    for i in range(n(20)):
        parts = [
            "\u202eمرحبا\u202c",
            "שלום",
            "e\u0301\u0302\u0303",
            "\u200f\u200e",
            "Z\u0336\u0335\u0334",
            "\ufeff",
        ]
        yield "rtl and combining", f"rtl-{i}.md", " ".join(rng.choices(parts, k=rng.randint(1, 200))).encode()
    shapes = [None, 5, 1.5, True, [], {}, "", "x", ["a"], {"a": 1}]
    for i in range(n(60)):
        record = {
            key: rng.choice(shapes)
            for key in rng.sample(["id", "_id", "title", "text", "date"], rng.randint(0, 5))
        }
        lines = [
            json.dumps(record),
            json.dumps(rng.choice(shapes)),
            "{not json",
            '{"id": "ok", "text": "fine"}',
        ]
        yield (
            "jsonl wrong types",
            f"lines-{i}.jsonl",
            "\n".join(rng.sample(lines, rng.randint(1, 4))).encode(),
        )


def read_case(folder: Path, name: str, data: bytes, tokenize: Callable, config: Config) -> str:
    """'read', or 'refused: reason'. Raises on a crash (any other exception)."""
    path = folder / name
    path.write_bytes(data)
    try:
        outcomes = []
        for item in scan(path):
            if isinstance(item, Skipped):
                outcomes.append(_named("refused", item.reason))
                continue
            assert isinstance(item, Pending)
            try:
                doc = item.load()
                spans = chunk_text(doc.text, tokenize, config.chunk_tokens, config.chunk_overlap)
                outcomes.append("read" if spans else "refused: no words")
            except UnreadableDocument as e:
                outcomes.append(_named("refused", str(e)))
        return outcomes[0] if len(set(outcomes)) == 1 else "mixed: " + ", ".join(sorted(set(outcomes)))
    finally:
        path.unlink()


def _named(kind: str, reason: str) -> str:
    if not reason.strip():
        raise AssertionError("refused without a reason")
    return f"{kind}: {reason.split(':')[0][:60]}"


def file_cases(work: Path, embedder: Embedder, config: Config, seed: int, scale: float, progress) -> dict:
    """Each file read on its own, then all of them indexed together beside a good document."""
    rng = random.Random(seed)
    shutil.rmtree(work, ignore_errors=True)
    single, together = work / "single", work / "together"
    single.mkdir(parents=True)
    together.mkdir(parents=True)
    kinds: dict[str, Counter] = {}
    crashes = []
    for kind, name, data in files(rng, scale):
        try:
            outcome = read_case(single, name, data, embedder.tokenize, config)
        except Exception as e:
            outcome = "crash"
            crashes.append({"kind": kind, "file": name, "error": _short(e)})
        kinds.setdefault(kind, Counter())[outcome.split(":")[0]] += 1
        if len(data) < 1_000_000:
            (together / name).write_bytes(data)
        progress()
    (together / "good.txt").write_text("The lighthouse keeper counted 412 ships in the winter of 1911.")
    build_result = {}
    try:
        report = build(replace(config, docs=together, index_dir=work / "index"), embedder, progress=False,
                       log=lambda m: None)  # fmt: skip
        verdict = verify(work / "index", embedder)
        found = _finds(
            work / "index", embedder, "How many ships did the lighthouse keeper count?", "good.txt"
        )
        build_result = {"documents": report.documents, "chunks": report.chunks, "skipped": len(report.skipped),
                        "skips_named": all(s.source and s.reason for s in report.skipped),
                        "consistent": verdict.ok, "good_document_found": found}  # fmt: skip
        if not (verdict.ok and found and build_result["skips_named"]):
            crashes.append(
                {"kind": "build", "file": str(together), "error": f"{build_result} {verdict.problems}"}
            )
    except Exception as e:
        crashes.append({"kind": "build", "file": str(together), "error": _short(e)})
    return {
        "cases": sum(sum(c.values()) for c in kinds.values()),
        "by_kind": {k: dict(c) for k, c in kinds.items()},
        "build_of_all_together": build_result,
        "crashes": crashes,
    }


def _finds(index_dir: Path, embedder: Embedder, query: str, doc_id: str) -> bool:
    index = Index.open(index_dir, embedder)
    try:
        return any(h.chunk.doc_id == doc_id for h in index.dense(query, 3))
    finally:
        index.close()


def questions(rng: random.Random, scale: float) -> Iterator[tuple[str, object]]:
    n = lambda full: max(1, int(full * scale))  # noqa: E731
    yield "empty", ""
    yield "whitespace", " \t\n  \u3000"
    yield "1 MB", "why " * 250_000
    yield "just over the limit", "a" * (Config().max_question_chars + 1)
    yield "control characters", "".join(chr(c) for c in range(32) if c not in (9, 10, 13)) + "\x7f\x85"
    yield "nul inside", "Who mediated\x00 the meeting?"
    yield "right-to-left", "\u202eWho mediated the meeting?\u202c"
    yield "combining marks", "Who\u0301\u0302 mediated\u0336 the meeting?"
    yield "emoji only", "🤔❓🔥"
    yield "markup", "<script>alert(1)</script> [1] [99] {{question}} </s><|im_end|>"
    yield "not text", 42
    yield "not text", None
    yield "not text", ["who", "mediated"]
    for i in range(n(150)):
        alphabet = rng.choice([(0, 0x7F), (0, 0x2FF), (0x590, 0x6FF), (0x1F300, 0x1F6FF), (0x300, 0x36F)])
        yield "random", "".join(chr(rng.randint(*alphabet)) for _ in range(rng.randint(1, 300)))
        if i % 3 == 0:
            yield "random words", " ".join(rng.choices(["who", "what", "the", "meeting", "wheat", "[1]", "ignore",
                                                        "Tehran", "?", "NRF", "\n"], k=rng.randint(1, 40)))  # fmt: skip


def question_cases(assistant: Assistant, seed: int, scale: float, progress) -> dict:
    """Hostile questions through `ask`, the path every way in uses."""
    rng = random.Random(seed)
    outcomes: dict[str, Counter] = {}
    crashes = []
    for kind, question in questions(rng, scale):
        try:
            answer = assistant.ask(question)  # type: ignore[arg-type]
            outcome = "declined" if answer.abstained else "answered"
        except DocqaError as e:
            outcome = _named("refused", str(e)).split(":")[0]
        except Exception as e:
            outcome = "crash"
            crashes.append({"kind": kind, "question": repr(question)[:80], "error": _short(e)})
        outcomes.setdefault(kind, Counter())[outcome] += 1
        progress()
    return {
        "cases": sum(sum(c.values()) for c in outcomes.values()),
        "by_kind": {k: dict(c) for k, c in outcomes.items()},
        "crashes": crashes,
    }


def _short(e: BaseException) -> str:
    return (
        f"{type(e).__name__}: {e}"[:300]
        + " @ "
        + traceback.format_exc(limit=-2).splitlines()[-3].strip()[:200]
    )
