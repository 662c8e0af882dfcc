"""docqa in the terms of the OpenAI HTTP API: requests to /v1/chat/completions and /v1/embeddings
checked and read into what docqa asks, and its answers shaped as the completions, stream chunks,
embeddings and errors that OpenAI clients parse. Pure functions; the routes are in openai_routes.py.

docqa answers from its documents with its own prompt and decodes greedily, so the sampling options
(temperature, top_p, the penalties, seed) and the length caps are checked and then ignored; options
that would change what a reply is (n > 1, tools, stop sequences, JSON output, log probabilities,
audio) are refused with a 400 that says so. Unknown top-level fields are ignored, as many clients
send their own; unknown fields inside `docqa` are refused. `docqa.scope` asks the question of some
documents only, with the fields of embeddings.scope.Scope. The messages before the last are the
conversation: a follow-up is asked in it as docqa's own conversations ask one (qa/conversation.py),
its earlier follow-ups read as docqa rewrote them where this server answered them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from embeddings.errors import QuestionError
from embeddings.scope import Scope
from qa.answer import NOT_IN_DOCUMENTS, Answer
from qa.citations import is_refusal, sentences
from qa.conversation import Turn
from qa.retriever import Passage

CHAT_MODEL = "docqa"  # the one chat model: answers from the indexed documents
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI takes
WITHDRAWN = "\n\n[docqa withdrew this answer: "  # what a streamed reply adds when its text is withdrawn
CORRECTED = "\n\n[docqa corrected the citations:] "  # ... and when its marks cite other passages
ROLES = ("system", "developer", "user", "assistant")
SAMPLING = {"temperature": (0, 2), "top_p": (0, 1), "presence_penalty": (-2, 2), "frequency_penalty": (-2, 2)}
_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 409: "invalid_request_error",
          413: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}  # fmt: skip


class ApiError(Exception):
    """A request docqa answers with an error, in OpenAI's format."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    @property
    def body(self) -> dict:
        kind = _TYPES.get(self.status, "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    question: str  # the last message, the user's
    earlier: list[tuple[str, str]]  # the conversation before it, (role, text): see `turns`
    stream: bool
    scope: Scope | None = None  # the documents asked (docqa.scope); None: all of them
    usage: bool = False  # stream_options.include_usage: a last chunk with the tokens counted


@dataclass(frozen=True)
class EmbeddingsRequest:
    texts: list[str]
    base64: bool  # the vectors as base64 float32, as the openai clients ask by default


NO_TOOLS = "docqa answers from your documents and calls no tools: leave out tools and tool_choice"
NO_LOGPROBS = "docqa does not report log probabilities: leave out logprobs and top_logprobs"
TEXT_ONLY = "docqa replies in text only: leave out modalities and audio"
# Options that would change what a reply is: (field, its JSON type, when it is refused, why).
REFUSED = (
    ("n", int, lambda v: v != 1, "docqa gives one answer per question: leave out n or set it to 1"),
    ("tools", list, bool, NO_TOOLS),
    ("functions", list, bool, NO_TOOLS),
    ("tool_choice", (str, dict), lambda v: v not in ("none", "auto"), NO_TOOLS),
    ("function_call", (str, dict), lambda v: v not in ("none", "auto"), NO_TOOLS),
    ("stop", (str, list), bool, "docqa ends its answers itself and takes no stop sequences: leave out stop"),
    ("response_format", dict, lambda v: v.get("type") != "text",
     "docqa replies in text with [n] citation marks and gives the citations as JSON in the reply's docqa "
     "field: leave out response_format"),
    ("logprobs", bool, bool, NO_LOGPROBS),
    ("top_logprobs", int, bool, NO_LOGPROBS),
    ("logit_bias", dict, bool, "docqa takes no logit_bias: leave it out"),
    ("modalities", list, lambda v: v != ["text"], TEXT_ONLY),
    ("audio", dict, lambda v: True, TEXT_ONLY),
)  # fmt: skip


def chat_request(body: object, embedding_model: str) -> ChatRequest:
    """A /v1/chat/completions body -> what docqa asks, or an ApiError that names the problem."""
    body = _object(body)
    _model(body, CHAT_MODEL, embedding_model, "/v1/embeddings")
    for name, (low, high) in SAMPLING.items():  # checked, then ignored: docqa decodes greedily
        value = _get(body, name, (int, float))
        if value is not None and not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}, got {value}", name)
    for name in ("max_tokens", "max_completion_tokens"):  # checked, then ignored
        value = _get(body, name, int)
        if value is not None and value < 1:
            raise ApiError(400, f"{name} must be at least 1, got {value}", name)
    _get(body, "seed", int)
    options = _get(body, "stream_options", dict) or {}
    usage = bool(_get(options, "include_usage", bool, "stream_options.include_usage"))
    for name, kind, refused, why in REFUSED:
        value = _get(body, name, kind)
        if value is not None and refused(value):
            raise ApiError(400, why, name)
    options = _get(body, "docqa", dict) or {}
    if unknown := [name for name in options if name != "scope"]:
        raise ApiError(400, f"docqa has no option docqa.{unknown[0]}: its one option is docqa.scope (leave out "
                       f"docqa.{unknown[0]})", f"docqa.{unknown[0]}")  # fmt: skip
    scope = _scope(_get(options, "scope", dict, "docqa.scope") or {})
    messages = _joined([m for m in _messages(body.get("messages")) if m[0] in ("user", "assistant")])
    stream = _get(body, "stream", bool) or False
    return ChatRequest(messages[-1][1], messages[:-1], stream, scope, usage)


