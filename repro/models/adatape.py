"""AdaTape (Xue et al., ICML 2023): elastic input sequences through a tape bank and Adaptive
Tape Reading (ATR).

For each example a query q reads a variable number of tape tokens from a bank and appends them
to the token sequence; the encoder is otherwise a plain Transformer. ATR, as in the official
release (paper notes, section 2.2), with k = T / tau candidates per step:

    c_j = LN(q)[:d_k] . LN(b_j)[:d_k]                       scores of the unused bank entries
    w   = softmax(c_topk / sqrt(d_k))                       merge weights of the k best entries
    z_t = sum_j w_j LN(b_j)                                 one tape token per step
    h  <- h + max_j w_j,   stop once h >= tau               halting budget tau
    R  <- R + 1 - sum_j w_j^2                               Gini impurity of the selection
    q  <- (q + z_t[:d_k]) / 2                               query update

Since max_j w_j >= 1/k, every example halts within k * tau = T steps. The tape loss
lambda * mean_b R_b charges every step read and rewards peaked selections.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import StrictConfig, choice
from repro.device_sync import sync_free
from repro.nn import EncoderBlock, GatedMLP, masked_mean

IMPURITIES = ("gini", "max")


@dataclass
class TapeReading:
    tokens: torch.Tensor     # (batch, T, width), padded to T slots
    mask: torch.Tensor       # (batch, T), True for the slots read before halting
    length: torch.Tensor     # (batch,) number of tape tokens read
    impurity: torch.Tensor   # (batch,) R_b, the tape loss before its weight
    selected: torch.Tensor   # (batch, bank) how often each bank entry entered a read token


class AdaptiveTapeReader(nn.Module):
    """Adaptive Tape Reading: reads at most `max_tape` tokens under the halting budget `budget`."""

    def __init__(self, width: int, key_width: int, max_tape: int, budget: float, impurity: str = "gini"):
        super().__init__()
        choice("impurity", impurity, IMPURITIES)
        candidates = max_tape / budget
        if candidates != int(candidates) or candidates < 1:
            raise ValueError(f"max_tape / budget = {max_tape} / {budget} must be a whole number >= 1: it is "
                             "the number of candidates per step, and it guarantees halting within max_tape")
        if not 0 < key_width <= width:
            raise ValueError(f"key_width must lie in 1..{width}, got {key_width}")
        self.key_width, self.max_tape, self.budget = key_width, max_tape, budget
        self.candidates, self.impurity_kind = int(candidates), impurity
        # One LayerNorm for the query and every bank entry, as in the release ("bank_norm").
        self.norm = nn.LayerNorm(width)

    def forward(self, query: torch.Tensor, bank: torch.Tensor, limit: int | None = None) -> TapeReading:
        """query (batch, width); bank (batch, entries, width) for an input-driven bank or
        (entries, width) for a learnable one shared by all examples. `limit` (1..max_tape, default
        max_tape) caps the tokens read at test time: a cheaper operating point of the same model."""
        limit = self.max_tape if limit is None else limit
        if not 1 <= limit <= self.max_tape:
            raise ValueError(f"limit must lie in 1..{self.max_tape} (max_tape), got {limit}")
        batch = len(query)
        if bank.shape[-2] < self.candidates:
            raise ValueError(f"the bank has {bank.shape[-2]} entries, fewer than the {self.candidates} candidates "
                             "read per step")
        # A shared bank is normalised once, then viewed per example.
        values = self.norm(bank)
        if values.dim() == 2:
            values = values.expand(batch, -1, -1)
        keys = values[..., : self.key_width]
        q = self.norm(query)[:, : self.key_width]
        halting = query.new_zeros(batch)
        impurity = query.new_zeros(batch)
        length = torch.zeros(batch, dtype=torch.long, device=query.device)
        used = torch.zeros(values.shape[:2], device=query.device)
        tokens = []
        # Once every example has halted a step reads nothing: on the CPU it is skipped; where the host must not wait
        # for the device to tell (`repro.device_sync`) it is computed with weight 0 and its slot zeroed, the same.
        skip_when_halted = not sync_free(query.device)
        for _ in range(limit):
            running = halting < self.budget
            if skip_when_halted and not running.any():
                tokens.append(torch.zeros_like(values[:, 0]))
                continue
            scores = torch.einsum("bmk,bk->bm", keys, q)
            # Entries already merged into an earlier token rank below every unused one.
            index = (scores - 1e9 * used).topk(self.candidates, dim=1).indices
            # DEVIATION: [adatape-per-example-scores] each example's candidates are weighted by its own scores.
            weights = F.softmax(scores.gather(1, index) / self.key_width ** 0.5, dim=1)
            step = weights.amax(dim=1)
            stops = running & (halting + step >= self.budget)
            impurity = impurity + running.float() * self.step_impurity(weights)
            halting = torch.where(stops, torch.full_like(halting, self.budget),
                                  halting + step * (running & ~stops).float())
            length = length + running.long()
            candidates = values.gather(1, index[..., None].expand(-1, -1, values.shape[2]))
            token = torch.einsum("bk,bkw->bw", weights, candidates)
            if not skip_when_halted:
                token = torch.where(running.any(), token, torch.zeros_like(token))
            tokens.append(token)
            used = used.scatter_add(1, index, running.float()[:, None].expand_as(index))
            q = (q + token[:, : self.key_width]) / 2
        slots = torch.arange(limit, device=query.device)
        return TapeReading(torch.stack(tokens, dim=1), slots[None] < length[:, None], length, impurity, used)

    def step_impurity(self, weights: torch.Tensor) -> torch.Tensor:
        if self.impurity_kind == "gini":
            return 1 - (weights ** 2).sum(dim=1)
        return 1 - weights.amax(dim=1)


class TapeEncoderBlock(EncoderBlock):
    """Encoder block whose last `tape_slots` positions (the tape) use their own GLU feed-forward
    network; attention, norms and residuals are shared with the input tokens."""

    def __init__(self, width: int, heads: int, mlp_hidden: int, tape_slots: int, dropout: float = 0.0):
        super().__init__(width, heads, mlp_hidden, dropout)
        self.tape_slots = tape_slots
        self.tape_mlp = GatedMLP(width, mlp_hidden, dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None, inputs: int | None = None) -> torch.Tensor:
        """`inputs`: how many leading positions are input tokens (default all but `tape_slots`), so a tape cropped
        to the tokens read is routed too."""
        h = x + self.attention(self.attention_norm(x), key_mask)
        return h + self.feed_forward(self.mlp_norm(h), inputs)

    def feed_forward(self, x: torch.Tensor, inputs: int | None = None) -> torch.Tensor:
        split = x.shape[1] - self.tape_slots if inputs is None else inputs
        return torch.cat([self.mlp(x[:, :split]), self.tape_mlp(x[:, split:])], dim=1)


@dataclass
class TapeConfig(StrictConfig):
    """How AdaTape reads its tape, whatever the backbone: shared by the encoder and the models built on it."""
    max_tape: int = 10
    budget: float = 2.0
    insert_after: int = 1
    separate_tape_ffn: bool = False
    impurity: str = "gini"

    RANGES = {"max_tape": "[1, inf)", "budget": "(0, inf)", "insert_after": "[0, inf)"}

    def tape_options(self) -> dict:
        """This config's tape fields alone, to pass on to an `AdaTapeEncoderConfig`."""
        return {f.name: getattr(self, f.name) for f in fields(TapeConfig)}


