"""The support check and the answers-the-question check, on the sample article and XQuAD-like text."""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings.config import Config
from embeddings.index import Index
from qa.answer import Checks, interpret
from qa.assistant import Assistant
from qa.question import kind, relevance
from qa.retriever import Passage
from qa.support import best, rest, support
from tests.fakes import FakeGenerator

ARTICLE = (Path(__file__).resolve().parent.parent / "seeds" / "000_ef5301ee062fc8f6.txt").read_text()
T = 0.6


@pytest.mark.parametrize(
    "sentence",
    ["The meeting was mediated by Ismail Khan.", "India gave 50,000 tonnes of wheat to Afghanistan.",
     "According to the article, the meeting took place in Tehran.", "The meeting remained futile.",
     "The partnership offer was made in a phone call on January 8."],
)  # fmt: skip
def test_sentences_the_article_states_are_supported(sentence):
    assert support(sentence, ARTICLE).holds(T), support(sentence, ARTICLE)


def test_a_name_in_another_of_its_forms_is_still_the_name_the_passage_says():
    # The article says "Afghanistan National Resistance Front"; the 1.5B model wrote "Afghan".
    said = "The Afghan National Resistance Front leader Ahmad Massoud met Amir Khan Muttaqi in Iran."
    assert support(said, ARTICLE).holds(T), support(said, ARTICLE)
    assert support("The wheat went to Pakistani traders.", "The wheat went to traders in Pakistan.").holds(T)
    # Short names and numbers are not stretched: "Ira" is not "Iran", "50" is not "500".
    assert "Ira" in support("The traders met Ira.", "The traders met Iran.").missing
    assert support("They sent 50 tonnes.", "They sent 500 tonnes.").missing == ("50 tonnes",)
    # Nor is a name another name that begins with it.
    assert support(
        "The book was written by Michael Richard.", "The book was written by Michael Richardson."
    ).missing
    assert support("The final was held in Jackson.", "The final was held in Jacksonville.").missing


@pytest.mark.parametrize(
    ("said", "passage"),
    [("The Eiffel Tower is 330 meters tall.", "The Eiffel Tower is 330 metres tall."),
     ("Its color was chosen in 1889.", "Its colour was chosen in 1889."),
     ("Unemployment fell to 5 percent.", "Unemployment fell to 5 per cent in May."),
     ("Unemployment fell to 5 percent.", "Unemployment fell to 5% in May."),
     ("Unemployment fell to 5%.", "Unemployment fell to 5 percent in May."),
     ("They won the U.S. Open.", "They won the US Open.")],
)  # fmt: skip
def test_a_fact_written_another_way_is_the_fact_its_passage_states(said, passage):
    # The 1.5B model writes American spellings: "330 meters" was withdrawn against "330 metres".
    found = support(said, passage, "How tall is the Eiffel Tower?")
    assert found.holds(T), found


@pytest.mark.parametrize(
    ("said", "passage"),
    [("The Eiffel Tower is 330 feet tall.", "The Eiffel Tower is 330 metres tall."),
     ("Unemployment fell to 6 percent.", "Unemployment fell to 5% in May."),
     ("They won the UK Open.", "They won the U.S. Open."),
     ("The law took effect on March 7, 2024.", "The law took effect on 2024-03-05."),
     ("The law took effect on 2024-05-03.", "The law took effect on 3 March 2024.")],
)  # fmt: skip
def test_a_fact_written_another_way_still_needs_its_own_number_unit_and_name(said, passage):
    found = support(said, passage, "How tall is the Eiffel Tower?")
    assert not found.holds(T), found


def test_a_word_the_passage_also_states_plainly_is_not_denied_by_a_negation_near_it():
    passage = "Some activists entered a blind plea, pleading guilty without any plea agreement in place."
    question = "What type of plea is sometimes entered by activists?"
    assert support("Some activists entered a blind plea.", passage, question).holds(T)
    # What the negation does deny is still caught.
    assert support("Some activists had a plea agreement in place.", passage, question).contradicts


