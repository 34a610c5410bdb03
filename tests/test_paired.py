"""Paired designs: per-seed differences read off a tidy frame, and what FPSA spent."""

import pandas as pd
import pytest
import torch

from repro.experiments.paired import describe, difference, runs, solver_spend, spend
from repro.models.self_transformer import FixedPointAttentionConfig, swap_self_attention
from repro.models.vit import ViT, ViTConfig


def design() -> pd.DataFrame:
    return runs({"vanilla": lambda seed: {"score": 10.0 + seed}, "FPSA": lambda seed: {"score": 12.0 + 2 * seed}},
                seeds=[2, 0, 1])


def test_runs_makes_one_row_per_seed_and_arm():
    frame = design()
    assert len(frame) == 6 and list(frame.columns) == ["variant", "seed", "score"]


def test_difference_pairs_by_seed_in_seed_order():
    delta = difference(design(), "score", "FPSA", "vanilla")
    assert list(delta.index) == [0, 1, 2] and list(delta) == [2.0, 3.0, 4.0]
    assert describe(delta) == "Δ +3.00 ± 1.00 (n = 3)"


def test_difference_refuses_unpaired_or_repeated_seeds_and_unknown_arms():
    frame = design()
    with pytest.raises(ValueError, match="unpaired seeds"):
        difference(frame.drop(index=0), "score", "FPSA", "vanilla")
    with pytest.raises(ValueError, match="more than once"):
        difference(pd.concat([frame, frame.iloc[:1]]), "score", "FPSA", "vanilla")
    with pytest.raises(ValueError, match=r"no rows with variant = 'SELF'; the variants are \['FPSA', 'vanilla'\]"):
        difference(frame, "score", "SELF", "vanilla")


def test_solver_spend_reads_the_fpsa_layers_and_is_empty_without_them():
    config = ViTConfig(image_size=8, patch=4, channels=1, classes=2, width=8, heads=2, layers=2, mlp_hidden=16)
    vanilla = ViT(config)
    assert solver_spend(vanilla) == {}
    model = swap_self_attention(ViT(config), FixedPointAttentionConfig(max_iterations=1)).eval()
    with torch.no_grad():
        model(torch.randn(3, 1, 8, 8))
    spend = solver_spend(model)
    assert spend["evaluations"] == 1 and spend["median evaluations"] == 1 and 0 <= spend["at cap"] <= 1


def test_spend_counts_a_solve_converged_at_its_last_evaluation_as_not_at_the_cap():
    solver = {"iterations": torch.tensor([[2, 2], [1, 2]]), "converged": torch.tensor([[True, False], [True, False]])}
    assert spend(solver) == {"evaluations": 1.75, "median evaluations": 2.0, "at cap": 0.5}
