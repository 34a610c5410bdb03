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
# # 01 · AdaTape parity: Transformer and Universal Transformer against AdaTape
#
# **Claim A1** (AdaTape, Xue et al., ICML 2023; blog-derived summaries): on parity, a standard Transformer
# and a Universal Transformer stay at chance while AdaTape solves the task.
#
# **Data.** Two generators, fresh training batches from a seeded stream, one fixed evaluation set each:
# - `adatape`: the official release's generator: length 32, every entry uniform over {1, 0, -1};
# - `act`: the ACT/PonderNet generator: length 64, a uniform random number 1..64 of ±1 entries, the rest 0.
#
# The label is the number of +1 entries mod 2.
#
# **Models.**
# - Transformer: pre-LN encoder, one token per element plus CLS.
# - Universal Transformer (ACT): one weight-tied block with per-position ACT halting and ponder cost.
# - AdaTape, as in the release's parity model: the whole vector is one input token, and Adaptive Tape Reading
#   appends up to T tape tokens. Two banks are compared: the input-driven bank (the per-element embeddings) and a
#   learnable bank.
#
# All four share one task loss, one optimiser and one schedule. The compute penalty (ACT ponder cost, AdaTape
# tape loss) is added to the loss of the adaptive models.

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

from repro.data.parity import GENERATORS, ParityStream, evaluation_set
from repro.models.adatape import AdaTapeParity, AdaTapeParityConfig
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.models.universal import UniversalConfig, UniversalTransformer
from repro.nn import count_parameters
from repro.profiles import device_for, resolve, settings
from repro.results import Run, mean_std
from repro.seeding import derive, torch_seed
from repro.train import TrainConfig, classification_loss, train
from repro.verdicts import summary

profile = resolve(PROFILE)
device = device_for(profile)
# DEVIATION: [adatape-parity-scale] no parity configuration was released; sizes and budgets are ours.
S = settings({
    "smoke": dict(seeds=[0], steps=12, batch=32, lr=1e-3, width=16, heads=2, layers=2, eval_size=128,
                  eval_every=6, ut_max_steps=3, tape={"adatape": (10, 2.0), "act": (20, 4.0)}, probe_steps=24),
    "cpu":   dict(seeds=[0, 1, 2], steps=1000, batch=64, lr=3e-3, width=32, heads=4, layers=4, eval_size=2000,
                  eval_every=100, ut_max_steps=8, tape={"adatape": (10, 2.0), "act": (20, 4.0)}, probe_steps=5000),
    "gpu":   dict(seeds=[0, 1, 2], steps=20000, batch=256, lr=1e-3, width=128, heads=4, layers=4, eval_size=6400,
                  eval_every=1000, ut_max_steps=8, tape={"adatape": (10, 2.0), "act": (20, 4.0)}, probe_steps=100000),
    "paper": dict(seeds=[0, 1, 2], steps=100000, batch=512, lr=1e-3, width=256, heads=4, layers=6, eval_size=6400,
                  eval_every=5000, ut_max_steps=12, tape={"adatape": (10, 2.0), "act": (20, 4.0)}, probe_steps=500000),
}, profile)
EVAL_SEED = 0
run = Run("01_parity", profile, device, seeds={"model_and_data": S["seeds"], "evaluation": EVAL_SEED},
          results_dir=RESULTS_DIR, figures_dir=FIGURES_DIR)
print(f"profile {profile} on {run.provenance['device']}; settings: {S}")

# %% [markdown]
# ## Models
#
# Same width, heads and depth everywhere. The Universal Transformer ties one block's weights across up to
# `ut_max_steps` steps, so it has fewer parameters by construction. The counts are in the table below.
# For AdaTape, T is the maximum tape length and τ the halting budget; there are k = T/τ = 5 candidates per step, as in the release.

# %%
MODELS = ("Transformer", "Universal Transformer (ACT)", "AdaTape (input bank)", "AdaTape (learnable bank)")


