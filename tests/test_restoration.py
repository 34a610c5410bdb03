"""Image restoration: the packaged photographs and degradations, PSNR/SSIM against scikit-image, and
the window-attention restorer with and without fixed-point attention."""

import copy
import math

import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from repro.data import restoration
from repro.data.restoration import (DEGRADATIONS, PHOTOGRAPHS, TEST_IMAGES, TRAIN_IMAGES, VALIDATION_IMAGES,
                                    RestorationPatches, blur_kernel, center_crop, degrade, gaussian_kernel, held_out_pairs, load_image,
                                    motion_kernel)
from repro.image_quality import psnr, ssim
from repro.models.restorer import Restorer, RestorerConfig, WindowPositionBias, from_windows, to_windows
from repro.models.self_transformer import FixedPointAttentionConfig, swap_self_attention
from repro.nn import count_parameters
from repro.seeding import rng
from repro.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(width=8, heads=2, layers=2, mlp_hidden=16, window=4, patch=2)


@pytest.fixture(scope="module")
def training_images():
    return {name: load_image(name) for name in TRAIN_IMAGES}


# --- data ---------------------------------------------------------------------------------------

def test_every_photograph_loads_as_greyscale_in_the_unit_interval():
    for name in PHOTOGRAPHS:
        image = load_image(name)
        assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 1
        assert min(image.shape[-2:]) >= 256, name
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.02, name


def test_colour_photographs_become_scikit_image_luma():
    from skimage.color import rgb2gray
    import imageio.v3 as iio

    rgb = iio.imread(restoration.photograph_path("astronaut"))
    assert torch.allclose(load_image("astronaut")[0], torch.from_numpy(rgb2gray(rgb)).float(), atol=1e-6)


def test_test_and_validation_images_are_held_out_and_distinct_from_every_training_image(training_images):
    held_out = set(TEST_IMAGES) | set(VALIDATION_IMAGES)
    assert set(TEST_IMAGES).isdisjoint(VALIDATION_IMAGES) and held_out.isdisjoint(TRAIN_IMAGES)
    assert held_out | set(TRAIN_IMAGES) == set(PHOTOGRAPHS)
    for name in held_out:
        test = load_image(name)
        assert not any(image.shape == test.shape and torch.equal(image, test) for image in training_images.values())


def test_unknown_names_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown photograph 'cameraman'.*'camera'"):
        load_image("cameraman")
    with pytest.raises(ValueError, match="unknown restoration task 'denoising'.*'denoise'"):
        degrade(torch.zeros(1, 1, 16, 16), "denoising", "sigma15")
    with pytest.raises(ValueError, match="unknown level of task 'sr' 'x3'.*'x2', 'x4'"):
        degrade(torch.zeros(1, 1, 16, 16), "sr", "x3")
    with pytest.raises(ValueError, match="not a held-out test image"):
        held_out_pairs((VALIDATION_IMAGES[0],))
    with pytest.raises(ValueError, match="not a held-out validation image; valid: 'astronaut', 'coffee'"):
        held_out_pairs(("camera",), split="validation")
    with pytest.raises(ValueError, match="unknown held-out split 'val'; valid choices: 'test', 'validation'"):
        held_out_pairs(("camera",), split="val")


def test_patches_are_flipped_or_rotated_regions_of_the_training_images_only(training_images):
    stream = RestorationPatches(training_images, 32, 16, seed=3)
    clean, _ = stream.clean_at(7)
    located, transforms, _ = stream.locate(7)
    names = list(training_images)
    for patch, (index, top, left), transform in zip(clean, located, transforms.tolist()):
        region = training_images[names[index]][:, top:top + 32, left:left + 32]
        expected = torch.rot90(region, transform % 4, dims=(-2, -1))
        assert torch.equal(patch, expected.flip(-1) if transform >= 4 else expected)


def test_batches_are_a_pure_function_of_seed_and_step(training_images):
    first = RestorationPatches(training_images, 32, 8, seed=1).batch_at(5)
    again = RestorationPatches(training_images, 32, 8, seed=1).batch_at(5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], RestorationPatches(training_images, 32, 8, seed=1).batch_at(6)[1])
    assert not torch.equal(first[1], RestorationPatches(training_images, 32, 8, seed=2).batch_at(5)[1])


def test_batches_degrade_with_the_family_they_are_given(training_images):
    stream = RestorationPatches(training_images, 32, 12, seed=0, degradations=(("sr", "x2"), ("sr", "x4")))
    degraded, clean = stream.batch_at(0)
    _, _, which = stream.locate(0)
    for d, level in enumerate(("x2", "x4")):
        chosen = which == d
        assert torch.equal(degraded[chosen], degrade(clean[chosen], "sr", level))
    with pytest.raises(ValueError, match="divisible by every SR scale"):
        RestorationPatches(training_images, 30, 4, seed=0)


