"""OpenAI requests read into docqa's terms and docqa's answers shaped for OpenAI clients, without a
server: what the official `openai` client parses, and the 400s a client gets for what docqa cannot do."""

from __future__ import annotations

import base64
from datetime import date

import numpy as np
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from embeddings.scope import Scope
from qa import openai_api
from qa.answer import NOT_IN_DOCUMENTS, Answer, Citation, abstention
from qa.openai_api import ApiError, chat_request, embeddings_request
from qa.retriever import Passage

EMBEDDER = "all-MiniLM-L6-v2"
PASSAGE = Passage("talks.txt", "Talks", 10, 60, "The meeting was mediated by Ismail Khan.", 0.71)
QUESTION = {"role": "user", "content": "Who mediated the meeting?"}


def ask(**fields) -> dict:
    return {"model": "docqa", "messages": [QUESTION], **fields}


def refused(body: object, status: int = 400) -> ApiError:
    with pytest.raises(ApiError) as caught:
        chat_request(body, EMBEDDER)
    assert caught.value.status == status
    return caught.value


def answered() -> Answer:
    cite = Citation(
        1, "talks.txt", "Talks", PASSAGE.text, 10, 60, 0.71, "Ismail Khan mediated it.", 1.0, True
    )
    return Answer("Who?", "Ismail Khan mediated it. [1]", False, [cite], [PASSAGE], {"total": 1.5}, "qwen")


def test_the_last_user_message_is_the_question_and_the_rest_is_kept_as_the_conversation():
    body = ask(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who met?"},
                         {"role": "assistant", "content": "Massoud and Muttaqi. [1]"},
                         {"role": "user", "content": [{"type": "text", "text": "Who mediated"},
                                                      {"type": "text", "text": "the meeting?"}]}])  # fmt: skip
    asked = chat_request(body, EMBEDDER)
    assert asked.question == "Who mediated\nthe meeting?" and not asked.stream
    assert asked.earlier == [  # a system message does not change docqa's prompt
        ("user", "Who met?"),
        ("assistant", "Massoud and Muttaqi. [1]"),
    ]
    assert chat_request(ask(stream=True), EMBEDDER).stream