def build(model: str, kind: str) -> torch.nn.Module:
    length, width = GENERATORS[kind], S["width"]
    common = dict(width=width, heads=S["heads"], mlp_hidden=4 * width)
    if model == "Transformer":
        # DEVIATION: [parity-baseline-tokens] one token per element for the baselines.
        return TransformerClassifier(TransformerConfig(vocab=3, max_len=length, classes=2, layers=S["layers"], **common))
    if model == "Universal Transformer (ACT)":
        return UniversalTransformer(UniversalConfig(vocab=3, max_len=length, classes=2, max_steps=S["ut_max_steps"],
                                                    **common))
    max_tape, budget = S["tape"][kind]
    bank = {"AdaTape (input bank)": "input", "AdaTape (learnable bank)": "learnable"}[model]
    return AdaTapeParity(AdaTapeParityConfig(length=length, bank=bank, bank_size=length, encoder=dict(
        layers=S["layers"], max_tape=max_tape, budget=budget, **common)))


parameters = pd.DataFrame([{"generator": kind, "model": model, "parameters": count_parameters(build(model, kind))}
                           for kind in GENERATORS for model in MODELS])
parameters.pivot(index="model", columns="generator", values="parameters").loc[list(MODELS)]


# %% [markdown]
# ## Training
#
# Every (generator, model, seed) run gets the same recipe: AdamW, linear warm-up over 10% of the steps, cosine
# decay, clipping at 1.0. The model seed and the data stream are both derived from the run's seed. Evaluation
# uses the fixed held-out set, with AdaTape's deterministic reading (no query noise, no bank dropout).

# %%
def evaluate(model, inputs, labels) -> dict:
    logits, aux = model(inputs)
    row = {"accuracy": (logits.argmax(dim=1) == labels).float().mean().item(),
           "token_layers": aux["token_layers"].float().mean().item()}
    if "tape_length" in aux:
        row["tape_length"] = aux["tape_length"].float().mean().item()
    if "ponder_steps" in aux:
        row["ponder_steps"] = aux["ponder_steps"].float().mean().item()
    return row


def fit(model_name: str, kind: str, seed: int, steps: int, inputs, labels):
    with torch_seed(derive("parity-model", model_name, kind, seed)):
        model = build(model_name, kind)
    config = TrainConfig(steps=steps, lr=S["lr"], warmup_steps=steps // 10, eval_every=S["eval_every"], seed=seed,
                         checkpoint_every=S["eval_every"])
    checkpoint = (Path(CHECKPOINT_DIR) / f"01_parity-{kind}-{model_name}-{seed}-{steps}.pt".replace(" ", "_")
                  if CHECKPOINT_DIR else None)
    # DEVIATION: [adatape-softmax-ce] one softmax cross-entropy for all four models.
    return model, train(model, classification_loss, ParityStream(kind, GENERATORS[kind], S["batch"], seed), config,
                        evaluate=lambda m: evaluate(m, inputs, labels), checkpoint=checkpoint, device=device,
                        description=f"{kind} {model_name} seed {seed}")


evaluation = {kind: tuple(t.to(device) for t in evaluation_set(kind, length, S["eval_size"], EVAL_SEED))
              for kind, length in GENERATORS.items()}
curves, finals, per_example = [], [], []
for kind in GENERATORS:
    inputs, labels = evaluation[kind]
    for model_name in MODELS:
        for seed in S["seeds"]:
            model, result = fit(model_name, kind, seed, S["steps"], inputs, labels)
            curves += [{"generator": kind, "model": model_name, "seed": seed, **row} for row in result.history]
            with torch.no_grad():
                logits, aux = model(inputs)
            finals.append({"generator": kind, "model": model_name, "seed": seed, **result.history[-1],
                           "wall_seconds": result.wall_seconds})
            compute = aux.get("tape_length", aux.get("ponder_steps"))
            if compute is not None:
                per_example.append(pd.DataFrame({
                    "generator": kind, "model": model_name, "seed": seed,
                    "plus_ones": (inputs == 2).sum(dim=1).cpu().numpy(),
                    "compute": compute.float().cpu().numpy(),
                    "correct": (logits.argmax(dim=1) == labels).cpu().numpy()}))
            if model_name == "AdaTape (input bank)":
                # What the tape reads: the share of +1 entries among the bank entries merged into tape tokens.
                finals[-1]["tape_plus_one_share"] = ((aux["selected"] * (inputs == 2)).sum()
                                                     / aux["selected"].sum()).item()
