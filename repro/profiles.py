"""Run profiles: how much compute a notebook may spend.

| profile | where | budget |
|---|---|---|
| smoke | tests and CI | every notebook under 60 s on 2 CPU cores: plumbing, not claims |
| cpu   | `make reproduce` without CUDA | the whole study under 90 min on 2 cores |
| gpu   | `make reproduce` with CUDA | each notebook under 8 min on one H100 |
| paper | documented configs at the papers' scale | not run here |

`auto` picks `gpu` when CUDA is available, else `cpu`.
"""

import torch

from repro.config import choice

PROFILES = ("smoke", "cpu", "gpu", "paper")


def resolve(profile: str) -> str:
    """Turn `auto` into a concrete profile; reject unknown names and `gpu` without CUDA."""
    choice("profile", profile, ("auto",) + PROFILES)
    if profile == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if profile == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("profile 'gpu' needs a CUDA device and none is available; use 'cpu' or 'auto'")
    return profile


def device_for(profile: str) -> torch.device:
    """CUDA for the accelerator profiles; `smoke` and `cpu` stay on the CPU so their numbers
    are the same on every machine."""
    return torch.device("cuda" if profile in ("gpu", "paper") and torch.cuda.is_available() else "cpu")


def settings(per_profile: dict, profile: str) -> dict:
    """The settings a notebook declared for `profile`; every profile must be declared."""
    missing = [p for p in PROFILES if p not in per_profile]
    if missing:
        raise ValueError(f"settings lack profile(s) {missing}; every one of {PROFILES} needs an entry")
    return per_profile[resolve(profile)]