def test_a_system_message_after_the_question_and_an_assistants_refusal_part_are_read_as_openai_sends_them():
    body = ask(messages=[{"role": "user", "content": "Who won?"},
                         {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say."}]},
                         QUESTION, {"role": "system", "content": "Answer in English."}])  # fmt: skip
    asked = chat_request(body, EMBEDDER)
    assert asked.question == QUESTION["content"]
    assert asked.earlier == [("user", "Who won?"), ("assistant", "I cannot say.")]
    refused = {"role": "assistant", "content": None, "refusal": "I cannot say."}  # as OpenAI replies
    body["messages"][1] = refused
    assert chat_request(body, EMBEDDER).earlier == [("user", "Who won?"), ("assistant", "I cannot say.")]


def test_earlier_messages_become_the_conversations_turns_and_a_withdrawn_draft_never_does():
    withdrawn = openai_api.withdrawal("Ismail Khan went to Paris.", abstention("Where?", [], "not held", "m"))
    earlier = [("system", "Be brief."), ("user", "Who met?"), ("assistant", "Massoud and Muttaqi. [1]"),
               ("user", "Where did they go?"), ("assistant", "Ismail Khan went to Paris." + withdrawn),
               ("user", "Is this one unanswered?")]  # fmt: skip
    first, second = openai_api.turns(earlier)
    assert (first.question, first.answer.text, first.answer.abstained) == (
        "Who met?",
        "Massoud and Muttaqi. [1]",
        False,
    )
    assert second.question == "Where did they go?"
    assert second.answer.abstained and "Paris" not in second.answer.text
    assert openai_api.turns([("user", "Only a question")]) == []


def test_user_messages_in_a_row_are_read_as_one_so_none_is_lost():
    context = {"role": "user", "content": "We are talking about the Tehran talks."}
    asked = chat_request(
        ask(messages=[{"role": "system", "content": "Be brief."}, context, QUESTION]), EMBEDDER
    )
    assert asked.question == "We are talking about the Tehran talks.\n\nWho mediated the meeting?"
    assert asked.earlier == []
    later = chat_request(ask(messages=[context, QUESTION, {"role": "assistant", "content": "Ismail Khan. [1]"},
                                       {"role": "user", "content": "Where was he governor?"}]), EMBEDDER)  # fmt: skip
    [turn] = openai_api.turns(later.earlier)
    assert turn.question.startswith("We are talking") and turn.question.endswith("Who mediated the meeting?")


def test_a_message_that_is_not_valid_unicode_is_a_400_that_names_it():
    earlier = {"role": "user", "content": "Who met \ud800 in Tehran?"}
    answer = {"role": "assistant", "content": "Massoud and Muttaqi. [1]"}
    error = refused(ask(messages=[earlier, answer, QUESTION]))
    assert error.param == "messages" and "messages[0].content is not valid Unicode" in error.message
    parts = {"role": "user", "content": [{"type": "text", "text": "Who \udc00 mediated?"}]}
    assert "messages[0].content is not valid Unicode" in refused(ask(messages=[parts])).message


def test_sampling_options_and_length_caps_are_accepted_and_ignored():
    body = ask(temperature=0.7, top_p=1, presence_penalty=0, frequency_penalty=0.5, max_tokens=50, seed=3, n=1,
               user="me", stream_options={"include_usage": True}, tool_choice="none", tools=[],
               response_format={"type": "text"}, metadata={"a": "b"}, store=False)  # fmt: skip
    assert chat_request(body, EMBEDDER).question == "Who mediated the meeting?"


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"n": 2}, "n", "one answer per question"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "calls no tools"),
        ({"tool_choice": "required"}, "tool_choice", "calls no tools"),
        ({"stop": ["\n"]}, "stop", "no stop sequences"),
        ({"response_format": {"type": "json_object"}}, "response_format", "docqa field"),
        ({"logprobs": True}, "logprobs", "log probabilities"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "leave it out"),
        ({"modalities": ["text", "audio"]}, "modalities", "text only"),
        ({"docqa": {"documents": ["talks.txt"]}}, "docqa.documents", "leave out docqa.documents"),
    ],
)
def test_what_docqa_cannot_honour_is_a_400_that_says_what_to_leave_out(fields, param, says):
    error = refused(ask(**fields))
    assert error.param == param and says in error.message
    assert error.body["error"]["type"] == "invalid_request_error"


def test_docqa_scope_narrows_the_question_with_the_fields_of_a_scope():
    scope = {"doc_ids": ["talks.txt", "wheat.txt"], "under": "notes/2024/", "since": "2024-01-01",
             "until": "2024-12-31", "formats": ["PDF", ".txt"]}  # fmt: skip
    asked = chat_request(ask(docqa={"scope": scope}), EMBEDDER)
    assert asked.scope == Scope(frozenset({"talks.txt", "wheat.txt"}), "notes/2024", date(2024, 1, 1),
                                date(2024, 12, 31), frozenset({"pdf", "txt"}))  # fmt: skip
    assert chat_request(ask(docqa={"scope": {"since": "2024-05-01"}}), EMBEDDER).scope.since == date(
        2024, 5, 1
    )
    for whole in ({}, {"scope": None}, {"scope": {}}, {"scope": {"doc_ids": [], "under": "."}}):
        assert chat_request(ask(docqa=whole), EMBEDDER).scope is None


