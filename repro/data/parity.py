"""Parity: is the number of +1 entries of a vector over {-1, 0, +1} odd?

Two generators, stored as symbols value + 1 in {0, 1, 2}:
- `adatape`: AdaTape's released generator (length 32), every entry uniform over {1, 0, -1}.
- `act`: the ACT/PonderNet generator (length 64), a uniform random count 1..L of entries set to
  +-1 with equal probability, the rest 0, in random positions.
Label = (number of +1 entries) mod 2.
"""

from dataclasses import dataclass

import torch

from repro.config import choice
from repro.seeding import rng

GENERATORS = {"adatape": 32, "act": 64}
"""Generator name -> the vector length of its publication."""


def generate(kind: str, count: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` vectors of `length` symbols (value + 1) and their parity labels."""
    choice("parity generator", kind, tuple(GENERATORS))
    if kind == "adatape":
        symbols = torch.randint(0, 3, (count, length), generator=generator)
    else:
        nonzero = torch.randint(1, length + 1, (count, 1), generator=generator)
        signs = torch.randint(0, 2, (count, length), generator=generator) * 2 - 1
        # A uniformly random set of `nonzero` positions: the ranks of i.i.d. uniform keys.
        ranks = torch.rand(count, length, generator=generator).argsort(dim=1).argsort(dim=1)
        symbols = torch.where(ranks < nonzero, signs, 0) + 1
    return symbols, ((symbols == 2).sum(dim=1) % 2)


@dataclass
class ParityStream:
    """Fresh training batches, a pure function of (seed, step): a resumed run sees the same data."""

    kind: str
    length: int
    batch_size: int
    seed: int

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return generate(self.kind, self.batch_size, self.length, rng("parity-train", self.kind, self.seed, step))


def evaluation_set(kind: str, length: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out set, drawn from a stream no training batch uses."""
    return generate(kind, count, length, rng("parity-eval", kind, seed))
