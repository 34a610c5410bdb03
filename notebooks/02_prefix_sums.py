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
# # 02 · Looped transformers on prefix sums: recall, internal recall, outer normalisation, and stability
#
# **Claims** ("Stability and Generalization in Looped Transformers", Labovich 2026; abstract-level, notes in `docs/papers/looped-fixed-point.md`):
# - **L1** without recall, fixed points are not strongly and smoothly input-dependent, and extrapolation is poor;
# - **L2** recall with outer normalisation gives reachable, input-smooth fixed points, stable backprop and the best extrapolation;
# - **L3** internal recall is competitive with standard recall (its sudoku half is tested in notebook 03);
# - **L4** downstream accuracy tracks the stability measures across configurations.
#
# **Task.** n random bits; the target at every position is the running parity (prefix sum mod 2). Train on 32 bits,
# test on longer strings never seen in training. Metric: whole-string exact match (every position right), plus per-bit accuracy.
#
# **Models.** One weight-tied pre-LN transformer layer iterated T times (`repro.models.looped`), with recall
# {none, standard, internal} × outer normalisation {off, LayerNorm}. Recall is linear and additive, z + W e;
# internal recall injects between attention and MLP. Positions enter only as a clipped relative attention bias, so the same weights
# run on any length. Two non-looped references: one layer applied once (the same parameters, minus the recall map) and
# T untied layers (the same compute; one seed in the `cpu` profile, where it is the costliest run). Looped models train with the progressive loss of Bansal et al. (2022).

# %% tags=["parameters"]
PROFILE = "auto"          # auto | smoke | cpu | gpu | paper
RESULTS_DIR = "build/scratch/results"  # relative to the repository root; `make reproduce` passes results/
FIGURES_DIR = "build/scratch/figures"  # and figures/, so a run by hand never overwrites them
CHECKPOINT_DIR = ""       # set to a folder to checkpoint every run and resume after a kill

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from repro.data.prefix_sums import VOCAB, PrefixSumStream, evaluation_set
from repro.fixed_point import stability
from repro.models.looped import CONFIGURATIONS, LoopedConfig, LoopedTransformer, configuration_name
from repro.nn import count_parameters
from repro.profiles import device_for, resolve, settings
from repro.results import Run, mean_std_text, spearman
from repro.seeding import derive, rng, torch_seed
from repro.train import IGNORE, TrainConfig, progressive_loss, train
from repro.verdicts import summary

profile = resolve(PROFILE)
device = device_for(profile)
# DEVIATION: [looped-recipe] sizes, optimiser and budgets are ours; the paper's recipe is not reachable.
S = settings({
    "smoke": dict(seeds=[0], untied_seeds=[0], steps=4, batch=8, lr=3e-3, width=8, heads=2, iterations=3, alpha=1.0,
                  train_length=8, test_lengths=[8, 12], eval_size=16, stability_size=8, jacobian_size=4,
                  power_iterations=6),
    "cpu":   dict(seeds=[0, 1, 2], untied_seeds=[0], steps=700, batch=32, lr=3e-3, width=32, heads=4, iterations=32,
                  alpha=1.0, train_length=32, test_lengths=[32, 48, 64, 128], eval_size=128, stability_size=64, jacobian_size=32,
                  power_iterations=60),
    "gpu":   dict(seeds=[0, 1, 2], untied_seeds=[0, 1, 2], steps=1200, batch=256, lr=1e-3, width=64, heads=4, iterations=32, alpha=1.0,
                  train_length=32, test_lengths=[32, 48, 64, 128, 256, 512], eval_size=1000, stability_size=512,
                  jacobian_size=128, power_iterations=100),
    "paper": dict(seeds=[0, 1, 2, 3, 4], untied_seeds=[0, 1, 2, 3, 4], steps=20000, batch=100, lr=1e-3, width=400, heads=8, iterations=30, alpha=1.0,
                  train_length=32, test_lengths=[32, 48, 64, 128, 256, 512], eval_size=10000, stability_size=1000,
                  jacobian_size=256, power_iterations=100),
}, profile)
M = S["iterations"]
TEST_ITERATIONS = 10 * M          # test-time iterations: up to 10x the training count
HORIZONS = [M, 2 * M, 5 * M, 10 * M]
TOL = 1e-3                        # a state is "reached" when its relative residual is under this
EVAL_SEED, STABILITY_SEED = 0, 1
run = Run("02_prefix_sums", profile, device,
          seeds={"model_and_data": S["seeds"], "untied_reference": S["untied_seeds"], "evaluation": EVAL_SEED,
                 "stability": STABILITY_SEED},
          results_dir=RESULTS_DIR, figures_dir=FIGURES_DIR)
