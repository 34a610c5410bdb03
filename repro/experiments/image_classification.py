"""Image classification with adaptive vision transformers (notebook 07): one recipe for a zoo of models on small images.

SELF-ViT (S3) and AdaTape (A2-A4) are both claims about a ViT that spends its compute differently, so every model of
the zoo shares the ViT backbone sizes, the training recipe, the augmented batches and the test images, and differs in
how it spends compute alone (`repro.models.vit`). A `Zoo` holds what the runs share (settings, images, device,
checkpoints) and builds, trains and scores each (model, dataset, seed):

1. `Zoo.build` draws a model's weights from the stream ("07-model", dataset, stream, seed), where ViT and SELF-ViT
   share one stream: the same initial network in each seed, so their difference is the attention alone (a paired
   comparison, read with `repro.experiments.paired.difference`);
2. `Zoo.fit` trains it with `repro.train.train` on `AugmentedBatches` (a pure function of seed and step), the
   validation top-1 as its learning curve;
3. `Zoo.evaluate` scores the test images once per operating point (`scores`: top-1, top-5, the compute the model
   reports, the executed MFLOPs counted over the whole scoring pass, FPSA's share of solves at the cap via
   `repro.experiments.paired.spend`), the nominal MFLOPs (the same model padded and masked) and images per second;
   the adaptive models are scored at each of their test-time operating points (`operating_points`);
4. `centre_ratio` reads AdaTape's tape-selection map (A3): the share of selections in the central quarter of the
   image over that region's share of the bank, with untrained and noise-image controls.

Everything comes out as tidy frames, one row per (dataset, model, seed).
"""

from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import torch

from repro import plots
from repro.claims import Gate, gate_of
from repro.cost import count_flops, time_forward
from repro.data.images import (AUGMENTATIONS, CIFAR10_RESPLIT, AugmentedBatches, ImageSet, Preprocessing, cifar10,
                               evaluation_batches, fashion_mnist, stratified_split)
from repro.experiments.paired import difference, spend
from repro.losses import classification_loss
from repro.models.efficientnet_lite import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0
from repro.models.self_transformer import fixed_point_aux, fixed_point_layers
from repro.models.vit import (AdaTapeViT, AdaTapeViTConfig, HaltingViT, HaltingViTConfig, UniversalViT,
                              UniversalViTConfig, ViT, ViTConfig, self_vit)
from repro.nn import count_parameters
from repro.projection import Projection, project_mean
from repro.results import mean_std_text
from repro.seeding import derive, torch_seed
from repro.study import Settings, bounded
from repro.train import TrainConfig, TrainResult, train

ADATAPE = "AdaTape (input bank)"
ADATAPE_SEPARATE = "AdaTape (input bank, separate tape FFN)"
ADATAPE_MATCHED = "AdaTape (input bank, shared FFN, size-matched)"
"""A4's control: the shared tape FFN with its hidden width raised until the model has the separate-FFN model's size."""
ADATAPE_WIDE = "AdaTape (input bank, 1.5x width)"
"""A larger AdaTape (width and MLP 1.5x the backbone's): "larger AdaTape models are faster than smaller baselines"."""
WIDE = 1.5
ADATAPE_LEARNABLE = "AdaTape (learnable bank)"
UT = "UT-ViT (weight-tied, ACT)"
AVIT = "A-ViT (token halting)"
EFFICIENTNET = "EfficientNet-Lite0 (ImageNet, fine-tuned)"
ADAPTIVE = [ADATAPE, ADATAPE_WIDE, ADATAPE_LEARNABLE, UT, AVIT]
"""The models scored at several test-time operating points (the quality/cost frontier)."""
INITIAL = f"{ADATAPE} at initialisation"
"""The input-bank AdaTape before training: what image statistics alone make of its selection (A3's control)."""
NOISE = "on noise images"
"""Suffix of the A3 control rows scored on uniform-noise images (no image content to follow)."""
SELECTION_MODELS = (ADATAPE, ADATAPE_SEPARATE)
"""The models whose tape-selection maps are kept: the input-driven bank maps onto image regions."""
COLUMNS = ["top-1", "top-5", "MFLOPs / image", "nominal MFLOPs / image", "images / s", "token_layers", "attention_evaluations", "tape_length",
           "train_seconds"]
