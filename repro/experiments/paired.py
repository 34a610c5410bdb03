"""Paired comparisons: a variant against its baseline, per seed, on the same stream and the same evaluation set.

Every SELF-Transformer notebook (GLUE, SQuAD, images, vision-language) trains a vanilla and an FPSA model from the
same initialisation seed on the same batches and scores both on the same examples, so the seed is the unit of
replication and the verdict module reads one difference per seed. `runs` builds the tidy frame of such a design,
`difference` reads the per-seed differences off it, and `solver_spend` (`spend`, for solves gathered over several
forwards) records what FPSA spent on an evaluation.
"""

from typing import Callable, Iterable

import pandas as pd
import torch
from torch import nn

from repro.models.self_transformer import fixed_point_aux, fixed_point_layers


def runs(arms: dict[str, Callable[[int], dict]], seeds: Iterable[int], arm: str = "variant") -> pd.DataFrame:
    """One row per (seed, arm): `arms[name](seed)` returns the row's measurements. Seeds run in the outer loop, so an
    interrupted design has finished whole pairs."""
    return pd.DataFrame([{arm: name, "seed": seed, **measure(seed)} for seed in seeds for name, measure in arms.items()])


def difference(frame: pd.DataFrame, value: str, variant: str, baseline: str, arm: str = "variant") -> pd.Series:
    """`value` of `variant` minus that of `baseline`, per seed (in seed order). Both arms must have every seed once:
    a missing or repeated seed would pair unrelated runs."""
    sides = {}
    for name in (variant, baseline):
        rows = frame[frame[arm] == name]
        if rows.empty:
            raise ValueError(f"no rows with {arm} = {name!r}; the {arm}s are {sorted(frame[arm].unique())}")
        if rows["seed"].duplicated().any():
            raise ValueError(f"{arm} {name!r} has a seed more than once: {sorted(rows['seed'])}")
        sides[name] = rows.set_index("seed")[value].sort_index()
    if list(sides[variant].index) != list(sides[baseline].index):
        raise ValueError(f"unpaired seeds: {variant!r} has {list(sides[variant].index)}, "
                         f"{baseline!r} has {list(sides[baseline].index)}")
    return (sides[variant] - sides[baseline]).rename(f"{value}: {variant} - {baseline}")


def describe(delta: pd.Series, digits: int = 2) -> str:
    """'Δ +mean ± sd (n = seeds)' of a per-seed difference, for a claim's evidence."""
    spread = f"{delta.std(ddof=1):.{digits}f}" if len(delta) > 1 else "n/a"
    return f"Δ {delta.mean():+.{digits}f} ± {spread} (n = {len(delta)})"


def solver_spend(model: nn.Module) -> dict:
    """What the FPSA layers of `model` spent on its last forward, over (layer, example) solves: the mean and median
    number of evaluations and the share that stopped at the cap without reaching the tolerance. Empty for a model
    without FPSA layers."""
    if not fixed_point_layers(model):
        return {}
    return spend(fixed_point_aux(model))


def spend(solver: dict[str, torch.Tensor]) -> dict:
    """`solver_spend` of solves gathered over several forwards: "iterations" and "converged" as (layers, examples)
    tensors, e.g. an evaluation set scored in batches (`repro.experiments.fine_tuning.predict`). A solve that reached
    the tolerance at its last allowed evaluation converged: it does not count as stopped at the cap."""
    evaluations = solver["iterations"].float()
    return {"evaluations": evaluations.mean().item(), "median evaluations": evaluations.median().item(),
            "at cap": 1 - solver["converged"].float().mean().item()}
