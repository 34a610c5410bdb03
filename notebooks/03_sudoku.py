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
# # 03 · Looped transformers on sudoku: internal recall, outer normalisation, and stability
#
# **Claims** ("Stability and Generalization in Looped Transformers", Labovich 2026; abstract-level, notes in `docs/papers/looped-fixed-point.md`):
# - **L3** internal recall is competitive with standard recall and *substantially better on sudoku once outer normalisation
#   is used* (this notebook tests the sudoku half; notebook 02 tests internal recall on prefix sums);
# - **L4** downstream accuracy tracks the stability measures across configurations (the sudoku half).
#
# **Task.** A 9×9 sudoku is 81 cell tokens (blank or a digit); the model fills every blank. Puzzles come from the
# qqwing generator and have two difficulty axes: qqwing's *class* (simple, easy, intermediate, expert: the hardest human
# technique its logical solver needs) and the *number of givens* (extra givens revealed from the solution, as the Recurrent
# Relational Networks set does; fewer givens = harder). Training sees only the two easier classes with many givens; the
# test buckets cross all four classes with many and few givens, on puzzles never seen in training.
# Metrics: **blank-cell accuracy** and **whole-board exact match** (our checker: every row, column and box holds 1..9 and
# every given is kept).
#
# **Models.** As in notebook 02: one weight-tied pre-LN transformer layer iterated T times (`repro.models.looped`), with
# recall {none, standard, internal} × outer normalisation {off, LayerNorm}, and a non-looped reference: the same layer
# applied once (the same parameters, minus the recall map). A cell's input embedding is its token's plus learned row,
# column and box embeddings (the model's *structure embedding*), and attention adds a learned score per head for each unit
# (row, column, box) that two cells share, in place of notebook 02's relative position bias (raster offsets mean nothing
# on a grid). The loss is taken on blank cells only; looped models train with the progressive loss of Bansal et al. (2022).

# %% tags=["parameters"]
PROFILE = "auto"          # auto | smoke | cpu | gpu | paper
RESULTS_DIR = "build/scratch/results"  # relative to the repository root; `make reproduce` passes results/
FIGURES_DIR = "build/scratch/figures"  # and figures/, so a run by hand never overwrites them
CHECKPOINT_DIR = ""       # a folder (from the repository root) to checkpoint every run and resume after a kill

# %%
import pandas as pd
from IPython.display import Markdown, display

from repro import plots
from repro.data.sudoku import CELL_BOX, CELL_COLUMN, CELL_ROW, DIFFICULTIES, SudokuStream
from repro.claims import SUDOKU_LEARNED
from repro.experiments import looped, sudoku
from repro.experiments.looped import INTERNAL_BRANCH, LOOPED, RECALL_NORM_ON, REFERENCE, Zoo
from repro.experiments.sudoku import AS_GENERATED, COMMITTED, ROLES, TRAIN_CLASSES, SudokuSettings
from repro.models.looped import configuration_name
from repro.results import mean_std_text
from repro.study import Study

# DEVIATION: [sudoku-recipe] sizes, optimiser, iterations and budgets are ours; the paper's recipe is not reachable.
SETTINGS = SudokuSettings.per_profile(
    smoke=dict(seeds=[0], steps=4, batch=8, lr=3e-3, width=16, heads=2, iterations=3, test_factor=2, alpha=1.0,
               puzzles=COMMITTED, test_pool=500, train_givens=(44, 60), test_givens=[52, 36, AS_GENERATED],
               eval_size=4, validation_size=8, stability_size=4, jacobian_size=2, power_iterations=4),
    cpu=dict(seeds=[0, 1, 2], steps=700, batch=16, lr=5e-3, width=32, heads=4, iterations=8, test_factor=4,
             alpha=1.0, puzzles=COMMITTED, test_pool=500, train_givens=(44, 60),
             test_givens=[60, 52, 44, 36, AS_GENERATED], eval_size=48, validation_size=128,
             stability_size=32, jacobian_size=16, power_iterations=40),
    gpu=dict(seeds=[0, 1, 2], steps=1200, batch=256, lr=2e-3, width=128, heads=8, iterations=16, test_factor=4,
             alpha=1.0, puzzles=COMMITTED, test_pool=500, train_givens=(44, 60),
             test_givens=[60, 52, 44, 36, 28, AS_GENERATED], eval_size=500, validation_size=500,
             stability_size=256, jacobian_size=64, power_iterations=100),
    paper=dict(seeds=[0, 1, 2, 3, 4], steps=50000, batch=128, lr=1e-3, width=512, heads=8, iterations=30,
               test_factor=10, alpha=1.0, puzzles=dict(simple=50000, easy=50000, intermediate=5000, expert=5000),
               test_pool=5000, train_givens=(34, 60), test_givens=[60, 52, 44, 36, 28, AS_GENERATED],
               eval_size=1000, validation_size=1000, stability_size=1000, jacobian_size=256, power_iterations=100),
)
STABILITY_SEED = 1
study = Study("03_sudoku", PROFILE, SETTINGS, RESULTS_DIR, FIGURES_DIR, CHECKPOINT_DIR, seeds={"stability": STABILITY_SEED})
S = study.settings
M = S.iterations
study.describe()