@pytest.mark.parametrize(
    ("sentence", "problem"),
    [
        ("Ahmad Massoud did not meet Muttaqi in Tehran.", "opposite"),  # a negation added
        ("The meeting reached a substantive outcome.", "opposite"),  # a negation taken away
        ("Ahmad Massoud met Muttaqi in Tehran in 2019.", "2019"),  # a year added
        ("India gave 60,000 tonnes of wheat to Afghanistan.", "say 60,000 tonnes"),  # a number changed
        ("The meeting was mediated by Hamid Karzai.", "hamid"),  # a name not in the article
        ("The phone call took place on March 8.", "march"),  # a month changed
    ],
)
def test_contradictions_are_flagged_with_the_reason(sentence, problem):
    found = support(sentence, ARTICLE)
    assert not found.holds(T)
    assert problem.lower() in (found.problem or "").lower()


def test_two_facts_of_adjacent_sentences_joined_clause_by_clause_are_held_and_nothing_looser():
    passage = (
        "Ahmad Massoud met the acting Foreign Minister Amir Khan Muttaqi in Tehran. The meeting was "
        "mediated by the former governor of Herat province Ismail Khan. India gave 50,000 tonnes of wheat."
    )
    joined = support(
        "Ahmad Massoud met Muttaqi in Tehran, in a meeting mediated by the governor Ismail Khan.", passage
    )
    assert joined.holds(T) and passage[joined.start : joined.end].endswith("Ismail Khan."), joined
    for borrowed in (
        "Ahmad Massoud met Ismail Khan in Tehran.",  # one clause: no name from the next sentence
        "In Herat, Ahmad Massoud met the minister Muttaqi.",  # "In Herat" is no claim of its own
        "Ahmad Massoud met Muttaqi in Tehran, and India gave 50,000 tonnes of wheat to Ismail Khan.",
        "Ahmad Massoud met Muttaqi in Tehran, in a meeting mediated by the governor Ismail Khan of Kabul.",
        "Ahmad Massoud met Muttaqi in Tehran, because the meeting was mediated by the governor Ismail Khan.",
        "Ahmad Massoud met Muttaqi in Tehran, where the former governor Ismail Khan mediated the meeting.",
    ):
        assert not support(borrowed, passage).holds(T), borrowed


@pytest.mark.parametrize(
    ("sentence", "passage", "name"),
    [
        ("Dr. Smith led the study of heart disease.", "Dr. Jones led the study of heart disease in 2019.", "Smith"),
        ("The law was signed by President John F. Kennedy.", "The law was signed by President John F. Johnson.",
         "Kennedy"),
    ],
)  # fmt: skip
def test_a_name_after_a_title_or_an_initial_is_a_name_the_passage_must_hold(sentence, passage, name):
    found = support(sentence, passage)
    assert not found.holds(T) and found.missing == (name,)
    assert support(passage, passage).holds(T)


def test_a_name_written_without_its_accents_is_the_same_name():
    assert support("The bank is based in Zurich.", "The bank is based in Zürich, Switzerland.").holds(T)
    assert support("Müller scored twice.", "Thomas Muller scored twice in the final.").holds(T)
    assert support("The bank is based in Geneva.", "The bank is based in Zürich.").missing == ("Geneva",)


def test_a_decade_is_not_a_year_in_it():
    passage = "The firm was founded in the 1990s in Ohio."
    assert support("The firm was founded in the 1990s.", passage).holds(T)
    assert support("The firm was founded in 1990.", passage).missing == ("1990",)
    assert support("The firm was founded in the 1990s.", "The firm was founded in 1990.").missing == (
        "1990s",
    )


def test_a_sentence_with_no_content_words_is_no_evidence():
    assert support("It was.", ARTICLE).score == 0.0
    assert not support("It was.", ARTICLE).holds(0.0)


def test_words_the_question_gives_need_not_be_in_the_aligned_sentence():
    passage = "The Normans gave their name to Normandy. They came from Denmark, Iceland and Norway."
    question = "Where did the Normans come from?"
    assert support("The Normans came from Denmark, Iceland and Norway.", passage, question).holds(T)
    assert not support("The Normans came from Sweden.", passage, question).holds(T)


def test_best_names_the_passage_that_holds_the_sentence():
    passages = ["Rain fell in Kabul.", "India sent 50,000 tonnes of wheat.", "Talks ended."]
    assert best("India gave 50,000 tonnes of wheat.", passages)[0] == 2