"""The columns of the accuracy-and-cost tables, where a model reports them."""
EVALUATION_BATCH = 256


@dataclass(frozen=True)
class ClassificationSettings(Settings):
    """The image-classification study's settings: the ViT backbone's sizes (shared by every ViT-family model), one
    training recipe (`steps` on CIFAR-10, `fashion_steps` on Fashion-MNIST; EfficientNet-Lite0 its own), the images
    scored and the cost measurements."""
    datasets: tuple[str, ...]
    steps: int
    batch: int
    lr: float
    width: int
    heads: int
    layers: int
    mlp_hidden: int
    patch: int
    bank_patch: int  # the input-driven bank's patch side: one bank entry per bank_patch x bank_patch region
    fashion_models: tuple[str, ...] | None  # the models trained on Fashion-MNIST; None: the whole zoo
    fashion_steps: int
    efficientnet_steps: int
    efficientnet_lr: float
    efficientnet_size: int | None  # EfficientNet-Lite0's input side (bilinear upsampling); None: the images' own
    eval_size: int  # test images scored per dataset (class-balanced; the whole test part when it has fewer)
    validation_size: int
    throughput_batch: int
    throughput_repeats: int
    flop_batch: int  # images whose nominal (padded and masked) MFLOPs are counted
    tape_seeds: tuple[int, ...] = bounded(0)  # seeds of AdaTape (input bank) on CIFAR-10 (A3 needs 8)
    ffn_seeds: tuple[int, ...] = bounded(0)  # seeds of the separate-FFN AdaTape and its size-matched control (A4 needs 6)
    halting_eps: tuple[float, ...]  # UT-ViT's and A-ViT's test-time halting thresholds, the trained one first
    tape_caps: tuple[int, ...]  # AdaTape's test-time caps on tape tokens read, the trained one (max_tape) first


def load_images(names: tuple[str, ...]) -> dict[str, dict[str, ImageSet]]:
    """{dataset: {"train", "validation", "test": ImageSet}} of the named datasets. CIFAR-10 is its official test set
    re-split (fixed, stratified); Fashion-MNIST keeps its test set and holds 100 training images per class out for
    validation."""
    # DEVIATION: [vision-small-images] CIFAR-10 (re-split test set) and Fashion-MNIST instead of ImageNet-1K.
    cifar = stratified_split(cifar10(), CIFAR10_RESPLIT)
    fashion_train, fashion_test = fashion_mnist()
    fashion = stratified_split(fashion_train, {"validation": 100, "train": 5900}) | {"test": fashion_test}
    data = {"cifar10": cifar, "fashion-mnist": fashion}
    return {name: data[name] for name in names}


