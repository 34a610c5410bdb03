"""The compute/accuracy frontier of notebook 11: every adaptive family on the same tasks under one measure of compute.

1. `TASKS`: parity (vector length), prefix sums (bits), sudoku (givens) and CIFAR-10 patches, each with a training
   stream, a validation set from the training distribution and test splits along its difficulty axis ("easy" at the
   training difficulty, "hard" beyond it; CIFAR-10 has one split, "test").
2. `match_parameters`: every family's MLP width chosen so its parameter count is within 10% of the fixed loop's.
3. `matched_batches`: training FLOPs matched by the batch size. Every family takes the same number of optimizer steps
   on the same seeded stream, with a batch inversely proportional to the FLOPs of one training example (forward and
   backward, counted by `repro.cost.count_flops`), so the FLOPs of training are the fixed loop's.
4. `train_family`: one (task, family, seed) run by `repro.train.train`.
5. `sweep`: the trained model at every test-time setting of its knob, on every split: accuracy, the FLOPs actually
   spent per example (counted on the dispatched operations, so a halted position or an unread tape slot costs
   nothing) and the measured latency.
6. `pareto`, `frontier_members`, `slopes`: the frontier per task and split, who sits on it at each compute level, and
   the change of accuracy per doubling of test-time FLOPs (who keeps improving, who overthinks).
"""

import math
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from repro.cost import count_flops, time_forward
from repro.data import parity, prefix_sums
from repro.data.images import (AUGMENTATIONS, CIFAR10_RESPLIT, AugmentedBatches, Preprocessing, cifar10,
                               stratified_split)
from repro.data.sudoku import (CELL_BOX, CELL_COLUMN, CELL_ROW, SudokuStream, concatenate, encode, load_or_generate,
                               with_givens)
from repro.experiments.looped import token_scores
from repro.experiments.paired import solver_spend
from repro.experiments.sudoku import COMMITTED, DATA_DIR, TRAIN_CLASSES
from repro.losses import progressive_loss
from repro.models.families import FAMILIES, KNOBS, UNTIED, AdaptiveFamily, FamilyConfig, family_loss
from repro.nn import count_parameters
from repro.seeding import derive, rng, torch_seed
from repro.train import TrainConfig, train
from repro.verdicts import interval

PARAMETER_TOLERANCE = 0.10
"""Largest relative difference of a family's parameter count from the fixed loop's."""


@dataclass
class Task:
    """One task of the frontier: what its models read and predict, and its data."""

    name: str
    metric: str
    options: dict
    """The `FamilyConfig` options of the task (inputs, outputs, readout, positions)."""
    stream: Callable[[int, int], object]
    """(seed, batch size) -> a training stream with `batch_at(step)`."""
    sets: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """"validation" and the test splits: (inputs, targets)."""
    score: Callable[[torch.Tensor, torch.Tensor], float]
    levels: dict[str, str]
    """Each set's difficulty, in words."""

    @property
    def splits(self) -> list[str]:
        return [name for name in self.sets if name != "validation"]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item()


