"""The few errors docqa raises on purpose; each message says what to do next."""

from __future__ import annotations


class DocqaError(Exception):
    """Base of every error docqa reports to the user instead of a traceback."""


class ConfigError(DocqaError):
    """A setting is out of range or names something that does not exist."""


class NoDocuments(ConfigError):
    """The documents folder (uploads included) holds nothing docqa can read. `found`: what was
    found, said without the advice (which names the command line's options)."""

    def __init__(self, message: str, found: str) -> None:
        super().__init__(message)
        self.found = found


class UnreadableDocument(DocqaError):
    """One file cannot be turned into text; the build skips it and says why. `passing`: the file
    could not be read at all, or changed while it was (it may read next time); else it was read
    and cannot be parsed (it fails again until it changes)."""

    def __init__(self, message: str, passing: bool = False) -> None:
        super().__init__(message)
        self.passing = passing


class IndexMissing(DocqaError):
    """There is no index where one was asked for."""


class IndexMismatch(DocqaError):
    """The index was built differently from what is asked now (model, format)."""


class IndexCorrupt(DocqaError):
    """A file of the index is damaged or was changed by hand."""


class IndexBusy(DocqaError):
    """Another build holds the index lock."""


class ClusterError(DocqaError):
    """The Ray cluster cannot be reached, or failed during a build (the index is left as it was)."""


class Transient(DocqaError):
    """A failure that passes: asking again after a while works (a model replica lost mid-answer)."""


class QuestionError(DocqaError):
    """A question (or a document id asked about) cannot be used as given."""