@pytest.mark.parametrize(
    ("scope", "param", "says"),
    [
        ({"documents": ["talks.txt"]}, "docqa.scope.documents", "leave out documents"),
        ({"doc_ids": "talks.txt"}, "docqa.scope.doc_ids", "must be a list, not a string"),
        ({"doc_ids": [1]}, "docqa.scope.doc_ids", "a list of strings"),
        ({"formats": "pdf"}, "docqa.scope.formats", "must be a list"),
        ({"since": 2024}, "docqa.scope.since", "must be a string, not an integer"),
        ({"since": "last year"}, "docqa.scope", "since must be a date like 2024-05-31"),
        ({"since": "2024-06-01", "until": "2024-01-01"}, "docqa.scope", "the date range is empty"),
    ],
)
def test_a_scope_docqa_cannot_read_is_a_400_that_names_the_field(scope, param, says):
    error = refused(ask(docqa={"scope": scope}))
    assert error.param == param and says in error.message
    assert refused(ask(docqa={"scope": ["talks.txt"]})).param == "docqa.scope"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (["not", "an", "object"], "must be a JSON object, not a list"),
        (ask(temperature="hot"), "temperature must be an integer or a number, not a string"),
        (ask(temperature=3), "between 0 and 2"),
        (ask(stream="yes"), "stream must be true or false, not a string"),
        (ask(n=True), "n must be an integer, not true or false"),
        (ask(max_tokens=1.5), "max_tokens must be an integer, not a number"),
        (ask(max_tokens=0), "max_tokens must be at least 1, got 0"),
        (ask(max_completion_tokens=-5), "max_completion_tokens must be at least 1, got -5"),
        (ask(messages="Who mediated?"), "messages must be a non-empty list"),
        (ask(messages=[]), "messages must be a non-empty list"),
        (ask(messages=["Who?"]), "messages[0] must be an object"),
        (ask(messages=[{"role": "bot", "content": "hi"}]), "messages[0].role must be one of"),
        (ask(messages=[{"role": "user", "content": 42}]), "content must be text or a list of text parts"),
        (ask(messages=[QUESTION, {"role": "assistant", "content": "Ismail"}]), "last message must be the user's"),
        (ask(messages=[{"role": "user", "content": "   "}]), "last message must be the user's question"),
        (ask(messages=[{"role": "tool", "content": "42", "tool_call_id": "x"}]), "calls no tools"),
        (ask(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
         "text only, and messages[0] has a part of type 'image_url'"),
        (ask(docqa="all"), "docqa must be an object"),
    ],
)  # fmt: skip
def test_wrong_shapes_and_types_are_a_400_that_names_the_field(body, says):
    assert says in refused(body).message


def test_the_model_must_be_one_docqa_serves():
    assert "model is required: use 'docqa'" in refused({"messages": [QUESTION]}).message
    unknown = refused(ask(model="gpt-4o"), status=404)
    assert unknown.code == "model_not_found" and "/v1/models" in unknown.message
    assert "/v1/embeddings" in refused(ask(model=EMBEDDER)).message


def test_a_completion_is_what_the_openai_client_parses_with_the_sources_beside_it():
    parsed = ChatCompletion.model_validate(openai_api.completion(answered(), "chatcmpl-1", 1700000000))
    assert parsed.choices[0].message.content == "Ismail Khan mediated it. [1]"
    assert parsed.choices[0].finish_reason == "stop" and parsed.model == "docqa"
    [cite] = parsed.docqa["citations"]
    assert (cite["doc_id"], cite["title"], cite["start"], cite["end"], cite["supported"]) == (
        "talks.txt", "Talks", 10, 60, True,
    )  # fmt: skip
    assert cite["sentence"] == "Ismail Khan mediated it." and cite["support"] == 1.0 and cite["page"] is None
    assert parsed.docqa["abstained"] is False and parsed.docqa["generator"] == "qwen"


def test_an_abstention_is_an_ordinary_reply_with_the_reason_beside_it():
    answer = abstention("Who?", [PASSAGE], "no passage is relevant enough", "qwen")
    parsed = ChatCompletion.model_validate(openai_api.completion(answer, "chatcmpl-2", 0))
    assert parsed.choices[0].message.content == NOT_IN_DOCUMENTS
    assert parsed.docqa["abstained"] and parsed.docqa["reason"] == "no passage is relevant enough"
    assert parsed.docqa["citations"] == [] and parsed.docqa["passages"][0]["doc_id"] == "talks.txt"


