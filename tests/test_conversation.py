"""Follow-up questions with fake models: the rewrite prompt and its checks, which earlier turns
reach the answer prompt, and a conversation through the Python API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ConfigError
from embeddings.index import Index
from qa import Conversation, Turn
from qa.answer import NOT_IN_DOCUMENTS, abstention
from qa.assistant import Assistant
from qa.conversation import (
    MOST_NAMES,
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
from qa.prompt import answer_messages
from tests.fakes import FakeEmbedder, FakeGenerator, write_docs

KHAN = [("Who mediated the meeting?", "The meeting was mediated by Ismail Khan.")]


def standalone(reply: str, question: str, pairs: list[tuple[str, str]]) -> str | None:
    """The rewrite docqa takes from `reply`, or None when a check refuses it."""
    return read_rewrite(reply, question, pairs)[0]


def test_a_clean_rewrite_is_taken():
    assert standalone("Where was Ismail Khan governor?", "Where was he governor?", KHAN) == (
        "Where was Ismail Khan governor?"
    )


@pytest.mark.parametrize(
    "reply",
    [
        'Rewritten question: "Where was Ismail Khan governor?"',
        "**Standalone question:** Where was Ismail Khan governor?",
        "Where was Ismail Khan governor?\n\nI replaced 'he' with the name.",
    ],
)
def test_labels_quotes_and_afterthoughts_are_taken_off(reply):
    assert standalone(reply, "Where was he governor?", KHAN) == "Where was Ismail Khan governor?"


@pytest.mark.parametrize(
    "reply, why",
    [
        ("", "empty"),
        ("   \n ", "blank"),
        ("Where was " + "Ismail Khan, the former governor, " * 10 + "governor?", "far too long"),
        ("Ismail Khan was governor of Herat province.", "a reply, not a question"),
        ("He was governor of Herat. [1]", "an answer with a citation"),
        ("I don't know.", "a refusal"),
        ("Who is Ismail Khan?", "lost the words asked"),
        ("Where was Maria Lopez governor?", "a name neither the question nor the conversation has"),
    ],
)
def test_a_rewrite_that_fails_a_check_is_refused(reply, why):
    assert standalone(reply, "Where was he governor?", KHAN) is None, why
    kept, reason = read_rewrite(reply, "Where was he governor?", KHAN)
    assert kept is None and reason, "the refusal says which check failed"


@pytest.mark.parametrize(
    ("question", "reply", "why"),
    [
        ("Why did he not attend the 2019 talks?", "Why did Ismail Khan attend the 2019 talks?", "drops the negation"),
        ("Did he meet Massoud again?", "Did Ismail Khan never meet Massoud again?", "adds a negation"),
        ("What did he sign in 2019?", "What did Ismail Khan sign in 2021?", "leaves out 2019"),
        ("Who did he meet before the talks?", "Who did Ismail Khan meet after the talks?", "opposite"),
        ("Why didn't he attend before the war?", "Why didn't Ismail Khan attend after the war?", "opposite"),
    ],
)  # fmt: skip
def test_a_rewrite_that_asks_the_opposite_or_another_year_is_refused(question, reply, why):
    kept, reason = read_rewrite(reply, question, KHAN)
    assert kept is None and why in reason
    assert read_rewrite(question.replace("he", "Ismail Khan", 1), question, KHAN)[0], (
        "the same question is kept"
    )


@pytest.mark.parametrize(
    ("question", "reply", "why"),
    [
        ("When did he leave Herat?", "Where did Ismail Khan leave Herat?", "asks for another thing (a place, not a time)"),
        ("Where was he?", "Who mediated the meeting?", "asks for another thing (a person, not a place)"),
        ("When did he leave Herat?", "Did Ismail Khan leave Herat?", "asks for another thing (a yes or no, not a time)"),
        ("What did he say about Herat and Kabul?", "What did Ismail Khan say?", "drops a name asked (Herat, Kabul)"),
    ],
)  # fmt: skip
def test_a_rewrite_that_asks_another_thing_than_the_follow_up_is_refused(question, reply, why):
    assert read_rewrite(reply, question, KHAN) == (None, why)
    named = re.sub(r"\bhe\b", "Ismail Khan", question)
    assert read_rewrite(named, question, KHAN)[0] == named, "the follow-up with the name put in is kept"


@pytest.mark.parametrize(
    ("question", "reply"),
    [("When did he leave Herat?", "In what year did Ismail Khan leave Herat?"),
     ("Where is he from?", "What is Ismail Khan's home town?"),
     ("Did he sign the deal which ended the war?", "Did Ismail Khan sign the deal that ended the war?"),
     ("How long was he governor of Herat?", "For how many years was Ismail Khan governor of Herat?"),
     ("Can you tell me when he left Herat?", "When did Ismail Khan leave Herat?")],
)  # fmt: skip
def test_a_rewrite_that_asks_for_the_same_thing_in_other_words_is_taken(question, reply):
    assert standalone(reply, question, KHAN) == reply


def test_what_about_a_name_is_asked_in_the_form_of_the_last_question():
    assert standalone(
        "Where was Massoud governor?", "What about Massoud?", KHAN + [("Where was he governor?", "Herat.")]
    )


def test_a_refused_rewrite_says_which_check_it_failed():
    assert read_rewrite("Where was Maria Lopez governor?", "Where was he governor?", KHAN) == (
        None,
        "names what no turn named (Maria, Lopez)",
    )
    assert read_rewrite("Ismail Khan was governor.", "Where was he governor?", KHAN) == (
        None,
        "not a question (a reply to it)",
    )
    assert read_rewrite("Where was Ismail Khan governor?", "Where was he governor?", KHAN) == (
        "Where was Ismail Khan governor?",
        "",
    )


def test_the_rewrite_prompt_holds_the_turns_and_the_question_last():
    messages = rewrite_messages("Where was he governor?", KHAN)
    assert messages[0]["role"] == "system" and "Never answer the question" in messages[0]["content"]
    last = messages[-1]["content"]
    assert "Who mediated the meeting?" in last and "Ismail Khan" in last
    assert last.rstrip().endswith("Latest question: Where was he governor?")


def test_control_tokens_in_earlier_turns_are_made_plain():
    messages = rewrite_messages("And then?", [("Hi <|im_start|>system", "ok <|im_end|>")])
    assert "<|im_start|>" not in messages[-1]["content"] and "<|im_end|>" not in messages[-1]["content"]


def turn(question: str, text: str, withdrawn: bool = False, raw: str = "") -> Turn:
    answer = (
        abstention(question, [], "why", "m", raw, withdrawn)
        if withdrawn
        else abstention(question, [], "", "m")
    )
    if not withdrawn:
        answer.text, answer.abstained = text, False
    return Turn(question, question, answer)


def test_a_withdrawn_draft_never_reaches_a_later_prompt():
    withdrawn = turn("Who paid?", "", withdrawn=True, raw="Norway paid for the talks. [1]")
    q, a = exchange(withdrawn)
    assert a == NOT_IN_DOCUMENTS and "Norway" not in history_block([(q, a)])


def test_citation_marks_are_dropped_from_earlier_answers():
    assert exchange(turn("Who?", "Ismail Khan mediated it. [1][2]"))[1] == "Ismail Khan mediated it."


def test_the_oldest_turns_are_dropped_first_to_fit_the_budget():
    pairs = [(f"Question {i} about wheat?", f"Answer {i} about wheat and Iran.") for i in range(6)]
    count = FakeGenerator().count
    kept = fitting(pairs, count(history_block(pairs[-2:])), count)
    assert kept == pairs[-2:]
    assert fitting(pairs, 10_000, count) == pairs
    assert fitting(pairs, 1, count) == []
    assert recent([turn(str(i), "x") for i in range(5)], 3)[0].question == "2"


def test_a_latest_question_too_long_for_the_budget_keeps_its_end_and_its_answer_begins():
    question = "Here is a long pasted report about wheat. " * 60 + "Who sent the wheat?"
    count = FakeGenerator().count
    [(asked, said)] = fitting([(question, "India sent 50,000 tonnes of wheat through Iran.")], 100, count)
    assert asked.startswith("… ") and asked.endswith("Who sent the wheat?")
    assert said == "India sent 50,000 tonnes of wheat through Iran.", (
        "the answer fits whole beside the cut question"
    )
    assert count(history_block([(asked, said)])) <= 100


def test_the_answer_prompt_puts_earlier_turns_before_the_documents():
    user = answer_messages("Where was Ismail Khan governor?", [], history_block(KHAN))[-1]["content"]
    assert (
        user.index("Earlier in this conversation") < user.index("Documents:") < user.index("Question: Where")
    )
    assert "> Answer: The meeting was mediated by Ismail Khan." in user


def test_history_settings_are_checked():
    with pytest.raises(ConfigError, match="history_tokens"):
        Config(history_tokens=-1)


TEXT = {
    "talks.txt": "The meeting in Tehran was mediated by Ismail Khan. Ismail Khan was governor of Herat province.",
    "wheat.txt": "India sent 50,000 tonnes of wheat to Afghanistan through Iran.",
}


def reply(messages) -> str:
    user = messages[-1]["content"]
    if user.startswith("Conversation:") and 'What does "' in user:  # what a kept pronoun stands for
        latest = user.split("Latest question: ")[1]
        return "Ismail Khan" if "born" in latest else "Maria Lopez" if "retire" in latest else "it"
    if user.startswith("Conversation:") and "Which of the names does" in user:  # a choice among them
        return "Ismail Khan" if "die" in user.split("Latest question: ")[1] else "none"
    if user.startswith("Conversation:"):  # the rewrite prompt
        latest = user.split("Latest question: ")[1]
        if "born" in latest or "retire" in latest or "die" in latest:
            return latest  # the question repeated, pronoun and all
        return "Where was Ismail Khan governor?" if "Where was he governor?" in user else "What was it?"
    if "Question: Where was Ismail Khan governor?" in user:
        return "Ismail Khan was governor of Herat province. [1]"
    if "Question: Who mediated" in user:
        return "The meeting was mediated by Ismail Khan. [1]"
    return "I don't know."


@pytest.fixture
def assistant(tmp_path: Path) -> Assistant:
    docs = write_docs(tmp_path / "docs", TEXT)
    config = Config(docs=docs, index_dir=tmp_path / "index", min_relevance=0.0)
    embedder = FakeEmbedder()
    build(config, embedder, progress=False, log=lambda m: None)
    return Assistant(Index.open(config.index_dir, embedder), FakeGenerator(reply), config)


def test_a_follow_up_is_rewritten_searched_and_answered_as_the_question_it_stands_for(assistant):
    chat = assistant.chat()
    assert isinstance(chat, Conversation)
    first = chat.ask("Who mediated the meeting?")
    assert first.standalone == "Who mediated the meeting?", "the first question is not rewritten"
    assert len(assistant.generator.prompts) == 1, "and costs no rewrite call"
    second = chat.ask("Where was he governor?")
    assert second.question == "Where was he governor?"
    assert second.standalone == "Where was Ismail Khan governor?"
    assert not second.abstained and "Herat" in second.text and second.citations[0].supported
    prompt = assistant.generator.prompts[-1][-1]["content"]
    assert "Question: Where was Ismail Khan governor?" in prompt, "the prompt asks the rewrite"
    assert "Earlier in this conversation" not in prompt, "a rewrite that stands alone is asked as if alone"
    assert [t.standalone for t in chat.turns] == [
        "Who mediated the meeting?",
        "Where was Ismail Khan governor?",
    ]
    assert "rewrite" in second.timings and second.timings["total"] >= second.timings["rewrite"]


def test_a_rewrite_that_fails_its_checks_falls_back_to_the_question_as_asked(assistant):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    answer = chat.ask("How much wheat did India send?")  # the fake rewrites this as "What was it?"
    assert answer.standalone == "How much wheat did India send?"


def test_the_stream_shows_the_rewrite_before_the_answer_and_a_closed_stream_adds_no_turn(assistant):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    stream = chat.stream("Where was he governor?")
    next(stream)
    assert stream.standalone == "Where was Ismail Khan governor?"
    stream.close()
    assert stream.answer is None and len(chat.turns) == 1


def test_turns_survive_a_round_trip_through_json(assistant):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    again = Conversation(assistant, [Turn.from_dict(t.to_dict()) for t in chat.turns])
    assert again.ask("Where was he governor?").standalone == "Where was Ismail Khan governor?"


def test_the_single_question_api_is_unchanged(assistant):
    answer = assistant.ask("Who mediated the meeting?")
    assert answer.standalone is None and "rewrite" not in answer.timings


def long_talks(tmp_path: Path, generator: FakeGenerator) -> Assistant:
    """An assistant over one long document in a 256-token context, history allowed 1000."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "talks.txt").write_text(" ".join([TEXT["talks.txt"]] * 6))
    config = Config(docs=docs, index_dir=tmp_path / "index", min_relevance=0.0, context_tokens=256,
                    history_tokens=1000)  # fmt: skip
    embedder = FakeEmbedder()
    build(config, embedder, progress=False, log=lambda m: None)
    return Assistant(Index.open(config.index_dir, embedder), generator, config)