# %% [markdown]
# ## The puzzles
#
# qqwing has no seed option (it seeds itself from the clock), so the reference puzzles were generated once and committed
# under `data/sudoku/`: one gzip-compressed CSV per class with a sha256 sidecar, every solution checked by our own checker
# on every load, and each file checked against `data/MANIFEST.json`. A missing or corrupt file is an error that says how to
# restore it; nothing is regenerated over the committed sets without `make sudoku-sets`. (The `paper` profile asks for
# more puzzles than are committed, so it generates them afresh under `build/sudoku/`.)
#
# **Split.** From each training class (simple, easy) the first puzzles are held out as test puzzles; the rest form the
# training pool. Intermediate and expert puzzles are used only for testing. A training batch draws puzzles from the pool,
# reveals extra givens from the solution up to a number drawn uniformly from the training range, and applies to each
# puzzle its own random symmetry of the rules (digit relabelling, band/stack permutations, row/column permutations within
# bands/stacks, transpose), so the model never sees the same board twice.
#
# **Test buckets** cross the four classes with fixed numbers of givens (extra givens revealed from the solution, seeded per
# bucket) and the puzzles as generated. A bucket is *in-distribution* when both its class and its number of givens lie in
# the training range, *fewer givens* or *harder class* when one axis lies outside, *both harder* when both do.

# %%
with study.timed("load and check puzzles"):
    split = sudoku.split(S)
low, high = S.train_givens
BUCKETS = split.buckets
native = sudoku.native_givens(split)
distribution = pd.crosstab(pd.Categorical(native["class"], DIFFICULTIES), native.givens, rownames=["class"],
                           colnames=["givens as generated"])
study.table("difficulty_distribution", distribution.set_axis([str(g) for g in distribution.columns], axis=1))
display(study.table("datasets", sudoku.datasets_table(split)))
display(Markdown(f"Training: {len(split.train_pool)} puzzles ({', '.join(TRAIN_CLASSES)}), {low}-{high} givens, "
                 f"augmented; {S.steps} steps × {S.batch} boards. Test: {len(BUCKETS)} buckets × {S.eval_size} puzzles."))
distribution

# %% [markdown]
# ## A classical solver solves them all
#
# For reference: our backtracking solver with constraint propagation (`repro.data.sudoku.solve`, the cell with the fewest
# candidates first) on every test puzzle the models see. *Solved* means it finds exactly one solution and that it is
# qqwing's; *no guess* means propagation of forced cells alone completes the board (no branching), a rough measure of how
# much search a bucket needs.

# %%
with study.timed("classical solver"):
    buckets = sudoku.classical_reference(split)
study.table("test_buckets", buckets.round(3))
study.figure(sudoku.difficulty_figure(native, buckets, S.test_givens), "difficulty")
buckets

# %% [markdown]
# Where the mean number of guesses rises, propagation alone no longer completes the board: those buckets need search,
# and they are the ones a fixed-depth model should find hardest.

# %% [markdown]
# ## The eight models
#
# The six looped configurations share every weight shape; the recall map W (initialised to the identity) is their only
# extra matrix. "Outer norm on" is a LayerNorm on the state after every iteration, on top of the block's own pre-LN norms.
# Beside them runs *internal-branch* recall, a third-party reading of the paper's internal recall (issue 24): the input
# enters each branch through one map W [z; e] (twice the width, no bias), the residual stream carries the state alone,
# and an outer norm follows each residual update.
# The table gives each model's parameter count.

