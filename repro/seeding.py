"""Explicit seeds. Every random stream is named, so two streams never share a seed by accident
(a training batch can never equal the evaluation set because their names differ), and no code
depends on the global random state."""

import hashlib
from contextlib import contextmanager

import torch


def derive(*parts) -> int:
    """A 63-bit seed that is a pure function of `parts` (names and numbers)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng(*parts) -> torch.Generator:
    return torch.Generator().manual_seed(derive(*parts))


@contextmanager
def torch_seed(seed: int, device: torch.device = torch.device("cpu")):
    """Run a block (model construction, a training run) under its own seed, leaving the global
    random state as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