def test_an_answer_about_something_else_does_not_answer_the_question():
    question = "Which Russian author went viral on TikTok?"
    right = "Fyodor Dostoevsky, the Russian author of White Nights, went viral on TikTok this year."
    wrong = "Sally Rooney's novel Normal People sold a million copies after its television adaptation."
    assert relevance(question, right, right).holds(0.5)
    verdict = relevance(question, wrong, wrong)
    assert not verdict.holds(0.5) and "something else" in verdict.problem


def test_a_question_that_asks_for_a_number_needs_one():
    assert kind("How many tonnes of wheat did India give?") == "number"
    assert kind("In what year did the war end?") == "date" and kind("Who mediated?") is None
    question = "How many tonnes of wheat did India give to Afghanistan?"
    context = "India gave 50,000 tonnes of wheat to Afghanistan."
    assert relevance(question, "India gave 50,000 tonnes of wheat. [1]", context).holds(0.5)
    verdict = relevance(question, "India gave wheat to Afghanistan by road.", context + " by road")
    assert not verdict.holds(0.5) and "number" in verdict.problem


@pytest.mark.parametrize(
    "reply, gives",
    [
        ("The night ferry leaves at dusk on Thursdays.", True),
        ("The night ferry leaves on Sunday.", True),
        ("The night ferry leaves at midnight.", True),
        ("The night ferry leaves from the north quay.", False),
    ],
)
def test_a_day_of_the_week_or_a_time_of_day_answers_when(reply, gives):
    question = "When does the night ferry leave?"
    context = "The night ferry leaves from the north quay at dusk on Thursdays, Sundays and at midnight."
    assert kind(question) == "time"
    assert relevance(question, reply, context).kind_found == gives


def test_repeating_the_question_is_not_an_answer():
    question = "Who mediated the meeting between Massoud and Muttaqi?"
    verdict = relevance(question, "The meeting between Massoud and Muttaqi was mediated.", ARTICLE)
    assert not verdict.new and "repeats" in verdict.problem


@pytest.mark.parametrize(
    "question, text, kept",
    [
        # The passage says it in other words: the terms alone would refuse an answer that is there.
        ("Who translated the anthem into sign language at the final?",
         "Before kickoff, the actress Marlee Matlin performed the national song for deaf viewers in ASL.", True),
        ("Who designed the bridge across the harbour?",
         "The engineer John Bradfield drew up the plans for the crossing that links the two shores of Sydney's port.",
         True),
        # The passage shares some of the question's words and is about something else.
        ("Which actress signed the anthem for the game?",
         "The game was delayed for an hour by snow, and the teams played on a frozen field.", False),
        ("Who led the orchestra at the opening concert?",
         "The opening of the new motorway was delayed by a strike of the road workers who led the protest.", False),
    ],
)  # fmt: skip
def test_the_passage_texts_closeness_in_meaning_counts_beside_the_terms_it_holds(seed_index, minilm, question,
                                                                               text, kept):  # fmt: skip
    """With the real embedder at the weight and threshold `make eval`'s answer-check stage chose
    (4.0, 1.59), where the question's terms alone decide the other way (cases written for this
    test, apart from the evaluation's)."""
    config = Config(index_dir=seed_index, min_grounding=1.59, grounding_similarity=4.0)
    assistant = Assistant(Index.open(seed_index, minilm), FakeGenerator(), config)
    checks = Checks(config.support_threshold, config.min_grounding, config.grounding_similarity)
    given = [Passage("a.txt", "", 0, len(text), text, 0.5, {})]
    answer = interpret(question, f"{text} [1]", given, "m", checks, assistant.similarity)
    assert answer.abstained != kept, answer.reason
    if not kept:
        assert "about something else" in answer.reason and "closeness in meaning" in answer.reason
    alone = relevance(question, text, text)
    assert alone.holds(0.19) != kept, "the terms alone, at their calibrated threshold, decide the other way"