# %%
# DEVIATION: [sudoku-cell-embedding] row, column and box embeddings per cell, and a shared-unit attention score.
STRUCTURE = (CELL_ROW.tolist(), CELL_COLUMN.tolist(), CELL_BOX.tolist())
LOOPS = [*LOOPED, INTERNAL_BRANCH]
zoo = Zoo.of(S, looped=LOOPS, vocab=10, outputs=9, max_offset=0, structure=STRUCTURE, structure_bias=True)
MODELS = zoo.names
parameters = zoo.parameters()
parameters.to_frame()

# %% [markdown]
# ## Decision rules (pre-registered, fixed before any model is trained)
#
# *Held-out accuracy* of a (configuration, seed) = blank-cell accuracy averaged over the held-out buckets (every role but
# in-distribution), read at T = the largest test-time iteration count, fixed in advance (the best iteration is never
# picked, since that would tune on the test set). Blank-cell accuracy is the primary metric because at this scale
# whole-board exact match on held-out buckets is expected to sit near zero for every model, where no difference could
# show; exact match is reported next to it.
#
# The rules are pre-registered in `repro/claims.py`; every part is one value per seed (paired by seed: the same training
# batches):
# - **L3.sudoku** `better_norm_on`: held-out accuracy of internal minus standard recall, outer norm on, at least +0.02.
# - **L3.sudoku** `competitive_norm_off`: the same difference with the outer norm off, at least −0.05.
# - **L3.sudoku** `branch_better_norm_on`: the same as `better_norm_on` for internal-branch recall, the third-party reading
#   (one map W [z; e] into each branch, an outer norm after each residual update), at least +0.02.
# - **L4.sudoku** `tracks_last_residual`, `tracks_path_spread`, `tracks_spectral_radius`: Spearman rho, over the six
#   looped configurations of one seed, of held-out accuracy with the residual at the largest T, the path spread and the
#   spectral radius, at most −0.5 each (lower is more stable; a seed whose rho is undefined, every configuration scoring
#   the same, leaves that part undecided).
# - Gate of both, `recall_learns`: standard and internal recall with the outer norm on each reach in-distribution
#   whole-board exact match ≥ 0.5 (at the largest T) on at least 2 seeds (a method that never learned is no evidence).
#
# `repro/verdicts.py` decides: a 95% paired t interval over seeds against each part's margin; a failed or unmeasured
# gate, fewer seeds than the rule needs, or an interval straddling the margin gives *inconclusive*.

# %% [markdown]
# ## Training
#
# Every run: AdamW, warm-up over 10% of the steps, cosine decay, clipping at 1.0, batches from the seeded stream above.
# Looped models: progressive loss with `alpha` = 1 (n ~ U{0..M-1} iterations without gradient, then k ~ U{1..M-n} with
# it); the reference: the plain loss through its one layer. The loss is the cross-entropy on blank cells only. The learning
# curve shows blank-cell accuracy and exact match on held-out in-distribution puzzles after M iterations.

# %%
scores = sudoku.BucketScores(split, study.device)   # every bucket in one batch
VALIDATION = sudoku.validation_batch(split, S.validation_size, study.device)
with study.timed("training"):
    models, curves, walls = looped.train_zoo(
        zoo, S, study, "sudoku", lambda seed: SudokuStream(split.train_pool, S.train_givens, S.batch, seed),
        lambda m, depth: sudoku.board_scores(m(VALIDATION.tokens, depth)[0], VALIDATION), evaluations=6)
METRICS = {"blank_accuracy": "blank-cell accuracy", "exact_match": "whole-board exact match"}
study.figure(plots.learning_curves_by_metric(curves, METRICS, hue_order=MODELS, title="in-distribution, T = depth"),
             "learning_curves")

# %% [markdown]
# Blank-cell accuracy rises before exact match does: a board counts only when every blank is right.
#
# ## Accuracy against test-time iterations
#
# Every looped model runs for several times its training iterations on every test bucket; both metrics are read after
# every iteration, together with the median relative residual ||z_{t+1} − z_t|| / ||z_t||. The reference has one depth
# (dashed line). If accuracy falls as iterations grow past M (dotted line), the model "overthinks"; if it rises on the
# harder buckets, extra test-time iterations buy accuracy.

# %%
with study.timed("evaluation"):
    per_iteration, residuals = looped.read_every_iteration(models, {"all": scores.batch.tokens}, S.test_iterations,
                                                           lambda _, logits: scores.rows(logits))
by_role = per_iteration.groupby(["model", "seed", "role", "iterations"], as_index=False)[list(METRICS)].mean()
roles = [r for r in ROLES if r in set(split.roles.values())]
study.figure(plots.iterations_by_group(by_role, METRICS, residuals, M, LOOPS, REFERENCE, order=roles),
             "accuracy_vs_iterations")