print(f"profile {profile} on {run.provenance['device']}; settings: {S}")

# %% [markdown]
# ## The eight models
#
# The six looped configurations share every weight shape; the recall map W (initialised to the identity) is their only extra
# matrix. "Outer norm on" is a LayerNorm on the state after every iteration, on top of the block's own pre-LN norms.

# %%
ARCHITECTURES = dict(CONFIGURATIONS)
LOOPED = list(ARCHITECTURES)
REFERENCES = {"1 layer (same parameters)": dict(recall="none", outer_norm="none", iterations=1),
              f"{M} untied layers (same compute)": dict(recall="none", outer_norm="none", untied=True)}
ARCHITECTURES |= REFERENCES
MODELS = list(ARCHITECTURES)


def build(name: str) -> LoopedTransformer:
    options = dict(vocab=VOCAB, outputs=2, iterations=M, width=S["width"], heads=S["heads"],
                   mlp_hidden=2 * S["width"]) | ARCHITECTURES[name]
    return LoopedTransformer(LoopedConfig(**options))


parameters = pd.Series({name: count_parameters(build(name)) for name in MODELS}, name="parameters")
parameters.to_frame()


# %% [markdown]
# ## Training
#
# Every run: AdamW, warm-up over 10% of the steps, cosine decay, clipping at 1.0, fresh 32-bit batches from a stream seeded by
# the run's seed. Looped models: progressive loss with `alpha` = 1 (n ~ U{0..M-1} iterations without gradient, then
# k ~ U{1..M-n} with it). References: the plain loss through their whole depth. The learning curve shows exact match on the
# held-out 32-bit set after M iterations.

