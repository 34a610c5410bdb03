"""How many replicates would decide a part whose interval straddles its margin: the budget an inconclusive verdict
names when its gates passed and only the spread over seeds left it open.

`repro.verdicts` decides a part by the paired t interval of its replicates, mean ± t(n-1) s / √n. Holding the measured
mean and standard deviation fixed, the smallest n whose interval clears the margin is the replicate count that would
decide the part, towards the side of the margin its mean lies on. Like `repro.projection` it is an extrapolation, not
a promise: the next seeds move the mean and the spread, and the run that has them decides.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from repro.verdicts import CONFIDENCE, part_verdict

MAX_REPLICATES = 1000
"""Beyond this many replicates the mean is so close to the margin that no affordable run decides it."""


@dataclass(frozen=True)
class ReplicateBudget:
    replicates: int | None
    """The smallest replicate count whose interval clears the margin; None where none up to `MAX_REPLICATES` does."""
    towards: str
    """The verdict the part would get there: the rule's verdict of its measured mean alone."""

    def describe(self, replicate: str = "seed") -> str:
        if self.replicates is None:
            return (f"no run of up to {MAX_REPLICATES:,} {replicate}s decides it at the measured mean and spread "
                    f"(the mean is too close to the margin)")
        return (f"about {self.replicates} {replicate}s would decide it ({self.towards}) at the measured mean and "
                f"spread (an extrapolation, not a promise)")


def replicates_to_decide(values: Sequence[float], direction: str, margin: float,
                         comparisons: int = 1) -> ReplicateBudget:
    """The replicate budget of one part, at its rule's confidence (`CONFIDENCE`, Bonferroni over `comparisons`)."""
    sample = np.asarray(values, dtype=float)
    if sample.size < 2 or not np.isfinite(sample).all():
        raise ValueError(f"a replicate budget needs at least 2 finite values, got {sample.tolist()}")
    mean, spread = float(sample.mean()), float(sample.std(ddof=1))
    towards = part_verdict(direction, margin, mean, mean)
    gap = abs(mean - margin)
    if gap == 0:
        return ReplicateBudget(None, towards)
    counts = np.arange(2, MAX_REPLICATES + 1)
    confidence = 1 - (1 - CONFIDENCE) / comparisons
    half_widths = stats.t.ppf(1 - (1 - confidence) / 2, counts - 1) * spread / np.sqrt(counts)
    deciding = counts[half_widths < gap]
    return ReplicateBudget(int(deciding[0]) if deciding.size else None, towards)


def straddling_budget(part: dict) -> ReplicateBudget | None:
    """`replicates_to_decide` for a decided part of a result entry whose interval straddles its margin (its two ends
    would get different verdicts); None for any other part."""
    if part["interval"] is None:
        return None
    low, high = part["interval"]
    direction, margin = part["direction"], part["margin"]
    if part_verdict(direction, margin, low, low) == part_verdict(direction, margin, high, high):
        return None
    return replicates_to_decide(part["values"], direction, margin, part["comparisons"])
