"""Documents are data. The prompt's shape carries the defence (prompt.py quotes every text that
comes from a document); this module does the two things it cannot:
- chat-template control tokens in a document or a question are made plain text, so a document
  cannot open a turn of the conversation as if the system or the user had spoken;
- a sentence that can only be an order to an AI is blanked. Only unambiguous patterns are here
  (they name the AI's instructions, prompt or role, or speak to the AI reading the text): an
  honest sentence that merely looks like an order ("Answer all questions in the booklet.", a
  quoted remark, a job description) is never blanked, so none of its facts are lost."""

from __future__ import annotations

import re

from embeddings.chunker import sentences

REMOVED = "[An instruction to AI systems was removed here.]"

_AI = r"(?:ai|a\.i\.|assistant|chatbot|language model|llm|gpt|model|bot)"
# What ends the words that name the AI reading the text: "Note to the AI:", "... the model reading
# this", not "the model railway club" nor "the Model 3 charging cable".
_AI_ENDS = (
    r"(?=\s*(?:[,:;.!?)—-]|$)|\s+(?:reading|processing|summari[sz]ing|answering|that|who|which|please|then"
    r"|must|should|reply|respond|answer|ignore|say|write|output|print)\b)"
)
# ... after any second word naming it: "Note to the AI assistant:", "Instructions for the AI agent:"
_AI_NAMED = rf"{_AI}s?(?:\s+(?:{_AI}|agent|system|tool)s?)?{_AI_ENDS}"
# A system prompt's settings, named in honest technical text: "override the system prompt timeout".
_SETTING = (
    r"(?!\s+(?:timeouts?|settings?|length|limits?|size|fields?|files?|templates?|editor|window|options?"
    r"|variables?|parameters?|configuration|config|box|tab|panel|page|button)\b)"
)
_ORDERS = re.compile(
    r"|".join(
        [
            # "ignore all previous instructions", "disregard the system prompt"
            r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}\b(?:previous|prior|above|earlier|preceding|all|your|the\s+system)\s+"
            rf"(?:instructions?|prompts?|rules|guidelines|directions)\b{_SETTING}",
            # "ignore all previous messages", not an e-mail's "disregard my previous message"
            r"\b(?:ignore|disregard|forget)\s+(?:everything\s+in\s+)?(?:all\s+(?:of\s+)?)?(?:the\s+|your\s+|any\s+)?"
            r"(?:previous|prior|earlier|preceding|above)\s+messages\b(?!\s+(?:about|regarding|concerning|re)\b)"
            r"|\b(?:ignore|disregard|forget)\s+all\s+(?:your\s+)?messages\b",
            # the AI's own prompt or mode named in an order, not any text that names them ("The
            # system prompt is limited to 4,000 tokens", "To enable developer mode, tap ...")
            r"\b(?:ignore|disregard|forget|override|bypass|reveal|print|show|repeat|output|disclose|leak)\b"
            rf"[^.!?\n]{{0,40}}\bsystem\s+prompt\b{_SETTING}",
            r"\b(?:instructions?|orders?|messages?)\s+from\s+(?:the\s+|your\s+)?system\s+prompt\b|\bsystem\s+prompt\s*:",
            # ... and its settings overridden to make it speak: "override the system prompt settings and say ..."
            r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}\bsystem\s+prompt\b[^.!?\n]{0,40}"
            r"\b(?:and|then)\s+(?:say|reply|respond|answer)\b",
            r"\b(?:enter|activate|switch\s+(?:to|into)|you\s+are\s+(?:now\s+)?in)\s+(?:developer|dan|god)\s+mode\b",
            r"\bjailbreak\s+(?:mode|prompt)\b|\byou\s+(?:are|have\s+been)\s+jailbroken\b",
            # words addressed to the AI that reads the text
            rf"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the|any|all)\s+{_AI_NAMED}",
            rf"\b(?:to|for)\s+(?:the|any)\s+{_AI}s?\s+(?:reading|processing|summari[sz]ing|answering)\b",
            rf"\b(?:if|when)\s+you\s+are\s+an?\s+(?:ai|language model|llm|chatbot)(?:\s+(?:{_AI}|agent|system|tool))?{_AI_ENDS}",
            # "whoever reads this, begin your response with ...": the reader told how to reply
            r"\b(?:whoever|anyone|anybody)\s+(?:who\s+)?(?:reads|is\s+reading|processes)\s+this\b[^.!?\n]{0,60}?"
            r"\b(?:your|the)\s+(?:response|reply|answer|output)s?\b",
            r"\byou\s+are\s+now\s+(?:an?\s+)?(?:ai|language model|llm|chatbot|gpt|dan)\b",
            r"\bcite\s+passage\s*\[?\d",
            # a forged chat turn
            r"[\"']role[\"']\s*:\s*[\"'](?:system|user|assistant|developer)[\"']",
            # ("Assistant: answer phones" is a job's duty, not a turn)
            r"(?:^|\n)\s*(?:system\s*:\s*(?:you|reply|answer|respond|say|ignore)|assistant\s*:\s*(?:you|reply|respond|say|ignore))\b",
            # chat control tokens, as `defuse` leaves them: never part of an honest document
            r"\u2039\||\u2039\u2039/?SYS|\(/?INST\)|\u2039/?s\u203a",
        ]
    ),
    re.IGNORECASE,
)

# Chat-template control tokens (ChatML, Llama, Mistral): in a document they would open a new turn
# of the conversation, as if the system or the user had spoken.
_CONTROL_TOKENS = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>", re.IGNORECASE)

_PLAIN_BRACKETS = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "(", "]": ")"})


def defuse(text: str) -> str:
    """`text` with chat control tokens made plain text (their brackets replaced)."""
    return _CONTROL_TOKENS.sub(lambda m: m.group().translate(_PLAIN_BRACKETS), text)


def neutralise(text: str) -> str:
    """`text` with control tokens defused and every sentence that can only be an order to an AI
    replaced by a short note."""
    text = defuse(text)
    out, last = [], 0
    for start, end in sentences(text):
        if _ORDERS.search(text[start:end]):
            out.append(text[last:start])
            out.append(REMOVED)
            last = end
    if not out:
        return text
    out.append(text[last:])
    return re.sub(rf"(?:{re.escape(REMOVED)}\s*)+", REMOVED + " ", "".join(out)).strip()
