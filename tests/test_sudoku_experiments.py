"""The sudoku pieces of the looped study (`repro.experiments.sudoku`): the split, the roles, the bucket metrics."""

import math

import pandas as pd
import pytest
import torch

from repro.experiments import sudoku
from repro.experiments.sudoku import AS_GENERATED, COMMITTED, SudokuSettings

VALUES = dict(seeds=[0], steps=2, batch=4, lr=3e-3, width=8, heads=2, iterations=2, test_factor=2, alpha=1.0,
              puzzles=COMMITTED, test_pool=500, train_givens=(44, 60), test_givens=[52, 36, AS_GENERATED], eval_size=3,
              validation_size=4, stability_size=4, jacobian_size=2, power_iterations=2)


@pytest.fixture(scope="module")
def split():
    return sudoku.split(SudokuSettings.of(**VALUES))


def test_roles_name_the_axes_outside_training():
    assert sudoku.role("easy", 52, 44) == "in-distribution"
    assert sudoku.role("easy", 36, 44) == "fewer givens"
    assert sudoku.role("expert", 52, 44) == "harder class"
    assert sudoku.role("expert", AS_GENERATED, 44) == "both harder"
    assert sudoku.givens_label(52) == "52 givens" and sudoku.givens_label(AS_GENERATED) == AS_GENERATED


def test_the_split_keeps_test_puzzles_out_of_training(split):
    assert len(split.buckets) == 4 * 3 and all(len(p) == 3 for p in split.tests.values())
    seen = {sudoku.board_string(p) for p in split.train_pool.puzzles}
    assert not any(sudoku.board_string(p) in seen for pool in split.test_pools.values() for p in pool.puzzles)
    assert (split.tests["simple", "52 givens"].givens() == 52).all()
    assert split.roles["intermediate", "36 givens"] == "both harder"


def test_test_levels_above_the_training_range_are_refused():
    with pytest.raises(ValueError, match="above the training range"):
        sudoku.split(SudokuSettings.of(**(VALUES | {"test_givens": [70]})))


def test_bucket_scores_are_perfect_for_the_solution_and_pool_blank_cells(split):
    scores = sudoku.BucketScores(split, torch.device("cpu"))
    perfect = torch.nn.functional.one_hot(scores.batch.targets.clamp(min=0), 9).float()
    rows = scores.rows(perfect)
    assert len(rows) == len(split.buckets)
    assert all(r["exact_match"] == 1.0 and r["blank_accuracy"] == 1.0 for r in rows)
    wrong = perfect.roll(1, dims=-1)   # every blank gets the wrong digit
    assert all(r["exact_match"] == 0.0 and r["blank_accuracy"] == 0.0 for r in scores.rows(wrong))
    assert sudoku.board_scores(perfect, scores.batch) == {"exact_match": 1.0, "blank_accuracy": 1.0}


def test_the_stability_edit_reveals_one_more_given(split):
    settings = SudokuSettings.of(**VALUES)
    puzzles = sudoku.stability_puzzles(split, settings)
    assert len(puzzles) == 4 and (puzzles.givens() == 52).all()
    tokens, edited, _ = sudoku.one_more_given(puzzles, 1, 0, torch.device("cpu"))
    assert ((edited != tokens).sum(dim=1) == 1).all() and ((tokens == 0) | (edited == tokens)).all()


def test_classical_reference_solves_every_bucket(split):
    buckets = sudoku.classical_reference(split)
    assert list(buckets.index) == split.buckets and (buckets.solved == 1.0).all()
    assert list(buckets.columns[:3]) == ["role", "puzzles", "blanks (mean)"]


def test_the_recall_learns_budget_projects_each_model_to_the_gates_seeds_or_says_why_not():
    """Hand-made curves: seed 1 reaches exact match 0.5 in the run (from step 300), seed 0 is log-linear (0.1 + 0.05 ln s
    reaches 0.5 at e^8, about 2,981 steps), seed 2 is flat; the gate needs 2 seeds, so seed 0 decides."""
    steps = [100, 200, 300, 400]
    rise = [0.1 + 0.05 * math.log(s) for s in steps]
    curves = pd.DataFrame([{"model": "a", "seed": seed, "step": s, "exact_match": v}
                           for seed, values in ((0, rise), (1, [0.2, 0.3, 0.5, 0.6]), (2, [0.0] * 4))
                           for s, v in zip(steps, values)])
    walls = pd.DataFrame({"model": ["a"] * 3, "train_seconds": [40.0, 40.0, 40.0]})
    text = sudoku.recall_learns_budget(curves, walls, ["a"], 400)
    assert text.startswith("a exact match >= 0.5 on 2 of 3 seeds projects to about 2,981 steps, 7.5x the 400")
    assert "about 5 minutes per run" in text and "seed 1: 300 (reached in the run)" in text
    assert sudoku.recall_learns_budget(curves[curves.seed == 0], walls, ["a"], 400) == \
        "the gate needs 2 seeds, the run has 1"
