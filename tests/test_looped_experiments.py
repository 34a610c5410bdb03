"""The looped pipeline of notebooks 02-04 (`repro.experiments.looped`): the zoo, training, reading accuracy at every
iteration, the stability rows and the per-seed quantities the L1-L4 claims are decided on."""

import math
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from repro.data.prefix_sums import VOCAB, PrefixSumStream, evaluation_set
from repro.experiments import looped
from repro.experiments.looped import LOOPED, NO_RECALL, RECALL_NORM_ON, REFERENCE, ExtrapolationSettings, LoopedSettings, Zoo
from repro.losses import IGNORE
from repro.models.looped import configuration_name

VALUES = dict(seeds=[0, 1], steps=2, batch=4, lr=3e-3, width=8, heads=2, iterations=2, alpha=1.0, stability_size=4,
              jacobian_size=2, power_iterations=3)


def settings(**changes) -> LoopedSettings:
    return LoopedSettings.of(**(VALUES | changes))


def fake_study():
    """What the pipeline reads of a `Study`: its device, checkpoints, settings, sections, tables and figures."""
    tables, figures = {}, {}
    return SimpleNamespace(device=torch.device("cpu"), checkpoint=lambda *key: None, settings=settings(),
                           sections={"training": 1.234}, run=SimpleNamespace(started=time.time() - 2.0),
                           table=lambda name, frame: tables.setdefault(name, frame),
                           figure=lambda fig, what: figures.setdefault(what, fig), tables=tables, figures=figures)


@pytest.fixture(scope="module")
def trained():
    S = settings()
    zoo = Zoo.of(S, untied=True, vocab=VOCAB, outputs=2)
    tokens, targets = evaluation_set(6, 8, 0)
    models, curves, walls = looped.train_zoo(
        zoo, S, fake_study(), "test", lambda seed: PrefixSumStream(6, S.batch, seed),
        lambda m, depth: looped.token_scores(m(tokens, depth)[0], targets), evaluations=2, untied_seeds=[1])
    return zoo, models, curves, walls, tokens, targets


def test_settings_check_the_share_and_the_sizes():
    with pytest.raises(ValueError, match="alpha"):
        settings(alpha=1.5)
    with pytest.raises(ValueError, match="steps"):
        settings(steps=0)
    assert settings(alpha=0.0).alpha == 0.0


def test_extrapolation_reads_at_a_multiple_of_the_training_iterations():
    S = ExtrapolationSettings.of(**VALUES, test_factor=4)
    assert (S.test_iterations, S.horizons) == (8, [2, 4, 8])
    assert ExtrapolationSettings.of(**VALUES, test_factor=2).horizons == [2, 4]   # 2M is the test count: once
    with pytest.raises(ValueError, match="test_factor"):
        ExtrapolationSettings.of(**VALUES, test_factor=0)


def test_the_zoo_holds_six_looped_configurations_and_the_references():
    zoo = Zoo.of(settings(), untied=True, vocab=VOCAB, outputs=2)
    assert zoo.names == LOOPED + [REFERENCE, "2 untied layers (same compute)"]
    assert len(LOOPED) == 6 and NO_RECALL == LOOPED[:2]
    assert RECALL_NORM_ON == ["recall standard, outer norm on", "recall internal, outer norm on"]
    counts = zoo.parameters()
    # The recall map is the only extra matrix; the one-layer reference is the no-recall loop applied once.
    width = 8
    assert counts[LOOPED[2]] - counts[LOOPED[0]] == width * width
    assert counts[REFERENCE] == counts[LOOPED[0]]
    assert zoo.build(REFERENCE).config.iterations == 1 and zoo.build(LOOPED[0]).config.iterations == 2
    assert "2 untied layers (same compute)" not in Zoo.of(settings(), vocab=VOCAB, outputs=2).names