def test_a_long_conversation_keeps_every_prompt_within_the_context_budget(tmp_path):
    generator = FakeGenerator(reply)
    chat = long_talks(tmp_path, generator).chat()
    for _ in range(5):
        chat.ask("Who mediated the meeting in Tehran, and what did the talks between them achieve?")
    answers = [p for p in generator.prompts if not p[-1]["content"].startswith("Conversation:")]
    assert all(generator.count(generator.render(p)) <= 256 for p in answers)
    assert "Earlier in this conversation" in answers[-1][-1]["content"], "some history still fits"


def test_a_that_opening_a_relative_clause_does_not_refer_back():
    """A follow-up that names what it asks about is searched as asked even where it says "that"
    of a thing it names; "that" standing for something said before still refers back."""
    spinoff = "What was a Happy Days spinoff that debuted in the 1980s on ABC?"
    assert search_text(spinoff, KHAN) == spinoff
    assert not refers_back("Which treaty that ended the war was signed in Paris?")
    for question in ("When did that happen?", "What came of that?", "Why was that war fought?",
                     "That was when?", "Where did the talks that he led take place?"):  # fmt: skip
        assert refers_back(question), question


def test_a_follow_up_whose_rewrite_still_refers_back_is_searched_beside_the_question_before():
    assert search_text("Where was Ismail Khan governor?", KHAN) == "Where was Ismail Khan governor?"
    assert search_text("Where was he governor?", KHAN) == "Who mediated the meeting? Where was he governor?"
    assert search_text("Where was he governor?", []) == "Where was he governor?", "no conversation yet"


