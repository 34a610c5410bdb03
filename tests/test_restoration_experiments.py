"""The restoration pipeline of notebook 08 with a tiny restorer: the vanilla/FPSA pairing, the scores' frames, the
paired differences per cell and family, and the classical baselines."""

import math

import pandas as pd
import pytest
import torch

from repro.data.restoration import TASKS, VALIDATION_IMAGES, held_out_pairs
from repro.experiments import restoration as rs
from repro.experiments.restoration import CELLS, DELTA, FAMILIES, VARIANTS, RestorationSettings
from repro.nn import count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(seeds=[0], steps=2, batch=2, patch=16, lr=2e-3, test_images=("camera",), test_crop=24,
            model=dict(width=8, heads=2, layers=1, mlp_hidden=16, window=4, patch=2), fpsa=dict(max_iterations=2))


@pytest.fixture(scope="module")
def settings() -> RestorationSettings:
    return RestorationSettings.of(**TINY)


@pytest.fixture(scope="module")
def tests(settings):
    return held_out_pairs(settings.test_images, settings.test_crop)


@pytest.fixture(scope="module")
def validation(settings):
    return held_out_pairs(VALIDATION_IMAGES, settings.test_crop, split="validation")


@pytest.fixture(scope="module")
def trained(settings, tests, validation):
    models, curves, walls = rs.train_all(settings, rs.training_images(), validation)
    scores, examples = rs.score(models, tests, "camera", 0)
    return models, curves, walls, scores, examples


def test_quality_clips_and_crops_the_sr_border():
    clean = torch.zeros(1, 1, 24, 24)
    assert rs.quality(clean, torch.full_like(clean, 0.1), "denoise", "sigma15")["psnr"] == pytest.approx(20.0)
    assert math.isinf(rs.quality(clean, torch.full_like(clean, -0.5), "denoise", "sigma15")["psnr"])
    off_border = torch.zeros_like(clean)
    off_border[..., :4, :] = 1  # wrong only within the x4 border
    assert rs.border("sr", "x4") == 4 and rs.border("deblur", "motion") == 0
    assert math.isinf(rs.quality(clean, off_border, "sr", "x4")["psnr"])


def test_the_variants_of_a_pair_share_their_weights_and_add_no_parameter(settings):
    vanilla, fpsa = rs.build(settings, "sr", 0, "vanilla"), rs.build(settings, "sr", 0, "FPSA")
    assert count_parameters(vanilla) == count_parameters(fpsa)
    assert all(torch.equal(a, b) for a, b in zip(vanilla.state_dict().values(), fpsa.state_dict().values()))
    other = rs.build(settings, "denoise", 0, "vanilla")
    assert not torch.equal(vanilla.shallow.weight, other.shallow.weight)


def test_settings_reject_a_non_positive_patch():
    with pytest.raises(ValueError, match="patch must be positive"):
        RestorationSettings.of(**TINY | dict(patch=0))


def test_training_runs_every_family_seed_and_variant_in_order(trained):
    models, curves, walls, _, _ = trained
    assert list(models) == [(family, 0, variant) for family in FAMILIES for variant in VARIANTS]
    assert set(curves.columns) >= {"family", "variant", "seed", "step", "train_loss"}
    assert len(walls) == 6 and (walls["train seconds"] > 0).all()


def test_every_evaluation_scores_the_levels_of_its_family_on_the_validation_photographs(trained, validation):
    models, curves, _, _, _ = trained
    assert all(steps == [1, 2] for steps in curves.groupby(["family", "variant"]).step.apply(list))
    for family in FAMILIES:
        rows = curves[curves.family == family]
        own = [f"validation PSNR {level}" for level in TASKS[family]]
        others = [c for c in curves.columns if c.startswith("validation PSNR") and c not in own]
        assert rows[own].notna().all().all() and rows[others].isna().all().all()
    # the last evaluation is the trained model's own score of the validation pairs
    model, last = models["denoise", 0, "vanilla"], curves.query("family == 'denoise' and variant == 'vanilla'").iloc[-1]
    with torch.no_grad():
        expected = rs.validation_psnr(validation, "denoise")(model.eval())
    assert expected == pytest.approx({key: last[key] for key in expected}, abs=1e-6)


def test_validation_curves_are_long_and_subtract_the_best_classical_method(trained):
    _, curves, _, _, _ = trained
    best = pd.Series({cell: 20.0 for cell in CELLS})
    long = rs.validation_curves(curves, best)
    assert len(long) == len(curves) // len(FAMILIES) * len(CELLS)
    assert (long["above classical"] == long["validation PSNR"] - 20.0).all()
    assert set(long.degradation) == set(rs.LEVEL_NAMES.values())


def margin_curves(margins: dict[int, callable], steps=(300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000)):
    """Curves as `train_all` writes them, best classical 30 dB everywhere: the vanilla run of a seed has, at every
    step, `margins[seed](step)` dB over it at motion blur and 5 dB more at every other cell; FPSA 10 dB worse."""
    rows = []
    for family in FAMILIES:
        for seed, margin in margins.items():
            for variant, offset in (("vanilla", 0.0), ("FPSA", -10.0)):
                for step in steps:
                    rows.append({"family": family, "variant": variant, "seed": seed, "step": step, "train_loss": 0.1,
                                 **{f"validation PSNR {level}": 30 + margin(step) + offset
                                    + (0 if level == "motion" else 5) for level in TASKS[family]}})
    return pd.DataFrame(rows), pd.Series({cell: 30.0 for cell in CELLS})


def test_validation_margins_read_the_lowest_cell_of_the_vanilla_runs():
    curves, best = margin_curves({0: lambda step: -1.0, 1: lambda step: -3.0})
    margins = rs.validation_margins(curves, best)
    assert margins.loc[0].eq(-1.0).all() and margins.loc[1].eq(-3.0).all() and len(margins) == 20


