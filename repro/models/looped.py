"""Looped transformer: one weight-tied pre-LN layer iterated towards a fixed point.

With input embedding e = Emb(x) and state z_t (tokens x width), one iteration is

    recall "none":     z_{t+1} = N_out(B(z_t))
    recall "standard": z_{t+1} = N_out(B(R(z_t, e)))                  (injection at the block input)
    recall "internal": h = z_t + Attn(LN(z_t)); h' = R(h, e);
                       z_{t+1} = N_out(h' + MLP(LN(h')))              (injection between attention and MLP)
    recall "internal-branch": r = LN(W [z_t; e]); h = N_1(z_t + Attn(r));
                       r' = LN(W [h; e]); z_{t+1} = N_out(h + MLP(r'))  (injection into each branch)

where B is the pre-LN block h = z + Attn(LN(z)); B(z) = h + MLP(LN(h)), N_out is the outer
normalisation (identity, LayerNorm or RMSNorm) and R is a *linear* recall, as the paper's theory
assumes: additive R(h, e) = h + W e, or concatenation R(h, e) = W [h; e]. Both start as h + e.
"internal-branch" is a third-party reading of the paper's internal recall (one concatenation map W,
no bias, shared by both branches; the residual stream carries the state alone; N_1 is a second outer
norm of the same kind as N_out): it needs `recall_form = "concat"`.
A shared readout (LayerNorm + linear) maps z_t to per-token logits at any iteration, so accuracy
can be read at any iteration count.

Positions of a sequence enter through a learned relative position bias in attention, a table up to
`max_offset` that keeps falling linearly beyond it (`far_offsets`): the layer sees offsets, never absolute positions, so the same weights apply to
sequences longer than any seen in training (an absolute learned embedding has no entry for
position 33 of a model trained on 32, and rotary angles at unseen distances are out of
distribution). A bias also makes "attend to the previous token" one learned scalar, the step a
running computation such as a prefix sum needs.

Inputs of a fixed shape whose positions have a structure other than a line (the 81 cells of a
sudoku, each in a row, a column and a box) use a `StructureEmbedding` instead: `structure`
gives every position one label per grouping, and e = Emb(x) + sum_k S_k(label_k), so recall
re-injects where each token sits with what it is. With `structure_bias` the attention logits also
get a `SharedLabelBias` (a learned score per head for each grouping a query and key share), the
grid's counterpart of the relative bias; `max_offset = 0` turns the relative bias off.

`untied=True` gives the non-looped reference with the same compute: a separate block per
iteration, everything else identical.

`CONFIGURATIONS` names the six variants every looped notebook compares: recall {none, standard,
internal} x outer normalisation {off, LayerNorm}.
"""

from dataclasses import dataclass

import torch
from torch import nn

from repro.config import StrictConfig, choice
from repro.fixed_point import relative_residual
from repro.nn import FAR_OFFSETS, EncoderBlock, RelativePositionBias, SharedLabelBias, StructureEmbedding

RECALLS = ("none", "standard", "internal", "internal-branch")
RECALL_FORMS = ("add", "concat")
OUTER_NORMS = ("none", "layernorm", "rmsnorm")
INITIAL_STATES = ("input", "zeros")


def configuration_name(recall: str, outer_norm: str) -> str:
    """E.g. 'recall internal, outer norm on': the name tables, figures and verdicts use."""
    return f"recall {recall}, outer norm {'on' if outer_norm != 'none' else 'off'}"


CONFIGURATIONS = {configuration_name(recall, norm): dict(recall=recall, outer_norm=norm)
                  for recall in ("none", "standard", "internal") for norm in ("none", "layernorm")}
"""The six looped configurations of the study, name -> `LoopedConfig` options."""