# %% [markdown]
# A curve above the dashed reference shows what iterating the layer buys over applying it once; a residual that keeps
# falling says the loop is still settling towards a fixed point at the largest count.

# %% [markdown]
# ## Accuracy by difficulty
#
# Read at the training iteration count T = M and at the largest test count (both fixed in advance); the reference has one
# depth, so both columns hold the same number. The summary averages the buckets of each role; the bucket tables give every
# class × givens cell at the largest T, next to the classical solver.

# %%
READ_AT = {"T = M": M, f"T = {S.test_factor}M": S.test_iterations}
LAST = list(READ_AT)[-1]
finals = looped.read_at(per_iteration, MODELS, READ_AT)
per_role = finals.groupby(["model", "seed", "read_at", "role"], as_index=False)[list(METRICS)].mean()
held_out_rows = finals[(finals.read_at == LAST) & (finals.role != "in-distribution")].groupby(["model", "seed"])
held_out = held_out_rows.blank_accuracy.mean().rename("held-out accuracy")
held_out_exact = held_out_rows.exact_match.mean().rename("held-out exact match")
role_tables = {metric: looped.mean_std_table(per_role, "model", ["read_at", "role"], metric, MODELS,
                                             [(r, g) for r in READ_AT for g in roles]) for metric in METRICS}
role_tables["blank_accuracy"]["held-out accuracy"] = held_out.groupby("model").apply(mean_std_text)
role_tables["exact_match"]["held-out exact match"] = held_out_exact.groupby("model").apply(mean_std_text)
role_tables["blank_accuracy"]["parameters"] = parameters
role_tables["blank_accuracy"]["train seconds / run"] = walls.groupby("model").train_seconds.mean().round(1)
by_bucket = {metric: looped.mean_std_table(finals[finals.read_at == LAST], ["class", "givens"], "model", metric,
                                           BUCKETS, MODELS) for metric in METRICS}
by_bucket["exact_match"]["classical solver"] = buckets.solved
for metric in METRICS:
    study.table(f"{metric}_by_role", role_tables[metric])
    study.table(f"{metric}_by_bucket", by_bucket[metric])
display(role_tables["blank_accuracy"], role_tables["exact_match"], by_bucket["blank_accuracy"])
by_bucket["exact_match"]

# %%
means = finals[finals.read_at == LAST].groupby(["model", "class", "givens"]).blank_accuracy.mean()
grids = {name: means.loc[name] for name in MODELS} | {"classical solver (boards solved)": buckets.solved}
study.figure(sudoku.accuracy_figure(grids, S.test_givens, f"blank-cell accuracy by class and givens, {LAST} (mean over "
                                    f"seeds); training: {'/'.join(TRAIN_CLASSES)}, {low}-{high} givens"),
             "accuracy_by_difficulty")

# %% [markdown]
# Reading each grid from its top left (training classes, many givens) to its bottom right (harder classes, fewer
# givens) shows how fast each configuration loses accuracy away from training, next to the classical solver's grid.

# %% [markdown]
# ## The three stability axes
#
# Measured for every looped model on held-out in-distribution puzzles (training classes, givens at the middle of the
# training range), at the state z* reached after the largest test count + 1 iterations:
# - **reachability**: relative residual ||z_{T+1} − z_T|| / ||z_T|| at each horizon (median over puzzles) and the fraction of
#   puzzles under 10⁻³ at the last;
# - **input-dependence**: *sensitivity* ||z*(x') − z*(x)|| / ||e(x') − e(x)|| for x' = x with one more given revealed from
#   the solution (a valid edit: same solution), and *path spread*: the largest distance between the states reached from four
#   starts (the input embedding, zeros, Gaussian noise of the same scale, another puzzle's z*), over their norm; 0 = path
#   independent;
# - **geometry**: spectral radius ρ(J) and spectral norm ‖J‖₂ of the Jacobian of one iteration at z*, by power iteration
#   on Jacobian-vector products (median over a subsample).

# %%
puzzles = sudoku.stability_puzzles(split, S)
with study.timed("stability"):
    measures = (looped.measure_stability(models, S, S.horizons, lambda seed: sudoku.one_more_given(
        puzzles, STABILITY_SEED, seed, study.device)).join(held_out).join(held_out_exact))
study.table("stability", measures.groupby("model", sort=False).agg(mean_std_text))