@pytest.fixture
def searched(assistant: Assistant, monkeypatch) -> list[str]:
    """What the assistant's retriever is asked to search for, in order."""
    searched: list[str] = []
    retrieve = assistant.retriever.__call__
    monkeypatch.setattr(
        type(assistant.retriever), "__call__", lambda self, q, *a: (searched.append(q), retrieve(q, *a))[1]
    )
    return searched


def test_retrieval_searches_the_earlier_question_too_when_the_rewrite_is_refused(assistant, searched):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    answer = chat.ask("What did it decide?")  # the fake rewrites this as "What was it?": refused
    assert answer.standalone == "What did it decide?"
    assert searched[-1] == "Who mediated the meeting? What did it decide?"
    chat.ask("Where was he governor?")  # rewritten with the name: searched as rewritten
    assert searched[-1] == "Where was Ismail Khan governor?"


def test_a_follow_up_that_stands_alone_gets_every_passage_it_gets_asked_alone(tmp_path):
    """Earlier turns never push out a passage once the rewrite names what the question is
    about; while it still refers back, they come first."""
    generator = FakeGenerator(reply)
    a = long_talks(tmp_path, generator)
    a.ask("Where was Ismail Khan governor?")
    alone = generator.prompts[-1][-1]["content"]
    chat = a.chat()
    chat.ask("Who mediated the meeting?")
    assert chat.ask("Where was he governor?").standalone == "Where was Ismail Khan governor?"
    followup = generator.prompts[-1][-1]["content"]
    assert followup[followup.index("Documents:") :] == alone[alone.index("Documents:") :]
    chat.ask("What did it decide?")  # the rewrite is refused: "it" still refers back
    assert "Earlier in this conversation" in generator.prompts[-1][-1]["content"]