@dataclass
class LoopedConfig(StrictConfig):
    vocab: int
    outputs: int
    """Classes per token."""
    iterations: int
    """Iterations in training (and the default at test time)."""
    width: int = 64
    heads: int = 4
    mlp_hidden: int = 256
    max_offset: int = 8
    """Relative offsets up to this have a learned position bias; 0: no relative position bias."""
    far_offsets: str = "linear"
    """Beyond `max_offset` the bias keeps falling at each head's ALiBi slope ("linear") or every offset shares
    the edge score ("clipped"; swamps the near tokens at long lengths, issue 24)."""
    structure: tuple[tuple[int, ...], ...] = ()
    """One entry per grouping of the positions of a fixed-length input, each giving every position
    its label 0, 1, ... (sudoku: the row, column and box of each cell); each label has a learned
    embedding added to the input embedding. Empty: no structure, any length runs."""
    structure_bias: bool = False
    """Attention gets a `SharedLabelBias` over `structure` (needs `max_offset = 0`)."""
    recall: str = "standard"
    recall_form: str = "add"
    outer_norm: str = "layernorm"
    initial_state: str = "input"
    """z_0 = e ("input") or z_0 = 0 ("zeros")."""
    untied: bool = False

    RANGES = {"vocab": "[1, inf)", "outputs": "[1, inf)", "iterations": "[1, inf)", "width": "[1, inf)",
              "heads": "[1, inf)", "mlp_hidden": "[1, inf)", "max_offset": "[0, inf)"}

    def __post_init__(self):
        choice("recall", self.recall, RECALLS)
        choice("recall_form", self.recall_form, RECALL_FORMS)
        choice("far_offsets", self.far_offsets, FAR_OFFSETS)
        if self.recall == "internal-branch" and self.recall_form != "concat":
            raise ValueError("recall 'internal-branch' is one map W [z; e] on the concatenation: it needs "
                             f"recall_form 'concat', got {self.recall_form!r}")
        choice("outer_norm", self.outer_norm, OUTER_NORMS)
        choice("initial_state", self.initial_state, INITIAL_STATES)
        self.structure = tuple(tuple(int(label) for label in labels) for labels in self.structure)
        if len({len(labels) for labels in self.structure}) > 1:
            raise ValueError(f"every structure grouping labels the same positions; got lengths "
                             f"{[len(labels) for labels in self.structure]}")
        if any(label < 0 for labels in self.structure for label in labels):
            raise ValueError("structure labels must be >= 0")
        if self.structure_bias and (not self.structure or self.max_offset):
            raise ValueError("structure_bias needs a structure and max_offset = 0 (one position bias per attention); "
                             f"got {len(self.structure)} groupings and max_offset {self.max_offset}")
        if self.recall == "none" and self.initial_state == "zeros":
            raise ValueError("recall 'none' with initial_state 'zeros' never sees the input; "
                             "use initial_state 'input' or a recall")


class AdditiveRecall(nn.Module):
    """R(h, e) = h + W e, W initialised to the identity."""

    def __init__(self, width: int):
        super().__init__()
        self.project = nn.Linear(width, width, bias=False)
        nn.init.eye_(self.project.weight)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return h + self.project(e)


class ConcatRecall(nn.Module):
    """R(h, e) = W [h; e], W initialised to [I I] so it starts as h + e."""

    def __init__(self, width: int):
        super().__init__()
        self.project = nn.Linear(2 * width, width, bias=False)
        with torch.no_grad():
            self.project.weight.copy_(torch.cat((torch.eye(width), torch.eye(width)), dim=1))

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat((h, e), dim=-1))


