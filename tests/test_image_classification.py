"""The image-classification pipeline of notebook 07 on synthetic images and tiny models: the zoo's pairing, scoring,
the tape-selection centre ratio and the per-seed ratios read off its tidy frames."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

from repro.data.images import ImageSet, Preprocessing
from repro.experiments import image_classification as ic
from repro.experiments.image_classification import ADATAPE, INITIAL, ClassificationSettings, Zoo

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = tuple(f"class {k}" for k in range(10))
TINY = dict(seeds=[0, 1], datasets=["fashion-mnist"], steps=2, batch=4, lr=1e-3, width=8, heads=2, layers=2,
            mlp_hidden=16, patch=4, bank_patch=2, fashion_models=["ViT", "SELF-ViT", ADATAPE], fashion_steps=2,
            efficientnet_steps=1, efficientnet_lr=1e-3, efficientnet_size=None, eval_size=10, validation_size=10,
            throughput_batch=4, throughput_repeats=1, flop_batch=2, tape_seeds=[0, 1], ffn_seeds=[0, 1],
            halting_eps=[0.01, 0.2, 0.5], tape_caps=[10, 6, 3])


def images(count: int, seed: int) -> ImageSet:
    """`count` random 1 x 8 x 8 images, the classes in turn (so every class has count / 10 of them)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (count, 1, 8, 8), generator=generator, dtype=torch.uint8)
    return ImageSet(pixels, torch.arange(count) % len(CLASSES), CLASSES, "fashion-mnist")


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    data = {"fashion-mnist": {"train": images(20, 0), "validation": images(10, 1), "test": images(20, 2)}}
    return Zoo(ClassificationSettings.of(**TINY), data)


@pytest.fixture(scope="module")
def trained(zoo):
    models, curves, walls = zoo.train_all()
    per_seed, selections = zoo.evaluate(models, zoo.parameters(), walls)
    return models, curves, per_seed, selections


def test_settings_take_none_for_the_whole_zoo_and_reject_unknown_keys():
    assert ClassificationSettings.of(**TINY | dict(fashion_models=None)).fashion_models is None
    with pytest.raises(ValueError, match="unknown setting"):
        ClassificationSettings.of(**TINY, stepz=3)


def test_the_scored_images_are_class_balanced(zoo):
    assert len(zoo.test["fashion-mnist"]) == 10
    assert zoo.test["fashion-mnist"].class_counts().tolist() == [1] * 10
    whole = zoo.data["fashion-mnist"]["validation"]
    assert ic.balanced_subset(whole, 50) is whole


def test_vit_and_self_vit_start_from_the_same_weights_and_seeds_differ(zoo):
    vit, self_vit = zoo.build("ViT", "fashion-mnist", 0), zoo.build("SELF-ViT", "fashion-mnist", 0)
    assert all(torch.equal(a, b) for a, b in zip(vit.state_dict().values(), self_vit.state_dict().values()))
    other = zoo.build("ViT", "fashion-mnist", 1)
    assert not torch.equal(vit.state_dict()["embed.project.weight"], other.state_dict()["embed.project.weight"])


def test_parameters_are_in_zoo_order_and_self_vit_adds_none(zoo):
    table = zoo.parameters()
    assert list(table.index) == ["ViT", "SELF-ViT", ADATAPE] and list(table.columns) == ["fashion-mnist"]
    assert table.loc["SELF-ViT", "fashion-mnist"] == table.loc["ViT", "fashion-mnist"]
    assert table.loc[ADATAPE, "fashion-mnist"] > table.loc["ViT", "fashion-mnist"]


class Constant(nn.Module):
    """Logits that rank the classes 0 > 1 > ... > 9 for every image."""

    def forward(self, x):
        return torch.arange(10, 0, -1).float().expand(len(x), 10), {"token_layers": torch.full((len(x),), 3.0)}


