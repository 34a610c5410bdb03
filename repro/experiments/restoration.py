"""Image restoration with vanilla and fixed-point attention (notebook 08): a restorer per task family, paired per seed.

S4 asks whether the SELF-Transformer restores images better. The answer is only as good as the pairing, so for a
(family, seed) both variants of the window-attention restorer (`repro.models.restorer`) start from the same weights
(`build`: the stream "restoration-model", family, seed; FPSA is swapped in without new parameters) and see the same
batches (`fit`: `RestorationPatches` of the stream "restoration-batches", family, seed). Then:

- `score` restores every held-out test image of every level of the family once and records PSNR and SSIM
  (`quality`: clipped to [0, 1], the SR border cropped) and what FPSA spent per layer and window;
- `quality_table` reads the per-seed means over images and the paired FPSA − vanilla difference per cell
  (`repro.experiments.paired.difference`), `family_gains` the claim's per-seed gain of each family;
- `classical` restores the same degraded images with classical methods, the gate a restorer must pass before its
  attention can be compared; where it fails, `beats_classical_budget` projects the steps that would pass it from the
  runs' learning curves on the validation photographs (`validation_psnr`, scored during training).

Frames are tidy: one row per (task, level, seed, variant, image).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from skimage.restoration import (denoise_nl_means, denoise_tv_chambolle, denoise_wavelet, richardson_lucy,
                                 unsupervised_wiener)

from repro.claims import gate_of
from repro.data.restoration import (GAUSSIAN_BLUR_SIGMA, HELD_OUT, MOTION_BLUR_ANGLE, MOTION_BLUR_LENGTH,
                                    NOISE_SIGMAS, PHOTOGRAPHS, SR_SCALES, TASKS, TRAIN_IMAGES, RestorationPatches,
                                    blur_kernel, load_image)
from repro.experiments.paired import difference
from repro.image_quality import psnr, ssim
from repro.models.restorer import Restorer, RestorerConfig
from repro.models.self_transformer import FixedPointAttentionConfig, swap_self_attention
from repro.projection import Projection, project_mean
from repro.results import mean_std_text
from repro.seeding import derive, torch_seed
from repro.study import Settings
from repro.train import TrainConfig, TrainResult, train

FAMILIES = tuple(TASKS)
FAMILY_NAMES = {"denoise": "denoising", "sr": "super-resolution", "deblur": "deblurring"}
VARIANTS = ("vanilla", "FPSA")
CELLS = [(task, level) for task in FAMILIES for level in TASKS[task]]
"""Every (task, level), in table order."""
DELTA = "FPSA − vanilla"
LEVEL_NAMES = {**{level: f"σ = {sigma:g}" for level, sigma in NOISE_SIGMAS.items()},
               **{level: f"×{scale} bicubic" for level, scale in SR_SCALES.items()},
               "gaussian": f"Gaussian σ = {GAUSSIAN_BLUR_SIGMA}, {blur_kernel('gaussian').shape[0]}²",
               "motion": f"motion {MOTION_BLUR_LENGTH} px at {MOTION_BLUR_ANGLE:g}°, "
                         f"{blur_kernel('motion').shape[0]}²"}


@dataclass(frozen=True)
class RestorationSettings(Settings):
    """The restoration study's settings: one training recipe for every run, the restorer's sizes and FPSA's
    options (both as keyword dicts of their configs), and the held-out images scored."""
    steps: int
    batch: int
    patch: int  # side of a training patch, in pixels
    lr: float
    test_images: tuple[str, ...]
    test_crop: int | None  # score a central crop of this side (test and validation photographs); None: whole images
    model: dict  # `RestorerConfig` keywords
    fpsa: dict  # `FixedPointAttentionConfig` keywords; empty: its defaults

    def fpsa_config(self) -> FixedPointAttentionConfig:
        return FixedPointAttentionConfig(**self.fpsa)


def training_images() -> dict[str, torch.Tensor]:
    """The photographs training patches are cut from; none of them is a held-out test or validation photograph."""
    images = {name: load_image(name) for name in TRAIN_IMAGES}
    held_out = [load_image(name) for names in HELD_OUT.values() for name in names]
    if any(image.shape == test.shape and torch.equal(image, test) for image in images.values() for test in held_out):
        raise ValueError("a held-out photograph is also a training photograph")
    return images


def photographs_table() -> pd.DataFrame:
    """One row per photograph: where it ships, what it shows, its size and its role."""
    return pd.DataFrame([{
        "image": name, "package": PHOTOGRAPHS[name].package, "file": PHOTOGRAPHS[name].file,
        "what": PHOTOGRAPHS[name].what, "H × W": " × ".join(map(str, load_image(name).shape[-2:])),
        "role": next((f"{split} (held out whole)" for split, names in HELD_OUT.items() if name in names),
                     "training patches")}
        for name in PHOTOGRAPHS]).set_index("image")


def border(task: str, level: str) -> int:
    """Pixels cropped from each side before scoring: the scale for super-resolution, as is customary."""
    return SR_SCALES[level] if task == "sr" else 0


def quality(clean: torch.Tensor, image: torch.Tensor, task: str, level: str) -> dict:
    """PSNR (dB) and SSIM of `image` clipped to [0, 1] against `clean`, the cell's border cropped."""
    image = image.clamp(0, 1)
    return {"psnr": psnr(clean, image, border=border(task, level)).item(),
            "ssim": ssim(clean, image, border=border(task, level)).item()}


