"""A small window-attention transformer for image restoration (denoising, super-resolution,
deblurring), in the shape of SwinIR without shifted windows:

    f_0 = Conv3x3(unshuffle_p(y))                      shallow features, `width` channels; a token
                                                       is a p x p patch of pixels
    t   = Block_L(...Block_1(windows(f_0)))            attention within non-overlapping windows of
                                                       w x w tokens (wp x wp pixels)
    f   = Conv3x3(unwindows(LN(t))) + f_0
    x^  = y + shuffle_p(Conv3x3(f))                    global residual: the network predicts x - y

unshuffle_p stacks each p x p patch into p^2 channels (`nn.PixelUnshuffle`), shuffle_p undoes it.
With p = 1 every pixel is a token, as in SwinIR; p = 2 costs a quarter of that per pixel (what
trains in minutes on a CPU) and widens a window to 16 x 16 pixels at w = 8, more than the support
of the blur kernels.

The blocks are `repro.nn.EncoderBlock`s whose attention is a `repro.nn.SelfAttention` with a 2-D
relative position bias, so `repro.models.self_transformer.swap_self_attention` turns every one into
fixed-point attention (FPSA) with no new parameter; FPSA then iterates each window separately (a
window is one "example" of its stopping rule). The last convolution starts at zero, so an untrained
model returns its input unchanged. `y` is any (batch, channels, H, W) image: it is padded (reflected) to
a multiple of the window (wp pixels) and the result cropped back.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import StrictConfig
from repro.models.self_transformer import fixed_point_aux, fixed_point_layers
from repro.nn import EncoderBlock


@dataclass
class RestorerConfig(StrictConfig):
    # DEVIATION: [restoration-architecture] the paper's restoration network is not known: a SwinIR-like
    # window-attention restorer (no shifted windows), sized for a CPU budget.
    channels: int = 1
    width: int = 32
    heads: int = 2
    layers: int = 2
    mlp_hidden: int = 64
    window: int = 8
    """Side of the square attention windows, in tokens."""
    patch: int = 2
    """Side of the square patch of pixels that one token is."""

    RANGES = {"channels": "[1, inf)", "width": "[1, inf)", "heads": "[1, inf)", "layers": "[1, inf)",
              "mlp_hidden": "[1, inf)", "window": "[2, inf)", "patch": "[1, inf)"}

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")


class WindowPositionBias(nn.Module):
    """A learned score b_h(dy, dx) per head for every offset between two pixels of a w x w window,
    added to the attention logits (Swin's relative position bias; the 2-D form of
    `repro.nn.RelativePositionBias`). It starts as a distance prior -m_h sqrt(dy^2 + dx^2) with
    m_h = 2^-h, so every head begins by attending locally, at its own radius.
    """

    def __init__(self, heads: int, window: int):
        super().__init__()
        self.window = window
        offsets = torch.arange(-(window - 1), window, dtype=torch.float32)
        distance = (offsets[:, None] ** 2 + offsets[None, :] ** 2).sqrt()
        slopes = 2.0 ** -torch.arange(heads, dtype=torch.float32)
        self.table = nn.Parameter(-slopes[:, None, None] * distance)
        rows, columns = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        rows, columns = rows.flatten(), columns.flatten()
        self.register_buffer("dy", rows[None, :] - rows[:, None] + window - 1, persistent=False)
        self.register_buffer("dx", columns[None, :] - columns[:, None] + window - 1, persistent=False)

    def forward(self, tokens: int) -> torch.Tensor:
        """(heads, tokens, tokens) biases for the raster-ordered pixels of one window."""
        if tokens != self.window ** 2:
            raise ValueError(f"a {self.window} x {self.window} window has {self.window ** 2} tokens, got {tokens}")
        return self.table[:, self.dy, self.dx]


def to_windows(features: torch.Tensor, window: int) -> torch.Tensor:
    """(batch, width, H, W) -> (batch * H/w * W/w, w * w, width): one row of tokens per window."""
    batch, width, height, breadth = features.shape
    grid = features.view(batch, width, height // window, window, breadth // window, window)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, width)


def from_windows(tokens: torch.Tensor, window: int, batch: int, height: int, breadth: int) -> torch.Tensor:
    """The inverse of `to_windows`."""
    width = tokens.shape[-1]
    grid = tokens.view(batch, height // window, breadth // window, window, window, width)
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(batch, width, height, breadth)


class Restorer(nn.Module):
    """restored, aux = model(degraded), both (batch, channels, H, W) (module docstring).

    aux: "token_layers" (batch,) token positions times blocks (the vanilla compute), and
    "iterations" (layers, batch): attention evaluations per layer, averaged over the image's windows
    (1 for vanilla attention), with "window_iterations" (layers, batch, H/w, W/w) per window and
    "unconverged" (layers, batch), the fraction of windows that reached FPSA's cap above its tolerance,
    for FPSA models.
    """

    def __init__(self, config: RestorerConfig):
        super().__init__()
        self.config = config
        c, w, p = config.channels, config.width, config.patch
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(p), nn.PixelShuffle(p)
        self.shallow = nn.Conv2d(c * p * p, w, 3, padding=1)
        self.blocks = nn.ModuleList(
            EncoderBlock(w, config.heads, config.mlp_hidden,
                         position_bias=WindowPositionBias(config.heads, config.window))
            for _ in range(config.layers))
        self.norm = nn.LayerNorm(w)
        self.body = nn.Conv2d(w, w, 3, padding=1)
        self.reconstruct = nn.Conv2d(w, c * p * p, 3, padding=1)
        # Zero at the start: the untrained model is the identity, and training learns the correction x - y.
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(self.reconstruct.bias)

    def forward(self, degraded: torch.Tensor) -> tuple[torch.Tensor, dict]:
        config, window = self.config, self.config.window
        if degraded.dim() != 4 or degraded.shape[1] != config.channels:
            raise ValueError(f"expected images (batch, {config.channels}, H, W), got {tuple(degraded.shape)}")
        batch, _, height, breadth = degraded.shape
        pixels = window * config.patch
        if min(height, breadth) < pixels:
            raise ValueError(f"images must be at least one window ({pixels} x {pixels} pixels), "
                             f"got {height} x {breadth}")
        padded = F.pad(degraded, (0, -breadth % pixels, 0, -height % pixels), mode="reflect")
        shallow = self.shallow(self.unshuffle(padded))
        tokens = to_windows(shallow, window)
        for block in self.blocks:
            tokens = block(tokens)
        features = self.body(from_windows(self.norm(tokens), window, batch, *shallow.shape[-2:])) + shallow
        restored = (padded + self.shuffle(self.reconstruct(features)))[..., :height, :breadth]
        return restored, self.compute(batch, padded.shape[-2] // pixels, padded.shape[-1] // pixels)

    def compute(self, batch: int, rows: int, columns: int) -> dict:
        """What the last forward spent, per image (class docstring)."""
        tokens = rows * columns * self.config.window ** 2  # padding included: it is computed
        device = self.shallow.weight.device
        aux = {"token_layers": torch.full((batch,), float(tokens * self.config.layers), device=device)}
        if not fixed_point_layers(self):
            aux["iterations"] = torch.ones(self.config.layers, batch, device=device)
            return aux
        spent = fixed_point_aux(self)
        per_window = spent["iterations"].view(self.config.layers, batch, rows, columns)
        aux["window_iterations"] = per_window
        aux["iterations"] = per_window.float().mean(dim=(2, 3))
        aux["unconverged"] = (~spent["converged"]).float().view(self.config.layers, batch, -1).mean(dim=2)
        return aux
