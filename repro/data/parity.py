"""Parity: is the number of +1 entries of a vector over {-1, 0, +1} odd?

Two generators, stored as symbols value + 1 in {0, 1, 2}:
- `adatape`: AdaTape's released generator (length 32), every entry uniform over {1, 0, -1}.
- `act`: the ACT/PonderNet generator (length 64), a uniform random count 1..L of entries set to
  +-1 with equal probability, the rest 0, in random positions.
Label = (number of +1 entries) mod 2.

A split by the count of +1 entries (`counts`, a half-open range) keeps only the vectors whose count lies in it: the
training stream can leave out the counts that a held-out set then tests.
"""

from dataclasses import dataclass

import torch

from repro.config import choice
from repro.seeding import rng

GENERATORS = {"adatape": 32, "act": 64}
"""Generator name -> the vector length of its publication."""
PLUS_ONE = 2
"""The symbol of a +1 entry (symbols are value + 1)."""


def plus_ones(symbols: torch.Tensor) -> torch.Tensor:
    """(batch,) the number of +1 entries of each vector."""
    return (symbols == PLUS_ONE).sum(dim=1)


def draw(kind: str, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`count` vectors of `length` symbols (value + 1) from generator `kind`."""
    choice("parity generator", kind, tuple(GENERATORS))
    if kind == "adatape":
        return torch.randint(0, 3, (count, length), generator=generator)
    nonzero = torch.randint(1, length + 1, (count, 1), generator=generator)
    signs = torch.randint(0, 2, (count, length), generator=generator) * 2 - 1
    # A uniformly random set of `nonzero` positions: the ranks of i.i.d. uniform keys.
    ranks = torch.rand(count, length, generator=generator).argsort(dim=1).argsort(dim=1)
    return torch.where(ranks < nonzero, signs, 0) + 1


def generate(kind: str, count: int, length: int, generator: torch.Generator,
             counts: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` vectors and their parity labels; with `counts` = (low, high), only vectors with low <= (number of +1
    entries) < high, drawn by rejection from the generator's own distribution (so conditioned on the range)."""
    if counts is None:
        symbols = draw(kind, count, length, generator)
    else:
        low, high = counts
        if not 0 <= low < high <= length + 1:
            raise ValueError(f"counts must be a range low < high within 0..{length + 1} for length {length}, "
                             f"got {counts}")
        kept, found = [], 0
        for _ in range(1000):
            chunk = draw(kind, count, length, generator)
            ones = plus_ones(chunk)
            chunk = chunk[(ones >= low) & (ones < high)]
            kept.append(chunk)
            found += len(chunk)
            if found >= count:
                break
        else:
            raise ValueError(f"the {kind} generator at length {length} almost never draws {counts} +1 entries")
        symbols = torch.cat(kept)[:count]
    return symbols, plus_ones(symbols) % 2


@dataclass
class ParityStream:
    """Fresh training batches, a pure function of (seed, step): a resumed run sees the same data."""

    kind: str
    length: int
    batch_size: int
    seed: int
    counts: tuple[int, int] | None = None  # the +1 counts the stream keeps (None: all)

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return generate(self.kind, self.batch_size, self.length, rng("parity-train", self.kind, self.seed, step),
                        self.counts)


def evaluation_set(kind: str, length: int, count: int, seed: int,
                   counts: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out set, drawn from a stream no training batch uses."""
    return generate(kind, count, length, rng("parity-eval", kind, seed, *(counts or ())), counts)
