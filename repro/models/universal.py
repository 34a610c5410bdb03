"""Universal Transformer (Dehghani et al., 2019) with per-position ACT halting (Graves, 2016).

One weight-tied block is applied repeatedly. At step n every position emits a halting
probability h^n = sigmoid(w . s^n + b); position i halts at
N = min{n : sum_{n' <= n} h^{n'} >= 1 - eps} (or at the step cap), with remainder
R = 1 - sum_{n < N} h^n. The output is the weighted state sum_n p^n s^n with p^n = h^n for n < N
and p^N = R, so the weights of every position sum to exactly 1. The ponder cost N + R is
added to the loss; only R carries gradient.
"""

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from repro.config import StrictConfig
from repro.device_sync import exit_check_due, sync_free
from repro.models.transformer import TokenEmbedding
from repro.nn import EncoderBlock


@dataclass
class UniversalConfig(StrictConfig):
    vocab: int
    max_len: int
    classes: int
    width: int = 64
    heads: int = 4
    mlp_hidden: int = 256
    max_steps: int = 8
    halting_eps: float = 0.01
    ponder_weight: float = 0.01
    dropout: float = 0.0

    RANGES = {"vocab": "[1, inf)", "max_len": "[1, inf)", "classes": "[1, inf)", "width": "[1, inf)",
              "heads": "[1, inf)", "mlp_hidden": "[1, inf)", "max_steps": "[1, inf)", "halting_eps": "(0, 1)",
              "ponder_weight": "[0, inf)", "dropout": "[0, 1)"}


def act_step(halted_mass: torch.Tensor, running: torch.Tensor, p: torch.Tensor, eps: float,
             last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One ACT update: (weight of this step's state, positions still running after it)."""
    halts = running & ((halted_mass + p >= 1 - eps) | last)
    weight = torch.where(halts, 1 - halted_mass, torch.where(running, p, torch.zeros_like(p)))
    return weight, running & ~halts


@dataclass
class Pondering:
    """What per-position ACT produced: the halting-weighted states and what each position spent."""
    output: torch.Tensor        # (batch, tokens, width): sum_n p^n s^n
    steps: torch.Tensor         # (batch, tokens): N, the block applications of each position
    remainder: torch.Tensor     # (batch, tokens): R, the only term of the ponder cost with a gradient
    halted_mass: torch.Tensor   # (batch, tokens): sum_n p^n, exactly 1 for every position

    def ponder_cost(self) -> torch.Tensor:
        """(batch,): N + R averaged over the positions of each example."""
        return (self.steps + self.remainder).mean(dim=1)


def ponder(state: torch.Tensor, update: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
           halting: Callable[[torch.Tensor], torch.Tensor], max_steps: int, eps: float) -> Pondering:
    """Per-position ACT over `max_steps` updates of `state` (batch, tokens, width).

    `update(step, state, running)` is one application of the block(s) (`running` (batch, tokens):
    the positions still computing); positions that halted keep their state. `halting(state)` gives
    h^n (batch, tokens) in (0, 1). Stops early once every position of the batch has halted: on the CPU at that step,
    where the host must not wait for the device only at the periodic checks of `repro.device_sync` (the steps
    between change nothing: a halted position keeps its state and takes weight 0).
    """
    halted_mass = state.new_zeros(state.shape[:2])
    running = torch.ones_like(halted_mass, dtype=torch.bool)
    steps = torch.zeros_like(halted_mass)
    remainder = torch.zeros_like(halted_mass)
    output = torch.zeros_like(state)
    check_every_step = not sync_free(state.device)
    for step in range(max_steps):
        state = torch.where(running.unsqueeze(-1), update(step, state, running), state)
        p = halting(state)
        weight, still_running = act_step(halted_mass, running, p, eps, last=step == max_steps - 1)
        remainder = torch.where(running & ~still_running, weight, remainder)
        output = output + weight.unsqueeze(-1) * state
        halted_mass = halted_mass + weight
        steps = steps + running
        running = still_running
        if step + 1 < max_steps and (check_every_step or exit_check_due(step + 1)) and not running.any():
            break
    return Pondering(output, steps, remainder, halted_mass)


class UniversalTransformer(nn.Module):
    def __init__(self, config: UniversalConfig):
        super().__init__()
        self.config = config
        self.embed = TokenEmbedding(config.vocab, config.max_len, config.width)
        # The UT's timestep coordinate embedding, added before every application of the block.
        self.step_embedding = nn.Parameter(torch.randn(config.max_steps, config.width) * 0.02)
        self.block = EncoderBlock(config.width, config.heads, config.mlp_hidden, config.dropout)
        self.halting = nn.Linear(config.width, 1)
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.classes)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
        # Halted positions keep their state, still visible as keys, and take no more weight.
        result = ponder(self.embed(tokens), lambda step, state, running: self.block(state + self.step_embedding[step]),
                        lambda state: torch.sigmoid(self.halting(state)).squeeze(-1), self.config.max_steps,
                        self.config.halting_eps)
        aux = {"penalty": self.config.ponder_weight * result.ponder_cost(), "ponder_steps": result.steps.mean(dim=1),
               "halting_mass": result.halted_mass, "token_layers": result.steps.sum(dim=1)}
        return self.head(self.norm(result.output[:, 0])), aux