@pytest.mark.parametrize("level", ["sigma15", "sigma25", "sigma50"])
def test_noise_has_the_stated_standard_deviation(level):
    clean = torch.full((4, 1, 128, 128), 0.5)
    noise = degrade(clean, "denoise", level, rng("test-noise", level)) - clean
    assert noise.std().item() == pytest.approx(restoration.NOISE_SIGMAS[level] / 255, rel=0.02)
    assert abs(noise.mean().item()) < 1e-3
    with pytest.raises(ValueError, match="seeded generator"):
        degrade(clean, "denoise", level)


def test_super_resolution_returns_the_input_size_and_keeps_flat_images():
    image = load_image("camera")[None, :, :64, :64]
    for level in ("x2", "x4"):
        degraded = degrade(image, "sr", level)
        assert degraded.shape == image.shape and 0 <= degraded.min() and degraded.max() <= 1
        flat = torch.full((1, 1, 32, 32), 0.3)
        assert torch.allclose(degrade(flat, "sr", level), flat, atol=1e-6)
    # Losing more resolution loses more detail.
    assert psnr(image, degrade(image, "sr", "x4")) < psnr(image, degrade(image, "sr", "x2"))
    with pytest.raises(ValueError, match="divisible by 4"):
        degrade(torch.zeros(1, 1, 30, 32), "sr", "x4")


def test_blur_kernels_sum_to_one_and_have_the_stated_shape():
    gaussian, motion = blur_kernel("gaussian"), blur_kernel("motion")
    assert gaussian.shape == (15, 15) and motion.shape == (13, 13)
    for kernel in (gaussian, motion):
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6) and kernel.min() >= 0
        assert torch.allclose(kernel, kernel.flip(0, 1), atol=1e-6)  # centred: convolution = correlation
    # The Gaussian's second moment along an axis is sigma^2; the motion path lies on the 45-degree anti-diagonal.
    offsets = torch.arange(-7, 8, dtype=torch.float32)
    assert (gaussian.sum(dim=0) * offsets ** 2).sum().item() == pytest.approx(1.6 ** 2, rel=1e-3)
    rows, columns = torch.nonzero(motion > 0.05, as_tuple=True)
    assert torch.all(rows + columns == 12)
    assert torch.allclose(gaussian_kernel(1.0, radius=1), gaussian_kernel(1.0, radius=1).T)
    with pytest.raises(ValueError, match="odd"):
        motion_kernel(12, 0.0)


def test_blur_keeps_flat_images_and_softens_edges():
    flat = torch.full((1, 1, 40, 40), 0.7)
    edge = torch.zeros(1, 1, 40, 40)
    edge[..., 20:] = 1.0
    for level in ("gaussian", "motion"):
        assert torch.allclose(degrade(flat, "deblur", level), flat, atol=1e-6)
        blurred = degrade(edge, "deblur", level)
        assert blurred.shape == edge.shape and 0 < blurred[0, 0, 20, 19] < 0.5 < blurred[0, 0, 20, 20] < 1


def test_test_pairs_are_fixed_and_cropped_to_a_multiple_of_four():
    first, again = held_out_pairs(("chelsea",), crop=50), held_out_pairs(("chelsea",), crop=50)
    assert set(first) == set(DEGRADATIONS)
    for cell, pairs in first.items():
        degraded, clean = pairs["chelsea"]
        assert clean.shape == (1, 1, 48, 48) and degraded.shape == clean.shape
        assert torch.equal(degraded, again[cell]["chelsea"][0])
    whole = held_out_pairs(("chelsea",), degradations=(("sr", "x4"),))[("sr", "x4")]["chelsea"][1]
    assert whole.shape == (1, 1, 300, 448)
    assert torch.equal(center_crop(torch.arange(36.).view(6, 6), 2), torch.tensor([[14., 15.], [20., 21.]]))


def test_validation_pairs_draw_their_noise_from_their_own_stream():
    cell = ("denoise", "sigma25")
    degraded, clean = held_out_pairs(("coffee",), crop=32, degradations=(cell,), split="validation")[cell]["coffee"]
    noise = (degraded - clean) * 255 / 25
    assert clean.shape == (1, 1, 32, 32) and abs(noise.std().item() - 1) < 0.15
    assert torch.equal(degraded, held_out_pairs(("coffee",), crop=32, degradations=(cell,), split="validation")
                       [cell]["coffee"][0])
    test_noise = held_out_pairs(("camera",), crop=32, degradations=(cell,))[cell]["camera"]
    assert not torch.allclose(noise, (test_noise[0] - test_noise[1]) * 255 / 25)


# --- metrics ------------------------------------------------------------------------------------

def test_psnr_of_a_known_mse_and_of_identical_images():
    reference = torch.zeros(2, 1, 8, 8)
    other = reference + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    assert torch.allclose(psnr(reference, other), torch.tensor([20.0, 40.0], dtype=torch.float64))
    assert psnr(reference * 255, other * 255, data_range=255).tolist() == pytest.approx([20.0, 40.0])
    assert math.isinf(psnr(other, other)[0].item())
    assert ssim(torch.rand(1, 1, 16, 16), torch.ones(1, 1, 16, 16) * 0.5).item() < 0.5
    image = load_image("coins")[None]
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-12)


