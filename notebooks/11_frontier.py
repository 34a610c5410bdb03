# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (repro)
#     language: python
#     name: repro
# ---

# %% [markdown]
# # 11 · Beyond the three papers: one compute/accuracy frontier across every adaptive family
#
# Each paper compares its mechanism with its own baselines, on its own tasks, with its own compute accounting. Here
# every kind of adaptivity the study implements meets the others on the same tasks, under one measure of compute: the
# FLOPs of the matrix products actually dispatched per example (`repro.cost.count_flops`), so a halted position, an
# unread tape slot or a converged fixed point costs nothing. The question is a practitioner's: for a given test-time
# compute, which adaptivity buys the most accuracy, and which keeps improving when given more?
#
# **Families** (`repro.models.families`), all built from the same pre-LN block:
#
# | family | how it spends compute | test-time knob |
# |---|---|---|
# | transformer | untied blocks (non-adaptive baseline) | none |
# | fpsa | the same blocks with fixed-point self-attention (SELF) | solver tolerance, cap |
# | adatape | the same blocks, an adaptive tape appended after the first (AdaTape's ATR, input-driven bank) | tape slots |
# | fixed loop | one block repeated (non-adaptive baseline: an adaptive mechanism must beat it) | iterations |
# | recall loop | one block with additive recall and a LayerNorm outer norm, progressive loss (Looped) | iterations |
# | act | one block with per-position ACT halting (Universal Transformer) | step cap, halting threshold |
#
# **Matching.** Every family has the fixed loop's parameter count within 10% (its MLP width is solved for), and the
# same training FLOPs: the same optimizer steps on the same seeded stream, with a batch inversely proportional to the
# FLOPs of one training example at initialisation. The same seeds, validation and test sets for all.
#
# **Tasks** and their difficulty axes: parity (vector length), prefix sums (bits), sudoku (givens) and CIFAR-10 as a
# grid of patches (no labelled difficulty axis: one test split). "Easy" is the training difficulty, "hard" beyond it:
# twice the training length for parity and prefix sums, fewer givens than any training puzzle for sudoku.
#
# **Claims** pre-registered in `repro/claims.py` before the run: **L2.frontier_<task>** (recall + outer norm gains
# from more test-time iterations on the hard split, and beats the fixed loop there), **A2.frontier_<task>** (AdaTape
# reads more tape on harder inputs), **S6.frontier** (FPSA converges in 3-6 refinement steps).
#
# **`cpu` scale.** Width 32 (tied) and 16 (untied, 4 layers), 8 iterations, 3 seeds, a few hundred steps per task: the
# models are small and briefly trained, and each claim's competence gate says whether its family learned the task.

# %% tags=["parameters"]
PROFILE = "auto"          # auto | smoke | cpu | gpu | paper
RESULTS_DIR = "build/scratch/results"  # relative to the repository root; `make reproduce` passes results/
FIGURES_DIR = "build/scratch/figures"  # and figures/, so a run by hand never overwrites them
CHECKPOINT_DIR = ""       # a folder (from the repository root) to checkpoint every run and resume after a kill

# %%
from dataclasses import dataclass

import pandas as pd
from IPython.display import Markdown, display

from repro.claims import FRONTIER_HARD_TASKS, FRONTIER_LEARNED, frontier_id
from repro.experiments import frontier
from repro.experiments.frontier import Sizes
from repro.study import Settings, Study, bounded


@dataclass(frozen=True)
class FrontierSettings(Settings):
    steps: dict           # optimizer steps per task
    batch: dict           # the fixed loop's batch per task; every other family's is matched by FLOPs
    lr: float
    alpha: float = bounded(0, 1)   # progressive-loss weight of the recall loop
    evaluations: int
    width: int
    untied_width: int
    heads: int
    layers: int
    depth: int
    max_tape: int
    parity_lengths: tuple[int, int]      # (train and easy, hard)
    prefix_lengths: tuple[int, int]
    sudoku_train_givens: tuple[int, int]
    sudoku_givens: tuple[int, int]       # (easy, hard)
    patch: int
    eval_size: int
    sudoku_eval_size: int                # held-out puzzles per class (simple, easy) in each sudoku set
    latency_batch: int
    latency_repeats: int
    levels: int                          # compute levels of the frontier table


