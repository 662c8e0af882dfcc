from __future__ import annotations

import pytest

from qa.citations import best_support, drop_unknown, is_refusal, sentences, set_marks, support


def test_sentences_carry_their_marks_including_marks_after_the_full_stop():
    found = sentences("Ismail Khan mediated [1]. It was in Tehran. [2][3]\nNo source here.")
    assert [(s.text, s.numbers) for s in found] == [
        ("Ismail Khan mediated.", (1,)),
        ("It was in Tehran.", (2, 3)),
        ("No source here.", ()),
    ]


def test_grouped_and_repeated_marks_are_read_once_each():
    assert sentences("A fact [1, 3][3].")[0].numbers == (1, 3)


def test_numbers_that_name_no_passage_are_dropped_from_the_text():
    assert drop_unknown("Tehran [1][7]. Kabul [0].", given=3) == "Tehran [1]. Kabul."
    assert sentences(drop_unknown("Tehran [4].", given=3))[0].numbers == ()


def test_marks_are_rewritten_at_the_end_of_their_sentence():
    answer = "It was in Tehran [2][3]. Later, Kabul. [1]"
    first, second = sentences(answer)
    answer = set_marks(answer, second, [])
    assert set_marks(answer, first, [3]) == "It was in Tehran. [3] Later, Kabul."


def test_support_is_high_for_a_sentence_the_passage_states():
    passage = "Sources further informed that the meeting was mediated by the former governor Ismail Khan."
    assert support("The meeting was mediated by Ismail Khan.", passage) >= 0.5
    assert support("The meeting was held in Paris by the mayor.", passage) < 0.5


def test_a_shared_surname_alone_is_not_support():
    assert support("Ismail Khan", "acting Foreign Minister Amir Khan Muttaqi") < 0.5
    assert support("Ismail Khan", "mediated by Ismail Khan") == 1.0


def test_best_support_names_the_passage_that_holds_the_sentence():
    passages = ["Rain fell in Kabul.", "India sent 50,000 tonnes of wheat.", "Talks ended."]
    assert best_support("India gave 50,000 tonnes of wheat.", passages)[0] == 2


@pytest.mark.parametrize(
    "reply",
    ["I don't know.", "I do not know the answer.", "The passages do not contain this information.",
     "This is not mentioned in the passages.", "", "I cannot find that in the documents.", " [1][2][3]"],
)  # fmt: skip
def test_refusals_are_recognised(reply):
    assert is_refusal(reply)


@pytest.mark.parametrize(
    "reply",
    ["Ismail Khan mediated the meeting [1].", "The meeting was futile [2]. I don't know who paid for it."],
)
def test_answers_are_not_refusals(reply):
    assert not is_refusal(reply)
