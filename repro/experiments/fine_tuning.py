"""Fine-tuning an encoder with vanilla attention and with fixed-point attention (FPSA), paired per seed.

The GLUE (05) and SQuAD (06) notebooks ask one question of a BERT-family encoder: under one fine-tuning recipe, from
the same weights, does FPSA score better than vanilla attention? The answer is only as good as the pairing: the arms of
a seed must differ in their attention alone. So a `Design` holds everything the arms of one seed share, and `arms` runs
them in a fixed order:

1. **vanilla**: built under the design's model seed (`seeded`: the same fresh head, and for an encoder trained from
   scratch the same weights, for every arm), fine-tuned with `repro.train.train` on `ShuffledBatches` of one named
   stream (`fine_tune`: the same batches in the same order), then scored;
2. **FPSA at inference**: the same trained weights with FPSA swapped in (no training of its own, no new parameters);
3. **FPSA**: built under the same seed with FPSA, fine-tuned on the same stream, scored.

A design with a `validate` score has its vanilla arm scored on a validation split at every tenth of its steps: the
learning curve of every seed, from which `repro.projection` projects the budget a competence gate needs where the
paired runs fail it (scoring changes nothing in training: no random draw, no gradient). Where the paired runs are too
short for a useful curve, `competence_curve` trains one vanilla model of the same design for longer instead: a model
of its own; no paired run is stopped, chosen or scored by it.

`predict` scores every evaluation example once, in batches sorted by length (less padding) or in file order, and
records what the FPSA layers spent on each (layer, example) solve; `solves` makes those a tidy frame, and
`solver_summary` and `spend_by_layer` (over `repro.experiments.paired.spend`) sum them up. `cell` writes the mean ±
std over seeds of a table cell, `differences` and `gain_table` read the paired FPSA-minus-vanilla differences per seed,
and `fixed_subset` draws the fixed random subset of examples a cheap profile scores. The GLUE study's own pieces
(`GlueSettings`, `glue_design`, `glue_row`) close the module; SQuAD's fit in `Design` as they are.
"""

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from repro.claims import GLUE_LEVELS, Gate
from repro.data import glue, squad
from repro.data.batches import ShuffledBatches, trim_padding
from repro.experiments.paired import difference, spend
from repro.models import minilm
from repro.models.self_transformer import (FixedPointAttentionConfig, fixed_point_aux, fixed_point_layers,
                                           swap_bert_attention)
from repro.projection import Projection, project_histories
from repro.results import mean_std
from repro.seeding import derive, rng, torch_seed
from repro.study import Settings
from repro.train import TrainConfig, TrainResult, to_device, train

VANILLA, FPSA = "vanilla", "FPSA"
SOLVER = ("iterations", "residuals", "converged")
"""The per-solve records of `repro.models.self_transformer.fixed_point_aux` that `predict` keeps."""

Forward = Callable[[nn.Module, tuple], "torch.Tensor | tuple[torch.Tensor, ...]"]


@dataclass
class Design:
    """What the arms of one seed share, so that they differ in their attention alone."""
    make: Callable[[FixedPointAttentionConfig | None], nn.Module]
    """The model with vanilla attention (None) or FPSA with the given config; `build` runs it under `model_seed`."""
    model_seed: int
    loss: Callable[[nn.Module, tuple], torch.Tensor]
    train_set: tuple[torch.Tensor, ...]
    """The training tensors (first axis: examples; attention mask at index 1), as `loss` reads a batch of them."""
    batch: int
    stream: int
    """Seed of the `ShuffledBatches` stream over `train_set`."""
    config: TrainConfig
    eval_set: tuple[torch.Tensor, ...]
    """The evaluation examples' model inputs (attention mask at index 1), as `forward` reads a batch of them."""
    eval_batch: int
    forward: Forward
    device: torch.device = torch.device("cpu")
    by_length: bool = True
    """Score in batches of similar length (less padding); False keeps the examples' order."""
    checkpoint: Callable[[str], Path | None] = lambda variant: None
    """The checkpoint file of an arm's training run, by variant; None: no checkpoint."""
    label: str = ""
    """Shown in the progress bars beside the variant."""
    validate: Callable[[nn.Module], dict] | None = None
    """Scores the vanilla arm on a validation split at every tenth of its steps (its learning curve); None: never."""


@dataclass
class Prediction:
    outputs: tuple[torch.Tensor, ...]
    """`forward`'s outputs for every example, in the examples' order."""
    solver: dict[str, torch.Tensor] | None
    """(layers, examples) "iterations", "residuals" (final) and "converged" of every FPSA solve; None without FPSA."""
    seconds: float