curves, finals = pd.DataFrame(curves), pd.DataFrame(finals)
per_example = pd.concat(per_example, ignore_index=True)


# %% [markdown]
# ## The parity table
#
# Accuracy is the mean ± std over seeds on the held-out set after the last step. Compute is the mean number of token positions × block
# applications per example, counting only the tape slots AdaTape actually read. `tape_plus_one_share` is the share of +1
# entries among the bank entries AdaTape merged into its tape; the share among all entries is 1/3 for the `adatape` generator. Well above
# that share, the reader is looking at the entries that decide the label.

# %%
def summarise(group: pd.DataFrame) -> pd.Series:
    accuracy = mean_std(group["accuracy"])
    row = {"accuracy": f"{accuracy['mean']:.3f} ± {accuracy['std']:.3f}", "accuracy_mean": accuracy["mean"],
           "accuracy_std": accuracy["std"], "seeds": accuracy["n"]}
    # Means over seeds; NaN where a model has no such quantity (tape, ponder steps).
    for column in ("token_layers", "tape_length", "ponder_steps", "tape_plus_one_share", "wall_seconds"):
        row[column] = group[column].mean()
    return pd.Series(row)


table = (finals.groupby(["generator", "model"], sort=False).apply(summarise, include_groups=False)
         .join(parameters.set_index(["generator", "model"])))
run.add_table("parity", table)
table.drop(columns=["accuracy_mean", "accuracy_std"])

# %%
fig, axes = plt.subplots(1, len(GENERATORS), figsize=(12, 4), sharey=True)
for ax, kind in zip(axes, GENERATORS):
    sns.lineplot(data=curves[curves.generator == kind], x="step", y="accuracy", hue="model", hue_order=MODELS,
                 errorbar="sd", ax=ax)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title(f"{kind} generator (length {GENERATORS[kind]})")
    ax.set_ylabel("held-out accuracy (mean ± sd over seeds)")
    ax.set_ylim(0.4, 1.02)
fig.tight_layout()
run.save_figure(fig, "learning_curves")

# %% [markdown]
# ## Does AdaTape spend more tokens on harder inputs?
#
# The x-axis is the number of +1 entries; the y-axis is the tape length AdaTape read (and, for comparison, the UT's mean ponder steps).
# Points are means over the evaluation examples with that count, pooled over seeds.

# %%
fig, axes = plt.subplots(1, len(GENERATORS), figsize=(12, 4))
for ax, kind in zip(axes, GENERATORS):
    data = per_example[per_example.generator == kind]
    sns.lineplot(data=data, x="plus_ones", y="compute", hue="model", errorbar="sd", ax=ax)
    ax.set_xlabel("number of +1 entries")
    ax.set_ylabel("tape tokens read (AdaTape) / ponder steps (UT)")
    ax.set_title(f"{kind} generator")
fig.tight_layout()
run.save_figure(fig, "tape_length_vs_ones")
correlation = (per_example.groupby(["generator", "model"])[["plus_ones", "compute"]]
               .apply(lambda g: g["plus_ones"].rank().corr(g["compute"].rank())).rename("spearman(+1 count, compute)"))
correlation.to_frame()

# %% [markdown]
# ## Scale probe: AdaTape (input bank) trained 5x longer
#
# The question is whether AdaTape is still learning when the main budget runs out. One run per profile answers it: the release's generator,
# seed 0 (fixed in advance, not picked), `probe_steps` steps, everything else unchanged. It is a single seed, so it shows a trend and
# carries no error bar.

# %%
inputs, labels = evaluation["adatape"]
_, probe = fit("AdaTape (input bank)", "adatape", 0, S["probe_steps"], inputs, labels)
probe_curve = pd.DataFrame(probe.history)
run.add_table("scale_probe", probe_curve.set_index("step"))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(probe_curve["step"], probe_curve["accuracy"], marker="o")
ax.axhline(0.5, color="grey", lw=0.8, ls="--")
ax.set(xlabel="step", ylabel="held-out accuracy", ylim=(0.4, 1.02),
       title=f"AdaTape (input bank), adatape generator, {S['probe_steps']} steps, seed 0")