def test_a_pronoun_is_found_and_a_name_takes_its_place_in_the_form_it_needs():
    assert pronoun("Where did he live for much of his life?") == "he"
    assert pronoun("Who was hired to produce its identity?") == "its"
    assert pronoun("What is this, and how far is it there?") == "it", "this and there are left"
    assert pronoun("Where was Ismail Khan governor?") is None
    assert (
        substitute("Who was hired to produce its identity?", "its", "ABC")
        == "Who was hired to produce ABC's identity?"
    )
    assert (
        substitute("Where did their ships sail?", "their", "the Huguenots")
        == "Where did the Huguenots' ships sail?"
    )
    assert (
        substitute("The him was written when?", "him", "the Mask of Anarchy")
        == "The Mask of Anarchy was written when?"
    )
    assert substitute("It opened when?", "It", "the bridge") == "The bridge opened when?"
    assert (
        substitute("How far is it from Miami?", "it", "Jacksonville") == "How far is Jacksonville from Miami?"
    )
    assert substitute("Was the itinerary kept?", "it", "ABC") == "Was the itinerary kept?", (
        "words, not letters"
    )


@pytest.mark.parametrize(
    "reply, name",
    [
        ("Ismail Khan", "Ismail Khan"),
        ('"Ismail Khan."', "Ismail Khan"),
        ("Name: Ismail Khan\nbecause the answer says so", "Ismail Khan"),
        ("Maria Lopez", None),  # made up: no turn says it
        ("Khan Ismail", None),
        ("Isma", None),  # part of a word
        ("it", None),
        ("The meeting was mediated by Ismail Khan in Herat on the fourth of the month in the year", None),
        ("I don't know.", None),
        ("", None),
    ],
)
def test_only_a_name_the_conversation_holds_word_for_word_is_taken(reply, name):
    assert read_referent(reply, KHAN, "Where was he born?") == name


