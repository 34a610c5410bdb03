"""Vision transformers for the image-classification comparison (notebook 07): the ViT baseline,
SELF-ViT, AdaTape-ViT, a weight-tied Universal-Transformer ViT and A-ViT-style token halting.

Every model shares the patch embedding, the pre-LN `repro.nn.EncoderBlock` (attention through
`scaled_dot_product_attention`) and the classifier, and differs only in how it spends compute:

- `ViT`: tokens x_0 = [P_1 E; ...; P_N E] + E_pos from non-overlapping p x p patches P_i, L
  blocks, logits = W LN(mean_i x_L,i) (global average pooling, as AdaTape's release).
- `self_vit`: the same network with fixed-point attention in every block (no new parameters;
  `repro.models.self_transformer`): each attention sublayer runs until its own residual is small.
- `AdaTapeViT`: after the first block, Adaptive Tape Reading appends up to T tape tokens read
  from a bank: input-driven (a second, finer patch embedding of the image) or learnable.
- `UniversalViT`: one block applied up to L times with per-token ACT (Dehghani et al. 2019).
- `HaltingViT`: A-ViT (Yin et al. 2022): L distinct blocks, token k halts once the cumulative
  h_k^l = sigmoid(gamma x_{k,0}^l - beta) reaches 1 - eps, computed from the token's own first
  channel (no halting parameters); a halted token leaves the attention of later blocks.

`aux["token_layers"]` (batch,) counts the (token, block) applications each image received, the
adaptive models' compute; `aux["attention_evaluations"]` the attention evaluations (more than
one per block where fixed-point attention iterates).

The adaptive models compute only what they spend when `gather` is True (the default): UT-ViT runs
its block on the images that still have a running token, A-ViT runs each block on each image's
running tokens alone, AdaTape computes only the tape tokens an image read (`on_examples`,
`on_running_tokens`, `AdaTapeEncoder(crop=True)`). With `gather` False they run the padded batch and
mask (the computation of the releases, and the reference the gathered one is tested against), so
the same model can be charged both its executed and its nominal cost. Each also has one test-time
knob (`operating_point`): the halting threshold eps for UT-ViT and A-ViT, the cap on tape tokens
for AdaTape.
"""

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from repro.config import StrictConfig, choice
from repro.models.adatape import BANKS, AdaTapeEncoder, AdaTapeEncoderConfig, TapeConfig
from repro.models.self_transformer import FixedPointAttentionConfig, FixedPointSelfAttention, swap_self_attention
from repro.models.universal import ponder
from repro.nn import EncoderBlock, masked_mean


@dataclass
class ViTConfig(StrictConfig):
    image_size: int = 32
    patch: int = 4
    channels: int = 3
    classes: int = 10
    width: int = 64
    heads: int = 4
    layers: int = 4
    mlp_hidden: int = 128
    dropout: float = 0.0

    RANGES = {"image_size": "[1, inf)", "patch": "[1, inf)", "channels": "[1, inf)", "classes": "[1, inf)",
              "width": "[1, inf)", "heads": "[1, inf)", "layers": "[1, inf)", "mlp_hidden": "[1, inf)",
              "dropout": "[0, 1)"}

    def __post_init__(self):
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the patch size {self.patch}")


