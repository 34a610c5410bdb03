"""The parity study of AdaTape (notebook 01): a Transformer, a Universal Transformer with ACT and AdaTape with its two
tape banks, trained with one recipe on the two parity generators and scored on one fixed held-out set each.

Parity is the task on which a fixed-depth model is expected to stay at chance and an adaptive one to solve it (claim
A1). Accuracy alone does not say *how* a model solved it, so the study also records the compute each model spent on
every held-out example against what makes an example harder (its number of +1 entries), and what AdaTape's tape read:

1. `build` makes one model of the zoo for one generator; `fit` draws its weights from the stream ("parity-model", model,
   generator, seed) and trains it with `repro.train.train` on the `ParityStream` of the same seed, scoring the held-out
   set (`evaluate`) every `eval_every` steps;
2. `train_zoo` runs every (generator, model, seed) in that nesting and returns tidy frames: the learning curves (one row
   per evaluation), the final row of every run, and one row per held-out example of every adaptive run (`examples`);
3. `parity_table`, `compute_correlation`, `per_seed`, `first_solved` and `baselines_budget` read those frames for the
   table, the figures and the claim's parts and gates.

The probe run (`fit` with `probe_steps`) asks whether AdaTape is still learning when the main budget runs out.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from repro import plots
from repro.data.parity import GENERATORS, ParityStream, evaluation_set
from repro.losses import classification_loss
from repro.models.adatape import AdaTapeParity, AdaTapeParityConfig
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.models.universal import UniversalConfig, UniversalTransformer
from repro.nn import count_parameters
from repro.results import mean_std, spearman
from repro.seeding import derive, torch_seed
from repro.study import Settings
from repro.train import TrainConfig, TrainResult, train

TRANSFORMER = "Transformer"
UNIVERSAL = "Universal Transformer (ACT)"
ADATAPE_INPUT = "AdaTape (input bank)"
ADATAPE_LEARNABLE = "AdaTape (learnable bank)"
MODELS = (TRANSFORMER, UNIVERSAL, ADATAPE_INPUT, ADATAPE_LEARNABLE)
"""The zoo, in the order of its tables."""
BANKS = {ADATAPE_INPUT: "input", ADATAPE_LEARNABLE: "learnable"}
EVAL_SEED = 0
"""The seed of the held-out sets: one per generator, the same for every model and training seed."""
SOLVED = 0.95
"""Held-out accuracy at which AdaTape counts as having solved parity (the pre-registered gate `baselines_budget`)."""
CHANCE = 0.5
PLUS_ONE = 2
"""The symbol of a +1 entry (symbols are value + 1)."""


@dataclass(frozen=True)
class ParitySettings(Settings):
    """One recipe for the whole zoo: the same width, heads and depth, optimiser, schedule and data for every model."""
    steps: int  # training steps of every run of the zoo
    probe_steps: int  # training steps of the probe run
    batch: int
    lr: float
    eval_every: int  # training steps between evaluations (and checkpoints)
    eval_size: int  # held-out examples per generator
    width: int
    heads: int
    layers: int
    ut_max_steps: int  # the Universal Transformer's cap on block applications
    tape: dict  # generator -> (T, τ): AdaTape's maximum tape length and its halting budget


def build(settings: ParitySettings, model: str, kind: str) -> torch.nn.Module:
    """One model of the zoo, sized for the vectors of generator `kind`, drawn from the global random state."""
    length, width = GENERATORS[kind], settings.width
    common = dict(width=width, heads=settings.heads, mlp_hidden=4 * width)
    if model == TRANSFORMER:
        # DEVIATION: [parity-baseline-tokens] one token per element for the baselines.
        return TransformerClassifier(TransformerConfig(vocab=3, max_len=length, classes=2, layers=settings.layers,
                                                       **common))
    if model == UNIVERSAL:
        return UniversalTransformer(UniversalConfig(vocab=3, max_len=length, classes=2,
                                                    max_steps=settings.ut_max_steps, **common))
    max_tape, budget = settings.tape[kind]
    return AdaTapeParity(AdaTapeParityConfig(length=length, bank=BANKS[model], bank_size=length, encoder=dict(
        layers=settings.layers, max_tape=max_tape, budget=budget, **common)))


def parameters(settings: ParitySettings) -> pd.DataFrame:
    """One row per (generator, model): its parameter count."""
    return pd.DataFrame([{"generator": kind, "model": model, "parameters": count_parameters(build(settings, model, kind))}
                         for kind in GENERATORS for model in MODELS])


def evaluation_sets(settings: ParitySettings, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Generator -> (inputs, labels) of its fixed held-out set, on `device`."""
    return {kind: tuple(t.to(device) for t in evaluation_set(kind, length, settings.eval_size, EVAL_SEED))
            for kind, length in GENERATORS.items()}