def balanced_subset(images: ImageSet, size: int) -> ImageSet:
    """`size` images, the same number of each class (a part lists its images by class, so a slice would not do);
    the whole part where it has no more than `size`."""
    if size >= len(images):
        return images
    return stratified_split(images, {"scored": size // len(images.classes)})["scored"]


def datasets_table(data: dict[str, dict[str, ImageSet]], scored: dict[str, ImageSet]) -> pd.DataFrame:
    """One row per dataset: image shape, classes, the parts' sizes and the test images scored."""
    return pd.DataFrame([{"dataset": name, "image": "x".join(map(str, parts["train"].images.shape[1:])),
                          "classes": len(parts["train"].classes), "train": len(parts["train"]),
                          "validation": len(parts["validation"]), "test": len(parts["test"]),
                          "test images scored": len(scored[name])}
                         for name, parts in data.items()]).set_index("dataset")


def tape(vit: ViTConfig, bank_patch: int, **options) -> AdaTapeViT:
    return AdaTapeViT(AdaTapeViTConfig(vit=vit, bank_patch=bank_patch, **options))


def size_matched(vit: ViTConfig, bank_patch: int) -> AdaTapeViT:
    """The shared-FFN AdaTape whose MLP hidden width brings its parameters nearest the separate-FFN model's (the
    count is affine in the width, so two counts on the meta device give it)."""
    def size(hidden: int, **options) -> int:
        with torch.device("meta"):
            return count_parameters(tape(replace(vit, mlp_hidden=hidden), bank_patch, **options))
    target, base = size(vit.mlp_hidden, separate_tape_ffn=True), size(vit.mlp_hidden)
    hidden = vit.mlp_hidden + round((target - base) / (size(vit.mlp_hidden + 1) - base))
    return tape(replace(vit, mlp_hidden=hidden), bank_patch)


BUILDERS: dict[str, Callable[[ViTConfig, int], torch.nn.Module]] = {
    "ViT": lambda v, bank_patch: ViT(v),
    "SELF-ViT": lambda v, bank_patch: self_vit(v),
    ADATAPE: lambda v, bank_patch: tape(v, bank_patch, bank="input"),
    ADATAPE_SEPARATE: lambda v, bank_patch: tape(v, bank_patch, bank="input", separate_tape_ffn=True),
    ADATAPE_MATCHED: size_matched,
    ADATAPE_WIDE: lambda v, bank_patch: tape(replace(v, width=round(WIDE * v.width),
                                                     mlp_hidden=round(WIDE * v.mlp_hidden)), bank_patch),
    ADATAPE_LEARNABLE: lambda v, bank_patch: tape(v, bank_patch, bank="learnable"),
    UT: lambda v, bank_patch: UniversalViT(UniversalViTConfig(vit=v)),
    AVIT: lambda v, bank_patch: HaltingViT(HaltingViTConfig(vit=v)),
    # DEVIATION: [vision-efficientnet-lite0] EfficientNet-Lite0 with ImageNet weights, fine-tuned, not EfficientNet-B7.
    EFFICIENTNET: lambda v, bank_patch: efficientnet_lite0(v.classes, pretrained=True),
}
"""The zoo, in the order of its tables: (backbone config, bank patch) -> model."""


def vit_competent_gate(claim: str) -> Gate:
    """The gate `vit_competent` as the claim `claim` (S3 or A2) pre-registers it."""
    return gate_of(claim, "vit_competent")


def vit_competent_budget(curves: pd.DataFrame, walls: pd.DataFrame, steps: int, claim: str) -> Projection:
    """What would let the gate `vit_competent` of `claim` decide where it fails: the steps at which the ViT's CIFAR-10
    validation top-1, as the mean over seeds, projects to the gate's threshold (`repro.projection`, an extrapolation;
    the gate reads the test split, which the validation split estimates), at the ViT's measured training seconds per
    step."""
    gate = vit_competent_gate(claim)
    is_vit = lambda frame: (frame.dataset == "cifar10") & (frame.model == "ViT")
    runs = curves[is_vit(curves)]
    return project_mean("ViT validation top-1",
                        {seed: (run.step.tolist(), run["validation top-1"].tolist()) for seed, run in runs.groupby("seed")},
                        gate.threshold, at_least=gate.op == ">=",
                        seconds_per_step=walls[is_vit(walls)].train_seconds.mean() / steps)


def scores(model: torch.nn.Module, images: ImageSet, batch_size: int, prep: Preprocessing,
           device: torch.device = torch.device("cpu"), keep_selection: bool = False) -> dict:
    """Top-1, top-5 and the compute the model reports per image, over every image once, and "MFLOPs / image": the
    matrix products dispatched over that whole pass (`repro.cost.count_flops`), the compute executed; for FPSA models
    the share of (layer, image) solves stopped at the cap ("FPSA at cap"); with `keep_selection`, "selected": the
    (bank,) counts of AdaTape's selections summed over the images (None for a model without a tape)."""
    right1 = right5 = 0
    spent, selected, solves = {}, None, []

    def score_all():
        nonlocal right1, right5, selected
        for x, labels in evaluation_batches(images, batch_size, prep):
            logits, aux = model(x.to(device))
            top5 = logits.topk(5, dim=1).indices.cpu()
            right1 += (top5[:, 0] == labels).sum().item()
            right5 += (top5 == labels[:, None]).any(dim=1).sum().item()
            for key in ("token_layers", "attention_evaluations", "tape_length"):
                if key in aux:
                    spent[key] = spent.get(key, 0.0) + aux[key].float().sum().item()
            if fixed_point_layers(model):
                solves.append(fixed_point_aux(model))
            if keep_selection and "selected" in aux:
                part = aux["selected"].sum(dim=0).cpu()
                selected = part if selected is None else selected + part
    with torch.no_grad():
        flops = count_flops(score_all)
    n = len(images)
    row = {"top-1": right1 / n, "top-5": right5 / n, "MFLOPs / image": flops / n / 1e6,
           **{key: value / n for key, value in spent.items()}}
    if solves:
        gathered = {key: torch.cat([solve[key] for solve in solves], dim=1) for key in ("iterations", "converged")}
        row["FPSA at cap"] = spend(gathered)["at cap"]
    return row | ({"selected": selected} if keep_selection else {})


@dataclass
class Zoo:
    """What every run of the study shares: the settings, the images, the device and the checkpoint names
    (`checkpoint(dataset, model, seed)`, e.g. `repro.study.Study.checkpoint`)."""
    settings: ClassificationSettings
    data: dict[str, dict[str, ImageSet]]
    device: torch.device = torch.device("cpu")
    checkpoint: Callable[..., Path | None] = lambda *key: None

    def __post_init__(self):
        S = self.settings
        self.test = {name: balanced_subset(parts["test"], S.eval_size) for name, parts in self.data.items()}
        self.validation = {name: balanced_subset(parts["validation"], S.validation_size)
                           for name, parts in self.data.items()}
        models = {"cifar10": list(BUILDERS), "fashion-mnist": list(S.fashion_models or BUILDERS)}
        self.models = {name: models[name] for name in self.data}
        """The models trained on each dataset, in table order."""

    def seeds(self, name: str, dataset: str) -> tuple[int, ...]:
        """The seeds a model is trained with: more for the models of A3 and A4 on CIFAR-10, whose rules need them."""
        S = self.settings
        if dataset == "cifar10" and name == ADATAPE:
            return S.tape_seeds
        if dataset == "cifar10" and name in (ADATAPE_SEPARATE, ADATAPE_MATCHED):
            return S.ffn_seeds
        return S.seeds

    def operating_points(self, model: torch.nn.Module) -> tuple:
        """The test-time operating points of an adaptive model, the trained one first; (None,) for the others."""
        if isinstance(model, AdaTapeViT):
            return self.settings.tape_caps
        if isinstance(model, (UniversalViT, HaltingViT)):
            return self.settings.halting_eps
        return (None,)

    def vit_config(self, dataset: str) -> ViTConfig:
        S, train_images = self.settings, self.data[dataset]["train"]
        return ViTConfig(image_size=train_images.images.shape[-1], patch=S.patch, channels=train_images.images.shape[1],
                         classes=len(train_images.classes), width=S.width, heads=S.heads, layers=S.layers,
                         mlp_hidden=S.mlp_hidden)

    def build(self, name: str, dataset: str, seed: int) -> torch.nn.Module:
        # ViT and SELF-ViT draw their weights from one stream: the same initial network in each seed.
        stream = "vit" if name in ("ViT", "SELF-ViT") else name
        with torch_seed(derive("07-model", dataset, stream, seed)):
            return BUILDERS[name](self.vit_config(dataset), self.settings.bank_patch)

    def preprocessing(self, name: str, dataset: str) -> Preprocessing:
        """The normalisation its ImageNet weights expect for EfficientNet; else statistics of the training images."""
        if name == EFFICIENTNET:
            return Preprocessing(IMAGENET_MEAN, IMAGENET_STD, size=self.settings.efficientnet_size)
        return Preprocessing.fit(self.data[dataset]["train"])

    def parameters(self) -> pd.DataFrame:
        """Parameters per model (rows, in zoo order) and dataset (columns); blank where a model is not trained."""
        table = pd.DataFrame([{"dataset": d, "model": name, "parameters": count_parameters(self.build(name, d, 0))}
                              for d in self.data for name in self.models[d]]).pivot(index="model", columns="dataset",
                                                                                    values="parameters")
        return table.loc[[name for name in BUILDERS if name in table.index]].astype("Int64")

    def fit(self, name: str, dataset: str, seed: int) -> tuple[torch.nn.Module, Preprocessing, TrainResult]:
        """One training run: AdamW (weight decay 0.05), warm-up over 10% of the steps, four evaluations of the
        validation top-1; EfficientNet-Lite0 at its own learning rate and step count."""
        S = self.settings
        model, prep = self.build(name, dataset, seed), self.preprocessing(name, dataset)
        pretrained = name == EFFICIENTNET
        steps = S.efficientnet_steps if pretrained else S.steps if dataset == "cifar10" else S.fashion_steps
        config = TrainConfig(steps=steps, lr=S.efficientnet_lr if pretrained else S.lr, weight_decay=0.05,
                             warmup_steps=steps // 10, eval_every=max(1, steps // 4),
                             checkpoint_every=max(1, steps // 4), seed=seed)
        stream = AugmentedBatches(self.data[dataset]["train"], S.batch, seed, AUGMENTATIONS[dataset], prep)
        validation = self.validation[dataset]
        result = train(model.to(self.device), classification_loss, stream, config,
                       evaluate=lambda m: {"validation top-1": scores(m, validation, EVALUATION_BATCH, prep,
                                                                      self.device)["top-1"]},
                       checkpoint=self.checkpoint(dataset, name, seed), device=self.device,
                       description=f"{dataset} {name} seed {seed}")
        return model, prep, result

    def train_all(self) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
        """Every (dataset, model, seed), in that nesting: the trained models with their preprocessing, the learning
        curves (one row per evaluation) and the training seconds (one row per run)."""
        models, curves, walls = {}, [], []
        for dataset in self.data:
            for name in self.models[dataset]:
                for seed in self.seeds(name, dataset):
                    model, prep, result = self.fit(name, dataset, seed)
                    models[dataset, name, seed] = (model, prep)
                    curves += [{"dataset": dataset, "model": name, "seed": seed, **row} for row in result.history]
                    walls.append({"dataset": dataset, "model": name, "seed": seed,
                                  "train_seconds": result.wall_seconds})
        return models, pd.DataFrame(curves), pd.DataFrame(walls)

    def evaluate(self, models: dict, parameters: pd.DataFrame, walls: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """One row per (dataset, model, seed, operating point) (the adaptive models of `ADAPTIVE` at each of theirs,
        the others at None): `scores` on the test images with the executed MFLOPs per image, the nominal MFLOPs per
        image (the same model padded and masked, every halted token and unread tape slot computed, at the trained
        operating point), images per second (median wall time of a batched forward, eval mode), the parameters and
        the training seconds; and the tape-selection counts of the input-bank AdaTape models at their trained
        operating point, {(dataset, model, seed): (selected, bank grid side)}."""
        S, rows, selections = self.settings, [], {}
        for (dataset, name, seed), (model, prep) in models.items():
            model.eval()
            x = prep(self.test[dataset].images[:S.throughput_batch]).to(self.device)
            points = self.operating_points(model) if name in ADAPTIVE else (None,)
            nominal = self.nominal_mflops(model, x[:S.flop_batch])
            for point in points:
                with operating_point(model, point):
                    row = {"dataset": dataset, "model": name, "seed": seed, "operating point": point,
                           "trained point": point == points[0],
                           **scores(model, self.test[dataset], EVALUATION_BATCH, prep, self.device,
                                    keep_selection=True), "nominal MFLOPs / image": nominal}
                    with torch.no_grad():
                        latency = time_forward(lambda: model(x), self.device, S.throughput_repeats)
                row["images / s"] = len(x) / latency.median
                selection = row.pop("selected")
                if selection is not None and name in SELECTION_MODELS and point == points[0]:
                    selections[dataset, name, seed] = (selection, model.bank_grid)
                rows.append(row)
        per_seed = pd.DataFrame(rows)
        per_seed["parameters"] = [parameters.loc[m, d] for d, m in zip(per_seed.dataset, per_seed.model)]
        return per_seed.merge(walls, on=["dataset", "model", "seed"]), selections

    @staticmethod
    def nominal_mflops(model: torch.nn.Module, x: torch.Tensor) -> float:
        """MFLOPs per image of the padded, masked computation (`gather` off), which the adaptive models' counters
        count but which saves nothing: for the other models their executed cost."""
        gathers = hasattr(model, "gather")
        if gathers:
            model.gather = False
        try:
            with torch.no_grad():
                return count_flops(lambda: model(x)) / len(x) / 1e6
        finally:
            if gathers:
                model.gather = True

    def initial_selections(self, dataset: str = "cifar10") -> dict:
        """The input-bank AdaTape of every seed at initialisation, scored on the test images: A3's control."""
        return {(dataset, INITIAL, seed): self.selection(self.build(ADATAPE, dataset, seed).to(self.device).eval(),
                                                         dataset, self.test[dataset])
                for seed in self.seeds(ADATAPE, dataset)}

    def noise_selections(self, models: dict, dataset: str = "cifar10") -> dict:
        """A3's noise control: the trained input-bank AdaTape of every seed and its initialisation scored on images of
        uniform random pixels (as many as the test images; stream ("07-noise", dataset)), which have no content that
        a centre preference could follow."""
        test = self.test[dataset]
        with torch_seed(derive("07-noise", dataset)):
            pixels = torch.randint(0, 256, test.images.shape, dtype=torch.uint8)
        noise = ImageSet(pixels, test.labels, test.classes, test.name)
        selections = {}
        for seed in self.seeds(ADATAPE, dataset):
            untrained = self.build(ADATAPE, dataset, seed).to(self.device).eval()
            for name, model in ((ADATAPE, models[dataset, ADATAPE, seed][0]), (INITIAL, untrained)):
                selections[dataset, f"{name} {NOISE}", seed] = self.selection(model, dataset, noise)
        return selections

    def selection(self, model: AdaTapeViT, dataset: str, images: ImageSet) -> tuple[torch.Tensor, int]:
        """(selection counts over `images`, bank grid side) of an input-bank AdaTape."""
        row = scores(model, images, EVALUATION_BATCH, self.preprocessing(ADATAPE, dataset), self.device,
                     keep_selection=True)
        return row["selected"], model.bank_grid


@contextmanager
def operating_point(model: torch.nn.Module, point):
    """`model` at the test-time operating point `point` (None: as it is), restored afterwards."""
    if point is None:
        yield model
        return
    trained = model.operating_point
    model.operating_point = point
    try:
        yield model
    finally:
        model.operating_point = trained


def accuracy_table(per_seed: pd.DataFrame, dataset: str, models: list[str]) -> pd.DataFrame:
    """Mean ± std over seeds per model of `COLUMNS`, in `models` order, with its parameters."""
    data = per_seed[(per_seed.dataset == dataset) & per_seed["trained point"]]
    # A quantity a model does not report (tape length of a ViT) stays blank rather than "nan".
    table = data.groupby("model").agg({c: lambda s: mean_std_text(s) if s.notna().all() else ""
                                       for c in COLUMNS if c in data and data[c].notna().any()})
    table.insert(0, "parameters", data.groupby("model").parameters.first())
    return table.loc[models]


def trained(per_seed: pd.DataFrame, dataset: str = "cifar10") -> pd.DataFrame:
    """The rows of `dataset` at each model's trained operating point, one per (model, seed)."""
    return per_seed[(per_seed.dataset == dataset) & per_seed["trained point"]]


def frontier(per_seed: pd.DataFrame, dataset: str = "cifar10") -> pd.DataFrame:
    """Mean over seeds of top-1 and cost per (adaptive model, operating point) on `dataset`, the trained point first:
    each family's quality/cost frontier."""
    data = per_seed[(per_seed.dataset == dataset) & per_seed.model.isin(ADAPTIVE)]
    means = data.groupby(["model", "operating point"], sort=False)[
        ["top-1", "MFLOPs / image", "nominal MFLOPs / image", "images / s"]].mean()
    return means.loc[[name for name in ADAPTIVE if name in means.index.get_level_values(0)]]


def cost_falls(front: pd.DataFrame) -> float:
    """1 when every family's executed MFLOPs fall strictly from each operating point to the next (the counted
    saving is executed), else 0."""
    return float(all((costs.diff().dropna() < 0).all() for _, costs in front.groupby(level=0)["MFLOPs / image"]))


def frontier_figure(front: pd.DataFrame, profile: str):
    """Test top-1 against executed MFLOPs per image, one line per adaptive model through its operating points."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in front.groupby(level=0, sort=False):
        ax.plot(points["MFLOPs / image"], points["top-1"], "o-", label=name)
        for (_, point), row in points.iterrows():
            ax.annotate(f"{point:g}", (row["MFLOPs / image"], row["top-1"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set(xlabel=f"executed MFLOPs / image (profile {profile})", ylabel="test top-1 (mean over seeds)",
           title="quality/cost frontier (labels: eps or tape cap)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ratio(frame: pd.DataFrame, value: str, variant: str, baseline: str, arm: str = "model") -> pd.Series:
    """`value` of `variant` over that of `baseline`, per seed (in seed order), paired as `paired.difference` pairs."""
    difference(frame, value, variant, baseline, arm)  # refuses unpaired or repeated seeds
    sides = frame.set_index([arm, "seed"])[value]
    quotient = sides.loc[variant].sort_index() / sides.loc[baseline].sort_index()
    return quotient.rename(f"{value}: {variant} / {baseline}")


def centre_bounds(grid: int) -> tuple[int, int]:
    """[low, high) of the middle half of a grid's rows (and columns)."""
    return grid // 4, grid - grid // 4


def centre_ratio(selection: torch.Tensor, grid: int) -> float:
    """Share of selections in the middle half of the rows and columns, over that region's share of the bank
    (1/4 where the grid divides by 4): 1 for selections spread evenly, above 1 where the centre is preferred."""
    share = (selection / selection.sum()).view(grid, grid)
    low, high = centre_bounds(grid)
    return (share[low:high, low:high].sum() / (((high - low) / grid) ** 2)).item()


def centre_ratios(selections: dict) -> pd.DataFrame:
    """One row per (dataset, model, seed) of `selections`: its centre ratio."""
    return pd.DataFrame([{"dataset": dataset, "model": name, "seed": seed,
                          "centre ratio": centre_ratio(selection, grid)}
                         for (dataset, name, seed), (selection, grid) in selections.items()])


def selection_maps(selections: dict) -> dict[tuple[str, str], torch.Tensor]:
    """{(dataset, model): (grid, grid) share of selections per image region, mean over seeds}."""
    maps = {}
    for (dataset, name, _), (selection, grid) in selections.items():
        maps.setdefault((dataset, name), []).append((selection / selection.sum()).view(grid, grid))
    return {key: torch.stack(shares).mean(dim=0) for key, shares in maps.items()}


def heatmap_figure(maps: dict[tuple[str, str], torch.Tensor]):
    """One `plots.selection_heatmap` panel per (dataset, model), the central quarter of A3's rule dashed."""
    fig, axes = plots.panels(len(maps), width=4.6, height=4.0)
    for ax, ((dataset, name), share) in zip(axes, maps.items()):
        plots.selection_heatmap(share.numpy(), ax, f"{dataset}\n{name}")
        low, high = centre_bounds(share.shape[0])
        ax.add_patch(plt.Rectangle((low, low), high - low, high - low, fill=False, ls="--", color="cyan"))
    fig.tight_layout()
    return fig


def quality_cost_figure(per_seed: pd.DataFrame, models: dict[str, list[str]], profile: str):
    """Test top-1 against images per second and against MFLOPs per image (log scales), one point per model (mean ±
    sd over seeds, `plots.against_compute`), one row of panels per dataset."""
    fig, grid = plt.subplots(len(models), 2, figsize=(13, 4.5 * len(models)), squeeze=False)
    for axes, (dataset, names) in zip(grid, models.items()):
        summary = trained(per_seed, dataset).groupby("model")[["top-1", "images / s", "MFLOPs / image"]] \
            .agg(["mean", "std"]).loc[names]
        summary.columns = [" ".join(column) for column in summary.columns]
        for ax, cost in zip(axes, ("images / s", "MFLOPs / image")):
            plots.against_compute(summary.reset_index(), cost, "top-1", f"{cost} (profile {profile})", "test top-1",
                                  "model", ax=ax)
            ax.set(xscale="log", title=dataset)
            ax.get_legend().remove()
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig
