"""Shared transformer blocks: attention (`scaled_dot_product_attention`, or a plain softmax attention where that is
faster), a relative position bias and its grid analogues (a shared-label bias, a structure embedding), MLPs, the pre-LN
encoder block."""

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import choice


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear -> GELU -> Linear."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GatedMLP(nn.Module):
    """GLU feed-forward network, out = W_2 (a * sigmoid(b)) with [a; b] = W_1 x (AdaTape's tape MLP)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.inner = nn.Linear(width, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.outer = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.inner(x).chunk(2, dim=-1)
        return self.outer(self.dropout(a * torch.sigmoid(b)))


FAR_OFFSETS = ("clipped", "linear")
"""What `RelativePositionBias` does beyond its table: share the edge score, or keep falling at the ALiBi slope."""


class RelativePositionBias(nn.Module):
    """A learned score b_h(clip(j - i, -K, K)) per head, added to the attention logits of query i
    and key j (Shaw et al. 2018; T5's is the bucketed form of the same idea).

    The score depends only on the offset, so a table trained on short sequences covers sequences
    of any length. The table starts as ALiBi's recency prior -m_h |offset| with slopes m_h = 2^-h
    (Press et al. 2022): attention begins local, which is where the gradient of a running
    computation is. Beyond K, `far = "clipped"` gives every offset the edge entry; `far = "linear"`
    keeps falling from it at the fixed slope, b_h(K) - m_h (|j - i| - K), so distant tokens never
    share one score: with a shared score, the hundreds of far tokens of a long sequence together
    outweigh the few near ones, however low that score was learned.
    """

    def __init__(self, heads: int, max_offset: int, far: str = "clipped"):
        super().__init__()
        if max_offset < 1:
            raise ValueError(f"max_offset must be >= 1, got {max_offset}")
        choice("far", far, FAR_OFFSETS)
        self.max_offset, self.far = max_offset, far
        slopes = 2.0 ** -torch.arange(heads, dtype=torch.float32)
        offsets = torch.arange(-max_offset, max_offset + 1, dtype=torch.float32)
        self.table = nn.Parameter(-slopes[:, None] * offsets.abs()[None, :])
        self.register_buffer("slopes", slopes, persistent=False)

    def forward(self, tokens: int) -> torch.Tensor:
        """(heads, tokens, tokens) biases."""
        positions = torch.arange(tokens, device=self.table.device)
        offsets = positions[None, :] - positions[:, None]
        bias = self.table[:, offsets.clamp(-self.max_offset, self.max_offset) + self.max_offset]
        if self.far == "clipped":
            return bias
        beyond = (offsets.abs() - self.max_offset).clamp_min(0).to(bias.dtype)
        return bias - self.slopes[:, None, None] * beyond


class SharedLabelBias(nn.Module):
    """A learned score sum_k w_{h,k} [label_k(i) = label_k(j)] per head h, added to the attention
    logits of query i and key j. For inputs of a fixed structure, where what matters is which
    groups two positions share rather than their offset (sudoku: w_{h,row} for two cells in one
    row, plus w_{h,column}, plus w_{h,box}), it is what the relative position bias is for a line.

    `structure` gives every position one label per grouping (as `LoopedConfig.structure`). The
    weights start at 1, so attention begins on the positions that share a grouping, as the
    relative bias begins local: a constraint's evidence sits in the cells that share its unit.
    """

    def __init__(self, heads: int, structure: tuple[tuple[int, ...], ...]):
        super().__init__()
        if not structure:
            raise ValueError("SharedLabelBias needs at least one grouping of the positions")
        labels = torch.tensor(structure)
        self.register_buffer("shared", (labels[:, :, None] == labels[:, None, :]).float(), persistent=False)
        self.weight = nn.Parameter(torch.ones(heads, len(structure)))

    def forward(self, tokens: int) -> torch.Tensor:
        """(heads, tokens, tokens) biases."""
        if tokens != self.shared.shape[1]:
            raise ValueError(f"the structure labels {self.shared.shape[1]} positions; got {tokens} tokens")
        return torch.einsum("hk,kij->hij", self.weight, self.shared)


class StructureEmbedding(nn.Module):
    """sum_k S_k(label_k(i)) for every position i: a learned vector per label of each grouping, added to the input
    embedding of an input of a fixed structure (sudoku: the cell's row, column and box), so every token carries where
    it sits as well as what it is.

    `structure` gives every position one label per grouping (as `SharedLabelBias`). All groupings share one table,
    drawn from N(0, 1) as `nn.Embedding`'s is; grouping k's labels are offset past those of the groupings before it,
    so row 0 and column 0 get rows of their own.
    """

    def __init__(self, width: int, structure: tuple[tuple[int, ...], ...]):
        super().__init__()
        if not structure:
            raise ValueError("StructureEmbedding needs at least one grouping of the positions")
        sizes = torch.tensor([max(labels) + 1 for labels in structure])
        offsets = torch.cumsum(sizes, 0) - sizes
        self.register_buffer("labels", torch.tensor(structure) + offsets[:, None], persistent=False)
        self.weight = nn.Parameter(nn.init.normal_(torch.empty(int(sizes.sum()), width)))

    def forward(self, positions: int) -> torch.Tensor:
        """(positions, width) embeddings, to add to the input embedding."""
        labelled = self.labels.shape[1]
        if positions != labelled:
            raise ValueError(f"this model's structure labels {labelled} positions; got inputs of {positions}")
        return F.embedding(self.labels, self.weight).sum(dim=0)


PLAIN_ATTENTION_MAX_TOKENS = {"bias": 128, "key mask": 0}
"""The longest key sequence for which `attention` on the CPU takes `plain_attention` instead of
`scaled_dot_product_attention`, with a bias (with or without a key mask) and with a key mask alone; 0: never.
Measured by benchmarks/attention_paths.py (forward + backward, batch 32, 4 heads, head width 8 and 16, one thread,
twice on 2026-12-04): with a bias the plain path was 1.1-2.0x faster at 16-96 tokens in both runs (ties at 8 and
128); beyond 128 the two runs disagree (idle machine: plain 1.1-1.5x faster up to 512; the other core busy: SDPA up to
1.8x faster at 384-512), so SDPA takes the longer sequences. With a key mask alone SDPA's fused kernel is faster at
almost every length (up to 3.5x)."""


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
                   key_mask: torch.Tensor | None = None, dropout: float = 0.0) -> torch.Tensor:
    """`attention` by `scaled_dot_product_attention`, the bias and key mask folded into one additive mask."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if bias is not None:
        mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
                    key_mask: torch.Tensor | None = None, dropout: float = 0.0) -> torch.Tensor:
    """`attention` written out: one `baddbmm` (the scaled product plus the bias and key mask), a softmax, a product.

    The key mask enters as an additive 0 / -inf row (a broadcast add is several times faster than a broadcast
    `masked_fill` here). An example with no valid key gets a zero output and zero gradients, as SDPA's safe softmax
    gives it: its queries attend to every key and the result is zeroed, since a row of -inf logits would make the
    softmax NaN, in the output and (through its backward) in every gradient.
    """
    batch, heads, queries, width = q.shape
    keys = k.shape[-2]
    addend = torch.zeros((), dtype=q.dtype, device=q.device) if bias is None else bias
    if key_mask is not None:
        valid = key_mask.any(dim=-1)
        attendable = key_mask | ~valid[:, None]
        blocked = torch.zeros_like(key_mask, dtype=q.dtype).masked_fill_(~attendable, float("-inf"))
        addend = addend + blocked[:, None, None, :]
    logits = (batch, heads, queries, keys)
    scores = torch.baddbmm(addend.expand(logits).reshape(-1, queries, keys), q.reshape(-1, queries, width),
                           k.reshape(-1, keys, width).transpose(1, 2), alpha=width ** -0.5).view(logits)
    weights = torch.softmax(scores, dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    y = weights @ v
    return y if key_mask is None else y * valid[:, None, None, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
              key_mask: torch.Tensor | None = None, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_h) + bias) v over the keys where `key_mask` is True, by the faster of two paths.

    q, k, v are (batch, heads, tokens, head width); `bias` broadcasts to the (batch, heads, queries, keys) logits and
    is finite (keys are excluded by `key_mask`, (batch, keys), never by -inf in the bias); `dropout` is applied to the
    attention weights. With a learned bias and a few dozen tokens the fused kernel is about 2x slower than
    `plain_attention` on the CPU (its backward falls back to the math path); without a bias, or for longer
    sequences, it is faster: `PLAIN_ATTENTION_MAX_TOKENS` holds the measured crossovers. On an accelerator, where one
    fused launch beats several small ones, SDPA always.
    """
    case = "bias" if bias is not None else "key mask" if key_mask is not None else None
    if case is not None and k.shape[-2] <= PLAIN_ATTENTION_MAX_TOKENS[case] and q.device.type == "cpu":
        return plain_attention(q, k, v, bias, key_mask, dropout)
    return sdpa_attention(q, k, v, bias, key_mask, dropout)


class SelfAttention(nn.Module):
    """Multi-head self-attention, softmax(Q K^T / sqrt(d_h) + mask) V (by `attention`), with a key padding mask.

    `key_mask` (batch, tokens) is True for tokens that may be attended to; masked tokens still
    act as queries, their rows are simply ignored downstream. With `max_offset` > 0 the logits
    carry a `RelativePositionBias`, so the layer needs no absolute position embedding; or pass
    `position_bias`, any module mapping a token count to (heads, tokens, tokens) finite logits
    (e.g. a `SharedLabelBias`).
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.0, max_offset: int = 0,
                 position_bias: nn.Module | None = None):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        if max_offset and position_bias is not None:
            raise ValueError("give either max_offset (a relative position bias) or a position_bias module, not both")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout
        self.position_bias = RelativePositionBias(heads, max_offset) if max_offset else position_bias

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        bias = None if self.position_bias is None else self.position_bias(tokens)[None]
        y = attention(q, k, v, bias, key_mask, self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, tokens, width))


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: h = x + Attn(LN(x)); y = h + MLP(LN(h))."""

    def __init__(self, width: int, heads: int, mlp_hidden: int, dropout: float = 0.0, max_offset: int = 0,
                 position_bias: nn.Module | None = None):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads, dropout, max_offset, position_bias)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_hidden, dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), key_mask)
        return h + self.feed_forward(self.mlp_norm(h))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP sublayer; subclasses route some tokens through another network."""
        return self.mlp(x)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the token axis of (batch, tokens, width), counting only tokens where mask is True."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