@dataclass
class Arm:
    variant: str
    training: TrainResult | None
    """None for the arm scored with another arm's trained weights."""
    prediction: Prediction
    parameters: int

    @property
    def train_seconds(self) -> float:
        return 0.0 if self.training is None else self.training.wall_seconds


def seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """`make()` under its own seed: whatever it initialises (a fresh head, a from-scratch encoder) is the same for
    every arm built with the same seed, and the global random state is left alone."""
    with torch_seed(seed):
        return make()


def build(design: Design, attention: FixedPointAttentionConfig | None) -> nn.Module:
    return seeded(design.model_seed, lambda: design.make(attention))


def fine_tune(design: Design, model: nn.Module, variant: str,
              validate: Callable[[nn.Module], dict] | None = None) -> TrainResult:
    """Train `model` in place on the design's stream of batches (every arm sees the same batches in the same order),
    `validate`d at every tenth of the steps where given."""
    batches = ShuffledBatches(design.train_set, design.batch, design.stream)
    config = design.config if validate is None else replace(design.config,
                                                            eval_every=max(1, design.config.steps // 10))
    return train(model, design.loss, batches, config, evaluate=validate, checkpoint=design.checkpoint(variant),
                 device=design.device, description=f"{design.label} {variant}".strip())


def competence_curve(design: Design, steps: int, score: Callable[[nn.Module], dict]) -> TrainResult:
    """One vanilla fine-tune of `design` for `steps` steps (its recipe, warm-up over 10% of them), `score`d on a
    validation split at every tenth: the history is the learning curve of the design's vanilla arm at a budget the
    paired runs cannot afford, its wall seconds what one such step costs."""
    config = replace(design.config, steps=steps, warmup_steps=max(1, steps // 10), eval_every=max(1, steps // 10),
                     checkpoint_every=max(1, steps // 5))
    model = build(design, None)
    batches = ShuffledBatches(design.train_set, design.batch, design.stream)
    return train(model, design.loss, batches, config, evaluate=score, checkpoint=design.checkpoint("competence curve"),
                 device=design.device, description=f"{design.label} competence curve".strip())


def competence_budget(metric: str, column: str, gate: Gate, seed: int, curve: TrainResult, steps: int) -> Projection:
    """What would let `gate` decide where the paired runs fail it: the steps at which the competence curve of `seed`
    (its `column` at every evaluation) projects to the gate's threshold (`repro.projection`, an extrapolation of one
    seed's validation curve; the gate reads the mean over seeds of the evaluation set), at that run's measured seconds
    per step (its evaluations included)."""
    return project_histories(metric, {seed: curve.history}, column, gate.threshold, gate.op == ">=",
                             curve.wall_seconds / steps)


def _in_order(pieces: list[tuple[torch.Tensor, torch.Tensor]], count: int, axis: int) -> torch.Tensor:
    """The batches' values put back at their examples' positions along `axis`."""
    first = pieces[0][1]
    shape = list(first.shape)
    shape[axis] = count
    values = torch.empty(shape, dtype=first.dtype)
    for index, piece in pieces:
        values[(slice(None),) * axis + (index,)] = piece
    return values


def predict(model: nn.Module, examples: tuple[torch.Tensor, ...], batch_size: int, forward: Forward,
            device: torch.device = torch.device("cpu"), by_length: bool = True) -> Prediction:
    """`forward(model, batch)` on every example once, without gradient, in batches trimmed to their longest example
    (sorted by length first where `by_length`), and, where the model has FPSA layers, what each (layer, example)
    solve spent. The attention mask is `examples[1]`."""
    lengths = examples[1].sum(dim=1)
    order = torch.argsort(lengths) if by_length else torch.arange(len(lengths))
    outputs, solver = [], []
    model.eval()
    started = time.time()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            out = forward(model, trim_padding(to_device(tuple(t[index] for t in examples), device)))
            outputs.append([(index, o.cpu()) for o in (out if isinstance(out, tuple) else (out,))])
            if fixed_point_layers(model):
                aux = fixed_point_aux(model)
                solver.append({key: (index, aux[key].cpu()) for key in SOLVER})
    seconds = time.time() - started
    gathered = tuple(_in_order(list(pieces), len(order), 0) for pieces in zip(*outputs))
    spent = {key: _in_order([batch[key] for batch in solver], len(order), 1) for key in SOLVER} if solver else None
    return Prediction(gathered, spent, seconds)


def arms(design: Design, fpsa: FixedPointAttentionConfig, swapped: str | None = "FPSA at inference only") -> list[Arm]:
    """The arms of one seed (module docstring), in the order they run: vanilla, `swapped` (left out where None),
    FPSA."""

    def scored(variant: str, model: nn.Module, training: TrainResult | None) -> Arm:
        prediction = predict(model, design.eval_set, design.eval_batch, design.forward, design.device,
                             design.by_length)
        return Arm(variant, training, prediction, sum(p.numel() for p in model.parameters()))

    vanilla = build(design, None)
    done = [scored(VANILLA, vanilla, fine_tune(design, vanilla, VANILLA, design.validate))]
    if swapped is not None:
        done.append(scored(swapped, swap_bert_attention(vanilla, fpsa), None))  # in place: the vanilla-trained weights
    fixed_point = build(design, fpsa)
    done.append(scored(FPSA, fixed_point, fine_tune(design, fixed_point, FPSA)))
    return done


# Task heads: the losses `train` minimises and the forwards `predict` scores.

def sequence_logits(model: nn.Module, batch) -> torch.Tensor:
    """(batch, labels) outputs of a sentence (pair) model on (input_ids, attention_mask, token_type_ids, ...)."""
    ids, mask, types = batch[:3]
    return model(input_ids=ids, attention_mask=mask, token_type_ids=types).float()


def sequence_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy on class logits; mean squared error where the model outputs one score (STS-B). The labels are
    `batch[3]`."""
    output, labels = sequence_logits(model, batch), batch[3]
    if output.shape[1] == 1:
        return nn.functional.mse_loss(output.squeeze(1), labels)
    return nn.functional.cross_entropy(output, labels)


def span_loss(model: nn.Module, batch) -> torch.Tensor:
    """The answer-span loss of a question-answering model on (inputs..., start positions, end positions)."""
    input_ids, attention_mask, token_type_ids, start, end = batch
    return model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                 start_positions=start, end_positions=end).loss


def span_logits(width: int) -> Forward:
    """The forward of a question-answering model: (start, end) logits per token, padded back to `width` tokens so
    that every window's row has the untrimmed windows' shape."""

    def forward(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, attention_mask, token_type_ids = batch
        out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        pad = (0, width - input_ids.shape[1])
        return F.pad(out.start_logits.float(), pad), F.pad(out.end_logits.float(), pad)

    return forward


# What FPSA spent, and what the seeds say.

def solves(solver: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per (layer, example) solve of a `Prediction.solver`, layer by layer: layer (from 1), example (its
    position in the evaluation set), iterations (evaluations of f), residual (final, relative), converged."""
    layers, examples = solver["iterations"].shape
    return pd.DataFrame({"layer": np.repeat(np.arange(1, layers + 1), examples),
                         "example": np.tile(np.arange(examples), layers),
                         "iterations": solver["iterations"].flatten().numpy(),
                         "residual": solver["residuals"].double().flatten().numpy(),
                         "converged": solver["converged"].flatten().numpy()})


def solver_summary(solves: pd.DataFrame, by, sep: str = " ") -> pd.DataFrame:
    """Per group of `solves` rows: median and mean evaluations, the share stopped at the cap (not converged) and the
    median final residual; the column names join their words with `sep`."""
    grouped = solves.groupby(by)
    return pd.DataFrame({f"iterations{sep}median": grouped["iterations"].median(),
                         f"iterations{sep}mean": grouped["iterations"].mean().round(2),
                         f"at{sep}cap": (1 - grouped["converged"].mean()).round(3),
                         f"residual{sep}median": grouped["residual"].median()})


def spend_by_layer(solver: dict[str, torch.Tensor] | None) -> dict:
    """`repro.experiments.paired.spend` of the solves and the mean evaluations of each layer ("layer 1", ...), for
    one row of a scores table; empty without FPSA."""
    if solver is None:
        return {}
    per_layer = solver["iterations"].float().mean(dim=1)
    return spend(solver) | {f"layer {i + 1}": value.item() for i, value in enumerate(per_layer)}


def cell(values, digits: int = 1) -> str:
    """'mean ± std' over seeds (sample std, 0 for one seed), the form of a scores table's cell."""
    stats = mean_std(values)
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def differences(per_seed: pd.DataFrame, variant: str = FPSA, baseline: str = VANILLA) -> dict[tuple, pd.Series]:
    """`variant` minus `baseline` per seed (`repro.experiments.paired.difference`) for every (group, column) of
    `per_seed`, a frame indexed by (group, variant, seed) with one column per measured quantity."""
    return {(group, column): difference(per_seed.loc[group].reset_index(), column, variant, baseline)
            for group in per_seed.index.unique(0) for column in per_seed.columns}


def gain_table(per_seed: pd.DataFrame, deltas: dict[tuple, pd.Series], variant: str = FPSA,
               baseline: str = VANILLA, names: tuple[str, str] = ("scale", "task"),
               floor: float = 5.0) -> pd.DataFrame:
    """One row per (group, column) of `differences`: the mean and std over seeds of the difference and the relative
    gain of the variant's mean score over the baseline's (%). The relative gain is descriptive only, and left out
    (NaN) where the baseline's mean is below `floor`: a relative gain over a near-zero score (CoLA's correlation)
    means nothing."""
    rows = []
    for (group, column), delta in deltas.items():
        base = per_seed.loc[(group, baseline), column].mean()
        gain = 100 * (per_seed.loc[(group, variant), column].mean() / base - 1) if base >= floor else np.nan
        rows.append({names[0]: group, names[1]: column, "delta": delta.mean(),
                     "delta std": delta.std(ddof=1) if len(delta) > 1 else np.nan, "relative gain (%)": gain})
    return pd.DataFrame(rows).set_index(list(names))


def fixed_subset(items, size: int | None, *stream):
    """A fixed random subset of `size` items (rows of a DataFrame, or list items) drawn from the named `stream` and
    kept in their order; all of them where `size` is None or not smaller."""
    if size is None or size >= len(items):
        return items
    keep = torch.randperm(len(items), generator=rng(*stream))[:size].sort().values.tolist()
    return items.iloc[keep] if isinstance(items, pd.DataFrame) else [items[i] for i in keep]


# GLUE (notebook 05): two scales of encoder, five tasks.

@dataclass(frozen=True)
class GlueSettings(Settings):
    """The GLUE study's settings: the tasks run, one fine-tuning recipe per scale ("pretrained" MiniLM, an encoder
    trained from "scratch" of size width x layers), the tokens per example and the dev examples scored."""
    tasks: tuple[str, ...]  # of `repro.data.glue.TASKS`, in its order
    max_length: int
    dev_size: int | None  # a fixed random subset of each dev set; None: all of it
    eval_batch: int
    pretrained_batch: int
    pretrained_lr: float
    scratch_batch: int
    scratch_lr: float
    validation_size: int  # training examples of each task held out as its validation split (never trained on)
    width: int  # the from-scratch encoder's size
    layers: int
    heads: int
    mlp_hidden: int
    pretrained_steps: int | None = None  # None where the recipe counts epochs (the paper profile, documented only)
    pretrained_epochs: int | None = None
    scratch_steps: int | None = None
    scratch_epochs: int | None = None
    fpsa_max_iterations: int | None = None  # None: FixedPointAttentionConfig's default
    swap_at_inference: bool = True  # score the vanilla-trained weights with FPSA swapped in too (`arms`' `swapped`)

    def __post_init__(self):
        super().__post_init__()
        unknown = [task for task in self.tasks if task not in glue.TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty selection of {list(glue.TASKS)}; got {list(self.tasks)}")

    def recipe(self, scale: str) -> tuple[int | None, int, float]:
        """(steps, batch, learning rate) of the scale's fine-tune."""
        return tuple(getattr(self, f"{scale}_{key}") for key in ("steps", "batch", "lr"))

    def fpsa(self) -> FixedPointAttentionConfig:
        """FPSA's defaults, but for a cheaper cap where the profile sets one."""
        if self.fpsa_max_iterations is None:
            return FixedPointAttentionConfig()
        return FixedPointAttentionConfig(max_iterations=self.fpsa_max_iterations)


def glue_design(settings: GlueSettings, scale: str, task: str, seed: int, train_set: tuple, dev_set: tuple,
                device: torch.device, checkpoint: Callable[..., Path | None] = lambda *key: None,
                validate: Callable[[nn.Module], dict] | None = None) -> Design:
    """The arms of one (scale, task, seed): the model drawn from the seed "glue-model" (scale, task, seed), batches
    from "glue-batches" (task, seed), linear warm-up over 10% of the steps; `checkpoint(scale, task, variant, seed)`
    names a run's checkpoint, `validate` scores the vanilla arm's learning curve (`glue_validation_score`)."""
    steps, batch, lr = settings.recipe(scale)
    labels = glue.task(task).outputs
    size = dict(width=settings.width, layers=settings.layers, heads=settings.heads, mlp_hidden=settings.mlp_hidden)

    def make(attention: FixedPointAttentionConfig | None) -> nn.Module:
        if scale == "pretrained":
            return minilm.classifier(labels, attention)
        return minilm.scratch_classifier(labels, max_length=settings.max_length, attention=attention, **size)

    return Design(make, derive("glue-model", scale, task, seed), sequence_loss, train_set, batch,
                  stream=derive("glue-batches", task, seed),
                  config=TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 10), seed=seed),
                  eval_set=dev_set[:3], eval_batch=settings.eval_batch, forward=sequence_logits, device=device,
                  checkpoint=lambda variant: checkpoint(scale, task, variant, seed),
                  label=f"{scale} {task} seed {seed}", validate=validate)


def glue_row(arm: Arm, scale: str, task: str, seed: int, labels) -> dict:
    """One row of the GLUE results: the arm's official metrics and score (x 100), its parameters, wall times and
    what FPSA spent (`spend_by_layer`)."""
    return {"scale": scale, "variant": arm.variant, "task": task, "seed": seed, "parameters": arm.parameters,
            **glue.metrics(task, labels, arm.prediction.outputs[0].numpy()), "train seconds": arm.train_seconds,
            "eval seconds": arm.prediction.seconds, **spend_by_layer(arm.prediction.solver)}


def validation_split(table: pd.DataFrame, size: int, task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, validation rows) of a task's training table: `size` rows drawn from the named stream
    "glue-validation" (task) are held out of training, so the competence curves are scored on examples no run
    trained on."""
    if not 1 <= size < len(table):
        raise ValueError(f"{task}: validation_size must be in [1, {len(table) - 1}] (the training rows less one), "
                         f"got {size}")
    validation = fixed_subset(table, size, "glue-validation", task)
    return table.drop(index=validation.index), validation


def glue_validation_score(task: str, validation: tuple, batch_size: int, device: torch.device = torch.device("cpu")):
    """The learning curve's score of `task`: {"validation score": the task's score (x 100, the mean of its official
    metrics, as on the dev set) and "validation <metric>" of each metric, on the encoded `validation` split}."""

    def score(model: nn.Module) -> dict:
        outputs = predict(model, validation[:3], batch_size, sequence_logits, device).outputs[0]
        metrics = glue.metrics(task, validation[3].numpy(), outputs.numpy())
        return {"validation score": metrics["score"]} | {f"validation {metric}": metrics[metric]
                                                         for metric in glue.task(task).metrics}
    return score


def glue_competence(results: pd.DataFrame, scale: str) -> float | None:
    """The gate `vanilla_competent` of `scale` (S1, S7): over the tasks in `results` (`glue_row`s) that have a
    competence level (`repro.claims.GLUE_LEVELS`), the lowest of the vanilla model's metric, mean over seeds, minus
    the level; None where no task run has a level (the gate is then unmeasured)."""
    vanilla = results[(results["scale"] == scale) & (results["variant"] == VANILLA)]
    margins = [vanilla.loc[vanilla["task"] == task, metric].mean() - level
               for task, (metric, level) in GLUE_LEVELS.items() if (vanilla["task"] == task).any()]
    return min(margins) if margins else None


def glue_competence_budget(scale: str, task: str, trainings: dict[int, TrainResult]) -> Projection:
    """What would let `task`'s competence level (`repro.claims.GLUE_LEVELS`) pass where the paired runs fail it: the
    steps at which the vanilla arms' validation curves (seed -> its `TrainResult`) project to the level on every seed,
    at their measured seconds per step (their validation scorings included)."""
    metric, level = GLUE_LEVELS[task]
    steps = {training.history[-1]["step"] for training in trainings.values()}
    seconds = sum(training.wall_seconds for training in trainings.values()) / len(trainings) / steps.pop()
    return project_histories(f"{scale} vanilla {task} validation {metric}",
                             {seed: training.history for seed, training in trainings.items()},
                             f"validation {metric}", level, True, seconds)


def squad_validation_score(windows, examples: list, batch_size: int, device: torch.device = torch.device("cpu")):
    """The SQuAD competence curve's score: {"validation F1": F1 x 100 of the best spans over `windows`, the encoded
    validation `examples`}."""
    forward = span_logits(windows.input_ids.shape[1])

    def score(model: nn.Module) -> dict:
        outputs = predict(model, windows.model_inputs(), batch_size, forward, device, by_length=False).outputs
        answers = squad.best_spans(*outputs, windows, examples, squad.MAX_ANSWER_TOKENS)
        return {"validation F1": squad.squad_scores(answers, examples)["f1"]}
    return score
