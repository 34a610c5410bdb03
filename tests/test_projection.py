"""The projected budget of a gate, on curves whose answer is known."""

import math

import pytest

from repro.projection import MAX_FACTOR, project, project_histories, project_mean, project_seed

STEPS = [100, 200, 300, 400, 500, 600, 700, 800]


def log_linear(intercept: float, slope: float) -> list[float]:
    return [intercept + slope * math.log(step) for step in STEPS]


def test_an_exact_log_linear_curve_projects_to_its_crossing():
    values = log_linear(0.1, 0.08)  # 0.61 at step 800; 0.85 at exp(0.75 / 0.08) = 11,750 steps
    projected = project_seed(0, STEPS, values, 0.85, at_least=True)
    assert not projected.measured and projected.steps == math.ceil(math.exp(0.75 / 0.08))


def test_a_falling_metric_with_an_upper_threshold_projects_the_same_way():
    values = log_linear(3.0, -0.3)  # a loss: reaches 0.5 at exp(2.5 / 0.3)
    assert project_seed(0, STEPS, values, 0.5, at_least=False).steps == math.ceil(math.exp(2.5 / 0.3))


def test_only_the_later_half_is_fitted():
    early_noise = [0.9, 0.0, 0.8, 0.0]  # the first half would tilt a whole-curve fit; a spike that fell back is no pass
    values = early_noise + log_linear(0.1, 0.08)[4:]
    assert project_seed(0, STEPS, values, 0.85, at_least=True).steps == math.ceil(math.exp(0.75 / 0.08))


def test_a_curve_that_ends_above_the_threshold_gives_the_step_from_which_it_stayed_there():
    values = [0.5, 0.7, 0.9, 0.8, 0.95, 0.96, 0.97, 0.97]
    projected = project_seed(0, STEPS, values, 0.9, at_least=True)
    assert projected.measured and projected.steps == 500
    assert project_seed(0, STEPS, [0.95] * 8, 0.9, at_least=True).steps == 100


def test_a_gate_on_steps_to_criterion_counts_the_first_evaluation_that_met_it():
    spike = [0.5, 0.7, 0.92, 0.8, 0.85, 0.86, 0.87, 0.88]  # met the criterion at 300, then fell back
    first = project_seed(0, STEPS, spike, 0.9, at_least=True, first_reach=True)
    assert first.measured and first.steps == 300
    assert not project_seed(0, STEPS, spike, 0.9, at_least=True).measured
    later = [0.5, 0.7, 0.9, 0.8, 0.95, 0.96, 0.97, 0.97]
    assert project_seed(0, STEPS, later, 0.9, at_least=True, first_reach=True).steps == 300


def test_a_gate_every_seed_reached_in_the_run_is_described_as_measured_not_projected():
    curves = {0: (STEPS, [0.5, 0.7, 0.9, 0.8, 0.95, 0.96, 0.97, 0.97]), 1: (STEPS, [0.95] * 8)}
    reached = project("accuracy", curves, 0.9, True, seconds_per_step=0.06)
    assert reached.measured and reached.steps == 500
    assert reached.describe().startswith("accuracy >= 0.9 on every seed was reached in the run, by step 500 of 800")
    assert "projects" not in reached.describe()
    mixed = project("accuracy", curves | {2: (STEPS, log_linear(0.1, 0.08))}, 0.85, True, seconds_per_step=0.06)
    assert not mixed.measured and "projects to about" in mixed.describe()


@pytest.mark.parametrize("values, reason", [
    ([0.6] * 8, "not moving towards"),
    (log_linear(0.9, -0.05), "not moving towards"),
    (log_linear(0.5, 1e-4), f"beyond {MAX_FACTOR:g}x"),
    (log_linear(0.1, 0.08)[-2:], "2 evaluations, a fit needs 3"),
])
def test_a_flat_falling_far_or_short_curve_projects_nothing_and_says_why(values, reason):
    projected = project_seed(3, STEPS[-len(values):], values, 0.85, at_least=True)
    assert projected.steps is None and reason in projected.reason


def test_the_gate_needs_every_seed_so_the_slowest_decides_and_a_flat_one_blocks():
    curves = {0: (STEPS, log_linear(0.1, 0.08)), 1: (STEPS, log_linear(0.2, 0.08))}
    projection = project("accuracy", curves, 0.85, True, seconds_per_step=0.06)
    assert projection.steps == math.ceil(math.exp(0.75 / 0.08))  # seed 0 is the slower
    assert projection.minutes_per_run == pytest.approx(projection.steps * 0.06 / 60)
    assert "projects to about 11,7" in projection.describe() and "not a bound" in projection.describe()
    blocked = project("accuracy", curves | {2: (STEPS, [0.6] * 8)}, 0.85, True, seconds_per_step=0.06)
    assert blocked.steps is None and blocked.minutes_per_run is None
    assert blocked.describe().startswith("no budget projects accuracy >= 0.85 on every seed")