def test_a_question_term_is_held_by_a_word_of_the_same_meaning_by_the_real_embedder(seed_index, minilm):
    """ "Egyptian" is not "Egypt" to the stemmer; the index's embedder finds them close (0.85 by
    MiniLM), and a word about something else is not."""
    assistant = Assistant(Index.open(seed_index, minilm), FakeGenerator(), Config(index_dir=seed_index))
    question = "Which Egyptian city hosted the summit?"
    context = "The leaders met in Cairo, the capital of Egypt, for the summit."
    exact = relevance(question, "They met in Cairo.", context)
    close = relevance(question, "They met in Cairo.", context, alike=assistant.alike, near=0.8)
    assert close.held > exact.held, "egyptian held by Egypt"
    elsewhere = "The snow delayed the game, and the teams played on a frozen field."
    assert relevance(question, "It snowed.", elsewhere, alike=assistant.alike, near=0.8).held == 0.0
    with pytest.raises(ValueError, match="alike"):
        relevance(question, "They met in Cairo.", context, near=0.8)


def test_the_rest_of_a_joined_reply_is_read_from_a_sentence_that_holds_two_of_its_words_or_more():
    text = (
        "The talks between the two leaders opened in Geneva on Monday. Reporters filled the hall. "
        "The weather stayed cold all week. In the end the talks produced no agreement on trade. "
        "The match ended in a draw."
    )
    reply = "The talks between the two leaders opened in Geneva and produced no agreement, like the match."
    question = "What came of the talks?"
    window = text[: text.index("The weather")]
    joined = rest(reply, [text], window, question)
    assert joined is not None and text[joined[1] : joined[2]].startswith("In the end the talks produced")
    alone = "The talks between the two leaders opened in Geneva, like the match."
    assert rest(alone, [text], window, question) is None, "one word in common is no sign of a joined claim"


def test_the_rest_of_a_joined_reply_may_hold_a_word_of_the_question_beside_one_of_its_own():
    text = (
        "Massoud met the minister Muttaqi in Tehran. The talks were mediated by Ismail Khan. "
        "Several issues were raised, but the meeting remained futile and reached no substantive outcome."
    )
    question = "What was the outcome of the meeting?"
    window = text[: text.index("The talks")]
    reply = "The meeting between Massoud and Muttaqi in Tehran resulted in no substantive outcome."
    joined = rest(reply, [text], window, question)
    assert joined is not None and text[joined[1] : joined[2]].startswith("Several issues")
    echo = "The meeting between Massoud and Muttaqi in Tehran had an outcome."
    assert rest(echo, [text], window, question) is None, "the question's words alone are no sign"


BRIDGE = (
    "The new bridge is 20km long and cost $1.5bn. The war before it lasted 20 years. "
    "Its tower is 40 metres (131 feet) high and the second span cost £4m."
)


@pytest.mark.parametrize(
    ("sentence", "missing"),
    [
        ("The bridge is 30km long.", ("30 km",)),  # a number written onto its unit
        ("The bridge cost $2.5bn.", ("2.5 billion",)),  # an amount with its scale is one number
        ("The bridge cost $1.5m.", ("1.5 million",)),  # the scale, not the amount, changed
        ("The war lasted 20 months.", ("20 months",)),  # the unit changed
        ("The tower is 40 feet high.", ("40 feet",)),  # a unit the passage gives another amount
        ("The second span cost £4bn.", ("4 billion pounds",)),
    ],
)
def test_an_amount_with_its_unit_is_a_key_word(sentence, missing):
    found = support(sentence, BRIDGE)
    assert not found.holds(T) and found.missing == missing


@pytest.mark.parametrize(
    "sentence",
    [
        "The bridge is 20 km long.",
        "The bridge is 20 kilometres long.",
        "The bridge cost 1.5 billion dollars.",
        "The war lasted 20 yrs.",
        "The war lasted twenty years.",
        "The tower is 131 feet high.",
        "The second span cost £4 million.",
    ],
)
def test_an_amount_written_another_way_is_the_same_amount(sentence):
    assert support(sentence, BRIDGE).holds(T), support(sentence, BRIDGE)


def test_a_reason_names_the_words_as_the_sentence_writes_them():
    found = support("The law was signed by John F. Kennedy's aide.", "The law was signed by John F. Johnson.")
    assert found.missing == ("Kennedy",)
    assert found.problem == "the passage does not say Kennedy"