def test_scores_of_a_constant_ranking_are_the_share_of_its_top_classes():
    test = images(20, 3)
    row = ic.scores(Constant(), test, 7, Preprocessing((0.5,), (0.25,)), keep_selection=True)
    # Labels cycle through the 10 classes: class 0 is a tenth of them, classes 0-4 half.
    # A model without matrix products executes 0 MFLOPs.
    assert row == {"top-1": 0.1, "top-5": 0.5, "MFLOPs / image": 0.0, "token_layers": 3.0, "selected": None}


def test_training_records_curves_and_evaluation_one_row_per_model_and_seed(zoo, trained):
    models, curves, per_seed, selections = trained
    assert list(models) == [("fashion-mnist", name, seed) for name in TINY["fashion_models"] for seed in (0, 1)]
    assert set(curves.columns) >= {"dataset", "model", "seed", "step", "validation top-1"}
    assert len(per_seed) == 2 + 2 + 2 * 3 and per_seed[["top-1", "top-5"]].apply(lambda s: s.between(0, 1)).all().all()
    assert (per_seed["top-1"] <= per_seed["top-5"]).all()
    fpsa = per_seed.set_index("model")["FPSA at cap"]
    assert fpsa.loc["SELF-ViT"].between(0, 1).all() and fpsa.loc["ViT"].isna().all()
    assert (per_seed["MFLOPs / image"] > 0).all() and (per_seed["images / s"] > 0).all()
    # The input-driven bank of 8 x 8 images in 2 x 2 regions: a 4 x 4 grid of selection counts per seed.
    assert list(selections) == [("fashion-mnist", ADATAPE, 0), ("fashion-mnist", ADATAPE, 1)]
    assert all(selection.shape == (16,) and grid == 4 for selection, grid in selections.values())


def test_accuracy_table_leaves_unreported_quantities_blank(zoo, trained):
    table = ic.accuracy_table(trained[2], "fashion-mnist", zoo.models["fashion-mnist"])
    assert list(table.index) == TINY["fashion_models"]
    assert table.loc["ViT", "tape_length"] == "" and table.loc[ADATAPE, "tape_length"] != ""
    assert table.columns[0] == "parameters"


def test_initial_selections_are_the_untrained_input_bank_of_every_seed(zoo):
    selections = Zoo(zoo.settings, zoo.data).initial_selections("fashion-mnist")
    assert list(selections) == [("fashion-mnist", INITIAL, 0), ("fashion-mnist", INITIAL, 1)]


def test_centre_ratio_hand_computed_cases():
    grid = 4  # the central quarter is rows and columns 1-2
    assert ic.centre_ratio(torch.ones(16), grid) == pytest.approx(1.0)
    centre = torch.zeros(4, 4)
    centre[1:3, 1:3] = 1
    assert ic.centre_ratio(centre.flatten(), grid) == pytest.approx(4.0)
    corner = torch.zeros(16)
    corner[0] = 5
    assert ic.centre_ratio(corner, grid) == 0.0


def test_selection_maps_are_shares_averaged_over_seeds():
    first, second = torch.zeros(4), torch.zeros(4)
    first[0], second[3] = 2.0, 6.0
    maps = ic.selection_maps({("d", "m", 0): (first, 2), ("d", "m", 1): (second, 2)})
    assert torch.equal(maps["d", "m"], torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    ratios = ic.centre_ratios({("d", "m", 0): (first, 2)})
    assert list(ratios.columns) == ["dataset", "model", "seed", "centre ratio"]


def test_ratio_is_per_seed_and_refuses_unpaired_seeds():
    frame = pd.DataFrame({"model": ["a", "a", "b", "b"], "seed": [1, 0, 0, 1], "speed": [6.0, 2.0, 1.0, 3.0]})
    assert ic.ratio(frame, "speed", "a", "b").tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="unpaired seeds"):
        ic.ratio(frame.iloc[1:], "speed", "a", "b")


