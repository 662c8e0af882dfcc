"""Which documents a question is asked of: chosen ones, or those under a folder, dated within a
range, of some file types. Search filters on it inside each segment, dense and BM25 alike, before
anything is ranked, so a scoped question gets its full top k from inside the scope."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from embeddings.errors import QuestionError

_JSONL_LINE = re.compile(r"(?<=\.jsonl):\d+$", re.IGNORECASE)  # a .jsonl document's source is FILE:LINE


@dataclass(frozen=True)
class Scope:
    """An empty Scope is the whole index; each field set narrows it (all must hold)."""

    doc_ids: frozenset[str] = frozenset()  # these documents only (ids as `docqa documents` lists them)
    under: str | None = None  # a folder inside the indexed one: "reports/2024"
    since: date | None = None  # dated on or after (documents without a date are left out)
    until: date | None = None  # dated on or before
    formats: frozenset[str] = frozenset()  # file types: "pdf", "docx"

    def __post_init__(self) -> None:
        for name in ("doc_ids", "formats"):
            if isinstance(getattr(self, name), str):
                raise QuestionError(
                    f"{name} must be a set of them, not one text: {name}={{{getattr(self, name)!r}}}"
                )
        object.__setattr__(self, "since", _date(self.since, "since"))  # also one given as text
        object.__setattr__(self, "until", _date(self.until, "until"))
        object.__setattr__(self, "doc_ids", frozenset(self.doc_ids))
        under = posixpath.normpath((self.under or ".").replace("\\", "/").strip()).strip("/")
        object.__setattr__(self, "under", None if under in ("", ".") else under)  # "." is the whole folder
        object.__setattr__(self, "formats", frozenset(f.strip().lower().lstrip(".") for f in self.formats))
        if self.since and self.until and self.since > self.until:
            raise QuestionError(f"the date range is empty: {self.since} is after {self.until}")

    @classmethod
    def parse(
        cls,
        doc_ids: Iterable[str] = (),
        under: str | None = None,
        since: str | None = None,
        until: str | None = None,
        formats: Iterable[str] = (),
        named: tuple[str, str] = ("since", "until"),
    ) -> Scope:
        """A scope from what a user typed; dates are YYYY-MM-DD, empty values are left out.
        `named`: what the user calls the two dates (the page's fields, the options), for errors."""
        return cls(
            frozenset(d for d in doc_ids if d), under, _date(since, named[0]), _date(until, named[1]),
            frozenset(f for f in formats if f.strip()),
        )  # fmt: skip

    def __bool__(self) -> bool:
        return bool(self.doc_ids or self.under or self.since or self.until or self.formats)

    def admits(self, doc_id: str, source: str, dated: str | None) -> bool:
        """Whether the document with this id, source path and date (YYYY-MM-DD) is in the scope."""
        if self.doc_ids and doc_id not in self.doc_ids:
            return False
        path = _JSONL_LINE.sub("", source)
        if self.under and not (path == self.under or path.startswith(self.under + "/")):
            return False
        if self.formats and path.rpartition(".")[2].lower() not in self.formats:
            return False
        if self.since or self.until:
            if not dated:
                return False
            if (self.since and dated < self.since.isoformat()) or (
                self.until and dated > self.until.isoformat()
            ):
                return False
        return True

    def describe(self) -> str:
        """The scope as a user would say it: "documents under notes/ dated 2024-01-01 or later"."""
        parts = []
        if self.doc_ids:
            parts.append(", ".join(sorted(self.doc_ids)))
        if self.under:
            parts.append(f"under {self.under}/")
        if self.since and self.until:
            parts.append(f"dated {self.since} to {self.until}")
        elif self.since or self.until:
            parts.append(f"dated {self.since} or later" if self.since else f"dated {self.until} or earlier")
        if self.formats:
            parts.append("of type " + ", ".join(sorted(self.formats)))
        return "documents " + " ".join(parts) if parts else "the whole index"


def _date(value: str | date | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    value = value.strip()
    if not value:
        return None
    try:
        if len(value) > 10 and value[10] not in "T ":  # a date, or the date of a date and time
            raise ValueError(value)
        return date.fromisoformat(value[:10])
    except ValueError:
        raise QuestionError(f"{name} must be a date like 2024-05-31, not {value!r}") from None


@dataclass(frozen=True)
class Selection:
    """A scope applied to an opened index: for each segment, which of its rows are in it."""

    allowed: list[np.ndarray]  # one boolean mask per segment, over its rows; deleted rows are False
    documents: int  # live documents in the scope
    unknown: list[str] = field(default_factory=list)  # asked-for ids that are not in the index

    @property
    def empty(self) -> bool:
        return self.documents == 0