def test_metrics_agree_with_scikit_image_on_real_images():
    clean = torch.stack([load_image(name)[:, :256, :256] for name in ("camera", "ascent")])
    degraded = torch.cat([degrade(clean[:1], "denoise", "sigma25", rng("test-metrics")).clamp(0, 1),
                          degrade(clean[1:], "deblur", "motion")])
    ours_psnr, ours_ssim = psnr(clean, degraded), ssim(clean, degraded)
    for i in range(2):
        x, y = clean[i, 0].double().numpy(), degraded[i, 0].double().numpy()
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-4)
        expected = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1.0)
        assert ours_ssim[i].item() == pytest.approx(expected, abs=1e-4)
    # The SR border crop is a crop before scoring.
    x, y = clean[:, :, 4:-4, 4:-4], degraded[:, :, 4:-4, 4:-4]
    assert torch.allclose(ssim(clean, degraded, border=4), ssim(x, y))
    assert torch.allclose(psnr(clean, degraded, border=4), psnr(x, y))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10))
    with pytest.raises(ValueError, match="border"):
        psnr(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), border=4)


# --- model --------------------------------------------------------------------------------------

def test_windows_round_trip_and_the_position_bias_is_local():
    features = torch.randn(2, 3, 8, 12)
    tokens = to_windows(features, 4)
    assert tokens.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(tokens[0, 5], features[0, :, 1, 1])  # window (0, 0), row 1, column 1
    assert torch.equal(from_windows(tokens, 4, 2, 8, 12), features)
    bias = WindowPositionBias(heads=2, window=4)(16)
    assert bias.shape == (2, 16, 16)
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0) and bias[0, 0, 15] < bias[1, 0, 15] < bias[1, 0, 1]
    with pytest.raises(ValueError, match="16 tokens"):
        WindowPositionBias(heads=2, window=4)(9)


def test_restorer_keeps_the_shape_and_is_the_identity_at_initialisation():
    model = Restorer(RestorerConfig(**SMALL))
    degraded = torch.rand(3, 1, 21, 30)  # not a multiple of the 8-pixel window: padded, then cropped back
    restored, aux = model(degraded)
    assert restored.shape == degraded.shape and torch.equal(restored, degraded)
    assert aux["token_layers"].tolist() == [24 * 32 / 4 * 2] * 3
    assert torch.equal(aux["iterations"], torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least one window"):
        model(torch.rand(1, 1, 6, 30))
    with pytest.raises(ValueError, match="not divisible"):
        RestorerConfig(width=10, heads=4)
    with pytest.raises(ValueError, match="unknown key"):
        RestorerConfig.from_dict({"widht": 8})


def randomised(model: Restorer) -> Restorer:
    """The zero-initialised output convolution would hide every difference in the body."""
    with torch.no_grad():
        model.reconstruct.weight.normal_(0, 0.1, generator=rng("test-reconstruct"))
    return model


def test_fpsa_adds_no_parameter_and_one_undamped_step_is_vanilla_attention():
    vanilla = randomised(Restorer(RestorerConfig(**SMALL)))
    one_step = swap_self_attention(copy.deepcopy(vanilla), FixedPointAttentionConfig(damping=1.0, max_iterations=1))
    assert count_parameters(one_step) == count_parameters(vanilla)
    assert one_step.state_dict().keys() == vanilla.state_dict().keys()
    degraded = torch.rand(2, 1, 16, 24)
    with torch.no_grad():
        expected, _ = vanilla(degraded)
        restored, aux = one_step(degraded)
    assert not torch.equal(expected, degraded)
    assert torch.allclose(restored, expected, atol=1e-6)
    assert torch.equal(aux["iterations"], torch.ones(2, 2))
    assert aux["window_iterations"].shape == (2, 2, 2, 3)


def test_fpsa_restorer_iterates_per_window_and_trains():
    model = swap_self_attention(randomised(Restorer(RestorerConfig(**SMALL))), FixedPointAttentionConfig())
    degraded = torch.rand(2, 1, 16, 16)
    restored, aux = model(degraded)
    assert aux["window_iterations"].shape == (2, 2, 2, 2)
    assert torch.all((aux["window_iterations"] >= 2) & (aux["window_iterations"] <= 8))
    assert torch.allclose(aux["iterations"], aux["window_iterations"].float().mean(dim=(2, 3)))
    assert aux["unconverged"].shape == (2, 2) and torch.all((0 <= aux["unconverged"]) & (aux["unconverged"] <= 1))
    (restored - degraded).abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_denoiser_learns_to_beat_its_noisy_input(training_images):
    model = Restorer(RestorerConfig(**SMALL))
    cell = ("denoise", "sigma50")
    degraded, clean = held_out_pairs(("camera",), crop=64, degradations=(cell,))[cell]["camera"]
    stream = RestorationPatches(training_images, 32, 8, seed=0, degradations=(cell,))
    train(model, lambda m, batch: (m(batch[0])[0] - batch[1]).abs().mean(), stream,
          TrainConfig(steps=60, lr=3e-3, warmup_steps=5, progress=False))
    with torch.no_grad():
        restored, _ = model(degraded)
    assert psnr(clean, restored.clamp(0, 1)) > psnr(clean, degraded.clamp(0, 1)) + 1.0