def test_train_zoo_trains_every_model_and_seed_reproducibly(trained):
    zoo, models, curves, walls, tokens, targets = trained
    expected = [(name, seed) for name in zoo.names for seed in ([1] if "untied" in name else [0, 1])]
    assert list(models) == expected
    assert list(walls[["model", "seed"]].itertuples(index=False, name=None)) == expected
    assert {"model", "seed", "step", "exact_match", "bit_accuracy"} <= set(curves.columns)
    assert sorted(curves.step.unique()) == [1, 2]   # evaluated every steps // evaluations steps
    # The same seed gives the same weights: construction and batches are seeded, not global.
    S = settings()
    again, _, _ = looped.train_zoo(Zoo.of(S, vocab=VOCAB, outputs=2), S.__class__.of(**(VALUES | {"seeds": [0]})),
                                   fake_study(), "test", lambda seed: PrefixSumStream(6, S.batch, seed),
                                   lambda m, depth: {}, evaluations=2)
    first = models[LOOPED[3], 0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in again[LOOPED[3], 0].state_dict().items())


def test_read_every_iteration_reads_loops_at_every_count_and_references_once(trained):
    zoo, models, _, _, tokens, targets = trained
    rows, residuals = looped.read_every_iteration(
        models, {6: tokens}, 5, lambda n, logits: [{"length": n, **looped.token_scores(logits, targets)}])
    loops = [key for key in models if key[0] in LOOPED]
    assert len(rows) == 5 * len(loops) + (len(models) - len(loops))
    assert len(residuals) == 5 * len(loops) and set(residuals.model) == set(LOOPED)
    assert sorted(rows[rows.model == REFERENCE].iterations.unique()) == [1]
    # Reading after the second iteration is the model's forward pass at two iterations.
    model = models[LOOPED[4], 0]
    at_two = rows[(rows.model == LOOPED[4]) & (rows.seed == 0) & (rows.iterations == 2)].iloc[0]
    with torch.no_grad():
        assert at_two.bit_accuracy == looped.token_scores(model(tokens, 2)[0], targets)["bit_accuracy"]


def test_read_at_takes_fixed_counts_and_a_reference_at_its_depth():
    frame = pd.DataFrame([{"model": m, "seed": 0, "iterations": t, "score": t}
                          for m in (LOOPED[0], REFERENCE) for t in ((1, 2, 3) if m != REFERENCE else (1,))])
    finals = looped.read_at(frame, [LOOPED[0], REFERENCE], {"T = M": 2, "T = 3M": 3})
    assert finals[["model", "read_at", "score"]].values.tolist() == [
        [LOOPED[0], "T = M", 2], [LOOPED[0], "T = 3M", 3], [REFERENCE, "T = M", 1], [REFERENCE, "T = 3M", 1]]


def test_mean_std_table_orders_and_flattens():
    frame = pd.DataFrame([{"model": m, "seed": s, "read_at": r, "length": n, "v": s + n}
                          for m in ("b", "a") for s in (0, 1) for r in ("T = M",) for n in (8, 12)])
    table = looped.mean_std_table(frame, "model", ["read_at", "length"], "v", ["b", "a"], [("T = M", 12), ("T = M", 8)])
    assert list(table.columns) == ["T = M 12", "T = M 8"] and list(table.index) == ["b", "a"]
    assert table.loc["a", "T = M 8"] == "8.500 ± 0.707"


def test_bucket_means_pool_over_examples():
    sets = {"x": [0, 0, 0], "y": [0]}
    bucket_of = looped.bucket_index(sets)
    assert bucket_of.tolist() == [0, 0, 0, 1]
    values = torch.tensor([1.0, 0.0, 1.0, 3.0])
    assert looped.bucket_means(values, bucket_of, 2) == pytest.approx([2 / 3, 3.0])
    assert looped.bucket_means(values, bucket_of, 2, weights=torch.tensor([1.0, 1.0, 2.0, 6.0])) == [0.5, 0.5]


