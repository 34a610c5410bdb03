"""The parity study of AdaTape (notebook 01): a Transformer, a Universal Transformer with ACT and AdaTape with its two
tape banks (and a zeroed-tape control), trained with one recipe on the parity generators and scored on fixed held-out
sets.

Parity is the task on which a fixed-depth model is expected to stay at chance and an adaptive one to solve it (claim
A1). A baseline's failure means something only if it was trained to competence, so every run is trained to a criterion
(its steps-to-criterion and learning curve are recorded), and the baselines also train on a short-vector control
where a transformer is known to learn parity. Accuracy alone does not say *how* a model solved it, so the study also
records the compute each model spent on every held-out example against what makes an example harder (its number of +1
entries), and what AdaTape's tape read:

1. `tasks` names what is trained: each generator of the profile at its published length, the training stream leaving
   out the counts of +1 entries from `UNSEEN_FROM` on (a held-out split tests them), and the `control` task;
2. `build` makes one model of the zoo for one length; `fit` draws its weights from the stream ("parity-model", model,
   task, seed) and trains it with `repro.train.train` on the task's stream of the same seed, scoring the held-out
   splits (`evaluate`) every `eval_every` steps;
3. `train_zoo` runs every (task, model, seed) and returns tidy frames: the learning curves (one row per evaluation),
   the final row of every run (with its steps-to-criterion), and one row per held-out example of every adaptive run
   (`examples`);
4. `parity_table`, `compute_correlation`, `per_seed`, `baselines_budget` and `baselines_learn_control` read those
   frames for the table, the figures and the claim's parts and gates.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import seaborn as sns
import torch

from repro import plots
from repro.data.parity import GENERATORS, PLUS_ONE, ParityStream, evaluation_set, plus_ones
from repro.losses import classification_loss
from repro.models.adatape import AdaTapeParity, AdaTapeParityConfig
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.models.universal import UniversalConfig, UniversalTransformer
from repro.nn import count_parameters
from repro.projection import Projection, project
from repro.results import mean_std, spearman
from repro.seeding import derive, torch_seed
from repro.study import Settings
from repro.train import TrainConfig, TrainResult, steps_to_criterion, train

TRANSFORMER = "Transformer"
UNIVERSAL = "Universal Transformer (ACT)"
ADATAPE_INPUT = "AdaTape (input bank)"
ADATAPE_LEARNABLE = "AdaTape (learnable bank)"
ADATAPE_ZERO = "AdaTape (zeroed tape)"
MODELS = (TRANSFORMER, UNIVERSAL, ADATAPE_INPUT, ADATAPE_LEARNABLE, ADATAPE_ZERO)
"""The zoo, in the order of its tables."""
BASELINES = (TRANSFORMER, UNIVERSAL)
"""The models A1 says fail; they alone train on the control task."""
BANKS = {ADATAPE_INPUT: "input", ADATAPE_LEARNABLE: "learnable", ADATAPE_ZERO: "input"}
CONTROL = "control"
"""The task name of the short-vector control."""
# DEVIATION: [parity-unseen-counts] the training streams leave out the tail of the +1 counts.
UNSEEN_FROM = {"adatape": 15, "act": 30}
"""Generator -> the first count of +1 entries held out of training (about 8% of the adatape generator's vectors,
Binomial(32, 1/3) >= 15, and 15% of the act generator's). A tail, not every n-th count: a held-out interior count has
neighbours of one label on both sides, so a model that interpolates in the count gets it wrong by construction."""
EVAL_SEED = 0
"""The seed of the held-out sets: one per task and split, the same for every model and training seed."""
SOLVED = 0.95
"""Held-out accuracy at which a run counts as having learned parity: its criterion."""
CHANCE = 0.5


@dataclass(frozen=True)
class ParitySettings(Settings):
    """One recipe for the whole zoo: the same width, heads and depth, optimiser, schedule and data for every model."""
    generators: tuple  # the generators this profile trains on (each decides one claim)
    steps: int  # training steps of every run, the control's included; the schedule spans them all
    batch: int
    lr: float
    eval_every: int  # training steps between evaluations (and checkpoints)
    eval_size: int  # held-out examples per split
    width: int
    heads: int
    layers: int
    ut_max_steps: int  # the Universal Transformer's cap on block applications
    ponder_weight: float  # the Universal Transformer's ACT ponder-cost weight
    tape: dict  # generator -> (T, τ): AdaTape's maximum tape length and its halting budget
    control_length: int  # the vector length of the baselines' control task (release generator)


@dataclass(frozen=True)
class Task:
    """What one run trains on: a generator at a length, with the +1 counts from `unseen_from` on held out."""
    name: str
    kind: str
    length: int
    unseen_from: int | None = None

    def train_counts(self) -> tuple[int, int] | None:
        return None if self.unseen_from is None else (0, self.unseen_from)

    def stream(self, batch: int, seed: int) -> ParityStream:
        return ParityStream(self.kind, self.length, batch, seed, self.train_counts())

    def splits(self, size: int, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The fixed held-out sets: `seen` from the training distribution, `unseen` (where counts are held out)
        from the held-out counts only."""
        splits = {"seen": evaluation_set(self.kind, self.length, size, EVAL_SEED, self.train_counts())}
        if self.unseen_from is not None:
            splits["unseen"] = evaluation_set(self.kind, self.length, size, EVAL_SEED,
                                              (self.unseen_from, self.length + 1))
        return {split: tuple(t.to(device) for t in data) for split, data in splits.items()}


def tasks(settings: ParitySettings) -> dict[str, Task]:
    """Task name -> task: the profile's generators at their published lengths, then the control."""
    choices = {kind: Task(kind, kind, GENERATORS[kind], UNSEEN_FROM[kind]) for kind in settings.generators}
    return choices | {CONTROL: Task(CONTROL, "adatape", settings.control_length)}


def task_models(task: Task) -> tuple[str, ...]:
    return BASELINES if task.name == CONTROL else MODELS


def build(settings: ParitySettings, model: str, task: Task) -> torch.nn.Module:
    """One model of the zoo, sized for the vectors of `task`, drawn from the global random state."""
    length, width = task.length, settings.width
    common = dict(width=width, heads=settings.heads, mlp_hidden=4 * width)
    if model == TRANSFORMER:
        # DEVIATION: [parity-baseline-tokens] one token per element for the baselines.
        return TransformerClassifier(TransformerConfig(vocab=3, max_len=length, classes=2, layers=settings.layers,
                                                       **common))
    if model == UNIVERSAL:
        # DEVIATION: [parity-ponder-weight] the ACT ponder weight is a setting.
        return UniversalTransformer(UniversalConfig(vocab=3, max_len=length, classes=2, max_steps=settings.ut_max_steps,
                                                    ponder_weight=settings.ponder_weight, **common))
    max_tape, budget = settings.tape[task.kind]
    return AdaTapeParity(AdaTapeParityConfig(length=length, bank=BANKS[model], bank_size=length,
                                             zero_tape=model == ADATAPE_ZERO, encoder=dict(
                                                 layers=settings.layers, max_tape=max_tape, budget=budget, **common)))


def parameters(settings: ParitySettings) -> pd.DataFrame:
    """One row per (task, model): its parameter count."""
    return pd.DataFrame([{"generator": name, "model": model, "parameters": count_parameters(build(settings, model, task))}
                         for name, task in tasks(settings).items() for model in task_models(task)])


def evaluation_sets(settings: ParitySettings, device: torch.device) -> dict[str, dict]:
    """Task name -> its held-out splits (`Task.splits`), on `device`."""
    return {name: task.splits(settings.eval_size, device) for name, task in tasks(settings).items()}


def evaluate(model: torch.nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Held-out accuracy on every split (`accuracy` on the seen counts, `accuracy_unseen` on the held-out ones) and
    the mean compute per example on the seen split: token positions × block applications, and the tape length
    (AdaTape) or ponder steps (UT) where the model has them."""
    row = {}
    for split, (inputs, labels) in splits.items():
        logits, aux = model(inputs)
        row["accuracy" if split == "seen" else f"accuracy_{split}"] = (
            (logits.argmax(dim=1) == labels).float().mean().item())
        if split == "seen":
            row["token_layers"] = aux["token_layers"].float().mean().item()
            for key in ("tape_length", "ponder_steps"):
                if key in aux:
                    row[key] = aux[key].float().mean().item()
    return row


def fit(settings: ParitySettings, model_name: str, task: Task, seed: int, splits: dict,
        device: torch.device = torch.device("cpu"), checkpoint: Path | None = None
        ) -> tuple[torch.nn.Module, TrainResult]:
    """Train one (model, task, seed) for `settings.steps` steps: AdamW, warm-up over 10% of the steps, cosine decay
    to zero at the last step (so the schedule spans the whole budget), clipping at 1.0; the model's weights and the
    data stream both derive from `seed`."""
    with torch_seed(derive("parity-model", model_name, task.name, seed)):
        model = build(settings, model_name, task)
    config = TrainConfig(steps=settings.steps, lr=settings.lr, warmup_steps=settings.steps // 10,
                         eval_every=settings.eval_every, seed=seed, checkpoint_every=settings.eval_every)
    # DEVIATION: [adatape-softmax-ce] one softmax cross-entropy for all five models.
    return model, train(model, classification_loss, task.stream(settings.batch, seed), config,
                        evaluate=lambda m: evaluate(m, splits), checkpoint=checkpoint, device=device,
                        description=f"{task.name} {model_name} seed {seed}")


def examples(logits: torch.Tensor, aux: dict, inputs: torch.Tensor, labels: torch.Tensor,
             **run) -> pd.DataFrame | None:
    """One row per held-out example: the `run` columns (generator, model, seed), its number of +1 entries, the
    compute the model spent on it (tape tokens read or mean ponder steps) and whether it was right; None for a model
    that spends the same on every example."""
    compute = aux.get("tape_length", aux.get("ponder_steps"))
    if compute is None:
        return None
    return pd.DataFrame({**run, "plus_ones": plus_ones(inputs).cpu().numpy(),
                         "compute": compute.float().cpu().numpy(),
                         "correct": (logits.argmax(dim=1) == labels).cpu().numpy()})


def tape_plus_one_share(aux: dict, inputs: torch.Tensor) -> float:
    """The share of +1 entries among the input-bank entries AdaTape merged into its tape tokens: above the share
    among all entries, the reader looks at the entries that decide the label."""
    return ((aux["selected"] * (inputs == PLUS_ONE)).sum() / aux["selected"].sum()).item()


def train_zoo(settings: ParitySettings, evaluation: dict, device: torch.device = torch.device("cpu"),
              checkpoint: Callable[..., Path | None] = lambda *key: None
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every (task, model, seed), in that nesting. Returns the learning curves (one row per evaluation), the final
    rows (one per run: the last evaluation, `steps_to_criterion` (the first evaluated step with held-out accuracy
    >= SOLVED, NaN if none), the training seconds and, for the input bank, `tape_plus_one_share`) and the per-example
    rows of the adaptive models on all held-out splits (`examples`). `checkpoint(task, model, seed, steps)` names a
    run's checkpoint (e.g. `repro.study.Study.checkpoint`)."""
    curves, finals, per_example = [], [], []
    for name, task in tasks(settings).items():
        splits = evaluation[name]
        inputs = torch.cat([x for x, _ in splits.values()])
        labels = torch.cat([y for _, y in splits.values()])
        for model_name in task_models(task):
            for seed in settings.seeds:
                model, result = fit(settings, model_name, task, seed, splits, device,
                                    checkpoint(name, model_name, seed, settings.steps))
                run = {"generator": name, "model": model_name, "seed": seed}
                curves += [{**run, **row} for row in result.history]
                reached = steps_to_criterion(result.history, "accuracy", SOLVED)
                finals.append({**run, **result.history[-1], "wall_seconds": result.wall_seconds,
                               "steps_to_criterion": float("nan") if reached is None else reached})
                with torch.no_grad():
                    logits, aux = model(inputs)
                rows = examples(logits, aux, inputs, labels, **run)
                if rows is not None:
                    per_example.append(rows)
                if BANKS.get(model_name) == "input" and model_name != ADATAPE_ZERO:
                    finals[-1]["tape_plus_one_share"] = tape_plus_one_share(aux, inputs)
    return pd.DataFrame(curves), pd.DataFrame(finals), pd.concat(per_example, ignore_index=True)


def steps_text(steps: pd.Series) -> str:
    """Steps-to-criterion per seed, 'never' where a seed did not reach it."""
    return ", ".join("never" if pd.isna(step) else str(int(step)) for step in steps)


def summarise(group: pd.DataFrame) -> pd.Series:
    """Accuracy as mean ± std over seeds (seen and, where held out, unseen counts), the steps-to-criterion per seed
    and the means over seeds of the compute columns (NaN where a model has no such quantity: tape, ponder steps)."""
    accuracy = mean_std(group["accuracy"])
    row = {"accuracy": f"{accuracy['mean']:.3f} ± {accuracy['std']:.3f}", "accuracy_mean": accuracy["mean"],
           "accuracy_std": accuracy["std"], "seeds": accuracy["n"]}
    unseen = group["accuracy_unseen"].dropna() if "accuracy_unseen" in group else pd.Series(dtype=float)
    row["accuracy_unseen_counts"] = f"{unseen.mean():.3f} ± {unseen.std():.3f}" if len(unseen) else "-"
    row[f"steps_to_{SOLVED}"] = steps_text(group["steps_to_criterion"])
    for column in ("token_layers", "tape_length", "ponder_steps", "tape_plus_one_share", "wall_seconds"):
        row[column] = group[column].mean() if column in group else float("nan")
    return pd.Series(row)


def parity_table(finals: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model): `summarise` over seeds and the parameter count."""
    return (finals.groupby(["generator", "model"], sort=False).apply(summarise, include_groups=False)
            .join(counts.set_index(["generator", "model"])))


def compute_correlation(per_example: pd.DataFrame) -> pd.Series:
    """Per (task, model), Spearman's rho of the +1 count with the compute spent, over the pooled examples."""
    return (per_example.groupby(["generator", "model"])[["plus_ones", "compute"]]
            .apply(lambda g: spearman(g["plus_ones"], g["compute"])).rename("spearman(+1 count, compute)"))


def per_seed(finals: pd.DataFrame, task: str, model: str, seeds, column: str = "accuracy") -> pd.Series:
    """One final column (held-out accuracy on the seen counts by default) of one model on one task, in seed order."""
    rows = finals[(finals.generator == task) & (finals.model == model)].set_index("seed")
    return rows.loc[list(seeds), column]


def baselines_budget(finals: pd.DataFrame, task: str, steps: int) -> float:
    """The baselines' training steps over the most steps AdaTape (input bank) needed on any seed to reach its
    criterion: at least 1 says the baselines trained at least as long as the winner needed. A seed that never
    reaches it makes it 0."""
    reached = finals[(finals.generator == task) & (finals.model == ADATAPE_INPUT)].steps_to_criterion
    return 0.0 if reached.isna().any() else steps / reached.max()


def winner_projection(curves: pd.DataFrame, finals: pd.DataFrame, task: str, steps: int) -> Projection:
    """The budget at which AdaTape (input bank) would reach its criterion on every seed, projected from its held-out
    accuracy curves (`repro.projection`, an extrapolation), at its measured wall seconds per step (evaluations
    included): what would let the gate `baselines_budget` decide where the run's budget cannot. A seed counts as
    reached at its first evaluation at the criterion, the gate's own `steps_to_criterion`."""
    runs = curves[(curves.generator == task) & (curves.model == ADATAPE_INPUT)]
    wall = finals[(finals.generator == task) & (finals.model == ADATAPE_INPUT)].wall_seconds.mean()
    return project(f"{ADATAPE_INPUT} held-out accuracy",
                   {seed: (run.step.tolist(), run.accuracy.tolist()) for seed, run in runs.groupby("seed")},
                   SOLVED, at_least=True, seconds_per_step=wall / steps, first_reach=True)


def baselines_learn_control(finals: pd.DataFrame) -> float:
    """The lowest final held-out accuracy on the control task over the baselines and seeds: at least SOLVED says
    each baseline, with this recipe and budget, learns parity where a transformer is known to."""
    control = finals[(finals.generator == CONTROL) & finals.model.isin(BASELINES)]
    return control.accuracy.min()


def learning_curves(curves: pd.DataFrame):
    """Held-out accuracy (seen counts) against the training step, mean ± sd over seeds, one panel per task, chance
    dashed."""
    fig = plots.learning_curves(curves, "accuracy", "held-out accuracy", hue_order=MODELS, panel="generator")
    for ax, name in zip(fig.axes, dict.fromkeys(curves.generator)):
        ax.axhline(CHANCE, color="grey", lw=0.8, ls="--")
        ax.set(title=name, ylim=(0.4, 1.02))
    return fig


def compute_against_plus_ones(per_example: pd.DataFrame):
    """Compute spent per example against its number of +1 entries, mean ± sd over the examples with that count
    (pooled over seeds and held-out splits), one panel per task."""
    kinds = list(dict.fromkeys(per_example.generator))
    present = [model for model in MODELS if model in set(per_example.model)]
    colours = dict(zip(MODELS, sns.color_palette()))  # each model in its colour of the learning curves
    fig, axes = plots.panels(len(kinds), sharey=False)
    for ax, kind in zip(axes, kinds):
        sns.lineplot(data=per_example[per_example.generator == kind], x="plus_ones", y="compute", hue="model",
                     hue_order=present, palette=colours, errorbar="sd", ax=ax)
        if kind in UNSEEN_FROM:
            ax.axvline(UNSEEN_FROM[kind] - 0.5, color="grey", lw=0.8, ls=":")  # counts right of it: never trained on
        ax.set(xlabel="number of +1 entries", title=kind,
               ylabel="tape tokens read (AdaTape) / ponder steps (UT)\n(mean ± sd over examples)")
    return plots.finish(fig, axes)
