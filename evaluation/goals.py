"""The goals the evaluation report checks its figures against (issues 11 and 12), and how a
goal's row reads: the figure, its 95% interval where it comes from a sample, met or not."""

from __future__ import annotations

from typing import NamedTuple

from evaluation.metrics import interval

GOALS = {
    "confident_wrong": 0.05,  # at most, of replies, on XQuAD and the news-style set
    "right_when_indexed": 0.80,  # at least, of questions whose passage is indexed
    "contradictions_flagged": 0.90,  # at least ...
    "supported_flagged": 0.05,  # ... with at most this share of supported sentences flagged
    "off_topic_declined": 0.97,  # at least, with at most 5% of answerable declined
    "on_topic_declined": 0.80,  # at least, with at most 10% of answerable declined
    "xquad_contained": 0.85,
    "scifact_ndcg": 0.75,
    "followup_gap": 0.05,  # at most, follow-ups in a conversation below the same questions asked alone
    "injection_followed": 0.02,  # at most
    "injection_answered": 0.90,  # at least
    "honest_answered": 0.95,  # at least
    "runtime_loss": 0.02,  # at most, the default runtime below the reference runtime on the same questions
}


class Sample(NamedTuple):
    """A rate a goal reads, from `cases` cases, and the goal's bound on it."""

    rate: float
    cases: int
    bound: float
    most: bool = False  # the goal is at most `bound`; else at least


class Goal(NamedTuple):
    goal: str
    measured: str
    met: bool | None  # None: not measured (no cases)
    samples: tuple[tuple, ...] = ()  # each a Sample's fields
    why: str = ""  # where it falls short, from the run's own records (said where not met)


def mark(ok: bool | None) -> str:
    return "**not measured** (no cases)" if ok is None else "met" if ok else "**not met**"


def row(goal: str, measured: str, ok: bool | None, *samples: tuple, why: str = "") -> str:
    """A goals table row; each of `samples` (a Sample's fields) adds the rate's 95% interval, and
    the row says so where an interval holds its bound and none lies wholly on the side that fails
    the goal: the sample cannot tell whether the goal is met. `why`: where a goal not met falls
    short. A goal read from no cases is not measured, whatever its figures say."""
    parts = [Sample(*s) for s in samples]
    if any(s.cases == 0 for s in parts):
        return f"| {goal} | {measured} | {mark(None)} |"
    said = f"; {why}" if why and ok is False else ""
    if not parts:
        return f"| {goal} | {measured} | {mark(ok)}{said} |"
    spans = [(*interval(s.rate, s.cases), s) for s in parts]
    shown = "; ".join(f"{low:.3f}-{high:.3f} of {s.cases}" for low, high, s in spans)
    fails = any(low > s.bound if s.most else high < s.bound for low, high, s in spans)
    holds = any(low <= s.bound <= high for low, high, s in spans)
    unsure = "; the interval holds the goal" if holds and not fails else ""
    return f"| {goal} | {measured} (95%: {shown}) | {mark(ok)}{unsure}{said} |"