def embeddings_request(body: object, embedding_model: str, dim: int) -> EmbeddingsRequest:
    """A /v1/embeddings body -> the texts to embed, or an ApiError that names the problem."""
    body = _object(body)
    _model(body, embedding_model, CHAT_MODEL, "/v1/chat/completions")
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts:
        raise ApiError(400, "input must be a text or a non-empty list of texts", "input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"input holds {len(texts)} texts; send at most {MAX_EMBEDDING_INPUTS} at a time",
                       "input")  # fmt: skip
    for i, text in enumerate(texts):
        if isinstance(text, int | list):
            raise ApiError(400, "docqa embeds text, not token ids: send the texts themselves (LangChain's "
                           "OpenAIEmbeddings sends token ids unless check_embedding_ctx_length=False)", "input")  # fmt: skip
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, f"input[{i}] must be a text that is not empty", "input")
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError as e:  # a lone surrogate (\ud800) that JSON let through
                raise ApiError(400, f"input[{i}] is not valid Unicode ({e.reason})", "input") from None
    encoding = _get(body, "encoding_format", str) or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, f"encoding_format must be float or base64, got {encoding!r}", "encoding_format")
    asked = _get(body, "dimensions", int)
    if asked is not None and asked != dim:
        raise ApiError(400, f"{embedding_model} makes {dim}-dimensional vectors: leave out dimensions or set "
                       f"it to {dim}", "dimensions")  # fmt: skip
    return EmbeddingsRequest(texts, encoding == "base64")


def turns(
    earlier: list[tuple[str, str]], rewritten: Callable[[str], str | None] = lambda key: None
) -> list[Turn]:
    """The conversation before the question as docqa's turns: each user message with the assistant's
    reply after it, and the question as docqa searched it where `rewritten` knows it by the
    conversation's key up to that reply (see `keys`); else as asked. System and developer messages
    are dropped: docqa's prompt is its own. A reply that docqa withdrew (see `withdrawal`) comes
    back as the abstention it ended with: the draft before it never reaches the next prompt."""
    out: list[Turn] = []
    question = None
    for (role, text), key in zip(earlier, keys(earlier), strict=True):
        if role == "user":
            question = text
        elif role == "assistant" and question is not None:
            withdrawn = WITHDRAWN.strip() in text  # as streamed, or as a client kept it
            said = NOT_IN_DOCUMENTS if withdrawn else text.split(CORRECTED.strip())[-1].strip()
            answer = Answer(question, said, withdrawn or is_refusal(said), [], [], {}, CHAT_MODEL)
            out.append(Turn(question, rewritten(key) or question, answer))
            question = None
    return out


def keys(messages: list[tuple[str, str]]) -> list[str]:
    """For each message, a key of the conversation up to and with it: two conversations share a
    key only where they are the same, word for word (spacing aside), up to there."""
    digest, out = hashlib.sha256(), []
    for role, text in messages:
        digest.update(json.dumps([role, " ".join(text.split())]).encode())
        out.append(digest.copy().hexdigest())
    return out


# Replies


def sources(answer: Answer) -> dict:
    """The `docqa` field of a reply: the checked answer, its citations (document, offsets in the
    document's text, the sentence each supports and how well), whether and why docqa abstained, and
    a follow-up's rewrite."""
    return {
        "text": answer.text,
        "abstained": answer.abstained,
        "reason": answer.reason,
        "withdrawn": answer.withdrawn,
        "cut": answer.cut,  # the model's reply stopped at docqa's answer_tokens
        "standalone": answer.standalone,  # a follow-up as retrieval searched it (rewritten); None alone
        "citations": [asdict(c) for c in answer.citations],
        "passages": [_passage(n, p) for n, p in enumerate(answer.passages, 1)],
        "generator": answer.model,
        "seconds": answer.timings,
    }


