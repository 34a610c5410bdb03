"""The looped-transformer study of notebooks 02 (prefix sums), 03 (sudoku) and 04 (chess), written once.

Every looped notebook asks the same question of the same eight models: do the configurations whose fixed points the
framework calls stable (reached, input-dependent but start-independent, attracting) also generalise best? So every
notebook runs the same pipeline, and only the task (its data, its metric, its small valid edit of an input) changes:

1. `Zoo`: the six looped configurations (recall {none, standard, internal} x outer norm {off, on}) and the non-looped
   references (the same layer applied once; optionally as many untied layers as iterations), built from one set of
   `LoopedConfig` options so they differ only where the configuration says.
2. `train_zoo`: every model and seed trained by `repro.train.train`, looped models with the progressive loss of Bansal
   et al. (2022), references with the plain loss through their whole depth.
3. `read_every_iteration`: a looped model's accuracy is read after every test-time iteration (one forward pass, the
   states streamed), so over-thinking and gains from extra iterations show; a reference is read once at its depth.
   `read_at` then picks fixed iteration counts, declared before the run, for the tables: picking the best iteration
   would tune on the test set.
4. `measure_stability`: the three stability axes per (configuration, seed) by `repro.fixed_point.stability`.
5. `spearman_by_seed` and `pooled_spearman`: does accuracy track stability? Decided within each seed, since the seeds
   are the replicates; pooled only for the reader.
6. `over_configurations`, `seed_by_configuration`, `internal_minus_standard`, `seeds_reaching`: the per-seed
   quantities the L1-L4 claims are decided on, one value per seed so `repro.verdicts` can pair them.

Every function returns tidy frames: one row per model, seed and measurement.
"""

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import pandas as pd
import torch

from repro import plots
from repro.fixed_point import stability
from repro.losses import IGNORE, progressive_loss
from repro.models.looped import CONFIGURATIONS, LoopedConfig, LoopedTransformer, configuration_name
from repro.nn import count_parameters
from repro.results import mean_std_text, spearman
from repro.seeding import derive, torch_seed
from repro.study import Settings, Study, bounded
from repro.train import TrainConfig, steps_to_criterion, train

LOOPED = list(CONFIGURATIONS)
"""The six looped configurations, in the order of every table and figure."""
REFERENCE = "1 layer (same parameters)"
NO_RECALL = [name for name in LOOPED if name.startswith("recall none")]
RECALL_NORM_ON = [configuration_name(recall, "layernorm") for recall in ("standard", "internal")]
"""Recall with outer normalisation: the configurations the framework predicts to be stable (claim L2)."""
INTERNAL_BRANCH = configuration_name("internal-branch", "layernorm")
CLIPPED_CONTROL = "recall standard, outer norm on, clipped bias"
VARIANTS = {INTERNAL_BRANCH: dict(recall="internal-branch", recall_form="concat", outer_norm="layernorm"),
            CLIPPED_CONTROL: dict(recall="standard", outer_norm="layernorm", far_offsets="clipped")}
"""Looped models beside the six: a third-party reading of internal recall (issue 24, section 6), and the control that
keeps the old clipped position bias, so the effect of the bias on extrapolation is visible (section 4)."""
ALL_LOOPED = LOOPED + list(VARIANTS)
TOL = 1e-3
"""A state is "reached" when its relative residual is under this."""
STABILITY_AXES = ("path spread", "spectral radius")
"""With the last residual (named by its horizon), the three axes L4 correlates with accuracy."""


@dataclass(frozen=True)
class LoopedSettings(Settings):
    """What every looped notebook sets; each notebook subclasses it with its task's sizes."""

    steps: int
    batch: int
    lr: float
    width: int
    heads: int
    iterations: int
    """M: the iterations of training, and the unit of the test-time counts."""
    alpha: float = bounded(0, 1)
    """Weight of the progressive term of the loss (1: progressive only)."""
    stability_size: int
    jacobian_size: int
    power_iterations: int