def test_a_company_form_or_a_month_in_the_passage_does_not_part_a_fact_from_its_subject():
    passage = "Shares of Apple Inc. rose 5% on Jan. 5 after record profits. Acme Corp. paid $20 million."
    assert support("Shares of Apple rose 5 percent.", passage).holds(T)
    assert support("Apple's shares rose on Jan. 5.", passage).holds(T)
    assert support("Acme paid $20 million.", passage).holds(T)


def test_a_negative_question_excuses_only_the_negation_it_asks_about():
    passage = "Ahmad Massoud met Muttaqi in Tehran. Spain refused to join the treaty."
    # What the question itself denies may be denied in the answer ...
    assert support("Spain did not join the treaty.", passage, "Which country did not join the treaty?").holds(
        T
    )
    # ... but another negation still contradicts the passage.
    found = support("Ahmad Massoud did not meet Muttaqi.", passage, "Why did the talks not succeed?")
    assert found.contradicts and not found.holds(T)


@pytest.mark.parametrize(
    ("sentence", "passage", "problem"),
    [
        ("The US imposed tariffs on steel in 2018.", "China imposed tariffs on steel in 2018.", "does not say USA"),
        ("The WHO declared a pandemic in March 2020.", "The CDC declared a pandemic in March 2020.", "say WHO"),
        ("The record fell by 30 seconds in 2012.", "The record fell by 30 minutes in 2012.", "say 30 seconds"),
        ("She finished third in the race.", "She finished second in the race.", "does not say third"),
        ("The treaty was signed on 12 January 2020.",
         "The treaty was signed on 5 January 2020, and took effect on 12 March.", "does not say 12 January"),
        ("The treaty was signed after the war.", "The treaty was signed before the war.", "says the opposite"),
        ("Sales decreased by 12 percent in 2020.", "Sales increased by 12 percent in 2020.", "says the opposite"),
        ("Prices fell sharply in 2020.", "Prices rose sharply in 2020.", "says the opposite"),
        ("The Chinese government approved the plan.", "The Japanese government approved the plan.", "say Chinese"),
        ("The stadium cost $5 million.", "The stadium cost €5 million to build.", "does not say dollars"),
        ("The stadium cost 5 million euros.", "The stadium cost US$5m to build.", "does not say euros"),
        ("The stadium cost C$5 million.", "The stadium cost $5 million to build.", "does not say Canadian"),
        ("The stadium cost 5 million dollars.", "The stadium cost R$5 million to build.", "does not say dollars"),
        ("Faulty wiring caused the fire.", "The fire may have been caused by faulty wiring.", "only that it may be"),
        ("He fled to Spain in 2019.", "He reportedly fled to Spain in 2019.", "only that it may be"),
        ("The store is open on Sundays.", "The store is closed on Sundays.", "says the opposite"),
        ("The firm made a profit in 2020.", "The firm made a loss in 2020.", "says the opposite"),
        ("The launch was successful.", "The launch failed.", "says the opposite"),
        ("Smith denied taking the money.", "Smith admitted taking the money in court.", "says the opposite"),
        ("The board approved the merger.", "The board did not, however, approve the merger.", "says the opposite"),
        ("Exports rose 5 percent in 2022.", "Exports fell 5 percent in 2022, although imports did not change.",
         "says the opposite"),
        ("Faulty wiring caused the fire.", "The fire is believed to have been caused by faulty wiring.",
         "only that it may be"),
        ("The temperature reached 42.6 degrees Fahrenheit.", "The temperature reached 42.6°C.", "Fahrenheit"),
        ("London lies at 51°45′N.", "London lies at 51°30′N.", "45"),
        ("Faulty wiring caused the fire.", "The fire may, investigators said, have been caused by faulty wiring.",
         "only that it may be"),
        ("The council can sell the park land.", "The council cannot, under the 1952 covenant, sell the park land.",
         "says the opposite"),
        ("The tower is 330 feet tall.", "The tower is 330 m tall.", "330 feet"),
        ("The meeting starts at 2:00 a.m.", "The meeting starts at 2 p.m. on Thursday.", "a.m"),
    ],
)  # fmt: skip
def test_an_acronym_an_ordinal_a_unit_a_day_a_currency_an_opposite_or_a_hedge_that_differs_is_flagged(
    sentence, passage, problem
):
    check = support(sentence, passage)
    assert not check.holds(T) and problem in (check.problem or ""), check


