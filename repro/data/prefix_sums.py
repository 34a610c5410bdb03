"""Prefix sums: n random bits, and the running parity (cumulative sum mod 2) at every position.

As in the easy-to-hard datasets (Schwarzschild et al. 2021) the bits are i.i.d. Bernoulli(1/2)
for the lengths studied here (n >= 24). Each sequence starts with a START marker, the one
position whose parity (0) is known without reading anything; it carries no label.
"""

from dataclasses import dataclass

import torch

from repro.losses import IGNORE
from repro.seeding import rng

START = 2
VOCAB = 3
"""Symbols: bit 0, bit 1, START."""


def prefix_parity(bits: torch.Tensor) -> torch.Tensor:
    """Target of every position: (bits[..., :i+1].sum()) mod 2."""
    return bits.cumsum(dim=-1) % 2


def generate(count: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` sequences of `length` bits as (tokens, targets), both (count, length + 1)."""
    if length < 1 or count < 1:
        raise ValueError(f"need length >= 1 and count >= 1, got length {length}, count {count}")
    bits = torch.randint(0, 2, (count, length), generator=generator)
    # DEVIATION: [prefix-sums-start-marker] a transformer needs an anchor where the convolutions had a border.
    tokens = torch.cat((torch.full((count, 1), START), bits), dim=1)
    targets = torch.cat((torch.full((count, 1), IGNORE), prefix_parity(bits)), dim=1)
    return tokens, targets


@dataclass
class PrefixSumStream:
    """Fresh training batches, a pure function of (seed, step)."""

    length: int
    batch_size: int
    seed: int

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return generate(self.batch_size, self.length, rng("prefix-sums-train", self.length, self.seed, step))


def evaluation_set(length: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out set per length, from a stream no training batch uses."""
    return generate(count, length, rng("prefix-sums-eval", length, seed))
