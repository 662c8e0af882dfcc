"""Question -> passages -> answer with sources; summaries; the `docqa` command."""

from qa.answer import Answer, Citation
from qa.assistant import AnswerStream, Assistant
from qa.retriever import Passage
from qa.summarize import Summary

__all__ = ["Answer", "AnswerStream", "Assistant", "Citation", "Passage", "Summary"]
