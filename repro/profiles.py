"""Run profiles: how much compute a notebook may spend.

| profile | where | budget |
|---|---|---|
| smoke | tests and CI | every notebook under 60 s on 2 CPU cores: plumbing, not claims |
| cpu   | `make reproduce` without CUDA | the whole study under 90 min on 2 cores |
| gpu   | `make reproduce` with CUDA | each notebook under 8 min on one H100 |
| paper | documented configs at the papers' scale | not run here |

`auto` picks `gpu` when CUDA is available, else `cpu`. `gpu` and `paper` without CUDA stop with the reason: their
settings are sized for an accelerator, and a CPU would run them for days without a word.

The intra-op thread count is part of the profile (results change with it: reductions split differently), fixed by
`threads_for` and recorded in every result's provenance. So is the precision of float32 matrix products on CUDA
(`tf32_for`): TF32 under the accelerator profiles, the defaults under `smoke` and `cpu`.
"""

import os

import torch

from repro.config import choice
from repro.distributed import local_device

PROFILES = ("smoke", "cpu", "gpu", "paper")
ACCELERATOR_PROFILES = ("gpu", "paper")


def resolve(profile: str) -> str:
    """Turn `auto` into a concrete profile; reject unknown names and `gpu` without CUDA."""
    choice("profile", profile, ("auto",) + PROFILES)
    if profile == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if profile in ACCELERATOR_PROFILES and not torch.cuda.is_available():
        raise RuntimeError(f"profile {profile!r} is sized for a CUDA device and none is available (torch "
                           f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use 'cpu' or 'auto'")
    return profile


def threads_for(profile: str) -> int:
    """The intra-op thread count of `profile`.

    One thread on the CPU profiles: measured here, two threads in one process were at most 1.3x faster on an idle
    machine and 3-60x slower whenever the other core was busy, so a second notebook takes the second core instead.
    On an accelerator the host threads only feed the device: all cores, shared among the ranks torchrun started on
    this machine."""
    if profile not in ACCELERATOR_PROFILES:
        return 1
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def tf32_for(profile: str) -> bool:
    """Whether CUDA computes the float32 matrix products of `profile` in TF32 (inputs rounded to 10 mantissa bits,
    float32 accumulation), where bf16 autocast is off (`amp=False`) or leaves a product in float32. The accelerator
    profiles do: by its specification an H100 multiplies in TF32 several times faster than in float32, and their
    numbers are compared with the papers', not bit for bit with the CPU's (cuDNN's convolutions use TF32 by torch's
    default already). `smoke` and `cpu` keep torch's defaults; they run on the CPU, which this never touches."""
    return profile in ACCELERATOR_PROFILES


def device_for(profile: str) -> torch.device:
    """CUDA for the accelerator profiles (under torchrun, each rank's own GPU); `smoke` and `cpu` stay on the CPU so
    their numbers are the same on every machine."""
    accelerated = profile in ACCELERATOR_PROFILES and torch.cuda.is_available()
    return local_device(torch.device("cuda" if accelerated else "cpu"))


def settings(per_profile: dict, profile: str) -> dict:
    """The settings a notebook declared for `profile`; every profile must be declared."""
    missing = [p for p in PROFILES if p not in per_profile]
    if missing:
        raise ValueError(f"settings lack profile(s) {missing}; every one of {PROFILES} needs an entry")
    return per_profile[resolve(profile)]