# %% [markdown]
# A configuration the framework calls stable has a residual near zero (reached), a path spread near zero (one fixed point
# whatever the start) and a spectral radius below one (attracting).

# %% [markdown]
# ## Stability against held-out accuracy
#
# One point per (configuration, seed). The framework predicts that models whose fixed points are reached,
# start-independent and attracting (ρ < 1) do best on the harder puzzles.

# %%
AXES, correlations = looped.correlate_with_stability(study, measures, S.horizons, "held-out accuracy",
                                                     f"held-out blank-cell accuracy ({LAST})", "stability_vs_accuracy")
correlations.to_frame()

# %% [markdown]
# The pooled correlation is a picture only: the points of one seed share its training batches, so L4 is decided on the
# correlation within each seed, below.

# %% [markdown]
# ## Verdicts and wall time
#
# The per-seed parts and the gate of the rules above, decided by `repro/verdicts.py`.

# %%
accuracy = looped.seed_by_configuration(measures, "held-out accuracy", S.seeds)
gaps = {norm: looped.internal_minus_standard(accuracy, norm) for norm in ("none", "layernorm")}
branch_gap = looped.internal_minus_standard(accuracy, "layernorm", "internal-branch")
rhos = {m: looped.spearman_by_seed(looped.grid_only(measures), "held-out accuracy", m, S.seeds) for m in AXES}
# Gate: in-distribution exact match per (configuration, seed), read at the same T as everything else.
in_distribution = per_role[(per_role.read_at == LAST) & (per_role.role == "in-distribution")]
learned = looped.seeds_reaching(in_distribution.set_index(["model", "seed"]).exact_match, RECALL_NORM_ON, SUDOKU_LEARNED)
gates = {"recall_learns": min(learned.values())}
# What the gate would need where it fails: each configuration's projected budget (an extrapolation, not a bound).
budgets = sudoku.recall_learns_budget(curves, walls, RECALL_NORM_ON, S.steps)
describe = looped.describe_configurations(measures, [configuration_name(r, n) for n in ("none", "layernorm")
                                                     for r in ("standard", "internal")] + [INTERNAL_BRANCH], {
    "held-out accuracy": "held-out accuracy", "held-out exact match": "exact", f"reached @{S.horizons[-1] // M}M": "reached",
    "path spread": "path spread", "spectral radius": "rho"})
scale = (f"profile {study.profile}, {len(S.seeds)} seeds, {S.steps} steps, width {S.width}, M = {M}, read at {LAST}; "
         f"trained on {'/'.join(TRAIN_CLASSES)} with {low}-{high} givens, "
         f"{sum(r != 'in-distribution' for r in split.roles.values())} held-out buckets of {S.eval_size} puzzles; seeds "
         f"with in-distribution exact match ≥ {SUDOKU_LEARNED:g}: "
         + ", ".join(f"{n} {k}/{len(S.seeds)}" for n, k in learned.items())
         + f"; budget for the gate recall_learns: {budgets}")
TRACKS = dict(zip(AXES, ("tracks_last_residual", "tracks_path_spread", "tracks_spectral_radius")))
CLAIMS = {
    "L3.sudoku": ({"better_norm_on": gaps["layernorm"], "competitive_norm_off": gaps["none"],
                   "branch_better_norm_on": branch_gap},
                  f"internal - standard held-out accuracy with outer norm on {mean_std_text(gaps['layernorm'])}, off "
                  f"{mean_std_text(gaps['none'])}, internal-branch - standard (outer norm on) {mean_std_text(branch_gap)} "
                  f"(mean ± std over seeds); {describe}"),
    "L4.sudoku": ({TRACKS[m]: looped.measured(rhos[m]) for m in AXES}, looped.tracking_evidence(rhos, correlations)),
}
PIPELINE = (looped.train_zoo, looped.read_every_iteration, looped.read_at, sudoku.BucketScores.rows,
            looped.measure_stability, looped.internal_minus_standard, looped.spearman_by_seed, looped.seeds_reaching,
            sudoku.recall_learns_budget)
for claim_id, (parts, evidence) in CLAIMS.items():
    study.claim(claim_id, parts=parts, gates=gates, evidence=f"{scale}: {evidence}", pipeline=PIPELINE,
                deviations=("sudoku-qqwing", "sudoku-split", "sudoku-cell-embedding", "sudoku-recipe",
                            "looped-internal-recall", "looped-internal-branch"))
wall_time = looped.wall_time(study)
study.write()
wall_time
