"""The training budget a competence gate would need, projected from the learning curves a run measured.

Where a `cpu` budget cannot pass a gate, the claim stays inconclusive and says what would decide it (issue 23): how
many steps each seed's curve projects to reach the gate's threshold, and what that costs at the run's measured speed.

The projection is deliberately simple and says so: over the last evaluations of each seed (by default the later half,
at least `MIN_POINTS`), the metric is fitted by least squares as a straight line in log(step), the usual shape of a
learning curve over a short horizon, and the line is followed to the threshold. It is an extrapolation, not a bound
either way: a curve that bends towards a plateau reaches the threshold later than its line, or never; a curve still
speeding up (a short run fitted early in training, or one leaving a plateau) reaches it sooner. It says which budget
to try next, and that run decides. A curve that does not move towards the threshold over the fitted window projects
nothing, and neither does one whose crossing lies beyond `MAX_FACTOR` times the measured run.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

MIN_POINTS = 3
"""Evaluations a fit needs: two points always fit a line, so they would test nothing."""
MAX_FACTOR = 100.0
"""A crossing beyond this multiple of the measured steps is not projected: so far out, the shape of the curve, not
its measured points, decides where the line goes."""


@dataclass(frozen=True)
class SeedProjection:
    seed: int
    steps: int | None
    """The step at which this seed's curve reached the threshold (measured) or projects to reach it; None where it
    does not project (see `reason`)."""
    measured: bool
    """True where the run itself reached the threshold, at `steps` (an evaluated step)."""
    reason: str


@dataclass(frozen=True)
class Projection:
    metric: str
    threshold: float
    at_least: bool
    seeds: tuple[SeedProjection, ...]
    measured_steps: int
    seconds_per_step: float
    seeds_needed: int
    """How many seeds the gate needs past the threshold."""
    mean_of: int | None = None
    """Where the gate reads a mean over seeds: how many seeds' mean curve was projected (its one entry in `seeds`)."""

    @property
    def steps(self) -> int | None:
        """Steps at which `seeds_needed` seeds are past the threshold: the `seeds_needed`-th smallest seed's, None
        where fewer seeds project."""
        projected = sorted(seed.steps for seed in self.seeds if seed.steps is not None)
        return projected[self.seeds_needed - 1] if len(projected) >= self.seeds_needed else None

    @property
    def minutes_per_run(self) -> float | None:
        """At the measured speed, on the device that measured it."""
        return None if self.steps is None else self.steps * self.seconds_per_step / 60

    @property
    def measured(self) -> bool:
        """True where `seeds_needed` seeds reached the threshold in the run itself: nothing is projected."""
        return sum(seed.measured for seed in self.seeds) >= self.seeds_needed

    def describe(self) -> str:
        """One sentence for a claim's evidence and a notebook's narration."""
        direction = ">=" if self.at_least else "<="
        if self.mean_of is not None:
            which, labels = f"as the mean of {self.mean_of} seeds", ["mean"]
        else:
            which = (f"on the curve of seed {self.seeds[0].seed}" if len(self.seeds) == 1 else
                     "on every seed" if self.seeds_needed == len(self.seeds) else
                     f"on {self.seeds_needed} of {len(self.seeds)} seeds")
            labels = [f"seed {s.seed}" for s in self.seeds]
        what = f"{self.metric} {direction} {self.threshold:g} {which}"
        per_seed = "; ".join(f"{label}: {s.steps if s.steps is not None else 'none'} ({s.reason})"
                             for label, s in zip(labels, self.seeds))
        if self.steps is None:
            return f"no budget projects {what} ({per_seed})"
        if self.measured:
            return f"{what} was reached in the run, by step {self.steps:,} of {self.measured_steps:,} ({per_seed})"
        return (f"{what} projects to about {self.steps:,} steps, {self.steps / self.measured_steps:.1f}x the "
                f"{self.measured_steps:,} measured, about {self.minutes_per_run:.0f} minutes per run at the measured "
                f"{self.seconds_per_step:.3g} s per step (a log-linear extrapolation, not a bound; {per_seed})")