def test_measure_stability_gives_one_row_per_configuration_and_seed(trained):
    _, models, _, _, tokens, _ = trained
    S = settings()
    edit = lambda seed: (tokens, looped.flip_one_bit(tokens, torch.Generator().manual_seed(seed)),
                         torch.Generator().manual_seed(seed))
    measures = looped.measure_stability(models, S, [2, 4], edit)
    assert list(measures.index) == [(name, seed) for name in LOOPED for seed in (0, 1)]
    assert {"residual @1M", "residual @2M", "reached @2M", "path spread", "spectral radius"} <= set(measures.columns)
    assert ((measures["reached @2M"] >= 0) & (measures["reached @2M"] <= 1)).all()
    assert list(looped.stability_axes([2, 4], 2)) == ["residual @2M", "path spread", "spectral radius"]


def measures_frame() -> pd.DataFrame:
    """Two seeds; on seed 0 accuracy falls as the spread rises, on seed 1 every configuration ties."""
    rows = [{"model": name, "seed": seed, "spread": k, "accuracy": (1 - k / 10) if seed == 0 else 0.5}
            for k, name in enumerate(LOOPED) for seed in (0, 1)]
    return pd.DataFrame(rows).set_index(["model", "seed"])


def test_spearman_is_decided_within_seeds_and_undefined_ties_are_unmeasured():
    rho = looped.spearman_by_seed(measures_frame(), "spread", "accuracy", [0, 1])
    assert rho[0] == pytest.approx(-1.0) and math.isnan(rho[1])
    assert looped.measured(rho) is None
    assert looped.measured(rho.loc[[0]]).tolist() == pytest.approx([-1.0])
    pooled = looped.pooled_spearman(measures_frame(), ["spread"], "accuracy")
    assert pooled.name == "spearman with accuracy" and -1 < pooled["spread"] < 0


def test_per_seed_aggregations_over_configuration_groups():
    measures = measures_frame()
    means = looped.over_configurations(measures, NO_RECALL, "accuracy", "mean", [1, 0])
    assert means.index.tolist() == [1, 0] and means.tolist() == pytest.approx([0.5, 0.95])
    table = looped.seed_by_configuration(measures, "spread", [0, 1])
    assert table.shape == (2, 6) and table.loc[0, LOOPED[5]] == 5
    gap = looped.internal_minus_standard(table, "layernorm")   # internal, on (5) - standard, on (3)
    assert gap.tolist() == [2, 2]
    assert looped.seeds_reaching(measures.accuracy, [LOOPED[0], LOOPED[5]], 0.9) == {LOOPED[0]: 1, LOOPED[5]: 0}
    text = looped.describe_configurations(measures, [LOOPED[0]], {"accuracy": "acc"})
    assert text == f"{configuration_name('none', 'none')}: acc 0.75"


def test_token_scores_ignore_unlabelled_positions():
    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    targets = torch.tensor([[0, 1, IGNORE], [0, 1, 1]])
    scores = looped.token_scores(logits, targets)
    assert scores == {"exact_match": 0.5, "bit_accuracy": pytest.approx(4 / 5)}


def test_flip_one_bit_changes_exactly_one_bit_never_the_marker():
    tokens = evaluation_set(10, 50, 0)[0]
    flipped = looped.flip_one_bit(tokens, torch.Generator().manual_seed(0))
    changed = flipped != tokens
    assert (changed.sum(dim=1) == 1).all() and not changed[:, 0].any()
    assert torch.equal(flipped, looped.flip_one_bit(tokens, torch.Generator().manual_seed(0)))


