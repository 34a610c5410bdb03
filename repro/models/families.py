"""Six kinds of adaptive computation on one backbone, so their compute and accuracy can be compared (notebook 11).

Every family maps its inputs (token ids, or patch vectors) to logits through pre-LN `EncoderBlock`s of one shape and
differs only in how it spends compute, and in the knob that sets its test-time compute:

    family          compute                                                        test-time knob
    "transformer"   `layers` untied blocks                                          none
    "fpsa"          the same blocks, attention a fixed point (SELF)                 tol, max_iterations
    "adatape"       the same blocks; after the first, an adaptive tape (AdaTape)    tape (slots read at most)
    "fixed loop"    one block applied `depth` times, nothing else                   iterations
    "recall loop"   one block with additive recall and a LayerNorm outer norm       iterations
    "act"           one block with per-position ACT halting (Universal Transformer) max_steps, halting_eps

The untied families ("transformer", "fpsa", "adatape") have `layers` blocks; the tied ones one block, applied `depth`
times in training. The two non-adaptive baselines are the transformer and the fixed loop: an adaptive mechanism has to
beat a fixed repeat of the same layer to earn its name.

Positions: a line of tokens gets a relative position bias in every attention (any length runs, so a longer test
split is an extrapolation); a grid (sudoku cells, image patches) gets a structure embedding, one learned vector per
row, column (and box) label, added to the input embedding, and no bias, so AdaTape's tape tokens, which have no
position, can join the sequence. Readout: per-token logits ("token") or one logit vector from the mean of the input
positions' states ("pooled"); tape slots are never read out.
"""

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import StrictConfig, choice
from repro.losses import token_loss
from repro.models.adatape import AdaptiveTapeReader, run_by_tape_length
from repro.models.looped import AdditiveRecall
from repro.models.self_transformer import FixedPointAttentionConfig, swap_self_attention
from repro.models.universal import ponder
from repro.nn import EncoderBlock, GatedMLP, RelativePositionBias, StructureEmbedding

FAMILIES = ("transformer", "fpsa", "adatape", "fixed loop", "recall loop", "act")
UNTIED = ("transformer", "fpsa", "adatape")
READOUTS = ("token", "pooled")
KNOBS = {"transformer": (), "fpsa": ("tol", "max_iterations"), "adatape": ("tape",),
         "fixed loop": ("iterations",), "recall loop": ("iterations",), "act": ("max_steps", "halting_eps")}
"""The test-time compute settings each family's forward takes (all optional: the trained setting by default)."""


@dataclass
class FamilyConfig(StrictConfig):
    family: str
    outputs: int
    vocab: int = 0
    """Token inputs: the number of symbols. 0 for patch inputs."""
    patch_dim: int = 0
    """Patch inputs: features per patch. 0 for token inputs."""
    readout: str = "token"
    width: int = 32
    heads: int = 4
    mlp_hidden: int = 64
    layers: int = 4
    """Blocks of the untied families."""
    depth: int = 8
    """Applications of the block of the tied families in training (the ACT cap)."""
    max_offset: int = 8
    """Line inputs: the learned range of the relative position bias (linear beyond it)."""
    structure: tuple[tuple[int, ...], ...] = ()
    """Grid inputs: one labelling of the positions per grouping (rows, columns, boxes); empty for a line."""
    max_tape: int = 8
    tape_budget: float = 2.0
    penalty_weight: float = 1e-3
    """Weight of ACT's ponder cost and of AdaTape's tape loss."""
    halting_eps: float = 0.01

    RANGES = {"outputs": "[1, inf)", "vocab": "[0, inf)", "patch_dim": "[0, inf)", "width": "[1, inf)",
              "heads": "[1, inf)", "mlp_hidden": "[1, inf)", "layers": "[2, inf)", "depth": "[1, inf)",
              "max_offset": "[1, inf)", "max_tape": "[1, inf)", "tape_budget": "(0, inf)",
              "penalty_weight": "[0, inf)", "halting_eps": "(0, 1)"}

    def __post_init__(self):
        choice("family", self.family, FAMILIES)
        choice("readout", self.readout, READOUTS)
        if (self.vocab > 0) == (self.patch_dim > 0):
            raise ValueError(f"give exactly one of vocab (token inputs) and patch_dim (patch inputs); got vocab "
                             f"{self.vocab}, patch_dim {self.patch_dim}")
        if self.patch_dim and not self.structure:
            raise ValueError("patch inputs need a structure (the row and column of every patch): a bag of patches "
                             "has no positions")
        self.structure = tuple(tuple(int(label) for label in labels) for labels in self.structure)


