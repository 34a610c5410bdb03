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
# # 05 · SELF-Transformer on GLUE: fixed-point self-attention against vanilla attention
#
# **Claims** ("Change of Thought: Adaptive Test-Time Computation", Mathur et al. 2025; only abstracts, summaries and the authors'
# later code could be read, see `docs/papers/self-transformer.md`):
# - **S1** on GLUE, the SELF-Transformer beats BERT-Base and ELECTRA-Base with no new parameters (average 88.4, +3.4 over
#   ELECTRA-Base; numbers from a secondary summary);
# - **S7** fixed-point attention gives gains of up to 20% with no added parameters.
#
# **What we can test here.** A 110M encoder cannot be pretrained on 2 CPU cores, so the claims' absolute numbers are out of reach.
# We test the mechanism they rest on, at two honest scales, with the same recipe for both attentions:
# - **(a) pretrained:** all-MiniLM-L6-v2 (6-layer BERT, width 384, 22.7M parameters; the only checkpoint reachable offline),
#   fine-tuned once with its vanilla attention and once with every self-attention swapped to fixed-point attention (FPSA,
#   `repro.models.self_transformer`): the same weights, the same head initialisation, the same batches. A third row evaluates
#   the vanilla-fine-tuned model with FPSA swapped in at inference only.
# - **(b) from scratch:** a small randomly initialised BERT with the same vocabulary, trained with vanilla attention and with FPSA.
#
# FPSA refines each attention sublayer's input by the damped iteration u ← (1−a)u + a(x + W_O A(u) V), V fixed, from u₀ = x,
# with the defaults: damping 0.5, stop at relative residual 10⁻³ or 8 evaluations, 4-step Neumann gradient. One undamped step is
# vanilla attention exactly, so no parameter is added (tested in `tests/test_self_transformer.py`).
#
# **Data.** SST-2, CoLA, MRPC, RTE and STS-B, train and dev, from `REPRO_DATA_DIR/glue` (read with quoting off). QNLI has only its
# dev split here and MNLI, QQP and WNLI are absent, so they are left out; the GLUE average below is over these five tasks. Official
# metrics: Matthews correlation (CoLA), accuracy and F1 (MRPC), Pearson and Spearman (STS-B), accuracy (SST-2, RTE); a task's
# score is the mean of its metrics, as on the GLUE leaderboard.

# %% tags=["parameters"]
PROFILE = "auto"          # auto | smoke | cpu | gpu | paper
RESULTS_DIR = "build/scratch/results"  # relative to the repository root; `make reproduce` passes results/
FIGURES_DIR = "build/scratch/figures"  # and figures/, so a run by hand never overwrites them
CHECKPOINT_DIR = ""       # set to a folder to checkpoint every run and resume after a kill

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from torch import nn

from repro.data import glue
from repro.data.batches import ShuffledBatches, trim_padding
from repro.models import minilm
from repro.models.self_transformer import (FixedPointAttentionConfig, fixed_point_aux, fixed_point_layers,
                                           swap_bert_attention)
from repro.profiles import device_for, resolve, settings
from repro.results import Run, mean_std
from repro.seeding import derive, rng, torch_seed
from repro.train import TrainConfig, train
from repro.verdicts import summary