def exact_match(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return token_scores(logits, targets)["exact_match"]


def blank_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy over the blank cells (targets IGNORE on the givens)."""
    return token_scores(logits, targets)["bit_accuracy"]


def parity_task(length: int, hard_length: int, size: int) -> Task:
    """Parity of the +1 entries of vectors over {-1, 0, +1} (AdaTape's generator), one label per vector; hard: longer
    vectors than any trained on."""
    sets = {"validation": parity.evaluation_set("adatape", length, size, seed=1),
            "easy": parity.evaluation_set("adatape", length, size, seed=0),
            "hard": parity.evaluation_set("adatape", hard_length, size, seed=0)}
    return Task("parity", "accuracy", dict(vocab=3, outputs=2, readout="pooled"),
                lambda seed, batch: parity.ParityStream("adatape", length, batch, seed), sets, accuracy,
                {"validation": f"length {length}", "easy": f"length {length}", "hard": f"length {hard_length}"})


def prefix_sums_task(length: int, hard_length: int, size: int) -> Task:
    """The running parity of a bit string at every position (notebook 02's task), whole-string exact match; hard:
    longer strings than any trained on."""
    sets = {"validation": prefix_sums.generate(size, length, rng("frontier-prefix-sums-validation", length)),
            "easy": prefix_sums.evaluation_set(length, size, seed=0),
            "hard": prefix_sums.evaluation_set(hard_length, size, seed=0)}
    return Task("prefix sums", "exact match", dict(vocab=prefix_sums.VOCAB, outputs=2, readout="token"),
                lambda seed, batch: prefix_sums.PrefixSumStream(length, batch, seed), sets, exact_match,
                {"validation": f"{length} bits", "easy": f"{length} bits", "hard": f"{hard_length} bits"})


def sudoku_task(train_givens: tuple[int, int], easy_givens: int, hard_givens: int, size: int) -> Task:
    """Fill the blank cells of notebook 03's committed puzzles of the two easier classes, blank-cell accuracy; training
    and easy puzzles have many givens, hard ones fewer. The first `size` puzzles of each class are held out of
    training for the test splits, the next `size` for validation (so each set has `size` puzzles of each class)."""
    pools = [load_or_generate(DATA_DIR, c, COMMITTED[c]) for c in TRAIN_CLASSES]
    test, validation, train_pool = (concatenate([pool.subset(part) for pool in pools]) for part in
                                    (slice(0, size), slice(size, 2 * size), slice(2 * size, None)))

    def bucket(puzzles, givens: int, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        batch = encode(with_givens(puzzles, givens, rng("frontier-sudoku", stream, givens)))
        return batch.tokens, batch.blank_targets()

    sets = {"validation": bucket(validation, sum(train_givens) // 2, "validation"),
            "easy": bucket(test, easy_givens, "test"), "hard": bucket(test, hard_givens, "test")}
    structure = (CELL_ROW.tolist(), CELL_COLUMN.tolist(), CELL_BOX.tolist())
    return Task("sudoku", "blank-cell accuracy", dict(vocab=10, outputs=9, readout="token", structure=structure),
                lambda seed, batch: SudokuStream(train_pool, train_givens, batch, seed), sets, blank_accuracy,
                {"validation": f"{sum(train_givens) // 2} givens", "easy": f"{easy_givens} givens",
                 "hard": f"{hard_givens} givens"})


def patches(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H / size) (W / size), C size size): non-overlapping patches in raster order."""
    batch, channels, height, width = images.shape
    if height % size or width % size:
        raise ValueError(f"{height}x{width} images do not split into {size}x{size} patches")
    grid = images.unfold(2, size, size).unfold(3, size, size)          # (B, C, H/s, W/s, s, s)
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(batch, -1, channels * size * size)


@dataclass
class PatchStream:
    """An image stream whose batches are cut into patches."""

    images: AugmentedBatches
    size: int

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, labels = self.images.batch_at(step)
        return patches(pixels, self.size), labels


def cifar10_task(patch: int) -> Task:
    """CIFAR-10 top-1 on the fixed re-split (notebook 07's; every validation and test image, 100 per class), images as
    a grid of patches. One test split: no difficulty axis is labelled in CIFAR-10."""
    split = stratified_split(cifar10(), CIFAR10_RESPLIT)
    prep = Preprocessing.fit(split["train"])
    side = split["train"].images.shape[-1] // patch
    structure = ([i // side for i in range(side * side)], [i % side for i in range(side * side)])

    def fixed(images) -> tuple[torch.Tensor, torch.Tensor]:
        return patches(prep(images.images), patch), images.labels

    sets = {"validation": fixed(split["validation"]), "test": fixed(split["test"])}
    options = dict(patch_dim=3 * patch * patch, outputs=len(split["train"].classes), readout="pooled",
                   structure=structure)
    return Task("cifar10", "top-1", options,
                lambda seed, batch: PatchStream(AugmentedBatches(split["train"], batch, seed, AUGMENTATIONS["cifar10"],
                                                                 prep), patch), sets, accuracy,
                {"validation": "validation images", "test": "test images"})


# -- matching -------------------------------------------------------------------------------------------------------

def build(task: Task, family: str, sizes: dict) -> AdaptiveFamily:
    return AdaptiveFamily(FamilyConfig(family=family, **task.options, **sizes))


def match_parameters(task: Task, family: str, sizes: dict, target: int) -> dict:
    """`sizes` with the MLP width that brings `family`'s parameter count closest to `target`. The count is affine in
    the MLP width, so two builds give the slope; an error when no width lands within `PARAMETER_TOLERANCE`."""
    counts = [count_parameters(build(task, family, sizes | {"mlp_hidden": h})) for h in (1, 2)]
    hidden = max(1, round(1 + (target - counts[0]) / (counts[1] - counts[0])))
    matched = sizes | {"mlp_hidden": hidden}
    found = count_parameters(build(task, family, matched))
    if abs(found - target) > PARAMETER_TOLERANCE * target:
        raise ValueError(f"{task.name}, {family}: no MLP width brings {found} parameters within "
                         f"{PARAMETER_TOLERANCE:.0%} of {target}; change its width or layers")
    return matched


def loss_of(model: AdaptiveFamily, alpha: float) -> Callable:
    """The training loss: a recall loop's is the progressive loss of Bansal et al. (2022), as in notebooks 02-04;
    every other family's is its task loss at its trained depth, plus its compute penalty."""
    if model.config.family == "recall loop":
        return progressive_loss(model.config.depth, alpha, lambda logits, targets: family_loss(model, logits, {},
                                                                                              targets))

    def loss_fn(m, batch):
        inputs, targets = batch
        logits, aux = m(inputs)
        return family_loss(m, logits, aux, targets)

    return loss_fn


def training_flops_per_example(model: AdaptiveFamily, loss_fn: Callable, batch, draws: int = 8) -> float:
    """FLOPs of one training step's forward and backward on `batch`, per example, averaged over `draws` draws of the
    loss's random iteration counts (the progressive loss draws them; every other loss spends the same each time)."""
    total = 0
    for draw in range(draws):
        with torch_seed(draw):
            total += count_flops(lambda: loss_fn(model, batch).backward())
    model.zero_grad(set_to_none=True)
    return total / draws / len(batch[0])


@dataclass(frozen=True)
class Sizes:
    """The shapes every task's families are built with: the tied families at `width`, the untied ones at
    `untied_width` with `layers` blocks; every MLP width is then matched to the fixed loop's parameter count."""

    width: int
    untied_width: int
    heads: int
    layers: int
    depth: int
    max_tape: int

    def of(self, family: str) -> dict:
        shape = dict(width=self.untied_width, layers=self.layers) if family in UNTIED else dict(width=self.width)
        return shape | dict(heads=self.heads, depth=self.depth, max_tape=self.max_tape, mlp_hidden=2 * shape["width"])


def matched_families(task: Task, sizes: Sizes, families=FAMILIES) -> dict[str, dict]:
    """Every family's `FamilyConfig` sizes, parameter-matched to the fixed loop at `sizes.width`, MLP 2 x width."""
    target = count_parameters(build(task, "fixed loop", sizes.of("fixed loop")))
    return {family: match_parameters(task, family, sizes.of(family), target) for family in families}


# DEVIATION: [frontier-matching] training FLOPs matched through the batch at initialisation, not the steps.
def matched_batches(task: Task, shapes: dict[str, dict], base_batch: int, alpha: float,
                    reference: str = "fixed loop") -> pd.DataFrame:
    """Per family: its training FLOPs per example at initialisation (seed 0's weights, the first batch of stream 0)
    and the batch that spends as many FLOPs per step as `base_batch` examples of `reference`."""
    rows = {}
    for family, shape in shapes.items():
        with torch_seed(0):
            model = build(task, family, shape).train()
        rows[family] = {"parameters": count_parameters(model),
                        "train MFLOPs per example": training_flops_per_example(
                            model, loss_of(model, alpha), task.stream(0, base_batch).batch_at(0)) / 1e6}
    table = pd.DataFrame(rows).T
    per_example = table["train MFLOPs per example"]
    table["batch"] = (base_batch * per_example[reference] / per_example).round().clip(lower=1).astype(int)
    table["parameters"] = table["parameters"].astype(int)
    return table


def train_family(task: Task, family: str, shape: dict, batch: int, seed: int, settings, study) -> tuple:
    """One run: the model (initial weights under `derive("frontier-model", task, family, seed)`), its learning curve
    on the validation set (the trained setting) and its wall seconds."""
    with torch_seed(derive("frontier-model", task.name, family, seed)):
        model = build(task, family, shape)
    inputs, targets = (t.to(study.device) for t in task.sets["validation"])
    steps = settings.steps[task.name]
    config = TrainConfig(steps=steps, lr=settings.lr, warmup_steps=steps // 10, eval_every=steps // settings.evaluations,
                         checkpoint_every=steps // settings.evaluations, seed=seed)
    result = train(model, loss_of(model, settings.alpha), task.stream(seed, batch), config,
                   evaluate=lambda m: {"score": task.score(m(inputs)[0], targets)},
                   checkpoint=study.checkpoint(task.name, family, seed), device=study.device,
                   description=f"{task.name}, {family}, seed {seed}")
    return model, result.history, result.wall_seconds


# -- evaluation -----------------------------------------------------------------------------------------------------

def knob_settings(family: str, depth: int, max_tape: int) -> list[dict]:
    """The test-time settings swept for `family` (the trained setting among them): loops from depth / 4 to 4 depth
    iterations; ACT's cap from depth / 4 to depth at its trained threshold, then looser thresholds; FPSA's tolerance
    from loose to tight at the pre-registered cap, then smaller caps (cap 1 is vanilla attention); AdaTape's tape
    from one slot to all."""
    if family in ("fixed loop", "recall loop"):
        return [{"iterations": t} for t in sorted({max(1, depth // 4), max(1, depth // 2), depth, 2 * depth, 4 * depth})]
    if family == "act":
        caps = sorted({max(1, depth // 4), max(1, depth // 2), depth})
        return [{"max_steps": cap, "halting_eps": 0.01} for cap in caps] + [
            {"max_steps": depth, "halting_eps": eps} for eps in (0.1, 0.3)]
    if family == "fpsa":
        return [{"tol": tol, "max_iterations": 32} for tol in (1e-1, 1e-2, 1e-3)] + [
            {"tol": 1e-3, "max_iterations": cap} for cap in (1, 4)]
    if family == "adatape":
        return [{"tape": t} for t in sorted({1, max(1, max_tape // 4), max(1, max_tape // 2), max_tape})]
    return [{}]


def knob_label(knob: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in knob.items()) or "as trained"


def sweep(model: AdaptiveFamily, task: Task, knobs: list[dict], latency_batch: int, repeats: int) -> list[dict]:
    """One row per (knob setting, split): the task metric, FLOPs spent per example (counted over the whole split),
    median latency of one `latency_batch`-example forward, and what the family spent (ACT steps per position, tape
    tokens read, FPSA's median refinement steps and the share of its solves stopped at the cap unconverged)."""
    rows, device = [], next(model.parameters()).device
    with torch.no_grad():
        for knob in knobs:
            for split in task.splits:
                inputs, targets = (t.to(device) for t in task.sets[split])
                out = {}
                flops = count_flops(lambda: out.update(zip(("logits", "aux"), model(inputs, **knob))))
                row = {"knob": knob_label(knob), **knob, "split": split, "score": task.score(out["logits"], targets),
                       "flops": flops / len(inputs)}
                for key, column in (("steps", "ACT steps"), ("tape", "tape tokens")):
                    if key in out["aux"]:
                        row[column] = out["aux"][key].float().mean().item()
                spent = solver_spend(model)
                if spent:  # refinement steps are the evaluations after the first (vanilla) one, as in notebook 10
                    row["fpsa steps"], row["at cap"] = spent["median evaluations"] - 1, spent["at cap"]
                small = inputs[:latency_batch]
                row["latency ms"] = 1e3 * time_forward(lambda: model(small, **knob), device, repeats).median
                rows.append(row)
    return rows


def pareto(points: pd.DataFrame, cost: str = "flops", value: str = "score") -> pd.Series:
    """True for the points no other point dominates: none costs at most as much and scores at least as well,
    strictly better in one of the two."""
    c, v = points[cost].to_numpy(), points[value].to_numpy()
    dominated = [bool(np.any((c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i])))) for i in range(len(points))]
    return pd.Series(~np.array(dominated, dtype=bool), index=points.index, name="on frontier")


def mean_points(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per (task, split, family, knob): the mean score and FLOPs over seeds, the score's 95% interval, and whether
    the point is on its (task, split) frontier."""
    keys = ["task", "split", "family", "knob"]
    grouped = sweeps.groupby(keys, sort=False)
    points = grouped.agg(score=("score", "mean"), flops=("flops", "mean"), latency_ms=("latency ms", "mean"),
                         seeds=("seed", "nunique")).reset_index()
    bounds = grouped.score.apply(lambda s: interval(s.to_list()) if len(s) > 1 else (math.nan, math.nan))
    points["low"], points["high"] = zip(*bounds.to_list())
    points["on frontier"] = pd.concat([pareto(group) for _, group in points.groupby(["task", "split"], sort=False)])
    return points


def frontier_members(points: pd.DataFrame, levels: int) -> pd.DataFrame:
    """At each of `levels` compute budgets per (task, split), log-spaced from the cheapest to the costliest point:
    the frontier point with the best score within the budget."""
    rows = []
    for (task, split), group in points.groupby(["task", "split"], sort=False):
        frontier = group[group["on frontier"]]
        for budget in np.geomspace(group.flops.min(), group.flops.max(), levels):
            affordable = frontier[frontier.flops <= budget * (1 + 1e-9)]
            best = affordable.loc[affordable.score.idxmax()]
            rows.append({"task": task, "split": split, "budget MFLOPs": budget / 1e6, "family": best.family,
                         "knob": best.knob, "score": best.score, "MFLOPs": best.flops / 1e6})
    return pd.DataFrame(rows)


def slopes(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per (task, split, family, seed) with at least two distinct costs: the least-squares slope of score against
    log2 FLOPs over the knob settings, the change of score per doubling of test-time compute."""
    rows = []
    for (task, split, family, seed), group in sweeps.groupby(["task", "split", "family", "seed"], sort=False):
        x = np.log2(group.flops.to_numpy())
        if np.ptp(x) > 1e-9:
            rows.append({"task": task, "split": split, "family": family, "seed": seed,
                         "slope": float(np.polyfit(x, group.score.to_numpy(), 1)[0])})
    return pd.DataFrame(rows)


def trained_knob(family: str, sizes: Sizes) -> dict:
    """The test-time setting a family was trained at, among its swept ones."""
    return {"fixed loop": {"iterations": sizes.depth}, "recall loop": {"iterations": sizes.depth},
            "act": {"max_steps": sizes.depth, "halting_eps": 0.01}, "fpsa": {"tol": 1e-3, "max_iterations": 32},
            "adatape": {"tape": sizes.max_tape}, "transformer": {}}[family]


def run_task(task: Task, settings, sizes: Sizes, study, families=FAMILIES) -> dict[str, pd.DataFrame]:
    """Every family of `families` on every seed of `settings`: trained, then swept over its knob. Returns the frames
    "budget" (parameters, training FLOPs per example and batch per family), "sweeps" (one row per family, seed, knob
    and split), "curves" (validation score during training) and "runs" (wall seconds, and the training FLOPs per
    example of the trained model, which an adaptive family may have moved away from its matched start)."""
    shapes = matched_families(task, sizes, families)
    budget = matched_batches(task, shapes, settings.batch[task.name], settings.alpha)
    sweeps, curves, runs = [], [], []
    for family in families:
        knobs = knob_settings(family, sizes.depth, sizes.max_tape)
        batch = int(budget.loc[family, "batch"])
        for seed in settings.seeds:
            model, history, wall = train_family(task, family, shapes[family], batch, seed, settings, study)
            key = {"task": task.name, "family": family, "seed": seed}
            curves += [key | row for row in history]
            sweeps += [key | row for row in sweep(model, task, knobs, settings.latency_batch, settings.latency_repeats)]
            trained = training_flops_per_example(model.train(), loss_of(model, settings.alpha),
                                                 task.stream(seed, settings.batch[task.name]).batch_at(0)) / 1e6
            runs.append(key | {"train seconds": wall, "train MFLOPs per example, trained": trained})
            model.eval()
    return {"budget": budget.rename_axis("family").reset_index().assign(task=task.name),
            "sweeps": pd.DataFrame(sweeps), "curves": pd.DataFrame(curves), "runs": pd.DataFrame(runs)}


def at(sweeps: pd.DataFrame, task: str, family: str, knob: dict, split: str) -> pd.Series:
    """One column per seed of `sweeps`: the rows of (task, family, knob, split), indexed by seed."""
    rows = sweeps[(sweeps.task == task) & (sweeps.family == family) & (sweeps.knob == knob_label(knob))
                  & (sweeps.split == split)]
    return rows.set_index("seed").sort_index()


def learned(sweeps: pd.DataFrame, task: str, family: str, sizes: Sizes, split: str = "easy") -> float:
    """The gate quantity: the score on `split` (the training difficulty) at the trained setting, mean over seeds."""
    return float(at(sweeps, task, family, trained_knob(family, sizes), split).score.mean())


def iteration_gain(sweeps: pd.DataFrame, task: str, sizes: Sizes) -> dict[str, pd.Series]:
    """The parts of L2.frontier_<task>, per seed: the recall loop's hard-split score at 4M iterations minus at M, and
    minus the fixed loop's at 4M."""
    long = {"iterations": 4 * sizes.depth}
    recall_long = at(sweeps, task, "recall loop", long, "hard").score
    return {"more_iterations_help": recall_long - at(sweeps, task, "recall loop", trained_knob("recall loop", sizes),
                                                     "hard").score,
            "beats_fixed_loop": recall_long - at(sweeps, task, "fixed loop", long, "hard").score}


def tape_gain(sweeps: pd.DataFrame, task: str, sizes: Sizes) -> pd.Series:
    """The part of A2.frontier_<task>, per seed: tape tokens read on the hard split minus the easy split."""
    knob = trained_knob("adatape", sizes)
    return at(sweeps, task, "adatape", knob, "hard")["tape tokens"] - at(sweeps, task, "adatape", knob, "easy")["tape tokens"]


def fpsa_steps(sweeps: pd.DataFrame, splits: dict[str, str], sizes: Sizes) -> tuple[pd.Series, float]:
    """S6.frontier: the median refinement steps per (task, seed) at the pre-registered solver, each task scored on its
    split of `splits` (the one at the training difficulty), and the share of solves at the cap (mean over tasks and
    seeds). A task without FPSA rows for its split is an error, never a task left out."""
    parts = []
    for task, split in splits.items():
        rows = at(sweeps, task, "fpsa", trained_knob("fpsa", sizes), split)
        if rows.empty:
            raise ValueError(f"no FPSA rows for {task}, split {split!r}; the sweeps have splits "
                             f"{sorted(sweeps[sweeps.task == task].split.unique())}")
        parts.append(rows.assign(task=task))
    rows = pd.concat(parts)
    return rows["fpsa steps"], float(rows["at cap"].mean())


# -- figures and the reading ----------------------------------------------------------------------------------------

def panel_keys(points: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(points.task, points.split)))


def frontier_figure(points: pd.DataFrame, cost: str, xlabel: str, metrics: dict[str, str]):
    """Score against `cost` (log scale), one panel per (task, split), one line per family through its knob settings,
    the 95% interval over seeds as error bars and the Pareto frontier (by FLOPs) ringed."""
    keys = panel_keys(points)
    fig, axes = plt.subplots((len(keys) + 1) // 2, 2, figsize=(11, 3.4 * ((len(keys) + 1) // 2)), squeeze=False)
    colours = dict(zip(FAMILIES, sns.color_palette("tab10", len(FAMILIES))))
    for ax, (task, split) in zip(axes.flat, keys):
        panel = points[(points.task == task) & (points.split == split)]
        for family, group in panel.groupby("family", sort=False):
            group = group.sort_values(cost)
            error = np.vstack([group.score - group.low, group.high - group.score])
            ax.errorbar(group[cost], group.score, yerr=None if np.isnan(error).all() else error, marker="o", ms=4,
                        capsize=2, lw=1, color=colours[family], label=family)
        best = panel[panel["on frontier"]]
        ax.scatter(best[cost], best.score, s=110, facecolors="none", edgecolors="black", lw=1, label="on the frontier")
        ax.set(xscale="log", xlabel=xlabel, ylabel=f"{metrics[task]} (mean, 95% CI over seeds)",
               title=f"{task}: {split} split")
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    return fig


def curves_figure(curves: pd.DataFrame, metrics: dict[str, str]):
    """Validation score during training, mean ± sd over seeds, one panel per task."""
    tasks = list(dict.fromkeys(curves.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.lineplot(data=curves[curves.task == task], x="step", y="score", hue="family", hue_order=list(FAMILIES),
                     errorbar="sd", ax=ax, legend=ax is axes[0][-1])
        ax.set(xlabel="training step", ylabel=f"validation {metrics[task]}", title=task)
    if axes[0][-1].get_legend() is not None:
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def slope_table(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Score change per doubling of test-time FLOPs: mean and 95% interval over seeds, per (task, split, family); the
    transformer, with one setting, has none."""
    per_seed, seeds = slopes(sweeps), sweeps.seed.nunique()

    def text(values: pd.Series) -> str:
        """A seed whose knob settings all cost the same (ACT halting at once at every cap) has no slope: say so."""
        fewer = f" ({len(values)} of {seeds} seeds)" if len(values) < seeds else ""
        if len(values) < 2:
            return f"{values.mean():+.3f}{fewer}"
        low, high = interval(values.to_list())
        return f"{values.mean():+.3f} [{low:+.3f}, {high:+.3f}]{fewer}"
    return per_seed.groupby(["task", "split", "family"], sort=False).slope.apply(text).unstack("family")


def reading(members: pd.DataFrame, learned_families: dict[str, list[str]]) -> str:
    """One line per (task, split): the families on its frontier over the compute levels, cheapest first, and which
    families learned the task (easy split at the trained setting past the task's threshold)."""
    lines = []
    for (task, split), group in members.groupby(["task", "split"], sort=False):
        holders = " → ".join(dict.fromkeys(group.family))
        learners = ", ".join(learned_families[task]) or "none"
        lines.append(f"- **{task}, {split}**: frontier from cheap to costly: {holders}; learned the task: {learners}.")
    return "\n".join(lines)
