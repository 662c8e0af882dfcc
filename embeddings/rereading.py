"""Documents an index holds as an older reader read them. Each format's reader has a number
(readers.READERS); the manifest records the numbers its documents were read with, and the ids
kept unread since (in a folder that could not be listed when a reader changed). A build reads
such documents again, once, as it finds them as they were."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from embeddings.readers import READERS, Pending, extension


class Rereading:
    def __init__(self, manifest: Mapping) -> None:
        read_by = manifest.get("readers", {})  # none recorded: every format's first reader
        self.outdated = {ext for ext, n in READERS.items() if read_by.get(ext, 1) != n} if manifest else set()
        self.unread = set(manifest.get("unread", ()))
        self.recorded = manifest.get("readers") == READERS  # nothing for a build to write down

    def due(self, item: Pending) -> bool:
        """Whether `item`, as it was indexed, was read otherwise than it would be now."""
        return item.id in self.unread or (bool(self.outdated) and extension(item.path) in self.outdated)

    def left_unread(self, kept: Collection[str], sources: Callable[[], Mapping[str, str]]) -> list[str]:
        """Of the documents `kept` without being found (their folder could not be listed), those an
        older reader read: to be read again once found. `sources` gives each id's source."""
        if not kept:
            return []
        where = sources()
        return sorted(i for i in kept if i in self.unread or extension(where.get(i, "")) in self.outdated)