@pytest.mark.parametrize(
    ("question", "passage", "wrong", "right"),
    [
        ("Where was Marie Curie born?",
         "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891 to study physics.",
         "Marie Curie was born in Paris.", "Marie Curie was born in Warsaw."),
        ("Where was Marie Curie born?",
         "Marie Curie grew up in Poland. She was born in Warsaw in 1867. In 1891 Marie Curie moved to Paris.",
         "Marie Curie was born in Paris.", "Marie Curie was born in Warsaw."),
        ("Who designed the steel arch?",
         "The city hired the engineer John Bradfield in 1912. The steel arch was designed by Ralph Freeman.",
         "The steel arch was designed by John Bradfield.", "The steel arch was designed by Ralph Freeman."),
    ],
)  # fmt: skip
def test_what_the_question_asks_said_of_another_in_the_passage_does_not_hold_the_answer(
    question, passage, wrong, right
):
    assert not support(wrong, passage, question).holds(T), support(wrong, passage, question)
    assert support(right, passage, question).holds(T)


@pytest.mark.parametrize(
    "passage",
    ["Ralph Freeman was a British engineer. He designed the steel arch of the bridge.",
     "Ralph Freeman was a British engineer. In 1924 he designed the steel arch for Dorman Long."],
)  # fmt: skip
def test_what_the_question_asks_said_of_the_one_the_sentence_before_names_holds(passage):
    """... and the question's word said of another in other words ("found dead", then "His father
    died") holds too."""
    turing = "Alan Turing was found dead at his home in Wilmslow. His father had died in Guildford in 1947."
    assert support("Alan Turing died in Wilmslow.", turing, "Where did Alan Turing die?").holds(T)
    curie = "Marie Curie was a native of Warsaw. Her daughter was born in Paris in 1897, where they lived."
    assert support("Marie Curie was born in Warsaw.", curie, "Where was Marie Curie born?").holds(T)
    said = "Ralph Freeman designed the steel arch."
    assert support(said, passage, "Who designed the steel arch?").holds(T)


