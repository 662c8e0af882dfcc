from __future__ import annotations

import pytest

from qa.citations import drop_unknown, is_refusal, marked, sentences, set_marks


def test_sentences_carry_their_marks_including_marks_after_the_full_stop():
    found = sentences("Ismail Khan mediated [1]. It was in Tehran. [2][3]\nNo source here.")
    assert [(s.text, s.numbers) for s in found] == [
        ("Ismail Khan mediated.", (1,)),
        ("It was in Tehran.", (2, 3)),
        ("No source here.", ()),
    ]


def test_grouped_and_repeated_marks_are_read_once_each():
    assert sentences("A fact [1, 3][3].")[0].numbers == (1, 3)


def test_a_range_of_passages_or_the_prompts_own_label_is_a_mark_too():
    found = sentences(
        "Revenue rose [1-3]. Costs fell [Document 2]. Both held [1 and 2]. Tax fell [Doc 1, Doc 3]."
    )
    assert [(s.text, s.numbers) for s in found] == [
        ("Revenue rose.", (1, 2, 3)),
        ("Costs fell.", (2,)),
        ("Both held.", (1, 2)),
        ("Tax fell.", (1, 3)),
    ]


def test_numbers_that_name_no_passage_are_dropped_from_the_text():
    assert drop_unknown("Tehran [1][7]. Kabul [0].", given=3) == "Tehran [1]. Kabul."
    assert sentences(drop_unknown("Tehran [4].", given=3))[0].numbers == ()


def test_marks_are_rewritten_at_the_end_of_their_sentence():
    answer = "It was in Tehran [2][3]. Later, Kabul. [1]"
    first, second = sentences(answer)
    answer = set_marks(answer, second, [])
    assert set_marks(answer, first, [3]) == "It was in Tehran. [3] Later, Kabul."


@pytest.mark.parametrize(
    "reply",
    ["I don't know.", "I don\u2019t know.", "I do not know the answer.", "I\u2019m not sure.",
     "The passages do not contain this information.", "The documents don\u2019t mention it.",
     "This is not mentioned in the passages.", "", "I cannot find that in the documents.", " [1][2][3]",
     "There is no information about the author in the documents.", "I am unable to determine that.",
     "That cannot be determined from the passages.", "The documents provided do not mention it.",
     "I couldn\u2019t find that in the passages.", "I was unable to find the answer.",
     "No information is given about the cost.", "None of the documents mention the cost.",
     "It is not mentioned in the provided documents.", "The answer is not in the documents.",
     '"I don\'t know."', "Unfortunately, the provided documents do not mention the cause [1].",
     "The answer is not in the documents I was given.", "That is not in the text you provided.",
     "I'm sorry, but the provided documents do not mention the cause [1].",
     "Based on the passages, the documents do not mention who signed it [1].",
     "The information isn't mentioned in the passages.", "The answer isn't in the passages.",
     "That information is not available in the provided documents.",
     "The provided context doesn't have information about the cost.", "Neither passage mentions the cost.",
     "The passages lack information about the cost.", "It is not possible to determine the cost from the passages.",
     "No relevant information was found in the passages.", "The passages are silent on the cost.",
     "It is not in the documents or the passages.", "It is not in the passages either.",
     "That is not in the context I have.", "Based on the available information, the documents do not mention it [1].",
     "According to the retrieved passages, the documents do not mention the cause [1].",
     "The documents do not name the designer.", "Nothing in the documents says who designed it.",
     "The designer is not named in the passages.", "Both passages do not mention the cost.",
     "The above passages do not say.", "Unfortunately, documents provided do not mention it.",
     "It is not mentioned in the text anywhere.", "It is not in the documents we have."],
)  # fmt: skip
def test_refusals_are_recognised(reply):
    assert is_refusal(reply)


@pytest.mark.parametrize(
    "reply",
    ["Ismail Khan mediated the meeting [1].", "The meeting was futile [2]. I don't know who paid for it.",
     "No information was released about the talks until January [1].",
     # Words that decline when written alone state a fact when a passage is cited for them.
     "The treaty makes no mention of fishing rights [1].", "The ministry gave no answer to the request [1].",
     "Investigators said the cause of the crash cannot be determined [1].",
     "Investigators said the cause of the crash cannot be determined. [1] It was a calm night.",
     "There was not enough information to approve the drug [2].",
     # Words of a refusal that are a fact about something else, or someone else's words.
     "The bug was not in the source code but in the build script [1].",
     'The witness told police, "I don\'t know who fired the shot." [1]',
     "The appeal was rejected because the documents do not contain a signature [1].",
     "The loop variable is not in the context of the closure [1].",
     "The evidence was not in the text messages but in the emails [1].", "The key was not in the document drawer [2].",
     "According to the audit report, the documents do not contain a signature [1].",
     "It is not possible to determine the age of the fossil precisely [1].",
     "The company lacks information security staff [1].",
     "Lead was not found in the source water [1].", "The tag is not shown in the text box [1].",
     "No, the power source does not provide enough current for the motor [1].",
     "The primary source does not mention a date for the battle, but chroniclers place it in 1066 [1].",
     "Court documents do not name the second suspect [1].", "Her sources did not name the informant [1].",
     "The resources did not include an intensive care unit [1]."],
)  # fmt: skip
def test_answers_are_not_refusals(reply):
    assert not is_refusal(reply)


def test_a_reply_that_opens_with_its_citation_reads_from_its_first_word():
    answer = drop_unknown("[2] The meeting was mediated by Ismail Khan.", given=3)
    (sentence,) = sentences(answer)
    assert set_marks(answer, sentence, [2]) == "The meeting was mediated by Ismail Khan. [2]"


def test_an_answer_sentence_with_an_abbreviation_before_a_number_is_one_sentence():
    assert [s.text for s in sentences("Consent is covered by Art. 7 of the GDPR. It applies to all.")] == [
        "Consent is covered by Art. 7 of the GDPR.", "It applies to all."
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "read"),
    [("The bridge opened in 1932 [1]. According to Document 2, it closed in 1990.",
      "The bridge opened in 1932 [1]. It closed in 1990 [2]."),
     ("According to Document 1 and Document 2, the bridge opened.", "The bridge opened [1][2]."),
     ("Documents 1 and 3 state that it rained.", "It rained [1][3]."),
     ("The novel's second passage says that he left.", "The novel's second passage says that he left."),
     ("He signed document 5 in 1932.", "He signed document 5 in 1932."),
     ("The bridge, as Document 1 states, opened in 1932.", "The bridge opened in 1932 [1]."),
     ("**According to Document 1**, the bridge opened in 1932.", "The bridge opened in 1932 [1].")],
)  # fmt: skip
def test_a_passage_named_in_words_is_marked_at_the_end_of_its_own_sentence(reply, read):
    assert marked(reply) == read


def test_marking_reads_a_long_run_of_spaces_at_once():
    assert marked(" " * 50_000 + "(Document 1)") == "[1]"  # quadratic, this took seconds