def outer_norm(kind: str, width: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    return {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}[kind](width)


class LoopedTransformer(nn.Module):
    """Per-token classifier: (batch, tokens) symbols -> (batch, tokens, outputs) logits.

    `forward` returns `(logits, aux)` with aux["residuals"] (iterations, batch), the relative
    residual ||z_{t+1} - z_t|| / ||z_t|| of every iteration, and aux["iterations"].
    The pieces `embed`, `initial_state`, `step`, `iterate` and `readout` are public so the progressive
    loss and the fixed-point tools can drive the loop themselves.
    """

    def __init__(self, config: LoopedConfig):
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(c.vocab, c.width)
        if c.structure:
            self.structure_embedding = StructureEmbedding(c.width, c.structure)
        # DEVIATION: [looped-relative-position] a relative bias, falling linearly beyond max_offset, is a
        # sequence's only position signal.
        self.blocks = nn.ModuleList(
            EncoderBlock(c.width, c.heads, c.mlp_hidden, position_bias=self.position_bias())
            for _ in range(c.iterations if c.untied else 1))
        self.recall = {"add": AdditiveRecall, "concat": ConcatRecall}[c.recall_form](c.width) \
            if c.recall != "none" else None
        self.outer_norm = outer_norm(c.outer_norm, c.width)
        if c.recall == "internal-branch":
            self.attention_outer_norm = outer_norm(c.outer_norm, c.width)
        self.head = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.outputs))

    def position_bias(self) -> nn.Module | None:
        c = self.config
        if c.structure_bias:
            return SharedLabelBias(c.heads, c.structure)
        return RelativePositionBias(c.heads, c.max_offset, c.far_offsets) if c.max_offset else None

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """e = Emb(x), plus the structure embedding of every position when the config has one."""
        e = self.embedding(tokens)
        return e + self.structure_embedding(e.shape[1]) if self.config.structure else e

    def initial_state(self, e: torch.Tensor) -> torch.Tensor:
        return e if self.config.initial_state == "input" else torch.zeros_like(e)

    def step(self, z: torch.Tensor, e: torch.Tensor, iteration: int = 0) -> torch.Tensor:
        """One iteration z_{t+1} = F(z_t; e), the equation in the module docstring."""
        if self.config.untied and iteration >= len(self.blocks):
            raise ValueError(f"an untied model has {len(self.blocks)} layers; iteration {iteration} does not exist")
        block = self.blocks[iteration if self.config.untied else 0]
        if self.config.recall == "internal-branch":
            # DEVIATION: [looped-internal-branch] a third-party reading of internal recall, run beside ours.
            h = self.attention_outer_norm(z + block.attention(block.attention_norm(self.recall(z, e))))
            return self.outer_norm(h + block.feed_forward(block.mlp_norm(self.recall(h, e))))
        if self.config.recall == "standard":
            z = self.recall(z, e)
        h = z + block.attention(block.attention_norm(z))
        if self.config.recall == "internal":
            # DEVIATION: [looped-internal-recall] injected between attention and MLP, our reading of "internal".
            h = self.recall(h, e)
        return self.outer_norm(h + block.feed_forward(block.mlp_norm(h)))

    def iterate(self, z: torch.Tensor, e: torch.Tensor, start: int, count: int) -> torch.Tensor:
        """Iterations start .. start + count - 1 from state z."""
        for iteration in range(start, start + count):
            z = self.step(z, e, iteration)
        return z

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)

    def states(self, tokens: torch.Tensor, iterations: int):
        """Yield (z_t, ||z_t - z_{t-1}|| / ||z_{t-1}||) for t = 1 .. iterations, one state at a time,
        so accuracy can be read at every iteration of a long test-time loop in constant memory. Once the
        whole batch sits exactly on a fixed point of the float map, the rest is yielded without computing."""
        e = self.embed(tokens)
        z = self.initial_state(e)
        settled = False
        for iteration in range(iterations):
            if settled:
                # A weight-tied step that returned its input exactly returns it forever: no need to run it.
                yield z, torch.zeros(len(z), device=z.device)
                continue
            previous, z = z, self.step(z, e, iteration)
            settled = not self.config.untied and torch.equal(z, previous)
            yield z, relative_residual(z.detach(), previous.detach())

    def forward(self, tokens: torch.Tensor, iterations: int | None = None) -> tuple[torch.Tensor, dict]:
        iterations = self.config.iterations if iterations is None else iterations
        residuals = []
        for z, residual in self.states(tokens, iterations):
            residuals.append(residual)
        return self.readout(z), {"residuals": torch.stack(residuals),
                                 "iterations": torch.full((tokens.shape[0],), iterations, device=tokens.device)}
