"""Bad input never crashes a reader: any bytes under any accepted extension either read as a
document or are refused with a reason."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings.chunker import chunk_text
from embeddings.config import Config
from embeddings.errors import ConfigError, QuestionError, UnreadableDocument
from embeddings.readers import SUPPORTED, Pending, Skipped, scan
from embeddings.scope import Scope
from tests.fakes import FakeEmbedder
from tests.pdfs import text_pdf

tokenize = FakeEmbedder().tokenize


def read_all(name: str, data: bytes) -> list[str]:
    """Scan and load one file; every outcome must be a document or a reason."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        outcomes = []
        for item in scan(path):
            if isinstance(item, Skipped):
                assert item.reason
                outcomes.append(f"skipped: {item.reason}")
                continue
            assert isinstance(item, Pending)
            try:
                doc = item.load()
            except UnreadableDocument as e:
                assert str(e)
                outcomes.append(f"unreadable: {e}")
                continue
            for span in chunk_text(doc.text, tokenize, 32, 4):
                assert doc.text[span.start : span.end].strip()
            outcomes.append("read")
        return outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from(SUPPORTED), data=st.binary(max_size=2000))
def test_random_bytes_under_every_extension(ext, data):
    read_all(f"random{ext}", data)


@settings(max_examples=150, deadline=None)
@given(ext=st.sampled_from(SUPPORTED), text=st.text(max_size=500))
def test_any_unicode_text_under_every_extension(ext, text):
    read_all(
        f"text{ext}",
        text.encode("utf-8", "surrogatepass") if ext != ".pdf" else text.encode("utf-8", "replace"),
    )


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0, max_value=600))
def test_truncated_pdfs(cut):
    read_all("cut.pdf", text_pdf(["Some text on a page.", "More text."])[:cut])


@settings(max_examples=100, deadline=None)
@given(record=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                           max_leaves=10))  # fmt: skip
def test_jsonl_lines_of_any_shape(record):
    read_all("any.jsonl", (json.dumps(record) + "\n").encode())


def test_crafted_hard_cases():
    cases = {
        "nul.txt": b"text\x00with NUL",
        "rtl.md": "# \u202eعربى\u202c\n\nשלום עולם e\u0301\u0301\u0301".encode(),
        "deep.html": b"<div>" * 20000 + b"deep" + b"</div>" * 20000,
        "one-line.txt": b"word " * 2_000_000,  # 10 MB on one line
        "bad.jsonl": b'{"id": 1, "text": 5}\n{"id": [1], "text": "x"}\n{"_id": "a", "text": "ok"}\n\xff\xfe\n',
    }
    for name, data in cases.items():
        outcomes = read_all(name, data)
        assert outcomes, name


@pytest.mark.parametrize("markup", [b"<p>a <![-- old comment --> b</p>", b"<![ ]]>", b"a<![0]"])
def test_html_the_parser_rejects_is_one_documents_reason_to_be_skipped(markup):
    [outcome] = read_all("notes.html", markup)
    assert outcome.startswith("unreadable: not readable HTML") and "fix the markup" in outcome


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"title_tokens": -10}, "title_tokens must be 0 or more"),
        ({"rrf_k": -1}, "rrf_k and max_question_chars 1 or more"),
        ({"max_question_chars": 0}, "rrf_k and max_question_chars 1 or more"),
        ({"support_threshold": -1}, "support_threshold must be between 0 and 1"),
        ({"min_relevance": 5.0}, "min_relevance (a cosine) between -1 and 1"),
        ({"min_lexical": -1}, "min_lexical, min_grounding and grounding_similarity must be 0 or more"),
        ({"min_grounding": float("nan")}, "min_grounding must be a number, got nan"),
    ],
)
def test_settings_out_of_range_are_refused_when_made_not_when_used(settings, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        Config(**settings)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"doc_ids": "b.txt"}, "doc_ids must be a set of them, not one text: doc_ids={'b.txt'}"),
        ({"formats": "pdf"}, "formats must be a set of them"),
        ({"since": "2024-01-01junk"}, "since must be a date like 2024-05-31, not '2024-01-01junk'"),
        ({"until": "soon"}, "until must be a date like 2024-05-31"),
    ],
)
def test_a_scope_made_with_the_wrong_kind_of_value_says_what_to_give(fields, says):
    with pytest.raises(QuestionError, match=re.escape(says)):
        Scope(**fields)
    assert Scope(since="2024-01-01").since == date(2024, 1, 1), "a date as text is read as the date"