def test_frontier_keeps_the_adaptive_models_in_order_and_the_gate_reads_falling_cost():
    frame = pd.DataFrame({"dataset": "cifar10", "model": ["ViT", ic.UT, ic.UT, ADATAPE, ADATAPE],
                          "operating point": [None, 0.01, 0.5, 10, 3], "top-1": [0.5, 0.4, 0.3, 0.3, 0.2],
                          "MFLOPs / image": [9.0, 8.0, 5.0, 7.0, 7.0], "nominal MFLOPs / image": 9.0,
                          "images / s": [10.0, 20.0, 30.0, 40.0, 50.0]})
    front = ic.frontier(frame)
    assert list(front.index) == [(ADATAPE, 10), (ADATAPE, 3), (ic.UT, 0.01), (ic.UT, 0.5)]
    assert ic.cost_falls(front) == 0.0  # AdaTape's cost did not fall with its cap
    frame.loc[4, "MFLOPs / image"] = 6.0
    assert ic.cost_falls(ic.frontier(frame)) == 1.0


def test_the_size_matched_control_has_the_separate_ffn_models_size_within_one_hidden_unit():
    vit = ic.ViTConfig(image_size=8, patch=4, channels=1, classes=10, width=8, heads=2, layers=2, mlp_hidden=16)
    separate = ic.count_parameters(ic.BUILDERS[ic.ADATAPE_SEPARATE](vit, 2))
    matched = ic.size_matched(vit, 2)
    per_unit = ic.count_parameters(ic.tape(ic.replace(vit, mlp_hidden=17), 2)) - \
        ic.count_parameters(ic.tape(vit, 2))
    assert abs(ic.count_parameters(matched) - separate) <= per_unit / 2
    assert not matched.config.separate_tape_ffn and matched.config.vit.mlp_hidden > 16


def test_executed_cost_falls_with_the_operating_point_and_nominal_does_not(zoo, trained):
    per_seed = trained[2]
    tape_rows = per_seed[per_seed.model == ADATAPE].sort_values("operating point")
    assert list(tape_rows["operating point"].unique()) == [3, 6, 10]
    assert (tape_rows["MFLOPs / image"] <= tape_rows["nominal MFLOPs / image"] + 1e-9).all()
    assert tape_rows["nominal MFLOPs / image"].nunique() == 1


def test_figures_have_one_panel_per_map_and_two_per_dataset(zoo, trained):
    _, _, per_seed, selections = trained
    assert len(ic.heatmap_figure(ic.selection_maps(selections)).axes) == 2  # the map and its colour bar
    figure = ic.quality_cost_figure(per_seed, zoo.models, "smoke")
    assert [ax.get_xlabel() for ax in figure.axes] == ["images / s (profile smoke)", "MFLOPs / image (profile smoke)"]


def test_the_vit_competent_budget_projects_the_vits_mean_cifar_curve_to_the_gates_threshold():
    """Hand-made frames: the ViT's two CIFAR-10 seeds sit 0.02 either side of 0.1 + 0.05 ln s, which reaches the gate's
    0.55 at e^9, about 8,104 steps; SELF-ViT and Fashion-MNIST rows are not read."""
    steps = [75, 150, 225, 300]
    curves = pd.DataFrame([{"dataset": dataset, "model": model, "seed": seed, "step": s,
                            "validation top-1": 0.1 + 0.05 * math.log(s) + (0.02 if seed else -0.02)
                            if (dataset, model) == ("cifar10", "ViT") else 0.9}
                           for dataset in ("cifar10", "fashion_mnist") for model in ("ViT", "SELF-ViT")
                           for seed in (0, 1) for s in steps])
    walls = pd.DataFrame([{"dataset": dataset, "model": model, "seed": seed,
                           "train_seconds": 60.0 if (dataset, model) == ("cifar10", "ViT") else 1.0}
                          for dataset in ("cifar10", "fashion_mnist") for model in ("ViT", "SELF-ViT") for seed in (0, 1)])
    budget = ic.vit_competent_budget(curves, walls, 300, "S3")
    assert ic.vit_competent_gate("S3").threshold == 0.55 and budget.mean_of == 2
    assert ic.vit_competent_budget(curves, walls, 300, "A2").threshold == ic.vit_competent_gate("A2").threshold
    assert abs(budget.steps - math.exp(9)) <= 2 and budget.seconds_per_step == 0.2