class PatchEmbedding(nn.Module):
    """x_i = P_i E + E_pos,i for the non-overlapping p x p patches P_i of an image, in raster order
    (a convolution with kernel = stride = p is the linear map E applied to every patch)."""

    def __init__(self, image_size: int, patch: int, channels: int, width: int):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch size {patch}")
        self.image_shape = (channels, image_size, image_size)
        self.grid = image_size // patch
        self.project = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.positions = nn.Parameter(torch.randn(1, self.grid ** 2, width) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (batch, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(images.shape)}")
        return self.project(images).flatten(2).transpose(1, 2) + self.positions


class Classifier(nn.Module):
    """logits = W LN(mean of the valid tokens)."""

    def __init__(self, width: int, classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.norm(masked_mean(x, mask)))


def on_examples(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                active: torch.Tensor) -> torch.Tensor:
    """`function` applied to the examples of x (batch, ...) where `active` (batch,) is True alone; the others
    unchanged."""
    rows = active.nonzero().squeeze(1)
    if len(rows) == len(x):
        return function(x)
    out = x.clone()
    out[rows] = function(x[rows])
    return out


def on_running_tokens(block: nn.Module, x: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
    """`block` applied to the running tokens of each example alone (they attend among themselves, the others are
    left out), x (batch, tokens, width), running (batch, tokens); halted tokens unchanged. Examples with the same
    number of running tokens form one dense batch, so nothing is padded: each example costs its own tokens."""
    counts = running.sum(dim=1)
    if bool(running.all()):
        return block(x)
    order = torch.argsort((~running).to(torch.int8), dim=1, stable=True)  # running tokens first, in their order
    out = x.clone()
    for count in counts.unique().tolist():
        if count == 0:
            continue
        rows = (counts == count).nonzero()
        index = order[rows.squeeze(1), :count]
        out[rows, index] = block(x[rows, index])
    return out


def attention_evaluations(blocks: nn.ModuleList, batch: int, device: torch.device) -> torch.Tensor:
    """(batch,): attention evaluations over `blocks` in the last forward, one per vanilla block and
    the iterations of each fixed-point one."""
    total = torch.zeros(batch, device=device)
    for block in blocks:
        attention = block.attention
        total = total + (attention.aux.iterations.to(device) if isinstance(attention, FixedPointSelfAttention) else 1)
    return total


class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        self.embed = PatchEmbedding(c.image_size, c.patch, c.channels, c.width)
        self.blocks = nn.ModuleList(EncoderBlock(c.width, c.heads, c.mlp_hidden, c.dropout) for _ in range(c.layers))
        self.classifier = Classifier(c.width, c.classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        batch = len(images)
        aux = {"token_layers": torch.full((batch,), float(x.shape[1] * len(self.blocks)), device=x.device),
               "attention_evaluations": attention_evaluations(self.blocks, batch, x.device)}
        return self.classifier(x), aux


def self_vit(config: ViTConfig, attention: FixedPointAttentionConfig | None = None) -> ViT:
    """SELF-ViT: a ViT whose every attention sublayer is fixed-point attention, with the same
    parameters (and state-dict keys) as `ViT(config)`."""
    return swap_self_attention(ViT(config), attention or FixedPointAttentionConfig())


@dataclass
class AdaTapeViTConfig(TapeConfig):
    vit: ViTConfig = field(default_factory=ViTConfig)
    bank: str = "input"
    bank_patch: int = 2
    """Patch size of the input-driven bank: finer than the model's own (release: 8 against 16)."""
    bank_size: int = 64
    """Entries of the learnable bank."""
    tape_loss_weight: float = 0.01

    RANGES = TapeConfig.RANGES | {"bank_patch": "[1, inf)", "bank_size": "[1, inf)", "tape_loss_weight": "[0, inf)"}

    def __post_init__(self):
        choice("bank", self.bank, BANKS)
        if self.bank == "input" and self.vit.image_size % self.bank_patch:
            raise ValueError(f"image_size {self.vit.image_size} is not a multiple of bank_patch {self.bank_patch}")


class AdaTapeViT(nn.Module):
    """AdaTape's ViT (release: `adatape_vit.py`): the ATR query is the mean of the first block's
    outputs; the input-driven bank is Dense(PatchEmbedding_{bank_patch}(image)) with its own
    position table ("pre_bank"), the learnable bank a truncated-normal table shared by all images.
    `aux["selected"]` (batch, bank) counts how often each bank entry was merged into a tape
    token: over the input-driven bank it is a map of the image regions read."""

    def __init__(self, config: AdaTapeViTConfig):
        super().__init__()
        self.config = c = config
        v = c.vit
        self.embed = PatchEmbedding(v.image_size, v.patch, v.channels, v.width)
        if c.bank == "input":
            self.bank_embed = PatchEmbedding(v.image_size, c.bank_patch, v.channels, v.width)
            self.pre_bank = nn.Linear(v.width, v.width)
        else:
            self.bank = nn.Parameter(nn.init.trunc_normal_(torch.empty(c.bank_size, v.width), std=0.02, a=-0.04, b=0.04))
        self.encoder = AdaTapeEncoder(AdaTapeEncoderConfig(
            width=v.width, heads=v.heads, layers=v.layers, mlp_hidden=v.mlp_hidden, dropout=v.dropout,
            **c.tape_options()))
        self.classifier = Classifier(v.width, v.classes)
        self.gather = True
        """Compute only the tape tokens read (False: every slot, padded and masked)."""
        self.operating_point = c.max_tape
        """The cap on the tape tokens read (1..max_tape), a test-time setting."""

    @property
    def bank_grid(self) -> int:
        """Side of the square grid of image regions behind the input-driven bank's entries."""
        if self.config.bank != "input":
            raise ValueError("only the input-driven bank has a grid of image regions; this model's bank is learnable")
        return self.bank_embed.grid


    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = self.embed(images)
        bank = self.pre_bank(self.bank_embed(images)) if self.config.bank == "input" else self.bank
        states, mask, reading = self.encoder(x, bank, self.operating_point, crop=self.gather)
        aux = {"tape_length": reading.length, "penalty": self.config.tape_loss_weight * reading.impurity,
               "selected": reading.selected, "token_layers": self.encoder.token_layers(x.shape[1], reading),
               "attention_evaluations": torch.full((len(images),), float(len(self.encoder.blocks)),
                                                   device=x.device)}
        # DEVIATION: [adatape-masked-mean] the classifier averages the valid tokens, not padded tape slots too.
        return self.classifier(states, mask), aux


@dataclass
class UniversalViTConfig(StrictConfig):
    vit: ViTConfig = field(default_factory=ViTConfig)
    """`layers` is the cap on the applications of the one shared block."""
    halting_eps: float = 0.01
    ponder_weight: float = 0.01

    RANGES = {"halting_eps": "(0, 1)", "ponder_weight": "[0, inf)"}


class UniversalViT(nn.Module):
    """A weight-tied ViT: one block applied up to `layers` times with per-token ACT, the UT's
    timestep embedding added before every application (`repro.models.universal`)."""

    def __init__(self, config: UniversalViTConfig):
        super().__init__()
        self.config = c = config
        v = c.vit
        self.embed = PatchEmbedding(v.image_size, v.patch, v.channels, v.width)
        self.step_embedding = nn.Parameter(torch.randn(v.layers, v.width) * 0.02)
        self.block = EncoderBlock(v.width, v.heads, v.mlp_hidden, v.dropout)
        self.halting = nn.Linear(v.width, 1)
        self.classifier = Classifier(v.width, v.classes)
        self.gather = True
        """Run the block on the images with a running token alone (False: on the whole batch, masked)."""
        self.operating_point = c.halting_eps
        """The halting threshold eps (a token halts once its halting mass reaches 1 - eps), a test-time setting."""

    def update(self, step: int, x: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
        # DEVIATION: [vision-executed-cost] the block runs on the images with a running token, not the whole batch.
        # Halted tokens keep their state, still visible as keys (the UT's rule), so an image runs the whole block
        # while any of its tokens runs; ponder keeps the halted tokens' states.
        function = lambda tokens: self.block(tokens + self.step_embedding[step])  # noqa: E731
        return on_examples(function, x, running.any(dim=1)) if self.gather else function(x)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        result = ponder(self.embed(images), self.update, lambda x: torch.sigmoid(self.halting(x)).squeeze(-1),
                        self.config.vit.layers, self.operating_point)
        aux = {"penalty": self.config.ponder_weight * result.ponder_cost(), "ponder_steps": result.steps.mean(dim=1),
               "token_layers": result.steps.sum(dim=1), "attention_evaluations": result.steps.amax(dim=1)}
        return self.classifier(result.output), aux


@dataclass
class HaltingViTConfig(StrictConfig):
    vit: ViTConfig = field(default_factory=ViTConfig)
    # DEVIATION: [avit-gate] A-ViT's gate (gamma 10, beta 30) suits a pretrained DeiT's large activations; a
    # network trained from scratch starts with first channels near 0, so beta is 10 (halting once x_0 passes 1).
    gate_scale: float = 10.0
    gate_center: float = 10.0
    halting_eps: float = 0.01
    ponder_weight: float = 5e-4
    """A-ViT's alpha_p."""

    RANGES = {"gate_scale": "(0, inf)", "halting_eps": "(0, 1)", "ponder_weight": "[0, inf)"}


class HaltingViT(nn.Module):
    """A-ViT-style token halting (module docstring). Each token's output is its ACT-weighted state
    over the blocks it ran, averaged over tokens by the classifier; the ponder cost N + R is the
    loss term (weight alpha_p)."""

    def __init__(self, config: HaltingViTConfig):
        super().__init__()
        self.config = c = config
        v = c.vit
        self.embed = PatchEmbedding(v.image_size, v.patch, v.channels, v.width)
        self.blocks = nn.ModuleList(EncoderBlock(v.width, v.heads, v.mlp_hidden, v.dropout) for _ in range(v.layers))
        self.classifier = Classifier(v.width, v.classes)
        self.gather = True
        """Run each block on the running tokens alone (False: on every token, halted ones masked out of the keys)."""
        self.operating_point = c.halting_eps
        """The halting threshold eps (a token halts once its halting mass reaches 1 - eps), a test-time setting."""

    def update(self, step: int, x: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
        # Halted tokens leave the keys. Masked: an image whose tokens all halted keeps its keys (its state is
        # frozen anyway), so no attention row is empty.
        if self.gather:
            return on_running_tokens(self.blocks[step], x, running)
        return self.blocks[step](x, running | ~running.any(dim=1, keepdim=True))

    def halting(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.config.gate_scale * x[..., 0] - self.config.gate_center)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        # DEVIATION: [avit-ponder-only] no distributional prior on the halting depth, only the ponder cost.
        result = ponder(self.embed(images), self.update, self.halting, self.config.vit.layers, self.operating_point)
        aux = {"penalty": self.config.ponder_weight * result.ponder_cost(), "ponder_steps": result.steps.mean(dim=1),
               "token_layers": result.steps.sum(dim=1), "attention_evaluations": result.steps.amax(dim=1)}
        return self.classifier(result.output), aux