# DEVIATION: [frontier-recipe] one small recipe for every family; sizes, budgets and knob grids are ours.
TASKS = ("parity", "prefix sums", "sudoku", "cifar10")
SETTINGS = FrontierSettings.per_profile(
    smoke=dict(seeds=[0], steps=dict.fromkeys(TASKS, 4), batch=dict.fromkeys(TASKS, 8), lr=3e-3, alpha=1.0,
               evaluations=2, width=8, untied_width=4, heads=2, layers=2, depth=4, max_tape=4, parity_lengths=(6, 8),
               prefix_lengths=(6, 8), sudoku_train_givens=(55, 70), sudoku_givens=(65, 45), patch=8, eval_size=16,
               sudoku_eval_size=4, latency_batch=8, latency_repeats=1, levels=3),
    cpu=dict(seeds=[0, 1, 2], steps={"parity": 600, "prefix sums": 600, "sudoku": 300, "cifar10": 600},
             batch={"parity": 32, "prefix sums": 32, "sudoku": 16, "cifar10": 32}, lr=3e-3, alpha=1.0, evaluations=5,
             width=32, untied_width=16, heads=4, layers=4, depth=8, max_tape=8, parity_lengths=(8, 16),
             prefix_lengths=(16, 32), sudoku_train_givens=(55, 70), sudoku_givens=(65, 45), patch=8, eval_size=512,
             sudoku_eval_size=128, latency_batch=64, latency_repeats=3, levels=4),
    gpu=dict(seeds=[0, 1, 2, 3, 4], steps={"parity": 5000, "prefix sums": 3000, "sudoku": 3000, "cifar10": 3000},
             batch={"parity": 128, "prefix sums": 128, "sudoku": 64, "cifar10": 128}, lr=1e-3, alpha=1.0,
             evaluations=10, width=64, untied_width=32, heads=4, layers=4, depth=16, max_tape=16,
             parity_lengths=(16, 32), prefix_lengths=(32, 64), sudoku_train_givens=(44, 70), sudoku_givens=(60, 36),
             patch=4, eval_size=2000, sudoku_eval_size=250, latency_batch=256, latency_repeats=10, levels=5),
    paper=dict(seeds=[0, 1, 2, 3, 4], steps={"parity": 20000, "prefix sums": 20000, "sudoku": 20000, "cifar10": 20000},
               batch={"parity": 256, "prefix sums": 256, "sudoku": 128, "cifar10": 256}, lr=1e-3, alpha=1.0,
               evaluations=20, width=128, untied_width=64, heads=8, layers=4, depth=16, max_tape=16,
               parity_lengths=(32, 64), prefix_lengths=(32, 64), sudoku_train_givens=(34, 70), sudoku_givens=(60, 28),
               patch=4, eval_size=5000, sudoku_eval_size=250, latency_batch=256, latency_repeats=10, levels=6),
)
study = Study("11_frontier", PROFILE, SETTINGS, RESULTS_DIR, FIGURES_DIR, CHECKPOINT_DIR)
S = study.settings
SIZES = Sizes(S.width, S.untied_width, S.heads, S.layers, S.depth, S.max_tape)
study.describe()

# %% [markdown]
# ## Tasks
#
# Parity and prefix sums are generated (fresh training batches per seed and step; fixed evaluation sets from streams
# no training batch uses); sudoku uses notebook 03's committed puzzles of the two easier classes, the first puzzles of
# each held out for testing and the next for validation, givens revealed from the solution; CIFAR-10 is notebook 07's
# fixed re-split, cut into patches. Validation sets come from the training distribution and score the learning curves;
# the test splits score the frontier.

# %%
with study.timed("load tasks"):
    tasks = [frontier.parity_task(*S.parity_lengths, S.eval_size), frontier.prefix_sums_task(*S.prefix_lengths, S.eval_size),
             frontier.sudoku_task(S.sudoku_train_givens, *S.sudoku_givens, S.sudoku_eval_size),
             frontier.cifar10_task(S.patch)]
METRICS = {task.name: task.metric for task in tasks}
sizes_table = pd.DataFrame([{"task": task.name, "split": split, "metric": task.metric, "difficulty": task.levels[split],
                             "examples": len(task.sets[split][0])} for task in tasks for split in ["validation", *task.splits]])
study.table("tasks", sizes_table.set_index(["task", "split"]))

# %% [markdown]
# ## Training at matched parameters and FLOPs, then every knob setting
#
# Every family is trained on every seed (AdamW, warm-up over 10% of the steps, cosine decay, clipping at 1.0). The
# first table gives, per task and family, the parameter count, the training FLOPs of one example at initialisation and
# the matched batch; the second, per run, the wall time and the training FLOPs per example of the *trained* model on
# the fixed loop's batch (an adaptive family may spend more or less than at the start: ACT ponders longer, AdaTape
# reads more tape). Then each trained model runs at every setting of its knob on every split.

# %%
parts = {}
for task in tasks:
    with study.timed(f"train and sweep {task.name}"):
        parts[task.name] = frontier.run_task(task, S, SIZES, study)