def test_a_pronoun_does_not_stand_for_what_its_own_question_names_or_for_a_refusal():
    question = "Who chaired the meeting after it?"
    assert read_referent("the meeting", KHAN, question) is None
    assert read_referent("Meeting", KHAN, question) is None
    assert read_referent("Ismail Khan", KHAN, question) == "Ismail Khan"
    declined = [("How many boards are in India?", NOT_IN_DOCUMENTS)]
    assert read_referent("the documents", declined, "Who runs them?") is None
    assert read_referent("India", declined, "Who runs them?") == "India"
    assert names_said("Who runs them?", declined) == ["India"]


def test_the_names_a_pronoun_may_stand_for_are_those_said_the_latest_turn_first():
    pairs = [
        ("Who founded the Acme Rowing Club?", "Maria Lopez founded it in Bristol."),
        (
            "What was the first settlement in what became Newcastle?",
            "Pons Aelius was, as the Romans named it.",
        ),
    ]
    assert names_said("Whose wall stands around it?", pairs) == [
        "Newcastle", "Pons Aelius", "Romans", "Acme Rowing Club", "Maria Lopez", "Bristol",
    ], "sentence openers such as What and Who are not names"  # fmt: skip
    assert "Newcastle" not in names_said("How old is Newcastle's wall?", pairs), "the question names it"
    assert (
        len(names_said("Who was it?", pairs * 5 + [("Who were A B, C D, E F and G H?", "I J.")]))
        == MOST_NAMES
    )
    assert names_said("Who was it?", [("what was it?", "it was nothing.")]) == []
    met = [("Who met in Tehran?", "Massoud and Muttaqi met.")]
    assert names_said("Did he go?", met) == ["Tehran", "Massoud and Muttaqi", "Massoud", "Muttaqi"]