profile = resolve(PROFILE)
device = device_for(profile)
# DEVIATION: [glue-recipe] fine-tuning budgets, learning rates and the from-scratch size are ours: the paper's recipe is not
# reachable, and 2 CPU cores allow a few dozen steps per run, far short of the usual 3 epochs.
# DEVIATION: [glue-dev-subset] the smoke and cpu profiles score a fixed random subset of each dev set (256 examples).
S = settings({
    "smoke": dict(seeds=[0], max_length=32, dev_size=16, eval_batch=32, fpsa=dict(max_iterations=2),
                  pretrained=dict(steps=2, batch=4, lr=1e-4),
                  scratch=dict(steps=3, batch=8, lr=1e-3, width=16, layers=1, heads=2, mlp_hidden=32)),
    "cpu":   dict(seeds=[0, 1, 2], max_length=128, dev_size=256, eval_batch=64, fpsa={},
                  pretrained=dict(steps=24, batch=16, lr=1e-4),
                  scratch=dict(steps=120, batch=32, lr=1e-3, width=128, layers=2, heads=4, mlp_hidden=512)),
    "gpu":   dict(seeds=[0, 1, 2], max_length=128, dev_size=None, eval_batch=256, fpsa={},
                  pretrained=dict(steps=300, batch=32, lr=5e-5),
                  scratch=dict(steps=1500, batch=64, lr=5e-4, width=256, layers=4, heads=4, mlp_hidden=1024)),
    # Documented, not run here: 3 epochs as in BERT's GLUE recipe (the SELF paper's is unknown).
    "paper": dict(seeds=[0, 1, 2, 3, 4], max_length=128, dev_size=None, eval_batch=256, fpsa={},
                  pretrained=dict(epochs=3, batch=32, lr=2e-5),
                  scratch=dict(epochs=3, batch=32, lr=1e-4, width=768, layers=12, heads=12, mlp_hidden=3072)),
}, profile)
if "epochs" in S["pretrained"]:
    raise NotImplementedError("the paper profile documents the full-scale recipe (BERT-Base size, 3 epochs, all data); "
                              "it is not runnable here: use smoke, cpu or gpu")
TASKS = list(glue.TASKS)
FPSA = FixedPointAttentionConfig(**S["fpsa"])  # the defaults, but for smoke's cheaper cap
SCALES = ("pretrained", "scratch")
VARIANTS = ("vanilla", "FPSA at inference only", "FPSA")
run = Run("05_glue", profile, device, seeds={"model_and_batches": S["seeds"], "dev_subset": "glue-dev-subset"},
          results_dir=RESULTS_DIR, figures_dir=FIGURES_DIR)
print(f"profile {profile} on {run.provenance['device']}; settings: {S}")

# %% [markdown]
# ## Data
#
# Each task is tokenised with the backbone's WordPiece tokenizer (pairs as `[CLS] a [SEP] b [SEP]`, at most `max_length`
# tokens); batches are cut to their longest sequence. The dev subset (where the profile takes one) is drawn once per task from a
# named seed, before any model is trained.

# %%
tokenizer = minilm.tokenizer()
data, sizes = {}, []
for name in TASKS:
    train_table, dev_table = glue.load(name, "train"), glue.load(name, "dev")
    if S["dev_size"] is not None and S["dev_size"] < len(dev_table):
        keep = torch.randperm(len(dev_table), generator=rng("glue-dev-subset", name))[:S["dev_size"]].sort().values
        dev_scored = dev_table.iloc[keep.numpy()]
    else:
        dev_scored = dev_table
    data[name] = {"train": glue.encode(train_table, tokenizer, S["max_length"]),
                  "dev": glue.encode(dev_scored, tokenizer, S["max_length"])}
    lengths = data[name]["train"][1].sum(dim=1).float()
    sizes.append({"task": name, "train": len(train_table), "dev": len(dev_table), "dev scored": len(dev_scored),
                  "metrics": ", ".join(glue.task(name).metrics), "mean train tokens": round(lengths.mean().item(), 1),
                  "truncated train (%)": round(100 * (lengths == S["max_length"]).float().mean().item(), 1)})
sizes = pd.DataFrame(sizes).set_index("task")
run.add_table("data", sizes)
sizes


# %% [markdown]
# ## Fine-tuning and evaluation
#
# One recipe for every run: AdamW (weight decay 0.01), linear warm-up over 10% of the steps, cosine decay, clipping at 1.0,
# cross-entropy (mean squared error for STS-B) on a linear head over the mean of the last hidden states (the pooling
# all-MiniLM-L6-v2 was trained with; its `[CLS]` pooler never was). For a task and seed, vanilla and FPSA models start from the
# same weights (the same head initialisation, drawn from a named seed) and see the same batches in the same order. Dropout is
# on in training (attention dropout with one mask per forward in FPSA). Evaluation records the FPSA evaluations each layer spent
# on each dev example.

