"""Universal Transformer (Dehghani et al., 2019) with per-position ACT halting (Graves, 2016).

One weight-tied block is applied repeatedly. At step n every position emits a halting
probability h^n = sigmoid(w . s^n + b); position i halts at
N = min{n : sum_{n' <= n} h^{n'} >= 1 - eps} (or at the step cap), with remainder
R = 1 - sum_{n < N} h^n. The output is the weighted state sum_n p^n s^n with p^n = h^n for n < N
and p^N = R, so the weights of every position sum to exactly 1. The ponder cost N + R is
added to the loss; only R carries gradient.
"""

from dataclasses import dataclass

import torch
from torch import nn

from repro.config import StrictConfig
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


def act_step(halted_mass: torch.Tensor, running: torch.Tensor, p: torch.Tensor, eps: float,
             last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One ACT update: (weight of this step's state, positions still running after it)."""
    halts = running & ((halted_mass + p >= 1 - eps) | last)
    weight = torch.where(halts, 1 - halted_mass, torch.where(running, p, torch.zeros_like(p)))
    return weight, running & ~halts


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
        state = self.embed(tokens)
        halted_mass = state.new_zeros(state.shape[:2])
        running = torch.ones_like(halted_mass, dtype=torch.bool)
        steps = torch.zeros_like(halted_mass)
        remainder = torch.zeros_like(halted_mass)
        output = torch.zeros_like(state)
        for step in range(self.config.max_steps):
            # Halted positions keep their state (still visible as keys) and take no more weight.
            state = torch.where(running.unsqueeze(-1), self.block(state + self.step_embedding[step]), state)
            p = torch.sigmoid(self.halting(state)).squeeze(-1)
            weight, still_running = act_step(halted_mass, running, p, self.config.halting_eps,
                                             last=step == self.config.max_steps - 1)
            remainder = torch.where(running & ~still_running, weight, remainder)
            output = output + weight.unsqueeze(-1) * state
            halted_mass = halted_mass + weight
            steps = steps + running
            running = still_running
            if not running.any():
                break
        ponder = (steps + remainder).mean(dim=1)
        aux = {"penalty": self.config.ponder_weight * ponder, "ponder_steps": steps.mean(dim=1),
               "halting_mass": halted_mass, "token_layers": steps.sum(dim=1)}
        return self.head(self.norm(output[:, 0])), aux