def project_seed(seed: int, steps: Sequence[int], values: Sequence[float], threshold: float, at_least: bool,
                 window: float = 0.5, first_reach: bool = False) -> SeedProjection:
    """Where one seed's curve (`values` at evaluated `steps`) reaches `threshold`: where its last evaluation meets it,
    the evaluated step from which every evaluation did (a gate that reads the end of a run: an early spike that fell
    back is not a pass); with `first_reach`, the first evaluated step that met it (a gate that reads the steps to a
    criterion); else the log-linear projection of the later `window` of its evaluations."""
    check_curve(steps, values, window)
    meets = [value >= threshold if at_least else value <= threshold for value in values]
    if first_reach and any(meets):
        return SeedProjection(seed, int(steps[meets.index(True)]), True, "reached in the run")
    if meets[-1]:
        since = len(meets) - 1
        while since > 0 and meets[since - 1]:
            since -= 1
        return SeedProjection(seed, int(steps[since]), True, "reached in the run")
    if len(steps) < MIN_POINTS:
        return SeedProjection(seed, None, False, f"{len(steps)} evaluations, a fit needs {MIN_POINTS}")
    count = max(MIN_POINTS, math.ceil(window * len(steps)))
    xs, ys = [math.log(step) for step in steps[-count:]], list(values[-count:])
    x_mean, y_mean = sum(xs) / count, sum(ys) / count
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / sum((x - x_mean) ** 2 for x in xs)
    if slope == 0 or (slope > 0) != at_least:
        return SeedProjection(seed, None, False, f"not moving towards {threshold:g} over its last {count} evaluations")
    log_crossing = x_mean + (threshold - y_mean) / slope
    if log_crossing > math.log(MAX_FACTOR * steps[-1]):
        return SeedProjection(seed, None, False, f"crossing beyond {MAX_FACTOR:g}x the measured steps")
    return SeedProjection(seed, max(math.ceil(math.exp(log_crossing)), steps[-1] + 1), False,
                          f"projected from its last {count} evaluations")


def project(metric: str, curves: dict[int, tuple[Sequence[int], Sequence[float]]], threshold: float, at_least: bool,
            seconds_per_step: float, window: float = 0.5, seeds_needed: int | None = None,
            first_reach: bool = False) -> Projection:
    """The steps and time `metric` needs to reach `threshold` on `seeds_needed` (default: every) seed of `curves`
    (seed -> (evaluated steps, values)), at the measured `seconds_per_step` of one run; `first_reach` as in
    `project_seed`."""
    if not curves:
        raise ValueError(f"a projection of {metric} needs the curve of at least one seed, got none")
    seeds_needed = len(curves) if seeds_needed is None else seeds_needed
    if not 1 <= seeds_needed <= len(curves):
        raise ValueError(f"seeds_needed must be between 1 and the {len(curves)} seeds of the curves, got {seeds_needed}")
    if not seconds_per_step > 0:
        raise ValueError(f"seconds_per_step must be a positive measured time, got {seconds_per_step!r}")
    seeds = tuple(project_seed(seed, steps, values, threshold, at_least, window, first_reach)
                  for seed, (steps, values) in sorted(curves.items()))
    measured = {int(steps[-1]) for steps, _ in curves.values()}
    if len(measured) != 1:
        raise ValueError(f"the seeds' curves of {metric} end at different steps {sorted(measured)}: a projection "
                         "compares runs of one budget")
    return Projection(metric, threshold, at_least, seeds, measured.pop(), seconds_per_step, seeds_needed)


def project_histories(metric: str, histories: Mapping[int, Sequence[Mapping]], column: str, threshold: float,
                      at_least: bool, seconds_per_step: float) -> Projection:
    """`project` of training histories (seed -> the rows `repro.train.train` records at each evaluation, with "step"
    and `column`): what a gate on `column` would need where the runs fail it, at the runs' measured seconds per
    step."""
    return project(metric, {seed: ([row["step"] for row in rows], [row[column] for row in rows])
                            for seed, rows in histories.items()}, threshold, at_least, seconds_per_step)


def project_mean(metric: str, curves: dict[int, tuple[Sequence[int], Sequence[float]]], threshold: float,
                 at_least: bool, seconds_per_step: float, window: float = 0.5) -> Projection:
    """As `project`, for a gate on the mean over seeds: the mean of the seeds' curves, which must be evaluated at the
    same steps, is projected as one curve."""
    if not curves:
        raise ValueError(f"a projection of {metric} needs the curve of at least one seed, got none")
    steps = {tuple(steps) for steps, _ in curves.values()}
    if len(steps) != 1:
        raise ValueError(f"the mean of {metric} over seeds needs every seed evaluated at the same steps, got "
                         f"{sorted(steps)}")
    for steps_, values in curves.values():
        check_curve(steps_, values, window)
    common = list(steps.pop())
    mean = [sum(values[i] for _, values in curves.values()) / len(curves) for i in range(len(common))]
    one = project(metric, {0: (common, mean)}, threshold, at_least, seconds_per_step, window)
    return replace(one, mean_of=len(curves))


def check_curve(steps: Sequence[int], values: Sequence[float], window: float) -> None:
    if len(steps) != len(values):
        raise ValueError(f"a learning curve needs one value per evaluated step, got {len(steps)} steps and "
                         f"{len(values)} values")
    if not steps:
        raise ValueError("a learning curve needs at least one evaluation, got none")
    if any(step < 1 for step in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"evaluated steps must be positive and increasing, got {list(steps)}")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"a learning curve's values must be finite, got {list(values)}")
    if not 0 < window <= 1:
        raise ValueError(f"window is the fraction of the evaluations fitted, in (0, 1], got {window!r}")