run.save_figure(fig, "scale_probe")
print(f"probe: final accuracy {probe_curve['accuracy'].iloc[-1]:.3f} after {S['probe_steps']} steps "
      f"({probe.wall_seconds / 60:.1f} min)")

# %% [markdown]
# ## Verdicts for A1 and A1.len64
#
# `A1` uses the release's generator, `A1.len64` the ACT generator. The decision rule is pre-registered in `repro/claims.py`:
# - part `adatape_solves`: held-out accuracy of AdaTape (input bank) after the last step, per seed, at least 0.95;
# - part `transformer_fails`: held-out accuracy of the Transformer, per seed, at most 0.60;
# - part `universal_fails`: held-out accuracy of the Universal Transformer (ACT), per seed, at most 0.60;
# - gate `baselines_budget`: the baselines' training steps / the largest, over seeds, first evaluation step at which AdaTape
#   (input bank) reaches 0.95 held-out in its learning curve (0 when it never does on some seed), at least 2;
# - gate `universal_ponders`: the Universal Transformer's mean ponder steps on the held-out set, mean over seeds, at least 1.5.
#
# `repro/verdicts.py` decides it: a 95% paired t interval over seeds against each part's margin; a failed or unmeasured gate,
# fewer seeds than the rule needs, or an interval straddling the margin gives *inconclusive*. The scale probe is one seed, so it
# is described in the evidence and does not enter the decision.

# %%
SOLVED = 0.95  # "first reach 0.95 held-out" in the pre-registered gate baselines_budget
DEVIATIONS = ("adatape-softmax-ce", "adatape-masked-mean", "adatape-per-example-scores", "adatape-parity-scale", "parity-baseline-tokens")


def per_seed(kind: str, model: str) -> pd.Series:
    """Final held-out accuracy of one model, in seed order."""
    rows = finals[(finals.generator == kind) & (finals.model == model)].set_index("seed")
    return rows.loc[S["seeds"], "accuracy"]


def first_solved(kind: str) -> pd.Series:
    """Per seed, the first evaluation step at which AdaTape (input bank) reaches SOLVED; NaN where it never does."""
    curve = curves[(curves.generator == kind) & (curves.model == "AdaTape (input bank)")]
    return curve[curve.accuracy >= SOLVED].groupby("seed").step.min().reindex(S["seeds"])


for claim_id, kind in (("A1", "adatape"), ("A1.len64", "act")):
    solved_at = first_solved(kind)
    # Every baseline trained S["steps"] steps; a seed that never solves makes the budget ratio 0.
    budget = 0.0 if solved_at.isna().any() else S["steps"] / solved_at.max()
    evidence = "; ".join(f"{m}: {table.loc[(kind, m), 'accuracy']}" for m in MODELS)
    evidence += ("; AdaTape (input bank) first reaches 0.95 at step "
                 + ", ".join("never" if pd.isna(s) else str(int(s)) for s in solved_at) + " (per seed)"
                 f"; Universal Transformer ponder steps {table.loc[(kind, 'Universal Transformer (ACT)'), 'ponder_steps']:.2f}")
    if kind == "adatape":
        evidence += (f"; scale probe (AdaTape input bank, seed 0, {S['probe_steps']} steps, descriptive): "
                     f"{probe_curve['accuracy'].iloc[-1]:.3f}")
    entry = run.add_claim(
        claim_id,
        parts={"adatape_solves": per_seed(kind, "AdaTape (input bank)"),
               "transformer_fails": per_seed(kind, "Transformer"),
               "universal_fails": per_seed(kind, "Universal Transformer (ACT)")},
        gates={"baselines_budget": budget,
               "universal_ponders": table.loc[(kind, "Universal Transformer (ACT)"), "ponder_steps"]},
        evidence=f"{kind} generator, profile {profile}, {len(S['seeds'])} seeds, {S['steps']} steps: {evidence}",
        deviations=DEVIATIONS)
    display(Markdown(summary(entry)))
run.write()