@dataclass
class AdaTapeEncoderConfig(TapeConfig):
    width: int = 64
    heads: int = 4
    layers: int = 4
    mlp_hidden: int = 256
    dropout: float = 0.0

    RANGES = TapeConfig.RANGES | {"width": "[1, inf)", "heads": "[1, inf)", "layers": "[1, inf)",
                                  "mlp_hidden": "[1, inf)", "dropout": "[0, 1)"}


def run_by_tape_length(reading: TapeReading, run: Callable[[torch.Tensor, int], torch.Tensor],
                       padded_to: int | None = None) -> torch.Tensor:
    """`run(rows, length)` once per tape length read, on the examples `rows` that read `length` tape tokens, so each
    group computes its own tape alone and the compute counted is the compute spent (a padded batch spends it on every
    slot, read or not). The groups' results, (len(rows), n, ...), are gathered into one batch in their examples' rows;
    along dim 1 they fill the first n entries of `padded_to` (default n: every group's is the same), the rest zeros."""
    gathered = None
    for length in reading.length.unique().tolist():
        rows = (reading.length == length).nonzero().squeeze(1)
        group = run(rows, length)
        if gathered is None:
            size = group.shape[1] if padded_to is None else padded_to
            gathered = group.new_zeros((len(reading.length), size, *group.shape[2:]))
        gathered[rows, : group.shape[1]] = group
    return gathered


class AdaTapeEncoder(nn.Module):
    """Blocks before `insert_after` see the input tokens only; then ATR reads a tape with the
    mean of the token states as query, the tape passes through a GLU MLP (no residual, as in the
    release) and is appended after the tokens; the remaining blocks see both, padded tape slots
    masked out of the attention keys."""

    def __init__(self, config: AdaTapeEncoderConfig):
        super().__init__()
        if not 0 <= config.insert_after <= config.layers:
            raise ValueError(f"insert_after must lie in 0..{config.layers}, got {config.insert_after}")
        self.config = config
        c = config
        self.blocks = nn.ModuleList(
            TapeEncoderBlock(c.width, c.heads, c.mlp_hidden, c.max_tape, c.dropout)
            if c.separate_tape_ffn and index >= c.insert_after
            else EncoderBlock(c.width, c.heads, c.mlp_hidden, c.dropout)
            for index in range(c.layers))
        self.reader = AdaptiveTapeReader(c.width, c.width // c.heads, c.max_tape, c.budget, c.impurity)
        self.tape_mlp = GatedMLP(c.width, c.mlp_hidden, c.dropout)

    def forward(self, x: torch.Tensor, bank: torch.Tensor, limit: int | None = None,
                crop: bool = False) -> tuple[torch.Tensor, torch.Tensor, TapeReading]:
        """x (batch, tokens, width) -> (states (batch, tokens + slots, width), valid-token mask, the reading), with
        `limit` tape slots at most (`AdaptiveTapeReader`). Without `crop` every slot is computed and the unread ones
        are masked out of the keys (the release's padded batch). With `crop` the examples are grouped by the number
        of tokens they read and each group runs its own tokens and tape alone, so only the tape read is computed;
        the states of unread slots are then zeros. The valid states of the two agree up to rounding."""
        for block in self.blocks[: self.config.insert_after]:
            x = block(x)
        reading = self.reader(x.mean(dim=1), bank, limit)
        inputs = x.shape[1]
        mask = torch.cat([torch.ones(x.shape[0], inputs, dtype=torch.bool, device=x.device), reading.mask], dim=1)
        if not crop:
            return self.after_tape(x, reading.tokens, mask), mask, reading
        states = run_by_tape_length(
            reading, lambda rows, length: self.after_tape(x[rows], reading.tokens[rows, :length], None), mask.shape[1])
        return states, mask, reading

    def after_tape(self, x: torch.Tensor, tape: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The tape through its GLU, appended to the tokens `x`, then the blocks after the tape."""
        inputs = x.shape[1]
        x = torch.cat([x, self.tape_mlp(tape)], dim=1)
        for block in self.blocks[self.config.insert_after:]:
            x = block(x, mask, inputs) if isinstance(block, TapeEncoderBlock) else block(x, mask)
        return x

    def token_layers(self, tokens: int, reading: TapeReading) -> torch.Tensor:
        """Token positions times blocks per example, counting only the tape slots actually read."""
        layers_after = len(self.blocks) - self.config.insert_after
        return (tokens * len(self.blocks) + reading.length * layers_after).float()


BANKS = ("input", "learnable")


@dataclass
class AdaTapeParityConfig(StrictConfig):
    length: int
    classes: int = 2
    symbols: int = 3
    bank: str = "input"
    bank_size: int = 32
    tape_loss_weight: float = 0.01
    zero_tape: bool = False  # a control: the tape is read from a bank of zeros, so it carries nothing of the input
    encoder: dict | None = None

    RANGES = {"length": "[1, inf)", "classes": "[1, inf)", "symbols": "[1, inf)", "bank_size": "[1, inf)",
              "tape_loss_weight": "[0, inf)"}


class AdaTapeParity(nn.Module):
    """AdaTape's parity model (release: `adatape-parity`). The whole one-hot vector becomes a
    single input token; the bank is either input-driven (the per-element embeddings, no position
    embedding) or a learnable table shared by all inputs. Classifier: mean of the valid tokens.

    With `zero_tape` the reader runs as usual on a bank whose content is zero: every tape token is the same
    constant, the logits depend on the input token alone and the bank gets no gradient. What such a model learns is
    what the single input token can do without the tape."""

    def __init__(self, config: AdaTapeParityConfig):
        super().__init__()
        choice("bank", config.bank, BANKS)
        self.config = config
        encoder = AdaTapeEncoderConfig.from_dict(config.encoder or {})
        self.input_token = nn.Linear(config.length * config.symbols, encoder.width)
        if config.bank == "input":
            self.element_embedding = nn.Embedding(config.symbols, encoder.width)
        else:
            self.bank = nn.Parameter(torch.nn.init.trunc_normal_(torch.empty(config.bank_size, encoder.width),
                                                                 std=0.02, a=-0.04, b=0.04))
        self.encoder = AdaTapeEncoder(encoder)
        self.norm = nn.LayerNorm(encoder.width)
        self.head = nn.Linear(encoder.width, config.classes)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if tokens.dim() != 2:
            raise ValueError(f"expected (batch, {self.config.length}) token ids, got shape {tuple(tokens.shape)}")
        if tokens.shape[1] != self.config.length:
            raise ValueError(f"this model was built for sequences of length {self.config.length} (its input token "
                             f"reads the whole one-hot sequence), got length {tokens.shape[1]}")
        one_hot = F.one_hot(tokens, self.config.symbols).float()
        x = self.input_token(one_hot.flatten(1)).unsqueeze(1)
        bank = self.element_embedding(tokens) if self.config.bank == "input" else self.bank
        if self.config.zero_tape:
            bank = torch.zeros_like(bank)  # zeros_like keeps no graph: the bank gets no gradient
        states, mask, reading = self.encoder(x, bank)
        # DEVIATION: [adatape-masked-mean] the release's GAP also averages padded tape slots.
        pooled = masked_mean(states, mask)
        aux = {"tape_length": reading.length, "penalty": self.config.tape_loss_weight * reading.impurity,
               "selected": reading.selected, "token_layers": self.encoder.token_layers(1, reading)}
        return self.head(self.norm(pooled)), aux