def _passage(number: int, p: Passage) -> dict:
    return {"number": number, "doc_id": p.doc_id, "title": p.title, "start": p.start, "end": p.end,
            "score": round(p.score, 4), "page": p.page, "page_label": p.page_label}  # fmt: skip


def completion(answer: Answer, request_id: str, created: int) -> dict:
    message = {"role": "assistant", "content": answer.text, "refusal": None}
    return {"id": request_id, "object": "chat.completion", "created": created, "model": CHAT_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish(answer), "logprobs": None}],
            "usage": usage(answer), "docqa": sources(answer)}  # fmt: skip


def finish(answer: Answer) -> str:
    """Why the reply ended, as OpenAI says it: "length" where the model's reply reached docqa's
    answer_tokens and was cut there, "stop" otherwise (it ended, or docqa answered without it)."""
    return "length" if answer.cut else "stop"


def usage(answer: Answer) -> dict:
    """The tokens of the answer's model call (none where docqa answered without the model)."""
    prompt, completion = answer.tokens.get("prompt", 0), answer.tokens.get("completion", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def usage_chunk(request_id: str, created: int, answer: Answer) -> dict:
    """The chunk stream_options.include_usage asks for, after the last: no choices, the usage."""
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": CHAT_MODEL,
            "choices": [], "usage": usage(answer)}  # fmt: skip


def chunk(request_id: str, created: int, delta: dict, answer: Answer | None = None) -> dict:
    """One streamed piece; the last one (with `answer`) ends the reply and carries the docqa field."""
    out = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": CHAT_MODEL,
           "choices": [{"index": 0, "delta": delta, "finish_reason": None if answer is None else finish(answer), "logprobs": None}]}  # fmt: skip
    if answer is not None:
        out["docqa"] = sources(answer)
    return out


def withdrawal(streamed: str, answer: Answer) -> str:
    """What a streamed reply needs after the model's text, so that a plain client shows what docqa
    stands behind: nothing when the text stands as streamed (its marks where the model put them);
    the checked text when the checks made a sentence cite other passages; the abstention and its
    reason when they withdrew the text already streamed."""
    if not answer.abstained:
        return f"{CORRECTED}{answer.text}" if _marks_changed(streamed, answer.text) else ""
    if streamed.strip() == answer.text:
        return ""
    if not streamed.strip():
        return answer.text
    return f"{WITHDRAWN}{answer.reason}] {answer.text}"


def _marks_changed(streamed: str, checked: str) -> bool:
    """Whether the checks made a sentence the model marked cite other passages (a mark added to a
    sentence the model left unmarked is no correction: the client shows no wrong number)."""
    said, kept = sentences(streamed), sentences(checked)
    if len(said) != len(kept):  # not sentence by sentence: any mark the model wrote that is gone
        return not {n for s in said for n in s.numbers} <= {n for s in kept for n in s.numbers}
    return any(a.numbers and a.numbers != b.numbers for a, b in zip(said, kept, strict=True))


def event(data: dict) -> str:
    """A server-sent event, as OpenAI's streams send them."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"


def embeddings(vectors: np.ndarray, tokens: list[int], model: str, as_base64: bool) -> dict:
    def shaped(v: np.ndarray) -> list[float] | str:
        return base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist()

    data = [{"object": "embedding", "index": i, "embedding": shaped(v)} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def models(generator: str, embedding_model: str, created: int) -> dict:
    """What docqa serves: answers from the documents (written by `generator`), and embeddings."""
    chat = {"id": CHAT_MODEL, "object": "model", "created": created, "owned_by": "docqa",
            "docqa": {"kind": "chat", "route": "/v1/chat/completions", "generator": generator}}  # fmt: skip
    embed = {"id": embedding_model, "object": "model", "created": created, "owned_by": "docqa",
             "docqa": {"kind": "embeddings", "route": "/v1/embeddings"}}  # fmt: skip
    return {"object": "list", "data": [chat, embed]}


# Checks


def _object(body: object) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, not {_json_type(body)}")
    return body


def _model(body: dict, wanted: str, other: str, other_route: str) -> None:
    model = body.get("model")
    if model is None:
        raise ApiError(400, f"model is required: use {wanted!r} here (GET /v1/models lists what docqa serves)",
                       "model")  # fmt: skip
    if not isinstance(model, str):
        raise ApiError(400, f"model must be a string, not {_json_type(model)}", "model")
    if model == other:
        raise ApiError(400, f"{other!r} is served at {other_route}; here use {wanted!r}", "model")
    if model != wanted:
        raise ApiError(404, f"docqa has no model {model!r}: use {wanted!r} here (GET /v1/models lists what "
                       "docqa serves)", "model", "model_not_found")  # fmt: skip


def _get(body: dict, name: str, kind: type | tuple[type, ...], where: str | None = None) -> object:
    """body[name] when it is of `kind` (None when absent or null); a 400 when it is not. `where`
    is the field's name in the request, when it is inside another."""
    value, where = body.get(name), where or name
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        wanted = " or ".join(_JSON_TYPES[k] for k in kinds)
        raise ApiError(400, f"{where} must be {wanted}, not {_json_type(value)}", where)
    return value


