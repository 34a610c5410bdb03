"""The replicate budget of a straddling part, against the verdict rule itself on samples of the measured mean and
spread."""

import numpy as np
import pytest

from repro.replicates import MAX_REPLICATES, replicates_to_decide, straddling_budget
from repro.verdicts import CONFIDENCE, interval, part_verdict


def sample(mean: float, spread: float, count: int) -> np.ndarray:
    """`count` values with exactly this mean and standard deviation (ddof 1)."""
    z = np.linspace(-1, 1, count)
    return mean + spread * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize("mean, direction, margin, comparisons, towards", [
    (0.009, "at least", 0.0, 1, "reproduced"),      # A4-like: a small gain, wide spread
    (-0.2, "at most", -0.5, 1, "not reproduced"),    # L4-like: a correlation on the wrong side of its margin
    (0.06, "at least", 0.1, 3, "not reproduced"),    # below the margin, Bonferroni over three comparisons
])
def test_the_budget_is_the_first_count_whose_interval_decides(mean, direction, margin, comparisons, towards):
    spread = 0.012 if abs(mean) < 0.05 else 0.05
    budget = replicates_to_decide(sample(mean, spread, 6), direction, margin, comparisons)
    assert budget.towards == towards and budget.replicates is not None
    confidence = 1 - (1 - CONFIDENCE) / comparisons
    for count, decided in ((budget.replicates, True), (budget.replicates - 1, False)):
        verdict = part_verdict(direction, margin, *interval(sample(mean, spread, count), confidence))
        assert (verdict == towards) is decided and (verdict == "inconclusive") is not decided
    assert budget.describe().startswith(f"about {budget.replicates} seeds would decide it ({towards})")


def test_a_mean_on_the_margin_or_too_close_to_it_gets_no_budget():
    assert replicates_to_decide([-1.0, 1.0, 0.0], "at least", 0.0).replicates is None
    far = replicates_to_decide(sample(1e-4, 1.0, 5), "at least", 0.0)
    assert far.replicates is None and f"up to {MAX_REPLICATES:,} seeds" in far.describe()
    assert replicates_to_decide([0.3, 0.3], "at least", 0.1).replicates == 2  # no spread: any two decide


def test_too_few_or_non_finite_values_are_refused():
    for values in ([0.1], [0.1, float("nan")]):
        with pytest.raises(ValueError, match="at least 2 finite values"):
            replicates_to_decide(values, "at least", 0.0)


def test_only_a_straddling_part_gets_a_budget():
    def part(low, high, values):
        return {"interval": [low, high], "direction": "at least", "margin": 0.0, "values": values, "comparisons": 1}
    straddles = straddling_budget(part(-0.01, 0.03, [0.0, 0.01, 0.02]))
    assert straddles is not None and straddles.towards == "reproduced"
    assert straddling_budget(part(0.01, 0.03, [0.01, 0.02, 0.03])) is None  # decided: reproduced
    assert straddling_budget(part(-0.03, -0.01, [-0.03, -0.02, -0.01])) is None  # decided: not reproduced
    assert straddling_budget({"interval": None, "values": None}) is None  # too few seeds, or no values
