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
        ]
    ),
    re.IGNORECASE,
)


def neutralise(text: str) -> str:
    """`text` with every sentence that reads as an order to an AI replaced by a short note."""
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