SCOPE_FIELDS = {"doc_ids": list, "under": str, "since": str, "until": str, "formats": list}  # Scope.parse's


def _scope(given: dict) -> Scope | None:
    """docqa.scope as a Scope (None when it narrows nothing), or a 400 that names the problem."""
    if unknown := [name for name in given if name not in SCOPE_FIELDS]:
        raise ApiError(400, f"docqa.scope has no field {unknown[0]!r}: it takes {', '.join(SCOPE_FIELDS)} (leave "
                       f"out {unknown[0]})", f"docqa.scope.{unknown[0]}")  # fmt: skip
    fields = {name: _get(given, name, kind, f"docqa.scope.{name}") for name, kind in SCOPE_FIELDS.items()}
    for name in ("doc_ids", "formats"):
        if not all(isinstance(v, str) for v in fields[name] or []):
            raise ApiError(400, f"docqa.scope.{name} must be a list of strings", f"docqa.scope.{name}")
        fields[name] = fields[name] or []
    try:
        scope = Scope.parse(**fields)
    except QuestionError as e:  # a date that is not one, or an empty date range
        raise ApiError(400, f"docqa.scope: {e}", "docqa.scope") from None
    return scope or None


def _messages(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list of {role, content}; the last one, the user's, "
                       "is the question", "messages")  # fmt: skip
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content", "messages")
        role = message.get("role")
        if role in ("tool", "function"):
            raise ApiError(400, f"{where} is a {role} result; docqa calls no tools", "messages")
        if role not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}", "messages")
        content = message.get("content")
        if role == "assistant" and content is None and isinstance(message.get("refusal"), str):
            content = message["refusal"]  # a reply OpenAI refused, as a client sends it back
        out.append((role, _text(content, where)))
    spoken = [m for m in out if m[0] in ("user", "assistant")]  # a system message may come last
    if not spoken or spoken[-1][0] != "user" or not spoken[-1][1].strip():
        raise ApiError(400, "the last message must be the user's question, with text in it (system and "
                       "developer messages may come anywhere)", "messages")  # fmt: skip
    return out


def _joined(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Messages of one role in a row (a user's context, then the question) as one message."""
    out: list[tuple[str, str]] = []
    for role, text in messages:
        if out and out[-1][0] == role:
            out[-1] = (role, f"{out[-1][1]}\n\n{text}".strip())
        else:
            out.append((role, text))
    return out


def _text(content: object, where: str) -> str:
    """A message's content as text: a string, or the text parts of a list of parts; text that is
    not valid Unicode (a lone surrogate) is refused, as the tokenizer cannot read it."""
    if content is None or isinstance(content, str):
        return _unicode(content or "", where)
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.content must be text or a list of text parts", "messages")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "refusal" and isinstance(part.get("refusal"), str):  # an assistant's, as OpenAI writes it
            texts.append(part["refusal"])
            continue
        if kind != "text" or not isinstance(part.get("text"), str):
            shown = f"a part of type {kind!r}" if kind else "a part that is not {type: text, text}"
            raise ApiError(400, f"docqa reads text only, and {where} has {shown}", "messages")
        texts.append(part["text"])
    return _unicode("\n".join(texts), where)


def _unicode(text: str, where: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ApiError(
            400, f"{where}.content is not valid Unicode (surrogates not allowed)", "messages"
        ) from None
    return text


_JSON_TYPES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "an object", type(None): "null"}  # fmt: skip


def _json_type(value: object) -> str:
    return "a number" if type(value) is float else _JSON_TYPES.get(type(value), type(value).__name__)
