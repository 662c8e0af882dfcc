"""Documents are data: sentences in them that give orders to an AI are blanked out before a
passage reaches the model. The system prompt says the same; small models need both."""

from __future__ import annotations

import re

from embeddings.chunker import sentences

REMOVED = "[an instruction to AI systems was removed here]"

_ORDERS = re.compile(
    r"|".join(
        [
            r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,60}\b(?:instructions?|questions?|prompts?|rules|guidelines|directions|context|above|previous|prior)\b",
            r"\b(?:reply|respond|answer|say|print|output|write|repeat)\b[^.!?\n]{0,40}\bonly\s+(?:with|the word|\"|')",
            r"\b(?:do not|don't|never)\s+(?:answer|respond to|reply to)\s+(?:it\b|that\b|(?:the|this|any|my|your)\s+(?:question|user|query))",
            r"\b(?:you are|you're|act as|pretend to be)\s+(?:now\s+)?an?\s+(?:ai|assistant|chatbot|language model|llm|gpt)\b",
            r"\b(?:the|an?|any|you)\s+(?:ai|assistant|chatbot|language model|llm)\b[^.!?\n]{0,40}\b(?:must|should|shall)\b",
            r"\b(?:system prompt|developer mode|jailbreak|new instructions|these instructions|following instructions)\b",
            r"\bcite\s+(?:passage|source|document)s?\s*\[?\d+",
            r"\b(?:to|for)\s+the\s+(?:ai|assistant|chatbot|language model|model)\s+reading\b",
            r"\b(?:whoever|anyone|anybody|everyone)\s+(?:who\s+)?(?:is\s+)?read(?:s|ing)?\s+this\b",
            r"\b(?:begin|start|end|finish|prefix|conclude)\s+(?:your|the|each|every|all)\s+(?:responses?|repl(?:y|ies)|answers?|outputs?)\b",
            r"\b(?:your|the)\s+(?:responses?|repl(?:y|ies)|answers?|outputs?)\s+(?:must|should|shall)\b",
            r"\b(?:add|include|mention|insert|say|print|output|write|repeat)\s+(?:the\s+)?(?:word|phrase|string|token|code ?word|password)\b",
            r"\bif\s+(?:anyone|someone|somebody|you|the user)\s+(?:asks?|asked|is asked|are asked)\b[^.!?\n]{0,60}\b(?:tell|say|answer|reply|respond)\b",
            r"\b(?:answer|respond|reply)\s+(?:to\s+)?(?:every|each|all|any)\s+(?:questions?|quer(?:y|ies)|prompts?)\b",
            r"\binstead\s+of\s+(?:answering|responding|replying)\b",
            r"\bin\s+your\s+(?:answer|response|reply|output)s?\b",
            r"\band\s+nothing\s+else\b",
            r"(?:^|\n)[ \t]*#{1,6}[ \t]*(?:instructions?|system(?:[ \t]+prompt)?|prompt)[ \t]*:?[ \t]*(?:\n|$)",
            r"[\"']role[\"']\s*:\s*[\"'](?:system|user|assistant|developer)[\"']",
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
    """`text` with control tokens defused and every sentence that reads as an order to an AI
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
