"""The compute/accuracy frontier of notebook 11 (`repro.experiments.frontier`): its tasks, the parameter and training
FLOPs matching, the knob sweeps, and the frame arithmetic the claims are read from, each against a brute-force or
hand-computed version."""

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from repro.data.sudoku import board_string
from repro.experiments import frontier
from repro.experiments.frontier import (PARAMETER_TOLERANCE, Sizes, build, cifar10_task, fpsa_steps,
                                        frontier_members, iteration_gain, knob_label, knob_settings, learned,
                                        match_parameters, matched_batches, matched_families, mean_points, pareto,
                                        parity_task, patches, prefix_sums_task, slope_table, slopes, sudoku_task,
                                        sweep, tape_gain, trained_knob)
from repro.losses import IGNORE
from repro.models.families import FAMILIES
from repro.models.self_transformer import fixed_point_aux
from repro.nn import count_parameters
from repro.seeding import torch_seed
from repro.verdicts import interval

SIZES = Sizes(width=16, untied_width=8, heads=2, layers=2, depth=2, max_tape=4)


@pytest.fixture(scope="module")
def parity():
    return parity_task(6, 8, 16)


# -- patches --------------------------------------------------------------------------------------------------------

def test_patches_are_the_raster_order_blocks_of_every_channel():
    images = torch.randn(2, 3, 8, 12)
    size = 4
    cut = patches(images, size)
    assert cut.shape == (2, 2 * 3, 3 * size * size)
    for b in range(2):
        for row in range(8 // size):
            for column in range(12 // size):
                block = images[b, :, row * size:(row + 1) * size, column * size:(column + 1) * size]
                assert torch.equal(cut[b, row * (12 // size) + column], block.reshape(-1))


def test_patches_refuse_sizes_that_do_not_divide_the_image():
    for shape in ((1, 3, 8, 10), (1, 3, 10, 8)):
        with pytest.raises(ValueError, match="do not split into 4x4 patches"):
            patches(torch.zeros(shape), 4)


# -- the Pareto frontier --------------------------------------------------------------------------------------------

def dominated_by_brute_force(cost: list, value: list) -> list[bool]:
    return [any(cost[j] <= cost[i] and value[j] >= value[i] and (cost[j] < cost[i] or value[j] > value[i])
                for j in range(len(cost))) for i in range(len(cost))]


def test_pareto_agrees_with_the_quadratic_definition_ties_included():
    """Integer points on a small grid, so many share a cost, a score or both: a duplicate of a frontier point is on
    the frontier too (neither is strictly better), an equal cost with a lower score is dominated. Checked also
    against the sweep form: on the frontier iff the score beats every strictly cheaper point's and matches the best
    at its own cost."""
    generator = np.random.default_rng(0)
    for trial in range(30):
        n = int(generator.integers(1, 25))
        points = pd.DataFrame({"flops": generator.integers(1, 6, n).astype(float),
                               "score": generator.integers(0, 5, n) / 4},
                              index=generator.permutation(100)[:n] + 1000)
        on = pareto(points)
        assert on.name == "on frontier" and on.index.equals(points.index)
        expected = [not d for d in dominated_by_brute_force(points.flops.tolist(), points.score.tolist())]
        assert on.tolist() == expected
        c, v = points.flops.to_numpy(), points.score.to_numpy()
        sweep_form = [(v[i] > v[c < c[i]].max(initial=-np.inf)) and v[i] >= v[c <= c[i]].max() for i in range(n)]
        assert on.tolist() == sweep_form
    ties = pd.DataFrame({"flops": [1.0, 1.0, 1.0, 2.0, 2.0], "score": [0.5, 0.5, 0.2, 0.5, 0.7]})
    assert pareto(ties).tolist() == [True, True, False, False, True]


# -- matching -------------------------------------------------------------------------------------------------------

def test_matched_families_are_within_the_tolerance_of_the_fixed_loop(parity):
    shapes = matched_families(parity, SIZES)
    assert list(shapes) == list(FAMILIES)
    target = count_parameters(build(parity, "fixed loop", SIZES.of("fixed loop")))
    assert shapes["fixed loop"] == SIZES.of("fixed loop")
    for family, shape in shapes.items():
        assert abs(count_parameters(build(parity, family, shape)) - target) <= PARAMETER_TOLERANCE * target
        untied = family in frontier.UNTIED
        assert shape["width"] == (SIZES.untied_width if untied else SIZES.width)
        assert shape.get("layers") == (SIZES.layers if untied else None)


def test_the_matched_mlp_width_is_the_closest_one(parity):
    """The count is affine in the MLP width: the chosen width beats its two neighbours."""
    target = count_parameters(build(parity, "fixed loop", SIZES.of("fixed loop")))
    for family in ("transformer", "adatape", "act"):
        shape = match_parameters(parity, family, SIZES.of(family), target)
        miss = {h: abs(count_parameters(build(parity, family, shape | {"mlp_hidden": h})) - target)
                for h in (shape["mlp_hidden"] - 1, shape["mlp_hidden"], shape["mlp_hidden"] + 1)}
        assert miss[shape["mlp_hidden"]] == min(miss.values())


def test_an_unreachable_parameter_count_is_an_error(parity):
    with pytest.raises(ValueError, match="no MLP width brings"):
        match_parameters(parity, "transformer", SIZES.of("transformer"), 10)


def test_matched_batches_spend_the_reference_training_flops(parity):
    """batch = round(base_batch x reference FLOPs per example / own FLOPs per example), so the FLOPs of a step differ
    from the reference's by at most half an example's; the reference gets base_batch itself."""
    base = 8
    table = matched_batches(parity, matched_families(parity, SIZES), base, alpha=1.0)
    assert list(table.index) == list(FAMILIES)
    assert list(table.columns) == ["parameters", "train MFLOPs per example", "batch"]
    per_example = table["train MFLOPs per example"]
    reference = base * per_example["fixed loop"]
    assert table.loc["fixed loop", "batch"] == base
    for family in FAMILIES:
        assert per_example[family] > 0 and table.loc[family, "batch"] >= 1
        assert abs(table.loc[family, "batch"] * per_example[family] - reference) <= per_example[family]
        with torch_seed(0):
            model = build(parity, family, matched_families(parity, SIZES, [family])[family])
        assert table.loc[family, "parameters"] == count_parameters(model)


# -- knobs ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, max_tape", [(1, 1), (2, 4), (4, 2), (8, 8), (3, 6)])
def test_the_sweep_holds_the_trained_setting_and_labels_are_unique(depth, max_tape):
    sizes = Sizes(width=16, untied_width=8, heads=2, layers=2, depth=depth, max_tape=max_tape)
    for family in FAMILIES:
        knobs = knob_settings(family, depth, max_tape)
        assert trained_knob(family, sizes) in knobs
        labels = [knob_label(knob) for knob in knobs]
        assert len(set(labels)) == len(labels)
        assert all(set(knob) <= set(frontier.KNOBS[family]) for knob in knobs)
    assert {"iterations": 4 * depth} in knob_settings("recall loop", depth, max_tape)
    assert all(1 <= knob["tape"] <= max_tape for knob in knob_settings("adatape", depth, max_tape))
    assert all(1 <= knob["max_steps"] <= depth for knob in knob_settings("act", depth, max_tape))
    assert knob_label({}) == "as trained"
    assert knob_label({"tol": 1e-3, "max_iterations": 32}) == "tol 0.001, max_iterations 32"


# -- slopes and mean points -----------------------------------------------------------------------------------------

def linear_sweeps(seeds=(0, 1, 2)) -> tuple[pd.DataFrame, dict]:
    """score = a + b log2(flops) per (task, split, family, seed), b known; the transformer has one cost only."""
    generator = np.random.default_rng(1)
    rows, truth = [], {}
    for task, split, family, seed in itertools.product(("parity", "sudoku"), ("easy", "hard"),
                                                       ("fixed loop", "act", "transformer"), seeds):
        a, b = generator.normal(), generator.normal()
        truth[task, split, family, seed] = b
        costs = [1e5] if family == "transformer" else generator.uniform(1e4, 1e7, 5)
        for index, flops in enumerate(costs):
            rows.append({"task": task, "split": split, "family": family, "seed": seed, "knob": f"setting {index}",
                         "flops": flops, "score": a + b * np.log2(flops), "latency ms": generator.uniform(1, 2)})
    return pd.DataFrame(rows).sample(frac=1, random_state=0).reset_index(drop=True), truth


def test_slopes_recover_the_score_per_doubling():
    sweeps, truth = linear_sweeps()
    found = slopes(sweeps)
    assert len(found) == sum(1 for key in truth if key[2] != "transformer")
    assert "transformer" not in set(found.family)
    for row in found.itertuples():
        assert abs(row.slope - truth[row.task, row.split, row.family, row.seed]) < 1e-9


def test_slope_table_has_one_row_per_task_and_split():
    sweeps, _ = linear_sweeps()
    table = slope_table(sweeps)
    assert sorted(table.index) == sorted(itertools.product(("parity", "sudoku"), ("easy", "hard")))
    assert sorted(table.columns) == ["act", "fixed loop"]
    assert all(isinstance(text, str) and "[" in text for text in table.to_numpy().ravel())
    one_seed = slope_table(linear_sweeps(seeds=(0,))[0])
    assert all("[" not in text for text in one_seed.to_numpy().ravel())


def test_mean_points_average_over_seeds_with_their_interval_and_frontier():
    """Noisy scores over 3 seeds, one (family, knob) with a single seed (no interval: NaN)."""
    sweeps, _ = linear_sweeps()
    generator = np.random.default_rng(2)
    sweeps["score"] = sweeps.score + generator.normal(0, 0.1, len(sweeps))
    sweeps["flops"] = sweeps.groupby(["task", "split", "family", "knob"]).flops.transform("first")
    sweeps = sweeps[~((sweeps.family == "act") & (sweeps.knob == "setting 0") & (sweeps.seed > 0))]
    points = mean_points(sweeps)
    keys = ["task", "split", "family", "knob"]
    assert not points.duplicated(keys).any()
    assert len(points) == len(sweeps.drop_duplicates(keys))
    for point in points.itertuples():
        rows = sweeps[(sweeps.task == point.task) & (sweeps.split == point.split) & (sweeps.family == point.family)
                      & (sweeps.knob == point.knob)]
        assert point.seeds == len(rows)
        assert point.score == pytest.approx(rows.score.mean(), abs=1e-12)
        assert point.flops == pytest.approx(rows.flops.mean(), rel=1e-12)
        assert point.latency_ms == pytest.approx(rows["latency ms"].mean(), rel=1e-12)
        if len(rows) > 1:
            assert (point.low, point.high) == pytest.approx(interval(rows.score.tolist()), abs=1e-12)
        else:
            assert np.isnan(point.low) and np.isnan(point.high)
    for _, group in points.groupby(["task", "split"]):
        assert group["on frontier"].tolist() == pareto(group).tolist()


def test_frontier_members_take_the_best_affordable_frontier_point():
    generator = np.random.default_rng(3)
    rows = [{"task": task, "split": split, "family": f"family {i % 3}", "knob": f"knob {i}",
             "flops": float(generator.uniform(1e4, 1e7)), "score": float(generator.uniform())}
            for task, split in (("parity", "easy"), ("parity", "hard"), ("cifar10", "test")) for i in range(15)]
    points = pd.DataFrame(rows)
    points["on frontier"] = pd.concat([pareto(g) for _, g in points.groupby(["task", "split"], sort=False)])
    levels = 7
    members = frontier_members(points, levels)
    assert len(members) == 3 * levels
    for (task, split), group in points.groupby(["task", "split"], sort=False):
        chosen = members[(members.task == task) & (members.split == split)]
        budgets = np.geomspace(group.flops.min(), group.flops.max(), levels)
        assert np.allclose(chosen["budget MFLOPs"] * 1e6, budgets, rtol=1e-12)
        for budget, member in zip(budgets, chosen.itertuples()):
            best = None
            for point in group.itertuples():    # brute force over every point, frontier or not
                if point.flops <= budget * (1 + 1e-9) and (best is None or point.score > best.score):
                    best = point
            assert (member.family, member.knob, member.score) == (best.family, best.knob, best.score)
            assert member.MFLOPs * 1e6 == pytest.approx(best.flops, rel=1e-12)
            assert member.MFLOPs * 1e6 <= budget * (1 + 1e-9)
        assert chosen.score.is_monotonic_increasing
        assert chosen.score.iloc[-1] == group.score.max()


# -- the claims' quantities on hand-built sweeps --------------------------------------------------------------------

def hand_sweeps() -> pd.DataFrame:
    """Every (task, family, seed, knob, split) row `sweep` and `run_task` would produce for SIZES (depth 2, tape 4),
    filled with noise, then the rows the claims read set by hand. Seeds are shuffled so alignment by seed matters."""
    generator = np.random.default_rng(4)
    rows = []
    for task, family, seed in itertools.product(("parity", "sudoku"), FAMILIES, (2, 0, 1)):
        for knob in knob_settings(family, SIZES.depth, SIZES.max_tape):
            for split in ("easy", "hard"):
                row = {"task": task, "family": family, "seed": seed, "knob": knob_label(knob), **knob,
                       "split": split, "score": generator.uniform(), "flops": generator.uniform(1e4, 1e6),
                       "latency ms": 1.0}
                if family == "adatape":
                    row["tape tokens"] = generator.uniform(1, 4)
                if family == "fpsa":
                    row["fpsa steps"] = float(generator.integers(1, 10))
                    row["at cap"] = generator.uniform()
                rows.append(row)
    sweeps = pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)

    def put(task, family, knob, split, column, values):
        for seed, value in enumerate(values):
            where = ((sweeps.task == task) & (sweeps.family == family) & (sweeps.knob == knob_label(knob))
                     & (sweeps.split == split) & (sweeps.seed == seed))
            assert where.sum() == 1
            sweeps.loc[where, column] = value

    put("parity", "recall loop", {"iterations": 8}, "hard", "score", [0.9, 0.8, 0.7])
    put("parity", "recall loop", {"iterations": 2}, "hard", "score", [0.5, 0.6, 0.7])
    put("parity", "fixed loop", {"iterations": 8}, "hard", "score", [0.4, 0.9, 0.1])
    put("parity", "recall loop", {"iterations": 2}, "easy", "score", [0.3, 0.6, 0.9])
    put("parity", "adatape", {"tape": 4}, "hard", "tape tokens", [3.5, 2.0, 4.0])
    put("parity", "adatape", {"tape": 4}, "easy", "tape tokens", [2.5, 2.5, 1.0])
    put("parity", "act", {"max_steps": 2, "halting_eps": 0.01}, "easy", "score", [0.2, 0.4, 0.3])
    put("parity", "transformer", {}, "easy", "score", [1.0, 0.5, 0.0])
    put("parity", "fpsa", {"tol": 1e-3, "max_iterations": 32}, "easy", "fpsa steps", [3.0, 4.0, 5.0])
    put("parity", "fpsa", {"tol": 1e-3, "max_iterations": 32}, "easy", "at cap", [0.0, 0.1, 0.2])
    put("sudoku", "fpsa", {"tol": 1e-3, "max_iterations": 32}, "easy", "fpsa steps", [6.0, 2.0, 7.0])
    put("sudoku", "fpsa", {"tol": 1e-3, "max_iterations": 32}, "easy", "at cap", [0.3, 0.4, 0.5])
    return sweeps


def test_iteration_gain_per_seed():
    gains = iteration_gain(hand_sweeps(), "parity", SIZES)
    assert set(gains) == {"more_iterations_help", "beats_fixed_loop"}
    for part, expected in (("more_iterations_help", [0.4, 0.2, 0.0]), ("beats_fixed_loop", [0.5, -0.1, 0.6])):
        assert list(gains[part].index) == [0, 1, 2]
        assert np.allclose(gains[part].to_numpy(), expected, atol=1e-12)


def test_tape_gain_per_seed():
    gain = tape_gain(hand_sweeps(), "parity", SIZES)
    assert list(gain.index) == [0, 1, 2]
    assert np.allclose(gain.to_numpy(), [1.0, -0.5, 3.0])


def test_learned_is_the_mean_easy_score_at_the_trained_setting():
    sweeps = hand_sweeps()
    assert learned(sweeps, "parity", "recall loop", SIZES) == pytest.approx(0.6)
    assert learned(sweeps, "parity", "act", SIZES) == pytest.approx(0.3)
    assert learned(sweeps, "parity", "transformer", SIZES) == pytest.approx(0.5)


def test_fpsa_steps_per_task_and_seed_and_the_share_at_the_cap():
    steps, at_cap = fpsa_steps(hand_sweeps(), {"parity": "easy", "sudoku": "easy"}, SIZES)
    assert sorted(steps.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert list(steps.to_numpy()) == [3.0, 4.0, 5.0, 6.0, 2.0, 7.0]   # per task, seeds in order
    assert at_cap == pytest.approx(0.25)


def test_fpsa_steps_refuses_a_task_without_rows_for_its_split():
    """A task whose split has no FPSA rows (CIFAR-10 has "test", not "easy") is an error, never silently left out."""
    with pytest.raises(ValueError, match="no FPSA rows for parity, split 'test'"):
        fpsa_steps(hand_sweeps(), {"parity": "test", "sudoku": "easy"}, SIZES)


def test_sweep_reports_fpsa_refinement_steps_as_evaluations_minus_one(parity):
    """S6.frontier reads 'median refinement steps', the evaluations of f after the first (vanilla) one, as notebook
    10's S6.steps does; a solve counts as at the cap when it stopped unconverged."""
    with torch_seed(0):
        model = build(parity, "fpsa", matched_families(parity, SIZES, ["fpsa"])["fpsa"]).eval()
    knob = trained_knob("fpsa", SIZES)
    rows = sweep(model, parity, [knob], latency_batch=4, repeats=1)
    with torch.no_grad():
        for row in rows:
            model(parity.sets[row["split"]][0], **knob)
            evaluations = fixed_point_aux(model)["iterations"].float()
            assert row["fpsa steps"] == (evaluations - 1).median().item()
            assert row["at cap"] == 1 - fixed_point_aux(model)["converged"].float().mean().item()


def test_sweep_rows_report_the_flops_and_what_each_family_spent(parity):
    """`sweep` on untrained tiny models: one row per (knob, split); the loop's FLOPs grow with the iterations, the
    "tape tokens" column is the tokens read (at most the knob's "tape"), FPSA at cap 1 refines nothing and never
    converges."""
    shapes = matched_families(parity, SIZES, ["fixed loop", "adatape", "fpsa"])
    for family, shape in shapes.items():
        with torch_seed(0):
            model = build(parity, family, shape).eval()
        knobs = knob_settings(family, SIZES.depth, SIZES.max_tape)
        rows = sweep(model, parity, knobs, latency_batch=4, repeats=1)
        assert [(row["knob"], row["split"]) for row in rows] == [(knob_label(k), s) for k in knobs
                                                                 for s in ("easy", "hard")]
        for row in rows:
            assert 0 <= row["score"] <= 1 and row["flops"] > 0 and row["latency ms"] > 0
            if family == "adatape":
                assert 1 <= row["tape tokens"] <= row["tape"]
            if family == "fpsa":
                assert row["fpsa steps"] >= 0 and 0 <= row["at cap"] <= 1
                if row["max_iterations"] == 1:
                    assert row["at cap"] == 1 and row["fpsa steps"] == 0
        if family == "fixed loop":
            easy = [row["flops"] for row in rows if row["split"] == "easy"]
            assert easy == sorted(easy) and len(set(easy)) == len(easy)


# -- tasks ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sudoku():
    return sudoku_task(train_givens=(50, 70), easy_givens=65, hard_givens=50, size=8)


def test_sudoku_test_and_validation_boards_never_enter_training(sudoku):
    """The training pool is what the task's stream draws from (`SudokuStream.pool`). No held-out board occurs in it,
    nor any held-out solution: a training board revealed to 65 givens would otherwise be a test board up to the
    cells revealed. The held-out sets are the first 2 x size puzzles of each committed class, test before
    validation."""
    pool = sudoku.stream(0, 4).pool
    pools = [frontier.load_or_generate(frontier.DATA_DIR, c, frontier.COMMITTED[c]) for c in frontier.TRAIN_CLASSES]
    assert len(pool) == sum(len(p) - 16 for p in pools)
    training_boards = {board_string(p) for p in pool.puzzles}
    training_solutions = {board_string(s) for s in pool.solutions}
    held_out_solutions = {}
    for name in ("validation", "easy", "hard"):
        tokens, targets = sudoku.sets[name]
        assert tokens.shape == targets.shape == (16, 81)
        solutions = torch.where(targets == IGNORE, tokens, targets + 1)
        assert not {board_string(t) for t in tokens} & training_boards
        held_out_solutions[name] = {board_string(s) for s in solutions}
        assert len(held_out_solutions[name]) == 16
        assert not held_out_solutions[name] & training_solutions
    assert held_out_solutions["easy"] == held_out_solutions["hard"]
    assert not held_out_solutions["easy"] & held_out_solutions["validation"]
    first = {board_string(s) for p in pools for s in p.solutions[:8]}
    second = {board_string(s) for p in pools for s in p.solutions[8:16]}
    assert held_out_solutions["easy"] == first and held_out_solutions["validation"] == second


def test_sudoku_splits_have_their_givens_and_targets_only_on_the_blanks(sudoku):
    """Easy boards 65 givens, hard 50, validation the middle of the training range (60); the targets are IGNORE
    exactly on the givens, and a training batch follows the same rule with givens in the training range."""
    for name, givens in (("easy", 65), ("hard", 50), ("validation", 60)):
        tokens, targets = sudoku.sets[name]
        assert ((tokens != 0).sum(dim=1) == givens).all()
        assert torch.equal(targets == IGNORE, tokens != 0)
        assert ((targets[targets != IGNORE] >= 0) & (targets[targets != IGNORE] <= 8)).all()
    tokens, targets = sudoku.stream(0, 32).batch_at(0)
    assert torch.equal(targets == IGNORE, tokens != 0)
    givens = (tokens != 0).sum(dim=1)
    assert ((givens >= 50) & (givens <= 70)).all()
    assert sudoku.splits == ["easy", "hard"]


def test_parity_and_prefix_sums_hard_splits_are_longer_and_validation_is_its_own_set():
    for task in (parity_task(6, 8, 16), prefix_sums_task(6, 10, 16)):
        (validation, _), (easy, easy_targets), (hard, _) = (task.sets[s] for s in ("validation", "easy", "hard"))
        assert validation.shape == easy.shape and len(easy) == len(hard) == 16
        assert hard.shape[1] > easy.shape[1]
        assert not torch.equal(validation, easy)
        batch, targets = task.stream(0, 8).batch_at(0)
        assert batch.shape == (8, easy.shape[1]) and targets.shape[0] == 8
        assert task.splits == ["easy", "hard"]
        assert task.score(torch.nn.functional.one_hot(easy_targets.clamp(min=0), 2).float(), easy_targets) == 1.0


@pytest.mark.needs_data
def test_cifar10_sets_are_every_held_out_image_as_patches():
    task = cifar10_task(8)
    assert task.splits == ["test"]
    for name in ("validation", "test"):
        images, labels = task.sets[name]
        assert images.shape == (1000, 16, 192) and labels.shape == (1000,)
        assert torch.equal(labels.bincount(minlength=10), torch.full((10,), 100))
    batch, labels = task.stream(0, 4).batch_at(0)
    assert batch.shape == (4, 16, 192) and labels.shape == (4,)
    assert len(task.options["structure"]) == 2 and len(task.options["structure"][0]) == 16


# -- end to end -----------------------------------------------------------------------------------------------------

def test_run_task_end_to_end_on_tiny_parity(parity):
    settings = SimpleNamespace(steps={"parity": 4}, batch={"parity": 8}, lr=3e-3, alpha=1.0, evaluations=2, seeds=[0],
                               latency_batch=4, latency_repeats=1)
    study = SimpleNamespace(checkpoint=lambda *key: None, device=torch.device("cpu"))
    families = ("fixed loop", "adatape", "fpsa")
    frames = frontier.run_task(parity, settings, SIZES, study, families)
    assert set(frames) == {"budget", "sweeps", "curves", "runs"}
    budget, sweeps, curves, runs = (frames[k] for k in ("budget", "sweeps", "curves", "runs"))
    assert {"family", "task", "parameters", "train MFLOPs per example", "batch"} <= set(budget.columns)
    assert budget.family.tolist() == list(families) and (budget.task == "parity").all()
    assert {"task", "family", "seed", "knob", "split", "score", "flops", "latency ms", "tape tokens", "fpsa steps",
            "at cap"} <= set(sweeps.columns)
    keys = ["family", "seed", "knob", "split"]
    assert not sweeps.duplicated(keys).any()
    expected = {(f, 0, knob_label(k), s) for f in families for k in knob_settings(f, SIZES.depth, SIZES.max_tape)
                for s in ("easy", "hard")}
    assert set(map(tuple, sweeps[keys].to_numpy().tolist())) == expected and len(sweeps) == len(expected)
    assert {"task", "family", "seed", "step", "score"} <= set(curves.columns)
    assert sorted(curves[curves.family == "fixed loop"].step) == [2, 4]
    assert {"task", "family", "seed", "train seconds", "train MFLOPs per example, trained"} <= set(runs.columns)
    assert len(runs) == len(families)
