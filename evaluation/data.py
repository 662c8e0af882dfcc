"""The public evaluation sets, read where they lie (default ../shared/eval), never copied."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from embeddings.errors import DocqaError


class MissingData(DocqaError):
    """An evaluation set is not where the harness was told to look."""


def require(folder: Path, name: str, files: list[str]) -> Path:
    root = Path(folder) / name
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise MissingData(
            f"evaluation set {name!r} is incomplete in {Path(folder).resolve()}: missing {', '.join(missing)}; "
            f"pass --data FOLDER where {name}/ lies"
        )
    return root


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    paragraph: str  # id of the paragraph that holds the answer
    article: str


@dataclass(frozen=True)
class Paragraph:
    id: str
    article: str
    text: str


def scifact(folder: Path, split: str = "test") -> tuple[Path, dict[str, str], dict[str, dict[str, int]]]:
    """(corpus.jsonl, the split's queries by id, their relevance judgements by query id); the
    splits are "test" (300 claims) and "train" (809)."""
    root = require(folder, "beir-scifact", ["corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"])
    qrels: dict[str, dict[str, int]] = {}
    with (root / f"qrels/{split}.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {}
    for line in (root / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        if q["_id"] in qrels:
            queries[q["_id"]] = q["text"]
    return root / "corpus.jsonl", queries, qrels


def xquad(folder: Path) -> tuple[list[Paragraph], list[Question]]:
    root = require(folder, "squad-xquad-en", ["xquad.en.json"])
    data = json.loads((root / "xquad.en.json").read_text())["data"]
    paragraphs, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            pid = f"xquad-{a:02d}-{p:02d}"
            paragraphs.append(Paragraph(pid, article["title"], para["context"]))
            for qa in para["qas"]:
                answers = tuple(_to_word_end(para["context"], x) for x in qa["answers"])
                questions.append(Question(qa["id"], qa["question"], answers, pid, article["title"]))
    return paragraphs, questions


def _to_word_end(context: str, answer: dict) -> str:
    """A gold answer that stops inside a word or number of its paragraph ("... (2,70" of
    "(2,700,000 sq mi)") carried on to that word's end: cut, no reply could hold it whole."""
    text, start = answer["text"], answer.get("answer_start")
    if start is None or not text or context[start : start + len(text)] != text:
        return text
    end = start + len(text)
    while text[-1].isalnum() and end < len(context) and _inside(context, end):
        end += 1
    return context[start:end]


def _inside(text: str, i: int) -> bool:
    """`text[i]` goes on the word before it: a letter or digit, or a number's "," or "."."""
    digits = text[i - 1 : i].isdigit() and text[i + 1 : i + 2].isdigit()
    return text[i].isalnum() or (text[i] in ",." and digits)


@dataclass(frozen=True)
class Article:
    id: str
    text: str
    references: tuple[str, ...]


def summeval(folder: Path) -> list[Article]:
    """100 CNN/DailyMail articles with 11 references each, detokenised."""
    root = require(folder, "summeval-cnndm100", ["summeval_bartscore.jsonl"])
    out = []
    for line in (root / "summeval_bartscore.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(Article(r["doc_id"], detokenize(r["src"]), tuple(detokenize(x) for x in r["ref_summs"])))
    return out


@dataclass(frozen=True)
class Rated:
    """A system's summary of a SummEval article with the experts' consistency rating (1-5, the
    mean of three: 5 when all three found nothing in it the article does not say)."""

    article: str
    summary: str
    consistency: float


def summeval_rated(folder: Path) -> list[Rated]:
    """The 16 system summaries of each of SummEval's 100 articles, with their ratings, detokenised."""
    root = require(folder, "summeval-cnndm100", ["summeval_bartscore.jsonl"])
    out = []
    for line in (root / "summeval_bartscore.jsonl").read_text().splitlines():
        r = json.loads(line)
        source = detokenize(r["src"])
        out += [
            Rated(source, detokenize(s["sys_summ"]), s["scores"]["consistency"])
            for s in r["sys_summs"].values()
        ]
    return out


def xsum(folder: Path) -> list[Article]:
    root = require(folder, "xsum-1000", ["xsum_test_1000.jsonl"])
    out = []
    for line in (root / "xsum_test_1000.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(Article(f"xsum-{r['idx']}", r["document"], (r["summary"],)))
    return out


_DETOK = [
    (re.compile(r"\s+([.,:;?!%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$])\s+"), r"\1"),
    (re.compile(r"\s+(n't|'s|'re|'ve|'m|'ll|'d)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"``\s*|\s*''"), '"'),
    (re.compile(r"\s+-\s+"), " - "),
    (re.compile(r" {2,}"), " "),
]


def detokenize(text: str) -> str:
    """Penn-Treebank tokenised text ("team 's", "( CNN )") back to ordinary prose."""
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text.strip()


def halves(articles: Iterable[str]) -> dict[str, int]:
    """Each article's half: 0 (calibration) for the even-numbered ones in sorted order, 1 (report)
    for the others, each article counted once however often it is named. Every threshold is
    chosen on half 0 and reported on half 1."""
    return {a: i % 2 for i, a in enumerate(sorted(set(articles)))}