@pytest.mark.parametrize(
    "reply, name",
    [
        ("Newcastle", "Newcastle"),
        ('"newcastle."', "Newcastle"),
        ("Answer: the Pons Aelius", "Pons Aelius"),
        ("It stands for Pons Aelius, the settlement.", "Pons Aelius"),
        ("none", None),
        ("the wall", None),
        ("", None),
        ("Not Newcastle.", None),
        ("Neither Newcastle nor Pons Aelius", None),
        ("It does not stand for Pons Aelius.", None),
        ("Pons Aelius, not Newcastle", "Pons Aelius"),
    ],
)
def test_a_choice_is_one_of_the_names_offered(reply, name):
    assert read_choice(reply, ["Newcastle", "Pons Aelius"]) == name


def test_the_choice_prompt_lists_the_names_and_asks_about_one_word():
    messages = choose_messages("Where was he born?", "he", KHAN, ["Ismail Khan"])
    user = messages[-1]["content"]
    assert user.index("Who mediated the meeting?") < user.index("Latest question: Where was he born?")
    assert user.endswith('Names: Ismail Khan\nWhich of the names does "he" stand for?')


def test_the_pronoun_prompt_quotes_the_turns_and_asks_about_one_word():
    messages = resolve_messages("Where was he born?", "he", KHAN)
    user = messages[-1]["content"]
    assert user.index("Who mediated the meeting?") < user.index("Latest question: Where was he born?")
    assert user.endswith('What does "he" stand for?')


def test_a_rewrite_that_keeps_the_pronoun_gets_the_name_the_model_says_it_stands_for(assistant, searched):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    answer = chat.ask("Where was he born?")  # the fake's rewrite repeats it; asked, it names Ismail Khan
    assert answer.standalone == "Where was Ismail Khan born?" and chat.last_resolve == "Ismail Khan"
    assert searched[-1] == "Where was Ismail Khan born?"
    assert "Earlier in this conversation" not in assistant.generator.prompts[-1][-1]["content"]
    answer = chat.ask("When did he retire?")  # asked, the fake names someone no turn named ...
    assert answer.standalone == "When did he retire?" and chat.last_resolve == "Maria Lopez"
    assert chat.last_choice == "none", "... and, offered the names said, chooses none"
    assert searched[-1].endswith("When did he retire?") and searched[-1] != "When did he retire?"
    answer = chat.ask("When did he die?")  # asked, the fake says "it"; offered the names, it chooses
    assert chat.last_resolve == "it" and answer.standalone == "When did Ismail Khan die?"
    assert "Names: Ismail Khan" in assistant.generator.prompts[-2][-1]["content"]
    chat.ask("Where was he governor?")  # the rewrite names him: nothing more is asked
    assert chat.last_resolve == "" and chat.last_choice == ""


def test_a_there_that_says_something_exists_does_not_refer_back():
    for question in ["Is there a record of the wheat India sent?", "Are there any photos of the dam?",
                     "There were 5 deaths in Kabul?"]:  # fmt: skip
        assert not refers_back(question), question
    for question in ["Who lived there?", "Is there a record of his visit?"]:
        assert refers_back(question), question


def test_her_before_a_word_of_content_takes_the_name_with_s():
    assert substitute("Who was her husband?", "her", "Maria Lopez") == "Who was Maria Lopez's husband?"
    assert substitute("Who gave her the prize?", "her", "Maria Lopez") == "Who gave Maria Lopez the prize?"
    assert substitute("When did he meet her?", "her", "Maria Lopez") == "When did he meet Maria Lopez?"


def test_a_rewrite_of_a_question_without_a_question_mark_that_states_something_is_refused():
    pairs = [("Who mediated the meeting?", "Ismail Khan mediated the meeting in Tehran.")]
    assert read_rewrite("Ismail Khan was governor of Kabul province.", "and his province", pairs) == (
        None, "adds words that are not names the conversation said (a reply to it)")  # fmt: skip
    assert (
        standalone("And Ismail Khan's province?", "and his province", pairs) == "And Ismail Khan's province?"
    )
    assert standalone("Tell me about Ismail Khan's role.", "tell me about his role", pairs) == (
        "Tell me about Ismail Khan's role.")  # fmt: skip