frames = {name: pd.concat([p[name] for p in parts.values()], ignore_index=True) for name in ("budget", "sweeps", "curves", "runs")}
study.table("budget", frames["budget"].set_index(["task", "family"]).round(4))

# %%
runs = frames["runs"].merge(frames["budget"][["task", "family", "train MFLOPs per example"]], on=["task", "family"])
runs["trained / initial FLOPs"] = runs["train MFLOPs per example, trained"] / runs["train MFLOPs per example"]
study.table("runs", runs.groupby(["task", "family"], sort=False)[["train seconds", "trained / initial FLOPs"]].mean().round(3))

# %%
study.figure(frontier.curves_figure(frames["curves"], METRICS), "learning_curves")

# %% [markdown]
# ## The frontier
#
# One point per family and knob setting: the mean over seeds of the task's score and of the FLOPs spent per example,
# with the 95% interval over seeds. Ringed: the points no other point beats on both axes (the Pareto frontier by FLOPs).
# The second figure puts the same scores against measured latency (one-thread CPU, a batch of `latency_batch`).

# %%
sweeps = frames["sweeps"]
points = frontier.mean_points(sweeps)
study.table("points", points.set_index(["task", "split", "family", "knob"]).round(5))
study.figure(frontier.frontier_figure(points.assign(mflops=points.flops / 1e6), "mflops", "test-time MFLOPs per example",
                                      METRICS), "frontier_flops")
study.figure(frontier.frontier_figure(points, "latency_ms", f"latency of a {S.latency_batch}-example batch (ms)", METRICS),
             "frontier_latency")

# %% [markdown]
# **Who holds the frontier at each compute level**, from the cheapest point to the costliest of each task and split
# (log-spaced budgets; at each, the best frontier point within it), and **the slope**: the change of score per
# doubling of test-time FLOPs over each family's knob settings (mean and 95% interval over seeds). A positive slope
# keeps improving with compute; a negative one overthinks.

# %%
members = study.table("frontier_members", frontier.frontier_members(points, S.levels).set_index(["task", "split"]).round(4))
display(members)
study.table("slopes", frontier.slope_table(sweeps))

# %%
learned = {task.name: [family for family in frontier.FAMILIES
                       if frontier.learned(sweeps, task.name, family, SIZES, task.splits[0]) >= FRONTIER_LEARNED[task.name]]
           for task in tasks}
display(Markdown(frontier.reading(members.reset_index(), learned)))

# %% [markdown]
# ## Claims
#
# Each claim is decided by `repro.verdicts` under its pre-registered rule. Its gate asks whether the family it is about
# learned the task (easy split, trained setting, mean over seeds, against the task's threshold in `FRONTIER_LEARNED`).

# %%
scale = (f"profile {study.profile} on {study.run.provenance['device']}, seeds {list(S.seeds)}; width {S.width} "
         f"(untied {S.untied_width} x {S.layers}), M = {S.depth}")
PIPELINE = (frontier.run_task, frontier.sweep, frontier.mean_points)
DEVIATIONS = ("frontier-recipe", "frontier-matching", "frontier-positions", "frontier-act-halting-init")
for task in FRONTIER_HARD_TASKS:
    gains = frontier.iteration_gain(sweeps, task, SIZES)
    recall = frontier.learned(sweeps, task, "recall loop", SIZES)
    study.claim(frontier_id("L2", task), parts=gains, gates={"recall_loop_learned": recall}, pipeline=PIPELINE,
                deviations=DEVIATIONS, evidence=f"{scale}: recall loop easy {METRICS[task]} {recall:.3f}; hard-split gain "
                f"4M - M {gains['more_iterations_help'].mean():+.3f}, minus fixed loop {gains['beats_fixed_loop'].mean():+.3f}")
    tape = frontier.tape_gain(sweeps, task, SIZES)
    adatape = frontier.learned(sweeps, task, "adatape", SIZES)
    study.claim(frontier_id("A2", task), parts={"more_tape_when_harder": tape}, gates={"adatape_learned": adatape},
                pipeline=PIPELINE, deviations=DEVIATIONS, evidence=f"{scale}: AdaTape easy {METRICS[task]} "
                f"{adatape:.3f}; tape tokens hard - easy {tape.mean():+.2f}")
steps, at_cap = frontier.fpsa_steps(sweeps, {task.name: task.splits[0] for task in tasks}, SIZES)
study.claim("S6.frontier", parts={"median_at_least_3": steps, "median_at_most_6": steps},
            gates={"fpsa_converges": at_cap}, pipeline=PIPELINE, deviations=DEVIATIONS,
            evidence=f"{scale}: medians per (task, seed) {', '.join(f'{s:g}' for s in steps)}; {at_cap:.1%} of solves at the cap")

# %%
study.wall_table()
study.write()