def test_budget_of_the_classical_gate_projects_a_log_linear_curve_to_zero():
    gate = rs.VANILLA_BEATS_CLASSICAL
    assert (gate.key, gate.op, gate.threshold) == ("vanilla_beats_classical", ">=", 0.0)
    # mean over the two seeds: -4 + log2(step / 3000), reaching 0 dB at 16 x 3,000 steps
    curves, best = margin_curves({0: lambda step: -3 + math.log2(step / 3000), 1: lambda step: -5 + math.log2(step / 3000)})
    walls = pd.DataFrame({"variant": ["vanilla", "FPSA"], "train seconds": [30.0, 90.0]})
    budget = rs.beats_classical_budget(curves, best, walls, 3000)
    assert budget.mean_of == 2 and budget.steps == pytest.approx(48_000, rel=1e-6)
    assert budget.seconds_per_step == pytest.approx(0.01)
    reached, _ = margin_curves({0: lambda step: 0.5, 1: lambda step: 1.5})
    assert rs.beats_classical_budget(reached, best, walls, 3000).seeds[0].measured


def test_scores_have_one_row_per_cell_variant_and_image(trained):
    _, _, _, scores, examples = trained
    assert len(scores) == len(CELLS) * len(VARIANTS)
    fpsa = scores[scores.variant == "FPSA"]
    assert fpsa["unconverged windows"].between(0, 1).all() and fpsa["layer 1"].between(1, 2).all()
    assert (scores[scores.variant == "vanilla"]["evaluations"] == 1).all()
    assert examples["sr", "x2", "FPSA"].shape == (24, 24) and ("sr", "x2", "evaluations") in examples


def synthetic_scores() -> pd.DataFrame:
    """Two seeds, two images: FPSA = vanilla + 1 dB at sigma15 and + 3 dB at sigma25 for every image and seed."""
    rows = []
    for level, gain in (("sigma15", 1.0), ("sigma25", 3.0)):
        for seed in (0, 1):
            for image, base in (("a", 20.0), ("b", 22.0)):
                for variant, value in (("vanilla", base + seed), ("FPSA", base + seed + gain)):
                    rows.append({"task": "denoise", "level": level, "seed": seed, "variant": variant, "image": image,
                                 "psnr": value})
    return pd.DataFrame(rows)


def test_quality_table_pairs_by_seed_and_family_gain_averages_the_levels(monkeypatch):
    monkeypatch.setattr(rs, "CELLS", [("denoise", "sigma15"), ("denoise", "sigma25")])
    monkeypatch.setattr(rs, "FAMILIES", ("denoise",))
    inputs = pd.DataFrame({"task": "denoise", "level": ["sigma15", "sigma25"], "image": "a", "psnr": [18.0, 15.0]})
    table, per_seed = rs.quality_table(synthetic_scores(), inputs, "psnr")
    assert per_seed.loc[("denoise", "sigma25", 1), "vanilla"] == 22.0  # mean over the two images
    assert per_seed[DELTA].tolist() == [1.0, 1.0, 3.0, 3.0]
    assert list(table.columns) == ["degradation", "degraded input", "vanilla", "FPSA", DELTA]
    assert table.loc[("denoise", "sigma15"), "degraded input"] == "18.000"
    assert rs.family_gains(per_seed)["denoise"].tolist() == [2.0, 2.0]


def test_quality_table_refuses_an_unpaired_seed():
    scores = synthetic_scores()
    unpaired = scores[~((scores.variant == "FPSA") & (scores.seed == 1))]
    with pytest.raises(ValueError, match="unpaired seeds"):
        rs.quality_table(unpaired, pd.DataFrame(columns=["task", "level", "psnr"]), "psnr")


def test_classical_methods_keep_the_image_shape_and_sr_is_its_input(tests):
    degraded, _ = tests["sr", "x2"]["camera"]
    assert torch.equal(rs.classical(degraded, "sr", "x2")["bicubic"], degraded)
    denoised = rs.classical(tests["denoise", "sigma25"]["camera"][0], "denoise", "sigma25")
    assert list(denoised) == ["non-local means", "total variation", "wavelet"]
    deblurred = rs.classical(tests["deblur", "motion"]["camera"][0], "deblur", "motion")
    assert all(image.shape == degraded.shape for image in [*denoised.values(), *deblurred.values()])


def test_classical_table_marks_the_best_method_of_each_cell(tests):
    by_method = rs.classical_psnr(tests)
    assert list(by_method.index) == CELLS and by_method.loc[("sr", "x2")].notna().sum() == 1
    table = rs.classical_table(by_method, pd.Series("v", index=pd.MultiIndex.from_tuples(CELLS)))
    best = by_method.max(axis=1)
    assert table["best classical"].tolist() == [f"{v:.3f}" for v in best] and (table["vanilla"] == "v").all()


def test_compute_tables_read_fpsa_rows_and_the_train_time_ratio(trained):
    _, _, walls, scores, _ = trained
    table, per_seed, seconds = rs.compute_tables(scores, walls)
    assert list(table.index) == CELLS and "layer 1" in table.columns
    assert list(seconds.columns) == ["vanilla", "FPSA", "FPSA / vanilla"]
    assert seconds["FPSA / vanilla"].tolist() == pytest.approx((seconds["FPSA"] / seconds["vanilla"]).tolist())


def test_examples_figure_has_a_row_per_cell(tests, trained):
    figure = rs.examples_figure(tests, trained[4], "camera", cap=2)
    assert len(figure.axes) == 5 * len(CELLS) + 1  # and the colour bar
    assert sum(len(levels) for levels in TASKS.values()) == len(CELLS)
