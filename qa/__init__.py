"""Question -> passages -> answer with sources; summaries; the `docqa` command.

The names below load on first use, so importing one module of this package (the decoding
scheduler on a GPU machine, say) does not import the whole index stack."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_WHERE = {
    "Answer": "qa.answer",
    "Citation": "qa.answer",
    "AnswerStream": "qa.assistant",
    "Assistant": "qa.assistant",
    "Conversation": "qa.assistant",
    "Turn": "qa.conversation",
    "Passage": "qa.retriever",
    "Summary": "qa.summarize",
    "to_markdown": "qa.export",
    "Generator": "qa.generator",
    "Config": "embeddings.config",
    "Scope": "embeddings.scope",
    "ConfigError": "embeddings.errors",
    "DocqaError": "embeddings.errors",
    "IndexBusy": "embeddings.errors",
    "IndexCorrupt": "embeddings.errors",
    "IndexMismatch": "embeddings.errors",
    "IndexMissing": "embeddings.errors",
    "QuestionError": "embeddings.errors",
}
__all__ = [
    "Answer",
    "AnswerStream",
    "Assistant",
    "Citation",
    "Config",
    "ConfigError",
    "Conversation",
    "DocqaError",
    "Generator",
    "IndexBusy",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexMissing",
    "Passage",
    "QuestionError",
    "Scope",
    "Summary",
    "Turn",
    "to_markdown",
]

if TYPE_CHECKING:
    from embeddings.config import Config
    from embeddings.errors import (
        ConfigError,
        DocqaError,
        IndexBusy,
        IndexCorrupt,
        IndexMismatch,
        IndexMissing,
        QuestionError,
    )
    from embeddings.scope import Scope
    from qa.answer import Answer, Citation
    from qa.assistant import AnswerStream, Assistant, Conversation
    from qa.conversation import Turn
    from qa.export import to_markdown
    from qa.generator import Generator
    from qa.retriever import Passage
    from qa.summarize import Summary


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