# %%
def correct_positions(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(batch, tokens) bool; unlabelled positions count as correct so exact match is a plain all()."""
    return (logits.argmax(dim=-1) == targets) | (targets == IGNORE)


def scores(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    correct = correct_positions(logits, targets)
    labelled = targets != IGNORE
    return {"exact_match": correct.all(dim=1).float().mean().item(),
            "bit_accuracy": (correct & labelled).sum().item() / labelled.sum().item()}


def fit(name: str, seed: int, validation):
    with torch_seed(derive("prefix-sums-model", name, seed)):
        model = build(name)
    depth = model.config.iterations
    loss = progressive_loss(depth, S["alpha"]) if name in LOOPED else progressive_loss(depth, alpha=0.0)
    config = TrainConfig(steps=S["steps"], lr=S["lr"], warmup_steps=S["steps"] // 10, eval_every=S["steps"] // 7,
                         checkpoint_every=S["steps"] // 7, seed=seed)
    checkpoint = (Path(CHECKPOINT_DIR) / f"02_prefix_sums-{name}-{seed}.pt".replace(" ", "_").replace(",", "")
                  if CHECKPOINT_DIR else None)
    result = train(model.to(device), loss, PrefixSumStream(S["train_length"], S["batch"], seed), config,
                   evaluate=lambda m: scores(m(validation[0], depth)[0], validation[1]), checkpoint=checkpoint,
                   device=device, description=f"{name} seed {seed}")
    return model, result


tests = {n: tuple(t.to(device) for t in evaluation_set(n, S["eval_size"], EVAL_SEED)) for n in S["test_lengths"]}
models, curves, walls = {}, [], []
for name in MODELS:
    # The untied reference costs as much per step as all its iterations with gradient; the cpu profile trains one seed.
    for seed in S["untied_seeds"] if ARCHITECTURES[name].get("untied") else S["seeds"]:
        model, result = fit(name, seed, tests[S["train_length"]])
        models[name, seed] = model
        curves += [{"model": name, "seed": seed, **row} for row in result.history]
        walls.append({"model": name, "seed": seed, "train_seconds": result.wall_seconds})
curves, walls = pd.DataFrame(curves), pd.DataFrame(walls)
fig, ax = plt.subplots(figsize=(8, 4))
sns.lineplot(data=curves, x="step", y="exact_match", hue="model", hue_order=MODELS, errorbar="sd", ax=ax)
ax.set(ylabel=f"exact match, {S['train_length']} bits, T = depth", title="held-out learning curves (mean ± sd over seeds)")
ax.legend(fontsize=7)
run.save_figure(fig, "learning_curves")

# %% [markdown]
# ## Accuracy against test-time iterations
#
# Every looped model is run for 10× its training iterations on every test length; exact match is read after every iteration.
# The references have a fixed depth and are read once. If accuracy falls as iterations grow past M, the model "overthinks".

# %%
per_iteration = []
with torch.no_grad():
    for (name, seed), model in models.items():
        for length, (tokens, targets) in tests.items():
            if name in LOOPED:
                for t, (z, residual) in enumerate(model.states(tokens, TEST_ITERATIONS), start=1):
                    per_iteration.append({"model": name, "seed": seed, "length": length, "iterations": t,
                                          **scores(model.readout(z), targets),
                                          "median_residual": residual.median().item()})
            else:
                per_iteration.append({"model": name, "seed": seed, "length": length,
                                      "iterations": model.config.iterations,
                                      **scores(model(tokens)[0], targets), "median_residual": float("nan")})
per_iteration = pd.DataFrame(per_iteration)

fig, axes = plt.subplots(1, len(tests), figsize=(4.2 * len(tests), 4), sharey=True)
for ax, length in zip(axes, tests):
    data = per_iteration[(per_iteration.length == length) & per_iteration.model.isin(LOOPED)]
    sns.lineplot(data=data, x="iterations", y="exact_match", hue="model", hue_order=LOOPED, errorbar="sd", ax=ax,
                 legend=length == S["test_lengths"][-1])
    ax.axvline(M, color="grey", lw=0.8, ls="--")
    ax.set(title=f"{length} bits", xscale="log", ylabel="exact match (mean ± sd over seeds)", ylim=(-0.02, 1.02))
axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
fig.tight_layout()
run.save_figure(fig, "accuracy_vs_iterations")


# %% [markdown]
# ## The accuracy table
#
# Exact match (mean ± std over seeds) per model and test length, read at the training iteration count T = M and at T = 10M
# (both fixed in advance; the best iteration is never picked, since that would tune on the test set). References have one
# depth, so both columns hold the same number. *Extrapolation* is the mean over the test lengths longer than 32 bits at T = 10M.

# %%
def at_iterations(name: str, t: int) -> pd.DataFrame:
    rows = per_iteration[per_iteration.model == name]
    return rows[rows.iterations == (t if name in LOOPED else rows.iterations.max())]


finals = pd.concat([at_iterations(name, t).assign(read_at=label) for name in MODELS
                    for label, t in (("T = M", M), ("T = 10M", TEST_ITERATIONS))], ignore_index=True)
LONGER = [n for n in S["test_lengths"] if n > S["train_length"]]
extrapolation = (finals[(finals.read_at == "T = 10M") & finals.length.isin(LONGER)]
                 .groupby(["model", "seed"]).exact_match.mean().rename("extrapolation"))


accuracy = finals.pivot_table(index="model", columns=["read_at", "length"], values="exact_match", aggfunc=mean_std_text)
accuracy = accuracy.loc[MODELS, [("T = M", n) for n in S["test_lengths"]] + [("T = 10M", n) for n in S["test_lengths"]]]
accuracy["extrapolation (T = 10M)"] = extrapolation.groupby("model").apply(mean_std_text)
accuracy["parameters"] = parameters
accuracy["train seconds / run"] = walls.groupby("model").train_seconds.mean().round(1)
flat = lambda columns: [" ".join(str(part) for part in c if part != "") for c in columns]
run.add_table("exact_match", accuracy.set_axis(flat(accuracy.columns), axis=1))
bits = finals.pivot_table(index="model", columns=["read_at", "length"], values="bit_accuracy", aggfunc=mean_std_text).loc[MODELS]
run.add_table("bit_accuracy", bits.set_axis(flat(bits.columns), axis=1))
display(accuracy)
bits


# %% [markdown]
# ## The three stability axes
#
# Measured for every looped model on a fixed held-out set of 32-bit strings, at the state z* reached after 10M + 1 iterations:
# - **reachability**: relative residual ||z_{T+1} − z_T|| / ||z_T|| at T = M, 2M, 5M, 10M (median over examples) and the
#   fraction of examples under 10⁻³ at 10M;
# - **input-dependence**: *sensitivity* ||z*(x') − z*(x)|| / ||e(x') − e(x)|| for x' = x with one random bit flipped,
#   and *path spread*: the largest distance between the states reached after 10M + 1 iterations from four starts (the input
#   embedding, zeros, Gaussian noise of the same scale, another input's z*), over their norm; 0 = path independent;
# - **geometry**: spectral radius ρ(J) and spectral norm ‖J‖₂ of the Jacobian of one iteration at z*, by power iteration on
#   Jacobian-vector products (median over a subsample).

# %%
def stability_row(model: LoopedTransformer, tokens: torch.Tensor, seed: int) -> dict:
    """The medians of the three axes; the small valid edit flips one random bit of every string."""
    generator = rng("prefix-sums-stability", seed)
    flipped = tokens.clone()
    position = torch.randint(1, tokens.shape[1], (tokens.shape[0],), generator=generator).to(tokens.device)
    flipped[torch.arange(tokens.shape[0]), position] ^= 1
    measures = stability(model.step, model.initial_state, model.embed(tokens), model.embed(flipped), HORIZONS,
                         S["jacobian_size"], S["power_iterations"], generator)
    return measures.medians([f"{t // M}M" for t in HORIZONS], TOL)


stability_tokens = evaluation_set(S["train_length"], S["stability_size"], STABILITY_SEED)[0].to(device)
measures = []
for name in LOOPED:
    for seed in S["seeds"]:
        with torch.no_grad():
            measures.append({"model": name, "seed": seed, **stability_row(models[name, seed], stability_tokens, seed)})
measures = pd.DataFrame(measures).set_index(["model", "seed"]).join(extrapolation)
stability_table = measures.groupby("model", sort=False).agg(mean_std_text)
run.add_table("stability", stability_table)
stability_table

# %% [markdown]
# ## Stability against extrapolation
#
# One point per (configuration, seed). The framework predicts that models whose fixed points are reached, start-independent
# and attracting (ρ < 1) extrapolate best.

# %%
AXES = {"residual @10M": "log", "path spread": "log", "spectral radius": "linear"}
fig, axes = plt.subplots(1, len(AXES), figsize=(14, 4), sharey=True)
for ax, (measure, scale) in zip(axes, AXES.items()):
    sns.scatterplot(data=measures.reset_index(), x=measure, y="extrapolation", hue="model", hue_order=LOOPED,
                    style="model", ax=ax, legend=measure == "spectral radius", s=60)
    ax.set(xscale=scale, ylabel="extrapolation exact match (T = 10M)")
    if measure == "spectral radius":
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
fig.tight_layout()
run.save_figure(fig, "stability_vs_extrapolation")


correlations = pd.Series({measure: spearman(measures[measure], measures["extrapolation"]) for measure in AXES},
                         name="spearman with extrapolation")
run.add_table("stability_correlations", correlations.to_frame())
correlations.to_frame()

# %% [markdown]
# ## Verdicts
#
# *Extrapolation* = mean exact match over the longer test lengths at T = 10M; "reached" = residual under 10⁻³. Every quantity is
# measured once per seed, from the per-(configuration, seed) stability table. The decision rules are pre-registered in
# `repro/claims.py`:
# - **L1.prefix_sums**, part `extrapolation_deficit`: extrapolation of the recall + outer norm configurations minus that of the
#   no-recall configurations (means over configurations), per seed, at least 0.10;
# - **L2.prefix_sums**, part `reached`: share of strings reached at 10M, mean over the recall + outer norm configurations, per
#   seed, at least 0.90; part `attracting`: spectral radius, max over those configurations, per seed, at most 1.0; part
#   `best_extrapolation`: best extrapolation among those configurations minus the best among the other looped ones, per seed,
#   at least 0;
# - **L3.prefix_sums**, parts `competitive_norm_on` / `competitive_norm_off`: extrapolation of internal minus standard recall,
#   outer norm on / off, per seed, at least −0.05;
# - **L4.prefix_sums**, parts `tracks_last_residual`, `tracks_path_spread`, `tracks_spectral_radius`: Spearman ρ over the six
#   looped configurations, within one seed, of extrapolation with the residual at 10M / the path spread / the spectral radius,
#   at most −0.5. A ρ that is undefined on some seed (every configuration ties) leaves that part unmeasured;
# - every claim's gate `recall_learns`: the fewest seeds, over the recall + outer norm configurations, whose per-bit accuracy on
#   the held-out training-length (32-bit) set at T = M reaches 0.99, at least 2.
#
# `repro/verdicts.py` decides them: a 95% paired t interval over seeds against each part's margin; a failed or unmeasured gate,
# fewer seeds than the rule needs, or an interval straddling the margin gives *inconclusive*.

# %%
by_config = measures.groupby("model").mean()
seeds = measures.reset_index()
no_recall = [n for n in LOOPED if n.startswith("recall none")]
stable_recall = [n for n in LOOPED if not n.startswith("recall none") and n.endswith("on")]
others = [n for n in LOOPED if n not in stable_recall]


def describe(names) -> str:
    return "; ".join(f"{n}: extrapolation {by_config.loc[n, 'extrapolation']:.3f}, reached "
                     f"{by_config.loc[n, 'reached @10M']:.2f}, path spread {by_config.loc[n, 'path spread']:.3g}, "
                     f"rho {by_config.loc[n, 'spectral radius']:.3f}" for n in names)


def over(names, column: str, how: str) -> pd.Series:
    """Per seed (in seed order), `how` of `column` over the configurations `names`."""
    return seeds[seeds.model.isin(names)].groupby("seed")[column].agg(how).reindex(S["seeds"])


def config(recall: str, norm: str) -> pd.Series:
    return measures.loc[configuration_name(recall, norm), "extrapolation"].reindex(S["seeds"])


# L4 is decided within each seed; a rho that is NaN on some seed (every configuration ties) leaves the part unmeasured.
per_seed_rho = {m: [spearman(seeds[seeds.seed == s][m], seeds[seeds.seed == s]["extrapolation"]) for s in S["seeds"]]
                for m in AXES}
tracks = {m: None if pd.isna(rho).any() else rho for m, rho in per_seed_rho.items()}
# Competence: per-bit accuracy on the held-out training-length set at the training iteration count T = M.
trained = finals[(finals.read_at == "T = M") & (finals.length == S["train_length"]) & finals.model.isin(stable_recall)]
gates = {"recall_learns": min(int((trained[trained.model == n].bit_accuracy >= 0.99).sum()) for n in stable_recall)}
learned = ", ".join(f"{n} {trained[trained.model == n].bit_accuracy.mean():.3f}" for n in stable_recall)
scale = (f"profile {profile}, {len(S['seeds'])} seeds, {S['steps']} steps, M = {M}, tested on {LONGER} bits; per-bit "
         f"accuracy at {S['train_length']} bits, T = M (mean over seeds): {learned}")
CLAIMS = {
    "L1.prefix_sums": (
        {"extrapolation_deficit": over(stable_recall, "extrapolation", "mean") - over(no_recall, "extrapolation", "mean")},
        f"{describe(no_recall)}; {describe(stable_recall)}"),
    "L2.prefix_sums": (
        {"reached": over(stable_recall, "reached @10M", "mean"),
         "attracting": over(stable_recall, "spectral radius", "max"),
         "best_extrapolation": over(stable_recall, "extrapolation", "max") - over(others, "extrapolation", "max")},
        f"{describe(stable_recall)}; best overall (mean over seeds): {by_config['extrapolation'].idxmax()}"),
    "L3.prefix_sums": (
        {f"competitive_norm_{label}": config("internal", norm) - config("standard", norm)
         for label, norm in (("on", "layernorm"), ("off", "none"))},
        describe([configuration_name(r, n) for n in ("none", "layernorm") for r in ("standard", "internal")])),
    "L4.prefix_sums": (
        {"tracks_last_residual": tracks["residual @10M"], "tracks_path_spread": tracks["path spread"],
         "tracks_spectral_radius": tracks["spectral radius"]},
        "Spearman over the looped configurations, per seed: "
        + "; ".join(f"{m} " + ", ".join(f"{r:.2f}" for r in per_seed_rho[m]) for m in AXES)
        + " (nan: every configuration ties, the part is then not measured); pooled over the "
        f"{len(measures)} (configuration, seed) points: " + ", ".join(f"{m} {correlations[m]:.2f}" for m in AXES)),
}
DEVIATIONS = ("looped-internal-recall", "looped-relative-position", "looped-recipe", "prefix-sums-start-marker")
for claim_id, (parts, evidence) in CLAIMS.items():
    entry = run.add_claim(claim_id, parts=parts, gates=gates, evidence=f"{scale}; {evidence}", deviations=DEVIATIONS)
    display(Markdown(summary(entry)))
run.write()