# %%
def logits(model: nn.Module, batch) -> torch.Tensor:
    ids, mask, types = batch[:3]
    return model(input_ids=ids, attention_mask=mask, token_type_ids=types).float()


def task_loss(model: nn.Module, batch) -> torch.Tensor:
    output, labels = logits(model, batch), batch[3]
    if output.shape[1] == 1:
        return nn.functional.mse_loss(output.squeeze(1), labels)
    return nn.functional.cross_entropy(output, labels)


def predict(model: nn.Module, tensors) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Outputs for every example and, with FPSA, evaluations per (layer, example); batches sorted by length."""
    order = torch.argsort(tensors[1].sum(dim=1))
    outputs, spent = torch.empty(len(order), model.num_labels), []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), S["eval_batch"]):
            index = order[start:start + S["eval_batch"]]
            outputs[index] = logits(model, trim_padding(tuple(t[index].to(device) for t in tensors))).cpu()
            if fixed_point_layers(model):
                spent.append((index, fixed_point_aux(model)["iterations"].cpu()))
    if not spent:
        return outputs, None
    iterations = torch.empty(len(spent[0][1]), len(order), dtype=torch.long)
    for index, values in spent:
        iterations[:, index] = values
    return outputs, iterations


def build(scale: str, name: str, seed: int, attention) -> nn.Module:
    with torch_seed(derive("glue-model", scale, name, seed)):
        if scale == "pretrained":
            return minilm.classifier(glue.task(name).outputs, attention)
        size = {k: S["scratch"][k] for k in ("width", "layers", "heads", "mlp_hidden")}
        return minilm.scratch_classifier(glue.task(name).outputs, max_length=S["max_length"], attention=attention, **size)


def fine_tune(model: nn.Module, scale: str, name: str, seed: int, variant: str) -> float:
    recipe = S[scale]
    config = TrainConfig(steps=recipe["steps"], lr=recipe["lr"], warmup_steps=max(1, recipe["steps"] // 10), seed=seed)
    batches = ShuffledBatches(data[name]["train"], recipe["batch"], derive("glue-batches", name, seed))
    checkpoint = Path(CHECKPOINT_DIR) / f"05_glue-{scale}-{name}-{variant}-{seed}.pt" if CHECKPOINT_DIR else None
    return train(model, task_loss, batches, config, checkpoint=checkpoint, device=device,
                 description=f"{scale} {name} {variant} seed {seed}").wall_seconds


def score(model: nn.Module, scale: str, name: str, seed: int, variant: str, train_seconds: float) -> dict:
    started = time.time()
    outputs, iterations = predict(model, data[name]["dev"])
    row = {"scale": scale, "variant": variant, "task": name, "seed": seed,
           **glue.metrics(name, data[name]["dev"][3].numpy(), outputs.numpy()),
           "train seconds": train_seconds, "eval seconds": time.time() - started}
    if iterations is not None:
        row |= {"evaluations": iterations.float().mean().item(), "median evaluations": iterations.median().item(),
                "at cap": (iterations == FPSA.max_iterations).float().mean().item(),
                **{f"layer {i + 1}": v.item() for i, v in enumerate(iterations.float().mean(dim=1))}}
    return row


rows = []
for name in TASKS:
    for seed in S["seeds"]:
        for scale in SCALES:
            vanilla = build(scale, name, seed, None)
            seconds = fine_tune(vanilla, scale, name, seed, "vanilla")
            rows.append(score(vanilla, scale, name, seed, "vanilla", seconds))
            rows.append(score(swap_bert_attention(vanilla, FPSA), scale, name, seed, "FPSA at inference only", 0.0))
            fixed_point = build(scale, name, seed, FPSA)
            seconds = fine_tune(fixed_point, scale, name, seed, "FPSA")
            rows.append(score(fixed_point, scale, name, seed, "FPSA", seconds))
            print(f"{name} seed {seed} {scale}: " + ", ".join(f"{r['variant']} {r['score']:.1f}" for r in rows[-3:]))
results = pd.DataFrame(rows)
parameters = {scale: sum(p.numel() for p in build(scale, TASKS[0], 0, None).parameters()) for scale in SCALES}


# %% [markdown]
# ## Results: task scores (dev, ×100, mean ± std over seeds)
#
# The GLUE average is taken per seed over the five tasks, then over seeds.

# %%
def cell(values) -> str:
    stats = mean_std(values)
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


per_seed = results.pivot_table(index=["scale", "variant", "seed"], columns="task", values="score")[TASKS]
per_seed["GLUE avg (5 tasks)"] = per_seed[TASKS].mean(axis=1)
scores = per_seed.groupby(level=["scale", "variant"], sort=False).agg(cell)
scores = scores.reindex(pd.MultiIndex.from_product([SCALES, VARIANTS], names=["scale", "variant"]))
scores.insert(0, "parameters", [f"{parameters[s] / 1e6:.2f}M" for s, _ in scores.index])
run.add_table("scores", scores)
metric_columns = ["accuracy", "f1", "mcc", "pearson", "spearman"]
all_metrics = (results.melt(id_vars=["scale", "variant", "task", "seed"], value_vars=metric_columns, var_name="metric")
               .dropna().groupby(["scale", "variant", "task", "metric"], sort=False)["value"].agg(cell).unstack("task"))
run.add_table("metrics", all_metrics)
display(scores)
all_metrics

# %% [markdown]
# ## The paper's table beside ours
#
# The SELF and ELECTRA-Base rows are the only GLUE numbers known for the paper, and they come from a secondary summary (the paper's
# table could not be read). BERT-Base's row is the published GLUE **test**-set result (Devlin et al. 2019, Table 1: F1 for MRPC,
# Spearman for STS-B), not dev; its average is over the same five tasks. Ours are dev scores of 22.7M- and smaller models after a
# few dozen fine-tuning steps: compare the vanilla and FPSA rows with each other, not with the published rows.

# %%
BERT_BASE_TEST = {"SST-2": 93.5, "CoLA": 52.1, "MRPC": 88.9, "RTE": 66.4, "STS-B": 85.8}
published = pd.DataFrame([
    {"model": "BERT-Base (published, GLUE test)", **BERT_BASE_TEST,
     "GLUE avg (5 tasks)": np.mean(list(BERT_BASE_TEST.values())), "source": "Devlin et al. 2019"},
    {"model": "ELECTRA-Base (secondary summary)", "GLUE avg": 85.0, "source": "88.4 - 3.4, as the summary states"},
    {"model": "SELF-Transformer (secondary summary)", "GLUE avg": 88.4, "source": "claim S1"},
]).set_index("model")
ours = scores.drop(columns="parameters").copy()
ours.index = [f"ours: {scale} MiniLM-family, {variant}" for scale, variant in ours.index]
ours["source"] = f"this run ({profile} profile, dev)"
beside = pd.concat([published.astype(object), ours.astype(object)])
run.add_table("paper_vs_ours", beside)
beside

# %% [markdown]
# ## Compute spent: FPSA evaluations per layer, and wall time
#
# Evaluations per layer and dev example (1 = vanilla; the cap is 8 outside the smoke profile). "at cap": fraction of (layer, example) pairs that stopped at
# the cap without reaching the tolerance.

# %%
fpsa_rows = results[results["variant"] != "vanilla"]
layer_columns = [c for c in results.columns if c.startswith("layer ")]
iterations = fpsa_rows.groupby(["scale", "variant"], sort=False)[["evaluations", "median evaluations", "at cap"]].mean()
run.add_table("iterations", iterations.round(3))
timing = results.groupby(["scale", "variant"], sort=False)[["train seconds", "eval seconds"]].mean().round(1)
run.add_table("wall_seconds_per_run", timing)
display(iterations.round(3))
display(timing)

fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [3, 2]})
plotted = results.assign(label=results["scale"] + " · " + results["variant"])
sns.stripplot(data=plotted, x="task", y="score", hue="label", dodge=True, ax=axes[0], size=5, order=TASKS)
sns.pointplot(data=plotted, x="task", y="score", hue="label", dodge=0.65, ax=axes[0], order=TASKS, errorbar=None,
              markers="_", linestyles="none", legend=False)
axes[0].set(ylabel="task score (dev, ×100)", title=f"GLUE dev score per seed ({profile} profile)")
axes[0].legend(fontsize=7, loc="lower left")
layers = fpsa_rows.melt(id_vars=["scale", "variant"], value_vars=layer_columns, var_name="layer",
                        value_name="mean evaluations")
sns.lineplot(data=layers.assign(label=layers["scale"] + " · " + layers["variant"]), x="layer", y="mean evaluations",
             hue="label", marker="o", ax=axes[1])
axes[1].axhline(FPSA.max_iterations, color="grey", ls="--", lw=0.8)
axes[1].set(title="FPSA evaluations per layer (dev, mean)", ylim=(0, FPSA.max_iterations + 0.5))
axes[1].tick_params(axis="x", rotation=45)
axes[1].legend(fontsize=7)
fig.tight_layout()
run.save_figure(fig, "scores_and_iterations")


# %% [markdown]
# ## Verdicts
#
# The decision rules are pre-registered in `repro/claims.py` and decided by `repro/verdicts.py` alone: a 95% paired t
# interval over seeds (same start, same batches) of each part's per-seed value, against the part's margin. A failed or
# unmeasured gate, fewer seeds than the rule needs, or an interval straddling the margin gives *inconclusive*.
# - **S1.glue_mechanism**, part *pretrained*: the five-task GLUE average, FPSA minus vanilla, pretrained MiniLM, per seed,
#   at least +1 point; part *scratch*: the same for the encoder trained from scratch, at least +1 point.
# - **S7.glue** ("up to 20%"), part *largest_gain*: FPSA minus vanilla in the (scale, task) pair with the largest mean
#   difference, per seed, at least +1 point, its interval corrected (Bonferroni) for the 10 pairs compared. The relative
#   gains below are descriptive only.
# - Gates of both: vanilla pretrained SST-2 accuracy ≥ 85 and STS-B Pearson ≥ 80 (×100, mean over seeds); every dev
#   example scored (share ≥ 1); FPSA solves stopped at the cap ≤ 10% (trained FPSA, pretrained scale, mean over seeds).
#
# The "FPSA at inference only" rows are reported but used by neither claim (the claims concern trained models), and the
# absolute 88.4 of S1 is not tested: it needs pretraining at BERT-Base scale.

# %%
def paired(scale: str, column_values: pd.Series) -> pd.Series:
    """FPSA minus vanilla per seed for one scale (in seed order)."""
    return column_values.loc[(scale, "FPSA")] - column_values.loc[(scale, "vanilla")]


def describe(delta: pd.Series) -> str:
    spread = delta.std(ddof=1) if len(delta) > 1 else float("nan")
    return f"Δ {delta.mean():+.2f} ± {spread:.2f} (n = {len(delta)})"


average = per_seed["GLUE avg (5 tasks)"]
deltas = {scale: paired(scale, average) for scale in SCALES}
evidence_s1 = "; ".join(f"{scale}: FPSA {cell(average.loc[(scale, 'FPSA')])} vs vanilla {cell(average.loc[(scale, 'vanilla')])}, "
                        f"{describe(deltas[scale])}" for scale in SCALES)

pair_deltas = {(scale, name): paired(scale, per_seed[name]) for scale in SCALES for name in TASKS}
gains = []
for (scale, name), delta in pair_deltas.items():
    base = per_seed[name].loc[(scale, "vanilla")].mean()
    # Descriptive only: a relative gain over a near-zero vanilla score (CoLA's correlation) means nothing.
    gains.append({"scale": scale, "task": name, "delta": delta.mean(),
                  "delta std": delta.std(ddof=1) if len(delta) > 1 else np.nan,
                  "relative gain (%)": 100 * (per_seed[name].loc[(scale, "FPSA")].mean() / base - 1) if base >= 5 else np.nan})
gains = pd.DataFrame(gains).set_index(["scale", "task"])
run.add_table("fpsa_minus_vanilla", gains.round(3))
largest = gains["delta"].idxmax()  # the pair S7 is decided on; its interval is corrected for all pairs

# Gates, shared by S1 and S7 (pretrained vanilla competence; the whole dev set; FPSA's loops stop before the cap).
pretrained_vanilla = results[(results["scale"] == "pretrained") & (results["variant"] == "vanilla")]
gates = {"vanilla_sst2": pretrained_vanilla.loc[pretrained_vanilla["task"] == "SST-2", "accuracy"].mean(),
         "vanilla_stsb": (pretrained_vanilla.loc[pretrained_vanilla["task"] == "STS-B", "pearson"].mean()
                          if "STS-B" in TASKS else None),
         "full_dev": (sizes["dev scored"] / sizes["dev"]).min(),
         # the trained FPSA rows: their mean over (task, seed) is the mean over seeds of each seed's task mean
         "fpsa_converges": iterations.loc[("pretrained", "FPSA"), "at cap"]}

scale_note = (f"profile {profile}; {len(S['seeds'])} seeds; pretrained: MiniLM-L6 fine-tuned {S['pretrained']['steps']} steps "
              f"of batch {S['pretrained']['batch']}; scratch: {parameters['scratch'] / 1e6:.1f}M-parameter BERT trained "
              f"{S['scratch']['steps']} steps; dev scored on {S['dev_size'] or 'all'} examples per task")
deviations = ("self-minilm-backbone", "glue-recipe", "glue-dev-subset", "glue-five-tasks", "self-solver-settings",
              "self-neumann-gradient", "self-post-ln-loop", "self-injected-map", "self-example-stop")
entries = [
    run.add_claim("S1.glue_mechanism", parts={scale: deltas[scale] for scale in SCALES}, gates=gates,
                  evidence=f"{evidence_s1}; {scale_note}", deviations=deviations),
    run.add_claim("S7.glue", parts={"largest_gain": pair_deltas[largest]}, gates=gates,
                  comparisons={"largest_gain": len(pair_deltas)},
                  evidence=f"largest mean difference of {len(pair_deltas)} (scale, task) pairs: {largest[0]} {largest[1]}, "
                           f"{describe(pair_deltas[largest])}"
                           + (f", relative {gains.loc[largest, 'relative gain (%)']:+.1f}%"
                              if pd.notna(gains.loc[largest, "relative gain (%)"]) else "") + f"; {scale_note}",
                  deviations=deviations + ("s7-absolute-gain",)),
]
path = run.write()
for entry in entries:
    display(Markdown(summary(entry)))
gains.round(3)

# %% [markdown]
# ## What this run can and cannot say
#
# - It tests whether fixed-point refinement of the attention input, with no new parameter, helps a BERT-family encoder under one
#   fine-tuning recipe, at 22.7M parameters (pretrained) and at a few million (from scratch). It cannot test the paper's absolute
#   GLUE average, which needs a BERT-Base-sized encoder pretrained (perhaps with FPSA) on a large corpus.
# - MiniLM was pretrained with vanilla attention. FPSA changes the function each layer computes (the attention input is the
#   refined u*, not x), so with a few dozen fine-tuning steps the FPSA model starts further from what pretraining learned; the
#   "FPSA at inference only" rows measure that shift directly. A longer fine-tune (`gpu` profile) narrows it.
# - The evaluations-per-layer table is the compute FPSA spent; `10_scaling` measures its FLOPs and latency.