def with_degradation(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (indexed by task, level) with the degradation's name as its first column."""
    table.insert(0, "degradation", [LEVEL_NAMES[level] for _, level in table.index])
    return table


def input_quality(tests: dict) -> pd.DataFrame:
    """One row per (task, level, image): the quality of the degraded input itself."""
    return pd.DataFrame([{"task": task, "level": level, "image": name, **quality(clean, degraded, task, level)}
                         for (task, level), pairs in tests.items() for name, (degraded, clean) in pairs.items()])


def degradations_table(inputs: pd.DataFrame) -> pd.DataFrame:
    """Mean input PSNR and SSIM over the test images per (task, level)."""
    table = inputs.groupby(["task", "level"], sort=False)[["psnr", "ssim"]].mean().round(3)
    table = with_degradation(table)
    table.columns = ["degradation", "input PSNR (dB)", "input SSIM"]
    return table


def build(settings: RestorationSettings, family: str, seed: int, variant: str) -> Restorer:
    """The same initial weights for both variants of a (family, seed) pair; FPSA swaps the attention in place."""
    with torch_seed(derive("restoration-model", family, seed)):
        model = Restorer(RestorerConfig(**settings.model))
    return swap_self_attention(model, settings.fpsa_config()) if variant == "FPSA" else model


def l1_loss(model: Restorer, batch) -> torch.Tensor:
    degraded, clean = batch
    return (model(degraded)[0] - clean).abs().mean()


def validation_psnr(validation: dict, family: str, device: torch.device = torch.device("cpu")):
    """The learning curves' metric of a `family` run: {"validation PSNR <level>": mean over the validation photographs}
    for each level of the family (scored as `quality`, without its SSIM), `validation` as
    `repro.data.restoration.held_out_pairs` gives it."""
    def evaluate(model: Restorer) -> dict:
        return {f"validation PSNR {level}":
                sum(psnr(clean, model(degraded.to(device))[0].float().cpu().clamp(0, 1), border=border(family, level))
                    .item() for degraded, clean in validation[family, level].values()) / len(validation[family, level])
                for level in TASKS[family]}
    return evaluate


def fit(settings: RestorationSettings, family: str, seed: int, variant: str, images: dict[str, torch.Tensor],
        validation: dict, device: torch.device = torch.device("cpu"),
        checkpoint: Path | None = None) -> tuple[Restorer, TrainResult]:
    """One run: L1 loss, AdamW, warm-up over 10% of the steps, on patches of `images` degraded by a level drawn
    uniformly from the family's; the training loss and `validation_psnr` recorded at every tenth of the run (ten
    points, so that a failed gate's budget can be projected from the later half)."""
    S = settings
    model = build(S, family, seed, variant)
    config = TrainConfig(steps=S.steps, lr=S.lr, warmup_steps=max(1, S.steps // 10),
                         eval_every=max(1, S.steps // 10), checkpoint_every=max(1, S.steps // 5), seed=seed)
    batches = RestorationPatches(images, S.patch, S.batch, derive("restoration-batches", family, seed),
                                 tuple((family, level) for level in TASKS[family]))
    result = train(model, l1_loss, batches, config, evaluate=validation_psnr(validation, family, device),
                   checkpoint=checkpoint, device=device, description=f"{family} {variant} seed {seed}")
    return model, result


def train_all(settings: RestorationSettings, images: dict[str, torch.Tensor], validation: dict,
              device: torch.device = torch.device("cpu"),
              checkpoint: Callable[..., Path | None] = lambda *key: None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Every (family, seed, variant), in that nesting (the variants of a pair one after the other): the trained
    models, the learning curves (one row per evaluation) and the training seconds (one row per run).
    `checkpoint(family, variant, seed)` names a run's checkpoint."""
    models, curves, walls = {}, [], []
    for family in FAMILIES:
        for seed in settings.seeds:
            for variant in VARIANTS:
                model, result = fit(settings, family, seed, variant, images, validation, device,
                                    checkpoint(family, variant, seed))
                models[family, seed, variant] = model
                curves += [{"family": family, "variant": variant, "seed": seed, **row} for row in result.history]
                walls.append({"family": family, "variant": variant, "seed": seed, "train seconds": result.wall_seconds})
    return models, pd.DataFrame(curves), pd.DataFrame(walls)


def score(models: dict, tests: dict, example: str, first_seed: int,
          device: torch.device = torch.device("cpu")) -> tuple[pd.DataFrame, dict]:
    """One row per (task, level, seed, variant, image): PSNR, SSIM and the attention evaluations per layer and window
    (mean over windows and layers; for FPSA also the share of windows stopped at the cap and each layer's mean), and
    the restorations of the `example` image by the models of `first_seed`, {(task, level, variant): (H, W)}, with
    FPSA's evaluations per window under (task, level, "evaluations")."""
    rows, examples = [], {}
    with torch.no_grad():
        for (family, seed, variant), model in models.items():
            model.eval()
            for level in TASKS[family]:
                for name, (degraded, clean) in tests[family, level].items():
                    restored, aux = model(degraded.to(device))
                    restored = restored.float().cpu()
                    row = {"task": family, "level": level, "seed": seed, "variant": variant, "image": name,
                           **quality(clean, restored, family, level), "evaluations": aux["iterations"].mean().item()}
                    if variant == "FPSA":
                        row |= {"unconverged windows": aux["unconverged"].mean().item(),
                                **{f"layer {i + 1}": v.item() for i, v in enumerate(aux["iterations"][:, 0])}}
                    rows.append(row)
                    if name == example and seed == first_seed:
                        examples[family, level, variant] = restored[0, 0]
                        if variant == "FPSA":
                            examples[family, level, "evaluations"] = \
                                aux["window_iterations"][:, 0].float().mean(dim=0).cpu()
    return pd.DataFrame(rows), examples


def quality_table(scores: pd.DataFrame, inputs: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean ± std over seeds per cell of each variant, of the paired FPSA − vanilla difference and the degraded
    input's mean; the per-seed means over images with their difference, indexed by task, level and seed)."""
    per_seed = scores.pivot_table(index=["task", "level", "seed"], columns="variant", values=metric,
                                  aggfunc="mean")[list(VARIANTS)]
    cells = scores.groupby(["task", "level", "seed", "variant"])[metric].mean().reset_index()
    per_seed[DELTA] = pd.concat({cell: difference(rows, metric, "FPSA", "vanilla") for cell, rows in
                                 cells.groupby(["task", "level"])}, names=["task", "level"])
    table = per_seed.groupby(level=["task", "level"]).agg(mean_std_text).loc[CELLS]
    table.insert(0, "degraded input", inputs.groupby(["task", "level"])[metric].mean().loc[CELLS].map("{:.3f}".format))
    return with_degradation(table), per_seed


def family_gains(per_seed: pd.DataFrame) -> dict[str, pd.Series]:
    """Per family, its per-seed gain: the FPSA − vanilla difference averaged over the family's levels."""
    gain = per_seed[DELTA].groupby(level=["task", "seed"]).mean()
    return {family: gain.loc[family] for family in FAMILIES}


def classical(degraded: torch.Tensor, task: str, level: str) -> dict[str, torch.Tensor]:
    """{method: restored (1, 1, H, W)} of one degraded image by classical methods, settings fixed before any PSNR
    was read, the known degradation giving the noise level and the kernel: non-local means (h = 0.8 sigma, 5x5
    patches, distance 6), total variation (Chambolle) and wavelet shrinkage for noise; the bicubic upsampling (the SR
    input itself); Richardson-Lucy and unsupervised Wiener on the reflect-padded input for blur."""
    y = degraded[0, 0].double().numpy()
    if task == "denoise":
        sigma = NOISE_SIGMAS[level] / 255
        out = {"non-local means": denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma),
               "total variation": denoise_tv_chambolle(y), "wavelet": denoise_wavelet(y, sigma=sigma)}
    elif task == "sr":
        out = {"bicubic": y}  # the SR input is the bicubic upsampling (bicubic_round_trip)
    else:
        kernel = blur_kernel(level).double().numpy()
        radius = kernel.shape[0] // 2
        padded = np.pad(y, radius, mode="reflect")
        out = {"Richardson-Lucy": richardson_lucy(padded, kernel),
               "unsupervised Wiener": unsupervised_wiener(padded, kernel, rng=0)[0]}
        out = {method: image[radius:-radius, radius:-radius] for method, image in out.items()}
    return {method: torch.from_numpy(np.ascontiguousarray(image)).float()[None, None] for method, image in out.items()}


def classical_psnr(tests: dict) -> pd.DataFrame:
    """Mean PSNR over the images of `tests` (test or validation pairs) of every classical method (columns, in the
    order they are first met) per cell (rows, in `CELLS` order; NaN where a method does not apply)."""
    scores = pd.DataFrame([{"task": task, "level": level, "image": name, "method": method,
                            **quality(clean, restored, task, level)}
                           for (task, level), pairs in tests.items() for name, (degraded, clean) in pairs.items()
                           for method, restored in classical(degraded, task, level).items()])
    table = scores.pivot_table(index=["task", "level"], columns="method", values="psnr", aggfunc="mean")
    return table.loc[[cell for cell in CELLS if cell in table.index], list(scores.method.unique())]


def validation_curves(curves: pd.DataFrame, best_classical: pd.Series) -> pd.DataFrame:
    """`train_all`'s validation curves in long form, one row per (run, evaluated step, level of its family): the
    validation PSNR and its margin over the best classical method's on the same images (`best_classical`, by task and
    level), the gate's reading per cell."""
    return pd.DataFrame([{"family": FAMILY_NAMES[row["family"]], "degradation": LEVEL_NAMES[level],
                          "variant": row["variant"], "seed": row["seed"], "step": row["step"],
                          "validation PSNR": row[f"validation PSNR {level}"],
                          "above classical": row[f"validation PSNR {level}"] - best_classical[row["family"], level]}
                         for row in curves.to_dict("records") for level in TASKS[row["family"]]])


VANILLA_BEATS_CLASSICAL = gate_of("S4", "vanilla_beats_classical")


def validation_margins(curves: pd.DataFrame, best_classical: pd.Series) -> pd.Series:
    """The gate `vanilla_beats_classical`'s quantity at every evaluation, on the validation photographs: per (seed,
    step), the vanilla restorer's validation PSNR minus the best classical method's (`best_classical`, by task and
    level, on the same validation images), lowest over the cells."""
    vanilla = curves[curves.variant == "vanilla"]
    margins = pd.DataFrame({(task, level): vanilla[vanilla.family == task].set_index(["seed", "step"])
                            [f"validation PSNR {level}"] - best_classical[task, level] for task, level in CELLS})
    return margins.min(axis=1)


def beats_classical_budget(curves: pd.DataFrame, best_classical: pd.Series, walls: pd.DataFrame,
                           steps: int) -> Projection:
    """What would let the gate `vanilla_beats_classical` decide where it fails: the steps at which
    `validation_margins`, as the mean over seeds (the gate's reading of the test photographs, which the validation
    photographs estimate), reaches the gate's threshold (`repro.projection`), at the vanilla runs' measured training
    seconds per step."""
    margin = validation_margins(curves, best_classical)
    return project_mean("vanilla minus the best classical method's validation PSNR, lowest cell",
                        {seed: (run.index.get_level_values("step").tolist(), run.tolist())
                         for seed, run in margin.groupby(level="seed")},
                        VANILLA_BEATS_CLASSICAL.threshold, at_least=VANILLA_BEATS_CLASSICAL.op == ">=",
                        seconds_per_step=walls[walls.variant == "vanilla"]["train seconds"].mean() / steps)


def classical_table(psnr_by_method: pd.DataFrame, vanilla: pd.Series) -> pd.DataFrame:
    """`classical_psnr` as text, the best classical method per cell and the vanilla restorer beside it."""
    table = psnr_by_method.map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table["best classical"] = psnr_by_method.max(axis=1).map("{:.3f}".format)
    table["vanilla"] = vanilla
    return with_degradation(table)


def compute_tables(scores: pd.DataFrame, walls: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(FPSA's evaluations per cell, mean ± std over seeds; the per-seed means behind it, by task, level and seed;
    the training seconds per (family, seed) of each variant and their ratio)."""
    fpsa = scores[scores.variant == "FPSA"]
    layers = [column for column in scores.columns if column.startswith("layer ")]
    per_seed = fpsa.groupby(["task", "level", "seed"])[["evaluations", "unconverged windows", *layers]].mean()
    table = with_degradation(per_seed.groupby(level=["task", "level"]).agg(mean_std_text).loc[CELLS])
    seconds = walls.pivot_table(index=["family", "seed"], columns="variant",
                                values="train seconds").loc[list(FAMILIES), list(VARIANTS)]
    seconds["FPSA / vanilla"] = seconds["FPSA"] / seconds["vanilla"]
    return table, per_seed, seconds


def examples_figure(tests: dict, examples: dict, example: str, cap: int, crop: int = 96):
    """One row per cell: a central crop of the example image clean, degraded, restored by each variant (with each
    crop's PSNR), and FPSA's evaluations per window over the whole image."""
    _, clean_example = tests[CELLS[0]][example]
    crop = min(crop, *clean_example.shape[-2:])
    top, left = (clean_example.shape[-2] - crop) // 2, (clean_example.shape[-1] - crop) // 2
    window = slice(top, top + crop), slice(left, left + crop)
    fig, axes = plt.subplots(len(CELLS), 5, figsize=(12.5, 2.6 * len(CELLS)))
    for row, (task, level) in zip(axes, CELLS):
        degraded, clean = tests[task, level][example]
        images = {"clean": clean[0, 0], "degraded": degraded[0, 0].clamp(0, 1),
                  **{variant: examples[task, level, variant].clamp(0, 1) for variant in VARIANTS}}
        for ax, (label, image) in zip(row, images.items()):
            ax.imshow(image[window].numpy(), cmap="gray", vmin=0, vmax=1)
            shown = "" if label == "clean" else \
                f" {psnr(clean[..., window[0], window[1]], image[window][None, None]).item():.2f} dB"
            ax.set_title(f"{label}{shown}", fontsize=9)
            ax.axis("off")
        heat = row[-1].imshow(examples[task, level, "evaluations"].numpy(), cmap="magma", vmin=1, vmax=cap)
        row[-1].set_title("FPSA evaluations", fontsize=9)
        row[-1].axis("off")
        row[0].text(-0.08, 0.5, f"{FAMILY_NAMES[task]}\n{LEVEL_NAMES[level]}", transform=row[0].transAxes, ha="right",
                    va="center", fontsize=9)
    fig.colorbar(heat, ax=list(axes[:, -1]), shrink=0.3, pad=0.02, label="evaluations per window (mean over layers)")
    return fig