def test_stream_chunks_parse_and_only_the_last_ends_the_reply_and_carries_the_sources():
    first = ChatCompletionChunk.model_validate(
        openai_api.chunk("c", 0, {"role": "assistant", "content": "Ismail"})
    )
    last = ChatCompletionChunk.model_validate(openai_api.chunk("c", 0, {}, answered()))
    assert first.choices[0].delta.content == "Ismail" and first.choices[0].finish_reason is None
    assert last.choices[0].finish_reason == "stop" and last.docqa["citations"][0]["number"] == 1
    assert openai_api.event({"a": "é"}) == 'data: {"a": "é"}\n\n'


def test_a_streamed_text_that_docqa_withdrew_is_followed_by_a_piece_that_says_so():
    withdrawn = abstention("Who?", [PASSAGE], "the passages do not hold the answer (support 0.10)", "qwen")
    note = openai_api.withdrawal("Abdul Rashid mediated it. [1]", withdrawn)
    assert (
        note.startswith("\n\n[docqa withdrew this answer: the passages do not hold")
        and NOT_IN_DOCUMENTS in note
    )
    assert openai_api.withdrawal(NOT_IN_DOCUMENTS, withdrawn) == ""  # the abstention was what streamed
    assert openai_api.withdrawal("", withdrawn) == NOT_IN_DOCUMENTS
    assert openai_api.withdrawal("Ismail Khan mediated it [1].", answered()) == ""  # it stands, marks moved


def test_a_streamed_text_whose_citations_docqa_corrected_is_followed_by_the_checked_text():
    streamed = "Ismail Khan mediated it. [2]"  # the model cited a passage that does not hold it
    note = openai_api.withdrawal(streamed, answered())
    assert note == "\n\n[docqa corrected the citations:] Ismail Khan mediated it. [1]"
    [turn] = openai_api.turns([("user", "Who?"), ("assistant", streamed + note)])
    assert turn.answer.text == "Ismail Khan mediated it. [1]" and not turn.answer.abstained
    assert openai_api.withdrawal("Ismail Khan mediated it.", answered()) == "", (
        "a mark added is no correction"
    )


def test_embeddings_as_floats_or_as_the_base64_the_openai_client_asks_for():
    vectors = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    plain = CreateEmbeddingResponse.model_validate(openai_api.embeddings(vectors, [3, 2], EMBEDDER, False))
    assert plain.data[1].embedding == [1.0, 0.0] and plain.usage.prompt_tokens == 5
    packed = openai_api.embeddings(vectors, [3, 2], EMBEDDER, True)["data"][0]["embedding"]
    assert np.allclose(np.frombuffer(base64.b64decode(packed), dtype="<f4"), vectors[0])
    assert embeddings_request({"model": EMBEDDER, "input": "one"}, EMBEDDER, 384).texts == ["one"]
    assert embeddings_request(
        {"model": EMBEDDER, "input": ["a"], "encoding_format": "base64"}, EMBEDDER, 384
    ).base64


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": EMBEDDER, "input": [[1, 2, 3]]}, "check_embedding_ctx_length=False"),
        ({"model": EMBEDDER, "input": []}, "non-empty list of texts"),
        ({"model": EMBEDDER, "input": ["fine", ""]}, "input[1] must be a text that is not empty"),
        ({"model": EMBEDDER, "input": ["a \ud800 b"]}, "input[0] is not valid Unicode"),
        ({"model": EMBEDDER, "input": ["x"] * 2049}, "send at most 2048"),
        ({"model": EMBEDDER, "input": "x", "dimensions": 128}, "makes 384-dimensional vectors"),
        ({"model": EMBEDDER, "input": "x", "encoding_format": "int8"}, "float or base64"),
        ({"model": "docqa", "input": "x"}, "/v1/chat/completions"),
    ],
)
def test_embedding_requests_docqa_cannot_serve_are_a_400_that_says_why(body, says):
    with pytest.raises(ApiError) as caught:
        embeddings_request(body, EMBEDDER, 384)
    assert caught.value.status == 400 and says in caught.value.message


def test_models_lists_the_chat_model_and_the_embedding_model():
    listed = openai_api.models("qwen2.5-coder-0.5b-instruct", EMBEDDER, 0)["data"]
    assert [m["id"] for m in listed] == ["docqa", EMBEDDER]
    assert listed[0]["docqa"]["generator"] == "qwen2.5-coder-0.5b-instruct"