@pytest.mark.parametrize(
    ("sentence", "passage"),
    [
        ("The U.S. imposed tariffs on steel.", "The United States imposed tariffs on steel."),
        ("The United States imposed tariffs on steel.", "The US imposed tariffs on steel."),
        ("The Chinese government approved the plan in 2019.", "The government of China approved the plan in 2019."),
        ("The Dutch government approved the plan.", "The government of the Netherlands approved the plan."),
        ("The treaty was signed on January 5, 2020.", "The treaty was signed on 5 January 2020."),
        ("The treaty was signed on 5 January 2020.", "The treaty was signed on Jan. 5, 2020."),
        ("25 people died in the fire.", "Twenty-five people died in the fire."),
        ("It happened in the 19th century.", "It happened in the nineteenth century."),
        ("Lech Walesa led the strike.", "Lech Wałęsa led the strike."),
        ("The minister sent a deputy to Brussels.", "The minister did not attend and instead sent a deputy to Brussels."),
        ("Prices rose in 2020.", "Prices rose in 2020 after they fell in 2019."),
        ("The stadium cost 5 million dollars.", "The stadium cost $5m to build."),
        ("The stadium cost €5 million.", "The stadium cost EUR 5 million to build."),
        ("He paid 50 pounds for it.", "He paid £50 for it."),
        ("China spent 100 billion yuan on the dam.", "China spent ¥100 billion on the dam."),
        ("The stadium cost 5 million Canadian dollars.", "The stadium cost C$5m to build."),
        ("The fire may have been caused by faulty wiring.", "The fire may have been caused by faulty wiring."),
        ("Faulty wiring probably caused the fire.", "The fire may have been caused by faulty wiring."),
        ("The law passed in 2020.", "The law passed in May 2020."),
        ("He fled to Spain in 2019.", "He fled to Spain in 2019, and may return next year."),
        ("The treaty was signed on March 5, 2001.", "The treaty was signed on March 05, 2001."),
        ("The office opens at 8:00.", "The office opens at 08:00."),
        ("The dose is 0.5 mg.", "The dose is .5 mg a day."),
        ("The law took effect on March 5, 2024.", "The law took effect on 2024-03-05 in all provinces."),
        ("The law took effect on 2024-03-05.", "The law took effect on 5 March 2024 in all provinces."),
        ("The polls closed on 1 May 2024.", "Polls closed 2024-05-01T18:00 local time."),
        ("No one was hurt in the fire.", "Nobody was hurt in the fire."),
        ("The 1998 launch was not successful.", "The 1998 launch failed."),
        ("The players blamed one another.", "The players blamed each other."),
        ("The song peaked at No. 5 on the chart.", "It charted in May. The song peaked at No. 5 on the chart."),
        ("Sales rose approx. 5% in 2020.", "In 2020 sales rose by approx. 5% over the year before."),
        ("The minister refused to comment on the deal.", "The minister declined to comment on the deal."),
        ("Acme failed to meet its 2023 profit target.", "Acme missed its 2023 profit target."),
        ("The court refused the appeal.", "The court turned down the appeal."),
        ("Staff must arrive by 9 a.m.", "All staff are expected to arrive by 9 a.m."),
        ("The ferry leaves Dover at 10:15.", "The ferry is scheduled to leave Dover at 10:15."),
        ("No, the bridge opened in 1932, two years late.", "The bridge opened in 1932, two years late."),
        ("London lies at 51° 30′ N.", "London lies at 51°30′N."),
        ("Temperatures ranged from 30 to 35 degrees Celsius in July.", "Temperatures in July ranged 30°C-35°C."),
        ("The rocket reached orbit in 2018.", "The 2017 launch failed, the agency said, and the rocket reached orbit in 2018."),
        ("Smith denied taking the money.", "Smith has always denied taking the money."),
        ("The board did not approve the merger.", "The board did not, in the end, approve the merger."),
        ("He did not leave before the war.", "He did not leave before the war ended."),
        ("The Eiffel Tower is 330 metres tall.", "The Eiffel Tower is 330 m tall."),
        ("The temperature reached 42.6 degrees Celsius.", "The temperature reached 42.6°C."),
        ("The temperature reached 42.6°C.", "The temperature reached 42.6 degrees Celsius."),
        ("The speed limit is 40 miles per hour.", "The speed limit is 40 mph."),
        ("The meeting starts at 2:00 p.m.", "The meeting starts at 2 p.m. on Thursday."),
        ("The festival drew 100,000 visitors.", "The festival drew one hundred thousand visitors."),
    ],
)  # fmt: skip
def test_a_fact_written_with_the_other_form_of_a_name_number_or_date_is_held(sentence, passage):
    assert support(sentence, passage).holds(T), support(sentence, passage)


@pytest.mark.parametrize(
    ("sentence", "passage"),
    [
        ("Der Minister hat den Vertrag unterzeichnet.", "Der Minister hat den Vertrag nicht unterzeichnet."),
        ("Le ministre a signé le traité.", "Le ministre n'a pas signé le traité."),
        ("El ministro firmó el tratado.", "El ministro nunca firmó el tratado."),
        ("O ministro assinou o tratado.", "O ministro não assinou o tratado."),
        ("De minister heeft het verdrag getekend.", "De minister heeft het verdrag niet getekend."),
    ],
)
def test_a_negation_in_another_language_is_read_as_one(sentence, passage):
    assert support(sentence, passage).contradicts and not support(sentence, sentence).contradicts


def test_a_question_that_asks_what_may_be_so_gets_the_passages_possibility_stated():
    passage = "Investigators said the fire may have been caused by faulty wiring."
    assert support("Faulty wiring caused the fire.", passage, "What may have caused the fire?").holds(T)
    assert not support("Faulty wiring caused the fire.", passage, "What caused the fire?").holds(T)


