"""Drafting the next tokens from what a sequence has read and written (no model)."""

from __future__ import annotations

from qa.drafts import Drafts, agreed


def drafts(tokens: list[int], n: int = 3) -> Drafts:
    d = Drafts(n)
    d.extend(tokens)
    return d


def test_the_tokens_that_followed_the_last_three_before_are_the_draft():
    # a passage "5 6 7 8 9", then an answer that has copied "5 6 7" from it
    assert drafts([1, 5, 6, 7, 8, 9, 2, 5, 6, 7]).draft(3) == [8, 9, 2]
    assert drafts([1, 5, 6, 7, 8, 9, 2, 5, 6, 7]).draft(1) == [8]


def test_the_latest_earlier_occurrence_is_followed():
    assert drafts([5, 6, 7, 1, 5, 6, 7, 2, 5, 6, 7]).draft(2) == [2, 5]


def test_no_draft_where_the_last_tokens_were_not_seen_before_or_none_is_asked():
    assert drafts([1, 2, 3, 4, 5, 6]).draft(3) == []
    assert drafts([5, 6, 7, 8, 5, 6]).draft(3) == [], "two tokens in common are not enough"
    assert drafts([5, 6]).draft(3) == []
    assert drafts([5, 6, 7, 8, 5, 6, 7]).draft(0) == []


def test_tokens_added_one_by_one_draft_as_added_at_once():
    tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 1, 4, 1, 5, 9, 2, 6]
    one_by_one = Drafts()
    for i, token in enumerate(tokens):
        one_by_one.extend([token])
        assert one_by_one.draft(4) == drafts(tokens[: i + 1]).draft(4)
    assert one_by_one.draft(4) == [5, 3, 5, 1]


def test_a_step_keeps_the_drafted_tokens_the_model_chose_and_its_own_after_them():
    # fed: the last token, then drafts 8 9 2; chosen: the model's token after each fed token
    assert agreed([8, 9, 2], [8, 9, 2, 4]) == [8, 9, 2, 4], "every draft right: one token more"
    assert agreed([8, 9, 2], [8, 7, 2, 4]) == [8, 7], "the second draft wrong: the model's own instead"
    assert agreed([8, 9, 2], [3, 9, 2, 4]) == [3]
    assert agreed([], [3]) == [3]