class AdaptiveFamily(nn.Module):
    """(batch, positions) token ids or (batch, positions, patch_dim) patches -> logits, aux.

    `forward(inputs, **knob)` takes the family's test-time settings (`KNOBS`); aux holds "penalty" (the ACT ponder cost
    or AdaTape's tape loss, already weighted) where the family has one, "steps" (ACT: block applications per position,
    mean per example) and "tape" (AdaTape: tokens read per example)."""

    def __init__(self, config: FamilyConfig):
        super().__init__()
        self.config = c = config
        self.input = nn.Embedding(c.vocab, c.width) if c.vocab else nn.Linear(c.patch_dim, c.width)
        if c.structure:
            self.structure_embedding = StructureEmbedding(c.width, c.structure)
        blocks = c.layers if c.family in UNTIED else 1
        # DEVIATION: [frontier-positions] lines get a relative bias, grids a structure embedding, for every family.
        self.blocks = nn.ModuleList(
            EncoderBlock(c.width, c.heads, c.mlp_hidden,
                         position_bias=None if c.structure else RelativePositionBias(c.heads, c.max_offset, "linear"))
            for _ in range(blocks))
        if c.family == "recall loop":
            self.recall, self.outer_norm = AdditiveRecall(c.width), nn.LayerNorm(c.width)
        if c.family == "act":
            # The UT's timestep embedding, added before every application of the block.
            self.step_embedding = nn.Parameter(torch.randn(c.depth, c.width) * 0.02)
            self.halting = nn.Linear(c.width, 1)
            # DEVIATION: [frontier-act-halting-init] h starts at 1/depth, so ACT starts by using its steps.
            nn.init.constant_(self.halting.bias, -math.log(max(c.depth - 1, 1)))
        if c.family == "adatape":
            self.reader = AdaptiveTapeReader(c.width, c.width // c.heads, c.max_tape, c.tape_budget)
            self.tape_mlp = GatedMLP(c.width, c.width)
        if c.family == "fpsa":
            swap_self_attention(self, FixedPointAttentionConfig())
        self.head = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.outputs))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        e = self.input(inputs if self.config.vocab else inputs.to(self.input.weight.dtype))
        return e + self.structure_embedding(e.shape[1]) if self.config.structure else e

    # The tied families' loop, in the form `repro.losses.progressive_loss` drives.
    def initial_state(self, e: torch.Tensor) -> torch.Tensor:
        return e

    def step(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.config.family == "recall loop":
            return self.outer_norm(self.blocks[0](self.recall(z, e)))
        return self.blocks[0](z)

    def iterate(self, z: torch.Tensor, e: torch.Tensor, start: int, count: int) -> torch.Tensor:
        for _ in range(count):
            z = self.step(z, e)
        return z

    def readout(self, z: torch.Tensor, positions: int | None = None) -> torch.Tensor:
        """Logits from the states of the first `positions` positions (default all: no tape)."""
        z = z if positions is None else z[:, :positions]
        return self.head(z.mean(dim=1) if self.config.readout == "pooled" else z)

    def forward(self, inputs: torch.Tensor, **knob) -> tuple[torch.Tensor, dict]:
        c = self.config
        unknown = sorted(set(knob) - set(KNOBS[c.family]))
        if unknown:
            raise ValueError(f"family {c.family!r} has no test-time setting {unknown}; it has {list(KNOBS[c.family])}")
        e = self.embed(inputs)
        if c.family in ("fixed loop", "recall loop"):
            iterations = knob.get("iterations", c.depth)
            if iterations < 1:
                raise ValueError(f"iterations must be >= 1, got {iterations}")
            return self.readout(self.iterate(self.initial_state(e), e, 0, iterations)), {}
        if c.family == "act":
            return self.ponder(e, knob.get("max_steps", c.depth), knob.get("halting_eps", c.halting_eps))
        if c.family == "adatape":
            return self.with_tape(e, knob.get("tape", c.max_tape))
        if c.family == "fpsa":  # every call, so a forward without a knob runs the trained (default) solver
            swap_self_attention(self, FixedPointAttentionConfig(**knob))
        z = e
        for block in self.blocks:
            z = block(z)
        return self.readout(z), {}

    def ponder(self, e: torch.Tensor, max_steps: int, eps: float) -> tuple[torch.Tensor, dict]:
        if not 1 <= max_steps <= self.config.depth:
            raise ValueError(f"max_steps must lie in 1..{self.config.depth} (the steps with a timestep embedding), "
                             f"got {max_steps}")
        result = ponder(e, lambda step, state, running: self.blocks[0](state + self.step_embedding[step]),
                        lambda state: torch.sigmoid(self.halting(state)).squeeze(-1), max_steps, eps)
        aux = {"penalty": self.config.penalty_weight * result.ponder_cost(), "steps": result.steps.mean(dim=1)}
        return self.readout(result.output), aux

    def with_tape(self, e: torch.Tensor, limit: int) -> tuple[torch.Tensor, dict]:
        """The first block on the inputs; ATR reads up to `limit` tape tokens from the input embeddings (the
        input-driven bank) with the mean state as query; the tape, through its GLU, is appended and the other blocks
        see both. Outside training, examples are grouped by the tokens they read and each group runs only its own
        tape, so the compute counted is the compute spent; in training the tape is padded and masked."""
        x = self.blocks[0](e)
        positions = x.shape[1]
        reading = self.reader(x.mean(dim=1), e, limit)
        aux = {"penalty": self.config.penalty_weight * reading.impurity, "tape": reading.length.float()}
        if self.training:
            mask = torch.cat([torch.ones_like(reading.mask[:, :1]).expand(-1, positions), reading.mask], dim=1)
            return self.readout(self.after_tape(x, reading.tokens, mask), positions), aux
        return run_by_tape_length(reading, lambda rows, length: self.readout(
            self.after_tape(x[rows], reading.tokens[rows, :length], None), positions)), aux

    def after_tape(self, x: torch.Tensor, tape: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = torch.cat([x, self.tape_mlp(tape)], dim=1)
        for block in self.blocks[1:]:
            x = block(x, mask)
        return x


def family_loss(model: AdaptiveFamily, logits: torch.Tensor, aux: dict, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled positions (token readout; `repro.losses.IGNORE` marks the others) or the
    examples (pooled readout), plus the family's compute penalty."""
    if model.config.readout == "token":
        loss = token_loss(logits, targets)
    else:
        loss = F.cross_entropy(logits.float(), targets)
    return loss + aux["penalty"].mean() if "penalty" in aux else loss