def test_a_gate_on_some_seeds_is_decided_by_the_slowest_of_the_seeds_it_needs():
    curves = {0: (STEPS, log_linear(0.1, 0.08)), 1: (STEPS, log_linear(0.2, 0.08)), 2: (STEPS, [0.6] * 8)}
    two = project("exact match", curves, 0.85, True, seconds_per_step=0.06, seeds_needed=2)
    assert two.steps == math.ceil(math.exp(0.75 / 0.08))   # seeds 0 and 1 project; seed 2 does not block
    assert "exact match >= 0.85 on 2 of 3 seeds projects to about" in two.describe()
    one = project("exact match", curves, 0.85, True, seconds_per_step=0.06, seeds_needed=1)
    assert one.steps == math.ceil(math.exp(0.65 / 0.08))   # the faster seed 1 alone
    with pytest.raises(ValueError, match="seeds_needed must be between 1 and the 3 seeds"):
        project("exact match", curves, 0.85, True, seconds_per_step=0.06, seeds_needed=4)


@pytest.mark.parametrize("steps, values, message", [
    ([], [], "at least one evaluation"),
    ([100, 200, 300], [0.1, 0.2], "one value per evaluated step"),
    ([100, 300, 200], [0.1, 0.2, 0.3], "positive and increasing"),
    ([0, 100, 200], [0.1, 0.2, 0.3], "positive and increasing"),
    ([100, 200, 300], [0.1, float("nan"), 0.3], "must be finite"),
])
def test_a_bad_curve_names_what_is_wrong(steps, values, message):
    with pytest.raises(ValueError, match=message):
        project_seed(0, steps, values, 0.85, at_least=True)


def test_bad_projection_inputs_name_what_is_wrong():
    with pytest.raises(ValueError, match="at least one seed"):
        project("accuracy", {}, 0.85, True, 0.1)
    with pytest.raises(ValueError, match="positive measured time"):
        project("accuracy", {0: (STEPS, log_linear(0.1, 0.08))}, 0.85, True, 0.0)
    with pytest.raises(ValueError, match=r"end at different steps \[700, 800\]"):
        project("accuracy", {0: (STEPS, log_linear(0.1, 0.08)), 1: (STEPS[:-1], log_linear(0.1, 0.08)[:-1])},
                0.85, True, 0.1)
    with pytest.raises(ValueError, match="window"):
        project_seed(0, STEPS, log_linear(0.1, 0.08), 0.85, True, window=0)


def test_a_gate_on_the_mean_over_seeds_projects_the_mean_curve():
    """Two seeds 0.05 either side of one log-linear curve: their mean is that curve, so it crosses where it does, though
    neither seed alone would."""
    centre = log_linear(0.1, 0.08)
    curves = {0: (STEPS, [v + 0.05 for v in centre]), 1: (STEPS, [v - 0.05 for v in centre])}
    mean = project_mean("top-1", curves, 0.85, at_least=True, seconds_per_step=0.5)
    assert mean.steps == math.ceil(math.exp(0.75 / 0.08)) and mean.mean_of == 2
    assert mean.describe().startswith("top-1 >= 0.85 as the mean of 2 seeds projects to about 11,7")
    assert "; mean: 11" in mean.describe()
    with pytest.raises(ValueError, match="same steps"):
        project_mean("top-1", {0: (STEPS, centre), 1: (STEPS[:-1], centre[:-1])}, 0.85, True, 0.5)
    with pytest.raises(ValueError, match="at least one seed"):
        project_mean("top-1", {}, 0.85, True, 0.5)


def test_training_histories_project_as_their_curves_and_one_seed_is_named_not_called_every_seed():
    histories = {seed: [{"step": step, "lr": 0.0, "validation F1": value} for step, value in
                        zip(STEPS, log_linear(intercept, 0.08))] for seed, intercept in ((0, 0.1), (1, 0.2))}
    from_histories = project_histories("F1", histories, "validation F1", 0.85, True, seconds_per_step=0.06)
    assert from_histories == project("F1", {0: (STEPS, log_linear(0.1, 0.08)), 1: (STEPS, log_linear(0.2, 0.08))},
                                     0.85, True, seconds_per_step=0.06)
    one = project_histories("F1", {4: histories[0]}, "validation F1", 0.85, True, seconds_per_step=0.06)
    assert one.describe().startswith("F1 >= 0.85 on the curve of seed 4 projects to about")