def test_correlate_with_stability_records_its_figure_and_table():
    study = fake_study()
    measures = measures_frame().rename(columns={"spread": "path spread"})
    measures["residual @2M"], measures["spectral radius"] = measures["path spread"] + 1.0, 0.5
    axes, correlations = looped.correlate_with_stability(study, measures, [2, 4], "accuracy", "accuracy", "vs")
    assert list(axes) == ["residual @2M", "path spread", "spectral radius"]
    assert "vs" in study.figures and list(study.tables) == ["stability_correlations"]
    assert math.isnan(correlations["spectral radius"])   # a constant axis has no rank correlation


def test_wall_time_ends_with_the_notebook_so_far():
    table = looped.wall_time(fake_study())
    assert table.index.tolist() == ["training", "notebook so far"] and table.index.name == "stage"
    assert table.loc["training", "seconds"] == 1.2 and table.loc["notebook so far", "seconds"] >= 2.0


def test_a_zoo_builds_the_chosen_looped_models_and_the_variants_beside_the_six():
    from repro.experiments.looped import CLIPPED_CONTROL, INTERNAL_BRANCH
    zoo = Zoo.of(settings(), looped=[RECALL_NORM_ON[0], INTERNAL_BRANCH, CLIPPED_CONTROL], vocab=VOCAB, outputs=2)
    assert zoo.names == [RECALL_NORM_ON[0], INTERNAL_BRANCH, CLIPPED_CONTROL, REFERENCE]
    assert zoo.build(INTERNAL_BRANCH).config.recall == "internal-branch"
    assert zoo.build(CLIPPED_CONTROL).config.far_offsets == "clipped"
    assert zoo.build(RECALL_NORM_ON[0]).config.far_offsets == "linear"
    with pytest.raises(ValueError, match="unknown looped models"):
        Zoo.of(settings(), looped=["recall sideways"], vocab=VOCAB, outputs=2)


def test_training_reports_steps_to_criterion_and_reading_takes_iterations_per_input():
    S = settings(steps=4, seeds=[0])
    zoo = Zoo.of(S, looped=[LOOPED[2]], vocab=VOCAB, outputs=2)
    tokens, targets = evaluation_set(6, 8, 0)
    models, curves, walls = looped.train_zoo(
        zoo, S, fake_study(), "test", lambda seed: PrefixSumStream(6, S.batch, seed),
        lambda m, depth: {"always": 1.0, "never": 0.0}, evaluations=2, criterion=("always", 0.5))
    assert walls.steps_to_criterion.tolist() == [curves.step.min()] * 2
    _, never = looped.train_zoo(zoo, S, fake_study(), "test", lambda seed: PrefixSumStream(6, S.batch, seed),
                                lambda m, depth: {"never": 0.0}, evaluations=2, criterion=("never", 0.5))[1:]
    assert never.steps_to_criterion.isna().all()
    rows, _ = looped.read_every_iteration(models, {6: tokens, 9: evaluation_set(9, 4, 0)[0]}, {6: 2, 9: 5},
                                          lambda key, logits: [{"length": key}])
    looped_rows = rows[rows.model == LOOPED[2]]
    assert looped_rows.groupby("length").iterations.max().to_dict() == {6: 2, 9: 5}


def test_parts_that_need_a_configuration_the_run_lacks_are_not_measured():
    measures = pd.DataFrame([{"model": name, "seed": seed, "accuracy": 0.5 + seed}
                             for name in RECALL_NORM_ON for seed in (0, 1)]).set_index(["model", "seed"])
    assert looped.over_configurations(measures, NO_RECALL, "accuracy", "mean", [0, 1]) is None
    assert looped.minus(looped.over_configurations(measures, RECALL_NORM_ON, "accuracy", "mean", [0, 1]), None) is None
    table = looped.seed_by_configuration(measures, "accuracy", [0, 1])
    assert looped.internal_minus_standard(table, "layernorm").tolist() == [0.0, 0.0]
    assert looped.internal_minus_standard(table, "none") is None
    assert looped.internal_minus_standard(table, "layernorm", "internal-branch") is None
    assert looped.grid_only(measures) is None and looped.measured(None) is None