@dataclass(frozen=True)
class ExtrapolationSettings(LoopedSettings):
    """The looped settings of a task read far past its training iterations (sudoku, chess)."""

    test_factor: int
    """Test-time iterations: this many times the training count."""

    @property
    def test_iterations(self) -> int:
        return self.test_factor * self.iterations

    @property
    def horizons(self) -> list[int]:
        """Where the stability axes are measured: M, 2M and the largest test count."""
        return sorted({self.iterations, 2 * self.iterations, self.test_iterations})


@dataclass
class Zoo:
    """The models of one looped notebook: `options` are the `LoopedConfig` options they share (vocabulary, outputs,
    sizes, structure), each architecture adds its own (recall, outer norm, depth)."""

    options: dict
    untied: bool = False
    """Add the reference with as many untied layers as iterations (the same compute as the loop)."""
    looped: tuple[str, ...] = tuple(LOOPED)
    """The looped models to build: names of `CONFIGURATIONS` or `VARIANTS`."""

    def __post_init__(self):
        unknown = [name for name in self.looped if name not in ALL_LOOPED]
        if unknown:
            raise ValueError(f"unknown looped models {unknown}; valid: {ALL_LOOPED}")

    @classmethod
    def of(cls, settings: LoopedSettings, untied: bool = False, looped: Iterable[str] = tuple(LOOPED),
           **options) -> "Zoo":
        return cls(dict(iterations=settings.iterations, width=settings.width, heads=settings.heads,
                        mlp_hidden=2 * settings.width) | options, untied, tuple(looped))

    @property
    def architectures(self) -> dict[str, dict]:
        references = {REFERENCE: dict(recall="none", outer_norm="none", iterations=1)}
        if self.untied:
            references[f"{self.options['iterations']} untied layers (same compute)"] = dict(
                recall="none", outer_norm="none", untied=True)
        return {name: (CONFIGURATIONS | VARIANTS)[name] for name in self.looped} | references

    @property
    def names(self) -> list[str]:
        return list(self.architectures)

    def build(self, name: str) -> LoopedTransformer:
        return LoopedTransformer(LoopedConfig(**(self.options | self.architectures[name])))

    def parameters(self) -> pd.Series:
        return pd.Series({name: count_parameters(self.build(name)) for name in self.names}, name="parameters")


def looped_names(models: dict) -> list[str]:
    """The looped models among the (name, seed) keys of `models`, in table order."""
    return [name for name in ALL_LOOPED if any(key[0] == name for key in models)]