@pytest.mark.parametrize(
    ("sentence", "passage"),
    [
        ("Shares rose 4% on Monday.", "Shares dropped 4% on Monday."),  # a direction reversed
        ("Exports shrank by 4% in 2020.", "Exports grew by 4% in 2020."),
        ("The project cost 15 million euros.", "The project cost 1,5 million euros."),  # a decimal comma
        ("The low was 5 degrees.", "The low was -5 degrees."),  # a minus sign
        ("The low was 5 degrees.", "The low was \u22125 degrees."),
        ("The office opens at 9:30 am.", "The office opens at 9:30 pm."),
        ("The patient received 5 g of the drug.", "The patient received 5 mg of the drug."),
        ("The city had 2.5 million residents.", "The city had 1,500,000 residents."),
        ("2 people attended the rally.", "In 2000, 50 people attended the rally."),  # not "2 thousand"
        ("The fund holds 1.5 thousand dollars.", "The fund holds 1,500,000 dollars."),
        ("The temperature dropped to 5 degrees.", "The temperature dropped to -5 degrees."),  # a level
    ],
)
def test_a_changed_direction_sign_decimal_time_of_day_or_dose_is_flagged(sentence, passage):
    assert not support(sentence, passage).holds(T)
    assert support(passage, passage).holds(T)


@pytest.mark.parametrize(
    ("sentence", "passage"),
    [
        ("The city had 1.5 million residents.", "The city had 1,500,000 residents."),
        ("The grant was $5 million.", "The grant was $5,000,000."),
        ("The grant was 5,000,000 dollars.", "The grant was $5m."),
        ("The law took effect on March 3, 2021.", "The law took effect on the 3rd of March, 2021."),
        ("The law took effect on the 3rd of March, 2021.", "The law took effect on March 3, 2021."),
        ("Shares rose 4% on Monday.", "Shares climbed 4% on Monday."),
        ("Two million people live there.", "2 million people live there."),
        ("About 1.5m people live there.", "About 1.5 million people live there."),
        ("The city had 1,500,000 residents.", "The city had 1.5 million residents."),
        ("Revenue fell 5 percent in 2020.", "Revenue change in 2020: -5%."),  # the sign said in words
        ("Revenue rose from 1.5 to 2 billion dollars.", "Revenue rose from $1.5bn to $2bn."),
        ("The temperature was minus 5 degrees.", "The temperature was -5 degrees."),
        ("The festival is held every fall.", "The festival is held every autumn, and attendance has grown."),
        ("Losses reached -1.5 million dollars.", "Losses reached -1,500,000 dollars."),
        ("The reading is within 5 percent.", "The reading is within plus or minus 5 percent."),
        ("The office opens at 9:30 p.m.", "The office opens at 9:30 pm."),
        ("The team scored 5-10 points.", "The team scored 5-10 points."),
    ],
)
def test_an_amount_date_or_direction_written_another_way_is_held(sentence, passage):
    assert support(sentence, passage).holds(T), support(sentence, passage)


def test_a_change_after_a_word_for_down_and_a_qualifier_is_held_by_its_negative():
    assert support("Revenue fell about 5 percent in 2020.", "Revenue change in 2020: -5%.").missing == ()
    assert support("Revenue fell to 5 percent in 2020.", "Revenue change in 2020: -5%.").missing == ("5",)


def test_a_name_in_the_question_is_held_by_its_peoples_word_without_an_embedder():
    context = "The obstacles for transporting 50,000 tonnes of wheat given by the Indian side to Afghanistan."
    held = relevance("What did India give?", "India gave 50,000 tonnes of wheat. [1]", context)
    assert held.grounding == 0.667, (
        "'Indian' holds 'India' (twice the weight of 'give', which it does not hold)"
    )
    for question, context in [
        ("Who is Steve?", "Steven was there."),
        ("What is on the list?", "Listen to it."),
    ]:
        assert relevance(question, "Someone.", context).grounding == 0.0, context


def test_a_claim_one_sentence_holds_whole_is_held_though_another_names_its_subject_too():
    passage = "The meeting in Tehran was mediated by Ismail Khan. Ismail Khan was governor of Herat province."
    said = "The meeting was mediated by Ismail Khan."
    assert support(said, passage, "Who mediated the meeting?").holds(T)