def evaluate(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> dict:
    """Held-out accuracy and the mean compute per example the model reports: token positions × block applications,
    and the tape length (AdaTape) or ponder steps (UT) where the model has them."""
    logits, aux = model(inputs)
    row = {"accuracy": (logits.argmax(dim=1) == labels).float().mean().item(),
           "token_layers": aux["token_layers"].float().mean().item()}
    for key in ("tape_length", "ponder_steps"):
        if key in aux:
            row[key] = aux[key].float().mean().item()
    return row


def fit(settings: ParitySettings, model_name: str, kind: str, seed: int, steps: int,
        evaluation: tuple[torch.Tensor, torch.Tensor], device: torch.device = torch.device("cpu"),
        checkpoint: Path | None = None) -> tuple[torch.nn.Module, TrainResult]:
    """Train one (model, generator, seed) for `steps` steps: AdamW, warm-up over 10% of the steps, cosine decay,
    clipping at 1.0; the model's weights and the data stream both derive from `seed`."""
    with torch_seed(derive("parity-model", model_name, kind, seed)):
        model = build(settings, model_name, kind)
    config = TrainConfig(steps=steps, lr=settings.lr, warmup_steps=steps // 10, eval_every=settings.eval_every,
                         seed=seed, checkpoint_every=settings.eval_every)
    inputs, labels = evaluation
    # DEVIATION: [adatape-softmax-ce] one softmax cross-entropy for all four models.
    return model, train(model, classification_loss, ParityStream(kind, GENERATORS[kind], settings.batch, seed), config,
                        evaluate=lambda m: evaluate(m, inputs, labels), checkpoint=checkpoint, device=device,
                        description=f"{kind} {model_name} seed {seed}")


def examples(logits: torch.Tensor, aux: dict, inputs: torch.Tensor, labels: torch.Tensor,
             **run) -> pd.DataFrame | None:
    """One row per held-out example: the `run` columns (generator, model, seed), its number of +1 entries, the
    compute the model spent on it (tape tokens read or mean ponder steps) and whether it was right; None for a model
    that spends the same on every example."""
    compute = aux.get("tape_length", aux.get("ponder_steps"))
    if compute is None:
        return None
    return pd.DataFrame({**run, "plus_ones": (inputs == PLUS_ONE).sum(dim=1).cpu().numpy(),
                         "compute": compute.float().cpu().numpy(),
                         "correct": (logits.argmax(dim=1) == labels).cpu().numpy()})


def tape_plus_one_share(aux: dict, inputs: torch.Tensor) -> float:
    """The share of +1 entries among the input-bank entries AdaTape merged into its tape tokens: above the share
    among all entries, the reader looks at the entries that decide the label."""
    return ((aux["selected"] * (inputs == PLUS_ONE)).sum() / aux["selected"].sum()).item()


def train_zoo(settings: ParitySettings, evaluation: dict, device: torch.device = torch.device("cpu"),
              checkpoint: Callable[..., Path | None] = lambda *key: None
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every (generator, model, seed), in that nesting, for `settings.steps` steps. Returns the learning curves (one
    row per evaluation), the final rows (one per run: the last evaluation, the training seconds and, for the input
    bank, `tape_plus_one_share`) and the per-example rows of the adaptive models (`examples`). `checkpoint(generator,
    model, seed, steps)` names a run's checkpoint (e.g. `repro.study.Study.checkpoint`)."""
    curves, finals, per_example = [], [], []
    for kind in GENERATORS:
        inputs, labels = evaluation[kind]
        for model_name in MODELS:
            for seed in settings.seeds:
                model, result = fit(settings, model_name, kind, seed, settings.steps, evaluation[kind], device,
                                    checkpoint(kind, model_name, seed, settings.steps))
                run = {"generator": kind, "model": model_name, "seed": seed}
                curves += [{**run, **row} for row in result.history]
                with torch.no_grad():
                    logits, aux = model(inputs)
                finals.append({**run, **result.history[-1], "wall_seconds": result.wall_seconds})
                rows = examples(logits, aux, inputs, labels, **run)
                if rows is not None:
                    per_example.append(rows)
                if model_name == ADATAPE_INPUT:
                    finals[-1]["tape_plus_one_share"] = tape_plus_one_share(aux, inputs)
    return pd.DataFrame(curves), pd.DataFrame(finals), pd.concat(per_example, ignore_index=True)


def summarise(group: pd.DataFrame) -> pd.Series:
    """Accuracy as mean ± std over seeds, and the means over seeds of the compute columns (NaN where a model has no
    such quantity: tape, ponder steps)."""
    accuracy = mean_std(group["accuracy"])
    row = {"accuracy": f"{accuracy['mean']:.3f} ± {accuracy['std']:.3f}", "accuracy_mean": accuracy["mean"],
           "accuracy_std": accuracy["std"], "seeds": accuracy["n"]}
    for column in ("token_layers", "tape_length", "ponder_steps", "tape_plus_one_share", "wall_seconds"):
        row[column] = group[column].mean()
    return pd.Series(row)


def parity_table(finals: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per (generator, model): `summarise` over seeds and the parameter count."""
    return (finals.groupby(["generator", "model"], sort=False).apply(summarise, include_groups=False)
            .join(counts.set_index(["generator", "model"])))


def compute_correlation(per_example: pd.DataFrame) -> pd.Series:
    """Per (generator, model), Spearman's rho of the +1 count with the compute spent, over the pooled examples."""
    return (per_example.groupby(["generator", "model"])[["plus_ones", "compute"]]
            .apply(lambda g: spearman(g["plus_ones"], g["compute"])).rename("spearman(+1 count, compute)"))


def per_seed(finals: pd.DataFrame, kind: str, model: str, seeds) -> pd.Series:
    """Final held-out accuracy of one model on one generator, in seed order."""
    rows = finals[(finals.generator == kind) & (finals.model == model)].set_index("seed")
    return rows.loc[list(seeds), "accuracy"]


def first_solved(curves: pd.DataFrame, kind: str, seeds, model: str = ADATAPE_INPUT) -> pd.Series:
    """Per seed, the first evaluation step at which `model` reaches SOLVED held-out; NaN where it never does."""
    curve = curves[(curves.generator == kind) & (curves.model == model)]
    return curve[curve.accuracy >= SOLVED].groupby("seed").step.min().reindex(list(seeds))


def baselines_budget(solved_at: pd.Series, steps: int) -> float:
    """The baselines' training steps over the most steps AdaTape needed on any seed to solve parity: at least 2 says
    the baselines had twice what AdaTape needed. A seed that never solves makes it 0."""
    return 0.0 if solved_at.isna().any() else steps / solved_at.max()


def solved_text(solved_at: pd.Series) -> str:
    return ", ".join("never" if pd.isna(step) else str(int(step)) for step in solved_at)


def learning_curves(curves: pd.DataFrame):
    """Held-out accuracy against the training step, mean ± sd over seeds, one panel per generator, chance dashed."""
    fig = plots.learning_curves(curves, "accuracy", "held-out accuracy", hue_order=MODELS, panel="generator")
    for ax, kind in zip(fig.axes, dict.fromkeys(curves.generator)):
        ax.axhline(CHANCE, color="grey", lw=0.8, ls="--")
        ax.set(title=f"{kind} generator (length {GENERATORS[kind]})", ylim=(0.4, 1.02))
    return fig


def compute_against_plus_ones(per_example: pd.DataFrame):
    """Compute spent per example against its number of +1 entries, mean ± sd over the examples with that count
    (pooled over seeds), one panel per generator."""
    kinds = list(dict.fromkeys(per_example.generator))
    present = [model for model in MODELS if model in set(per_example.model)]
    colours = dict(zip(MODELS, sns.color_palette()))  # each model in its colour of the learning curves
    fig, axes = plots.panels(len(kinds), sharey=False)
    for ax, kind in zip(axes, kinds):
        sns.lineplot(data=per_example[per_example.generator == kind], x="plus_ones", y="compute", hue="model",
                     hue_order=present, palette=colours, errorbar="sd", ax=ax)
        ax.set(xlabel="number of +1 entries", title=f"{kind} generator",
               ylabel="tape tokens read (AdaTape) / ponder steps (UT)\n(mean ± sd over examples)")
    return plots.finish(fig, axes)


def probe_figure(probe_curve: pd.DataFrame, steps: int):
    """The probe run's held-out accuracy against the training step (one seed: no spread)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(probe_curve["step"], probe_curve["accuracy"], marker="o")
    ax.axhline(CHANCE, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="training step", ylabel="held-out accuracy", ylim=(0.4, 1.02),
           title=f"{ADATAPE_INPUT}, adatape generator, {steps} steps, seed 0")
    return fig