def train_zoo(zoo: Zoo, settings: LoopedSettings, study: Study, task: str, stream: Callable[[int], object],
              evaluate: Callable[[LoopedTransformer, int], dict], evaluations: int,
              untied_seeds: Iterable[int] | None = None, criterion: tuple[str, float] | None = None):
    """Train every model of `zoo` on every seed; returns (models by (name, seed), learning curves, runs): a run's
    train seconds and, with `criterion` (metric, threshold), its steps to criterion, the first evaluated step whose
    `evaluate` metric reached the threshold (NaN: never within the budget).

    The initial weights are drawn under the seed `derive(f"{task}-model", name, seed)`, the batches come from
    `stream(seed)`, and `evaluate(model, depth)` is logged `evaluations` times. Looped models get the progressive
    loss with `settings.alpha`; a reference the plain loss through its whole depth (alpha 0). `untied_seeds`: the
    seeds of the untied reference, which costs as much per step as all its iterations with gradient."""
    models, curves, walls = {}, [], []
    for name in zoo.names:
        untied = zoo.architectures[name].get("untied", False)
        for seed in untied_seeds if untied and untied_seeds is not None else settings.seeds:
            with torch_seed(derive(f"{task}-model", name, seed)):
                model = zoo.build(name)
            depth = model.config.iterations
            loss = progressive_loss(depth, settings.alpha) if name in ALL_LOOPED else progressive_loss(depth, alpha=0.0)
            config = TrainConfig(steps=settings.steps, lr=settings.lr, warmup_steps=settings.steps // 10,
                                 eval_every=settings.steps // evaluations,
                                 checkpoint_every=settings.steps // evaluations, seed=seed)
            result = train(model.to(study.device), loss, stream(seed), config,
                           evaluate=lambda m, depth=depth: evaluate(m, depth), checkpoint=study.checkpoint(name, seed),
                           device=study.device, description=f"{name} seed {seed}")
            models[name, seed] = model
            curves += [{"model": name, "seed": seed, **row} for row in result.history]
            reached = None if criterion is None else steps_to_criterion(result.history, *criterion)
            walls.append({"model": name, "seed": seed, "train_seconds": result.wall_seconds,
                          **({} if criterion is None else {"steps_to_criterion": float("nan") if reached is None
                                                           else reached})})
    return models, pd.DataFrame(curves), pd.DataFrame(walls)


def read_every_iteration(models: dict, inputs: dict, iterations: int | dict,
                         score: Callable[[object, torch.Tensor], list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, residuals): `score(key, logits)` of every model on every `inputs[key]`, after each of `iterations`
    test-time iterations (one count, or one per key of `inputs`) for a looped model and once at its depth for a
    reference; and the median relative residual ||z_t - z_{t-1}|| / ||z_{t-1}|| of every looped iteration."""
    rows, residuals = [], []
    with torch.no_grad():
        for (name, seed), model in models.items():
            for key, tokens in inputs.items():
                if name not in ALL_LOOPED:
                    rows += [{"model": name, "seed": seed, "iterations": model.config.iterations, **row}
                             for row in score(key, model(tokens)[0])]
                    continue
                count = iterations[key] if isinstance(iterations, dict) else iterations
                for t, (z, residual) in enumerate(model.states(tokens, count), start=1):
                    rows += [{"model": name, "seed": seed, "iterations": t, **row} for row in score(key, model.readout(z))]
                    residuals.append({"model": name, "seed": seed, "input": key, "iterations": t,
                                      "median residual": residual.median().item()})
    return pd.DataFrame(rows), pd.DataFrame(residuals)


def read_at(per_iteration: pd.DataFrame, names: list[str], counts: dict[str, int]) -> pd.DataFrame:
    """The rows of `per_iteration` at each fixed iteration count (label -> count), labelled in `read_at`; a reference
    has one depth, so it is read there under every label."""
    def at(name: str, t: int) -> pd.DataFrame:
        rows = per_iteration[per_iteration.model == name]
        return rows[rows.iterations == (t if name in ALL_LOOPED else rows.iterations.max())]

    return pd.concat([at(name, t).assign(read_at=label) for name in names for label, t in counts.items()],
                     ignore_index=True)


def bucket_index(sets: dict) -> torch.Tensor:
    """(examples,) the bucket number of every example when the sets of `sets` are concatenated in order, so that
    every bucket is scored from one forward pass over all of them."""
    return torch.repeat_interleave(torch.arange(len(sets)), torch.tensor([len(s) for s in sets.values()]))


def bucket_means(values: torch.Tensor, bucket_of: torch.Tensor, buckets: int,
                 weights: torch.Tensor | None = None) -> list[float]:
    """Per bucket, the sum of `values` over its examples divided by the sum of `weights` (default: one per example,
    the mean), pooled over examples rather than averaged over per-example rates."""
    weights = torch.ones_like(bucket_of, dtype=torch.float) if weights is None else weights
    total = torch.zeros(buckets, device=values.device).index_add_(0, bucket_of, weights)
    return (torch.zeros_like(total).index_add_(0, bucket_of, values) / total).tolist()


def flat(columns) -> list[str]:
    """Column tuples ("T = M", 32) as one label "T = M 32", for result tables."""
    return [" ".join(str(part) for part in c if part != "") for c in columns]


def mean_std_table(frame: pd.DataFrame, index, columns, values: str, rows: list, order: list | None = None) -> pd.DataFrame:
    """'mean ± std' over seeds of `values`, `rows` x `columns` (in `order` when given), columns flattened."""
    table = frame.pivot_table(index=index, columns=columns, values=values, aggfunc=mean_std_text)
    table = table.loc[rows] if order is None else table.loc[rows, order]
    return table.set_axis(flat(table.columns) if isinstance(table.columns, pd.MultiIndex) else
                          [str(c) for c in table.columns], axis=1)


def horizon_names(horizons: list[int], trained_at: int) -> list[str]:
    return [f"{t // trained_at}M" for t in horizons]


def stability_medians(model: LoopedTransformer, tokens: torch.Tensor, edited: torch.Tensor, settings: LoopedSettings,
                      horizons: list[int], generator: torch.Generator) -> dict:
    """The medians of the three axes at `horizons` (test-time iteration counts) for `tokens`, the input-dependence
    against `edited`, a small valid edit of them; `generator` has already drawn the edit."""
    measures = stability(model.step, model.initial_state, model.embed(tokens), model.embed(edited), horizons,
                         min(settings.jacobian_size, len(tokens)), settings.power_iterations, generator)
    return measures.medians(horizon_names(horizons, settings.iterations), TOL)


def measure_stability(models: dict, settings: LoopedSettings, horizons: list[int],
                      edit: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Generator]]) -> pd.DataFrame:
    """One row per (looped model of `models`, seed), indexed so: `edit(seed)` gives (tokens, edited tokens, the generator
    that drew the edit, which then draws the noise start and the power iterations)."""
    rows = []
    for name in looped_names(models):
        for seed in settings.seeds:
            with torch.no_grad():
                tokens, edited, generator = edit(seed)
                rows.append({"model": name, "seed": seed,
                             **stability_medians(models[name, seed], tokens, edited, settings, horizons, generator)})
    return pd.DataFrame(rows).set_index(["model", "seed"])


def stability_axes(horizons: list[int], trained_at: int) -> dict[str, str]:
    """The three axes L4 correlates with accuracy, each with the scale it is plotted on."""
    last = f"residual @{horizon_names(horizons, trained_at)[-1]}"
    return {last: "log", "path spread": "log", "spectral radius": "linear"}


def pooled_spearman(measures: pd.DataFrame, axes: Iterable[str], target: str) -> pd.Series:
    """Spearman rho of each axis with `target` over every (configuration, seed) point: a picture, not a decision
    (the points of one seed share its training batches)."""
    return pd.Series({axis: spearman(measures[axis], measures[target]) for axis in axes}, name=f"spearman with {target}")


def correlate_with_stability(study: Study, measures: pd.DataFrame, horizons: list[int], target: str, ylabel: str,
                             figure: str) -> tuple[dict[str, str], pd.Series]:
    """Record the figure of `target` against each stability axis and the table `stability_correlations` (the pooled
    rho of each axis with `target`); returns the axes (name -> plot scale) and the pooled correlations."""
    axes = stability_axes(horizons, study.settings.iterations)
    study.figure(plots.against_stability(measures, axes, target, ylabel, hue_order=looped_names(dict.fromkeys(measures.index))),
                 figure)
    correlations = pooled_spearman(measures, axes, target)
    study.table("stability_correlations", correlations.to_frame())
    return axes, correlations


def spearman_by_seed(measures: pd.DataFrame, x: str, y: str, seeds: Iterable[int]) -> pd.Series:
    """Spearman rho of columns `x` and `y` over the configurations of each seed (NaN where either side ties
    throughout). Rank correlation is symmetric, but its floating-point value depends on the argument order, so the
    order is the caller's."""
    seeds = list(seeds)
    return pd.Series([spearman(measures.xs(s, level="seed")[x], measures.xs(s, level="seed")[y]) for s in seeds],
                     index=seeds, name=f"spearman({x}, {y})")


def measured(rho: pd.Series | None) -> pd.Series | None:
    """A part of L4 is unmeasured (None) when its rho is undefined on some seed (every configuration ties) or was not
    computed (None: the run lacks some configurations)."""
    return None if rho is None or rho.isna().any() else rho


def over_configurations(measures: pd.DataFrame, names: list[str], column: str, how: str,
                        seeds: Iterable[int]) -> pd.Series | None:
    """Per seed (in `seeds` order), `how` ("mean", "max", ...) of `column` over the configurations `names`; None (not
    measured) when the run lacks some of them."""
    rows = measures.reset_index()
    if not set(names) <= set(rows.model):
        return None
    return rows[rows.model.isin(names)].groupby("seed")[column].agg(how).reindex(list(seeds))


def minus(a: pd.Series | None, b: pd.Series | None) -> pd.Series | None:
    """a - b per seed, None (not measured) when either side is."""
    return None if a is None or b is None else a - b


def seed_by_configuration(measures: pd.DataFrame, column: str, seeds: Iterable[int]) -> pd.DataFrame:
    """`column` as a seed x configuration table (configurations in sorted order)."""
    return measures[column].unstack("model").loc[list(seeds)]


def internal_minus_standard(table: pd.DataFrame, outer_norm: str, internal: str = "internal") -> pd.Series | None:
    """Per seed, `internal` recall ("internal" or "internal-branch") minus standard recall at one outer norm, from a
    `seed_by_configuration` table (claim L3); None (not measured) when the run lacks either configuration."""
    names = [configuration_name(internal, outer_norm), configuration_name("standard", outer_norm)]
    return table[names[0]] - table[names[1]] if set(names) <= set(table.columns) else None


def grid_only(measures: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of the six configurations, what L4 is pre-registered over; None when the run lacks some of them."""
    present = set(measures.index.get_level_values("model"))
    return measures.loc[LOOPED] if set(LOOPED) <= present else None


def seeds_reaching(values: pd.Series, names: list[str], threshold: float) -> dict[str, int]:
    """For each configuration in `names`, on how many seeds `values` (indexed by model and seed) reach `threshold`."""
    return {name: int((values.xs(name, level="model") >= threshold).sum()) for name in names}


def describe_configurations(measures: pd.DataFrame, names: list[str], columns: dict[str, str]) -> str:
    """'name: label value, ...' per configuration, means over seeds, for a claim's evidence."""
    means = measures.groupby("model").mean()
    names = [name for name in names if name in means.index]
    return "; ".join(f"{name}: " + ", ".join(f"{label} {means.loc[name, column]:.3g}" for column, label in columns.items())
                     for name in names)


def tracking_evidence(rhos: dict[str, pd.Series], pooled: pd.Series) -> str:
    """The L4 evidence: each axis's rho per seed, and pooled over every (configuration, seed) point."""
    return (f"Spearman over the {len(LOOPED)} looped configurations, per seed: "
            + "; ".join(f"{axis} " + ", ".join(f"{r:.2f}" for r in rho) for axis, rho in rhos.items())
            + " (nan: every configuration ties, the part is then not measured); pooled over every (configuration, seed)"
            " point: " + ", ".join(f"{axis} {pooled[axis]:.2f}" for axis in rhos))


def wall_time(study: Study) -> pd.DataFrame:
    """The `wall_time` table of the looped notebooks: each timed stage, then the notebook so far."""
    table = pd.Series(study.sections, name="seconds").rename_axis("stage").round(1).to_frame()
    table.loc["notebook so far"] = round(time.time() - study.run.started, 1)
    return study.table("wall_time", table)


def token_scores(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    """Exact match (every labelled token right) and per-token accuracy of (batch, tokens, classes) logits;
    unlabelled positions (IGNORE) count as right, so exact match is a plain all()."""
    correct = (logits.argmax(dim=-1) == targets) | (targets == IGNORE)
    labelled = targets != IGNORE
    return {"exact_match": correct.all(dim=1).float().mean().item(),
            "bit_accuracy": (correct & labelled).sum().item() / labelled.sum().item()}


def flip_one_bit(tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The small valid edit of a prefix-sum input: one random bit of every string flipped (position 0, the start
    marker, stays)."""
    flipped = tokens.clone()
    position = torch.randint(1, tokens.shape[1], (tokens.shape[0],), generator=generator).to(tokens.device)
    flipped[torch.arange(tokens.shape[0]), position] ^= 1
    return flipped
