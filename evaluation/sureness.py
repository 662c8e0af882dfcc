"""The sureness check's threshold (qa/sureness.py), chosen on model replies to questions of the
calibration half: the replies the other checks let stand, right (an answerable question's gold
answer held) or wrong (any other answer). The threshold that withdraws the most wrong replies
beyond the right ones it withdraws (the lowest of equals) is the one the report half is scored with."""

from __future__ import annotations

from evaluation.metrics import contained

GRID = [round(0.05 * i, 2) for i in range(20)]  # 0 (no check) to 0.95
SURE = "calibrated, with the sureness check"  # the lever's rule, scored beside the calibrated one


def choose(records: list[dict], rule: str) -> dict:
    """The threshold for `records` (as evaluation/answers.py `_ask` writes them, answered under
    `rule` without the check), with what it withdraws there."""
    kept = [r for r in records if r["outcome"][rule] == "answered" and r.get("sureness") is not None]
    right = [
        r["sureness"] for r in kept if r["group"] == "answerable" and contained(r["answer"][rule], r["gold"])
    ]
    wrong = [
        r["sureness"]
        for r in kept
        if not (r["group"] == "answerable" and contained(r["answer"][rule], r["gold"]))
    ]

    def net(t: float) -> int:
        return sum(s < t for s in wrong) - sum(s < t for s in right)

    threshold = max(GRID, key=lambda t: (net(t), -t))
    return {
        "threshold": threshold,
        "replies": len(records),
        "right": len(right),
        "wrong": len(wrong),
        "right_withdrawn": sum(s < threshold for s in right),
        "wrong_withdrawn": sum(s < threshold for s in wrong),
    }