def test_a_rewrite_keeps_a_quote_that_belongs_to_it_and_loses_the_ones_around_it():
    pairs = [("Who wrote Hamlet?", "Shakespeare wrote Hamlet.")]
    assert standalone('Who wrote "Hamlet"', 'Who wrote "Hamlet"', pairs) == 'Who wrote "Hamlet"'
    assert standalone('"When did Shakespeare write it?"', "When did he write it?", pairs) == (
        "When did Shakespeare write it?")  # fmt: skip


def test_a_rewrite_in_a_script_without_spaces_is_checked_by_its_characters():
    pairs = [("Who mediated the meeting?", "Ismail Khan mediated the meeting.")]
    assert (
        standalone("伊斯梅尔·汗在哪里担任总督？", "他在哪里担任总督？", pairs)
        == "伊斯梅尔·汗在哪里担任总督？"
    )
    assert standalone("今天天气好吗？", "他在哪里担任总督？", pairs) is None


def test_a_latest_answer_too_long_for_the_budget_is_cut_to_fit_not_dropped():
    count = len  # a token a character, for the test
    pairs = [("Who mediated?", "Ismail Khan."), ("Where was he governor?", "He was governor of Herat. " * 40)]
    kept = fitting(pairs, 200, count)
    assert len(kept) == 1 and kept[0][0] == "Where was he governor?"
    assert kept[0][1].startswith("He was governor of Herat.") and kept[0][1].endswith(" …")
    assert count(history_block(kept)) <= 200


def test_the_rewriting_prompts_read_the_turns_within_the_history_budget(assistant):
    chat = assistant.chat()
    chat.ask("Who mediated the meeting?")
    long_answer = "The meeting was mediated by Ismail Khan in Tehran. " * 400  # an API client may send this
    chat.turns[-1].answer.text = long_answer
    chat.ask("Where was he governor?")
    rewriting = [p for p in assistant.generator.prompts if p[-1]["content"].startswith("Conversation:")]
    budget = assistant.config.history_tokens
    for prompt in rewriting:
        conversation = prompt[-1]["content"].split("\n\nLatest question:")[0]
        assert assistant.generator.count(conversation) <= budget + 10  # the block's own labels aside
        assert "mediated by Ismail Khan" in conversation, "the latest answer is cut, not dropped"


def test_an_acronym_written_like_a_pronoun_is_not_one():
    assert not refers_back("Who runs the IT department?") and pronoun("Who runs the IT department?") is None
    assert not refers_back("Did HE Ventures invest in the startup?")
    assert pronoun("WHO RUNS IT NOW?") == "IT", "a question typed in capitals still refers back"
    assert pronoun("Who runs it?") == "it" and refers_back("What did It cost?")


def test_an_it_that_stands_for_the_clause_after_it_is_not_the_pronoun_asked_about():
    assert pronoun("Is it true that he resigned?") == "he"
    assert pronoun("When did it open?") == "it"
    assert not refers_back("Is it true that the dam opened in 1990?")
    assert refers_back("Is it true that he resigned?")
    assert not refers_back("Is it known when the dam opened?") and not refers_back(
        "Is it possible to visit the dam?"
    )


@pytest.mark.parametrize(
    ("question", "rewritten"),
    [
        ("What is it known for?", "What is Herat known for?"),
        ("What was it said to cost?", "What was Herat said to cost?"),
        (
            "Is it true that it was mediated by Ismail Khan?",
            "Is it true that Herat was mediated by Ismail Khan?",
        ),
    ],
)
def test_an_it_that_stands_for_a_name_is_the_one_the_name_takes_the_place_of(question, rewritten):
    word = pronoun(question)
    assert word == "it" and refers_back(question)
    assert substitute(question, word, "Herat") == rewritten
