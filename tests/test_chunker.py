from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from embeddings.chunker import chunk_text, sentences, with_title
from tests.fakes import FakeEmbedder

tokenize = FakeEmbedder().tokenize

ARTICLE = (
    "The council met on Monday. It approved the budget after a long debate!\n\n"
    'Critics said the plan was rushed. "We need more time," one member said. '
    "The mayor disagreed. She said the city could not wait any longer.\n"
    "A vote is expected next week."
)


def count(text: str) -> int:
    return len(tokenize([text])[0])


def test_spans_round_trip_to_the_exact_text():
    for span in chunk_text(ARTICLE, tokenize, max_tokens=20, overlap=6):
        assert ARTICLE[span.start : span.end].strip() == ARTICLE[span.start : span.end]
        assert count(ARTICLE[span.start : span.end]) == span.tokens


def test_chunks_hold_the_token_limit_and_cover_every_word():
    spans = chunk_text(ARTICLE, tokenize, max_tokens=20, overlap=6)
    assert len(spans) > 2
    assert all(count(ARTICLE[s.start : s.end]) <= 20 for s in spans)
    covered = set()
    for s in spans:
        covered.update(range(s.start, s.end))
    assert all(i in covered for i, ch in enumerate(ARTICLE) if not ch.isspace())


def test_chunks_end_on_sentence_boundaries():
    for span in chunk_text(ARTICLE, tokenize, max_tokens=20, overlap=6)[:-1]:
        assert ARTICLE[span.end - 1] in '.!?"', ARTICLE[span.start : span.end]


def test_neighbours_share_whole_sentences_as_overlap():
    spans = chunk_text(ARTICLE, tokenize, max_tokens=24, overlap=11)
    overlaps = [a.end - b.start for a, b in zip(spans, spans[1:], strict=False) if b.start < a.end]
    assert overlaps, "expected at least one overlapping pair"
    for a, b in zip(spans, spans[1:], strict=False):
        if b.start < a.end:
            shared = ARTICLE[b.start : a.end]
            assert count(shared) <= 11
            assert shared in ARTICLE[a.start : a.end]


def test_no_overlap_when_asked_for_none():
    spans = chunk_text(ARTICLE, tokenize, max_tokens=20, overlap=0)
    assert all(b.start >= a.end for a, b in zip(spans, spans[1:], strict=False))


def test_a_sentence_longer_than_a_chunk_is_cut_at_word_starts():
    text = " ".join(f"word{i}" for i in range(95)) + "."
    spans = chunk_text(text, tokenize, max_tokens=10, overlap=2)
    assert all(s.tokens <= 10 for s in spans)
    assert "".join(text[s.start : s.end] for s in spans).replace(" ", "") == text.replace(" ", "")
    assert all(s.start == 0 or text[s.start - 1] == " " for s in spans)


def test_one_huge_line_is_chunked_without_tokenizing_it_whole():
    seen = []

    def recording(texts):
        seen.extend(len(t) for t in texts)
        return tokenize(texts)

    text = "lorem ipsum " * 50_000  # 600 kB on one line, no sentence ends
    spans = chunk_text(text, recording, max_tokens=32, overlap=4)
    assert max(seen) <= 32 * 16
    assert all(s.tokens <= 32 for s in spans)
    assert spans[-1].end == len(text.rstrip())


def test_sentences_are_trimmed_spans():
    spans = sentences("  One.  Two?\n\nThree  ")
    assert [("  One.  Two?\n\nThree  ")[s:e] for s, e in spans] == ["One.", "Two?", "Three"]


def test_blank_text_has_no_chunks():
    assert chunk_text(" \n\t ", tokenize, 16, 4) == []


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(st.sampled_from(list('ab cd.!?\n"é…') + ["word ", "x. "]), max_size=200).map("".join),
    max_tokens=st.integers(8, 40),
    overlap=st.integers(0, 3),
)
def test_any_text_chunks_within_limits_and_round_trips(text, max_tokens, overlap):
    spans = chunk_text(text, tokenize, max_tokens, overlap)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert 0 < count(text[s.start : s.end]) <= max_tokens
    words = {m for m in range(len(text)) if not text[m].isspace()}
    assert words <= {i for s in spans for i in range(s.start, s.end)}
    assert all(b.start > a.start for a, b in zip(spans, spans[1:], strict=False))


def test_the_title_goes_before_the_chunk_cut_to_its_token_budget():
    assert (
        with_title("Brain MRI study", "White matter grows.", tokenize, 8)
        == "Brain MRI study\nWhite matter grows."
    )
    assert with_title("One two three four five", "Body.", tokenize, 3) == "One two three\nBody."
    assert with_title("Any title", "Body.", tokenize, 0) == "Body."


def test_a_full_stop_after_an_initial_or_a_title_is_not_a_sentence_end():
    text = "Dr. Hale crossed the John W. Weeks Bridge into the U.S. Army base, e.g. at night. Then he left."
    assert [text[a:b] for a, b in sentences(text)] == [
        "Dr. Hale crossed the John W. Weeks Bridge into the U.S. Army base, e.g. at night.",
        "Then he left.",
    ]


def test_a_full_stop_after_a_company_form_or_a_month_is_not_a_sentence_end():
    text = "Shares of Apple Inc. rose on Jan. 5 when Gov. Hale let Acme Corp. buy it. Then they fell."
    assert [text[a:b] for a, b in sentences(text)] == [
        "Shares of Apple Inc. rose on Jan. 5 when Gov. Hale let Acme Corp. buy it.",
        "Then they fell.",
    ]


def test_an_abbreviation_before_a_number_or_a_word_in_lower_case_ends_no_sentence():
    text = "It peaked at No. 5 in Fig. 3 and rose approx. 5%. Apples, pears etc. are sold. It ended."
    assert [text[a:b] for a, b in sentences(text)] == [
        "It peaked at No. 5 in Fig. 3 and rose approx. 5%.", "Apples, pears etc. are sold.", "It ended."
    ]  # fmt: skip
    # a sentence may begin in lower case or with a number after any other full stop
    text = "Revenue grew 10%. eBay grew 5%. The answer is no. 5 people came."
    assert [text[a:b] for a, b in sentences(text)] == [
        "Revenue grew 10%.", "eBay grew 5%.", "The answer is no.", "5 people came."
    ]  # fmt: skip
