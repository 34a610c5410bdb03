"""Measuring the compute a model spends: FLOPs, latency, the memory a training step keeps for
backward, and how time scales with sequence length.

- `count_flops`: FLOPs of one call, counted by `torch.utils.flop_counter.FlopCounterMode` on the
  operations actually dispatched, so an adaptive model is charged for the iterations it ran
  (FPSA drops finished examples from the batch). Only matrix products are counted (linear layers,
  batched matmuls, attention: 2 m n k per product), the usual convention for GFLOPs;
  element-wise work (softmax, norms, the solver's residuals) is not.
- `time_forward`: median and interquartile range of the wall time of a call over repeats after
  warm-up, synchronising CUDA around every call.
- `training_memory`: the bytes of the tensors autograd saves for backward during one training
  step (`torch.autograd.graph.saved_tensors_hooks`; deterministic and device-independent up to the
  attention kernel's own buffers), plus the CUDA peak allocation of forward and backward on CUDA.
- `fit_power_law`: time ~ c length^slope by least squares in log-log space, with the slope's
  standard error.
- `forward_cost` and `length_sweep`: the above for a vanilla model and its FPSA twin, as the
  scaling notebook (10) and `benchmarks/fpsa_scaling.py` use them; `reference_encoder` is the
  random-init encoder both time beyond a checkpoint's positions.
"""

import math
import statistics
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from repro.models.looped import LoopedConfig, LoopedTransformer
from repro.models.self_transformer import fixed_point_aux, fixed_point_layers
from repro.seeding import torch_seed


def device_of(name: str | torch.device) -> torch.device:
    """A torch device that exists here; one clear error for an unknown or unavailable one."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use 'cpu' or 'cuda' (optionally 'cuda:<index>')") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: only 'cpu' and 'cuda' are measured")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use 'cpu'")
    return device


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels but not the CPU one that
# `scaled_dot_product_attention` dispatches to, which it would count as 0 FLOPs.
CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
                 torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops}


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of the matrix products (forward and any backward) that `call()` dispatches."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        call()
    return counter.get_total_flops()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Latency:
    """Wall seconds of one call: median and quartiles over `repeats` timed calls."""
    median: float
    q25: float
    q75: float
    repeats: int

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25


def time_forward(call: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> Latency:
    """Time `call()` `repeats` times after `warmup` untimed calls (allocator, kernel selection and
    caches settle in those); CUDA is synchronised before and after each call, so the time is the
    device's work, not the launch."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        call()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    q25, q75 = (float(q) for q in np.quantile(times, [0.25, 0.75]))
    return Latency(statistics.median(times), q25, q75, repeats)


@dataclass
class TrainingMemory:
    saved_bytes: int
    """Bytes of the distinct storages autograd saved for backward, parameters excluded."""
    cuda_peak_bytes: int | None
    """Peak CUDA allocation during forward and backward above what was allocated before; None on CPU."""


def training_memory(loss: Callable[[], torch.Tensor], model: nn.Module, device: torch.device) -> TrainingMemory:
    """Run one training step, `loss().backward()`, and measure what it kept for backward.

    Counted once the forward is done: only what the graph still holds then (a branch that does not
    reach the loss is freed during the forward, and its storage may be reused, so counting inside
    the hook would be neither right nor deterministic). Storages are counted once however many
    views of them are saved, and the parameters (held whether or not a step runs) are left out, so
    the count is the activation memory of the step. Gradients are cleared before and after, so
    every measurement starts from the same allocation.
    """
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    packed: list[weakref.ref] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        packed.append(weakref.ref(tensor))  # the graph holds the tensor returned here while it lives
        return tensor

    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = loss()
    saved = {storage.data_ptr(): storage.nbytes()
             for storage in (tensor.untyped_storage() for tensor in (ref() for ref in packed) if tensor is not None)
             if storage.data_ptr() not in parameters}
    value.backward()
    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    model.zero_grad(set_to_none=True)
    return TrainingMemory(sum(saved.values()), peak)


@dataclass
class PowerLaw:
    """time = prefactor * length ** slope, fitted in log-log space."""
    slope: float
    stderr: float
    """Standard error of the slope (ordinary least squares on log time against log length)."""
    prefactor: float


def fit_power_law(lengths: Sequence[float], times: Sequence[float]) -> PowerLaw:
    """Least-squares fit of log time = log c + slope log length, with the slope's standard error.

    Needs at least three distinct lengths: with two the line passes through both points and its
    error is undefined.
    """
    if len(lengths) != len(times):
        raise ValueError(f"{len(lengths)} lengths but {len(times)} times")
    if min(lengths, default=0) <= 0 or min(times, default=0) <= 0:
        raise ValueError("lengths and times must be positive for a log-log fit")
    if len(set(lengths)) < 3:
        raise ValueError(f"a slope with an error needs at least 3 distinct lengths, got {sorted(set(lengths))}")
    x, y = np.log(np.asarray(lengths, dtype=float)), np.log(np.asarray(times, dtype=float))
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (intercept + slope * x)
    variance = float(residuals @ residuals) / (len(x) - 2)
    stderr = math.sqrt(variance / float(((x - x.mean()) ** 2).sum()))
    return PowerLaw(float(slope), stderr, float(math.exp(intercept)))


@dataclass
class ForwardCost:
    flops: int
    latency: Latency | None
    """None where no repeats were asked for."""
    iterations: torch.Tensor | None
    """(layers, batch) evaluations of the fixed-point map per FPSA layer and example; None without FPSA."""


def forward_cost(model: nn.Module, inputs: dict, device: torch.device, repeats: int = 0,
                 warmup: int = 0) -> ForwardCost:
    """FLOPs (and, with `repeats`, latency) of `model(**inputs)` without gradients, and the
    iterations its FPSA layers ran on these inputs (read from the counted forward).

    The counted forward runs first and already warms the allocator and caches; `warmup` adds
    untimed forwards beyond it (CUDA's kernel selection may want a few).
    """
    with torch.no_grad():
        call = lambda: model(**inputs)  # noqa: E731 - the same call is counted and timed
        flops = count_flops(call)
        iterations = fixed_point_aux(model)["iterations"].cpu() if fixed_point_layers(model) else None
        latency = time_forward(call, device, repeats, warmup) if repeats else None
    return ForwardCost(flops, latency, iterations)


def length_sweep(vanilla: nn.Module, fixed_point: nn.Module, inputs: Callable[[int], dict],
                 lengths: Iterable[int], device: torch.device, repeats: int, warmup: int = 0,
                 cap: int | None = None) -> pd.DataFrame:
    """One row per sequence length: latency and FLOPs of the vanilla model and of its FPSA twin on
    the same `inputs(length)`, their ratios, and the FPSA iterations (mean over layers and
    examples, and the fraction that hit `cap`, where given)."""
    lengths = list(lengths)
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be positive integers, got {lengths}")
    if not fixed_point_layers(fixed_point):
        raise ValueError("`fixed_point` has no FPSA layers: swap its attention (swap_self_attention / "
                         "swap_bert_attention) first")
    rows = []
    for length in lengths:
        batch = inputs(length)
        base = forward_cost(vanilla, batch, device, repeats, warmup)
        fpsa = forward_cost(fixed_point, batch, device, repeats, warmup)
        iterations = fpsa.iterations.float()
        rows.append({"length": length,
                     "vanilla ms": 1e3 * base.latency.median, "vanilla IQR ms": 1e3 * base.latency.iqr,
                     "FPSA ms": 1e3 * fpsa.latency.median, "FPSA IQR ms": 1e3 * fpsa.latency.iqr,
                     "time ratio": fpsa.latency.median / base.latency.median,
                     "vanilla GFLOPs": base.flops / 1e9, "FPSA GFLOPs": fpsa.flops / 1e9,
                     "FLOPs ratio": fpsa.flops / base.flops,
                     "mean iterations": iterations.mean().item(),
                     "at cap": (iterations >= cap).float().mean().item() if cap else float("nan")})
    return pd.DataFrame(rows)


def reference_encoder(vocab: int, layers: int = 6, width: int = 384, heads: int = 12, mlp_hidden: int = 1536,
                      max_offset: int = 128, seed: int = 0) -> LoopedTransformer:
    """A randomly initialised MiniLM-shaped encoder for lengths beyond a checkpoint's positions.

    `layers` untied pre-LN `EncoderBlock`s with a clipped relative position bias (no position
    table, so any length runs): the looped transformer's untied reference with neither recall nor
    outer norm is exactly that stack. Random weights test the cost mechanics only, not what a
    trained model would spend. Called as `model(tokens=...)`, in eval mode.
    """
    config = LoopedConfig(vocab=vocab, outputs=2, iterations=layers, width=width, heads=heads,
                          mlp_hidden=mlp_hidden, max_offset=max_offset, recall="none", outer_norm="none",
                          untied=True)
    with torch_seed(seed):
        return LoopedTransformer(config).eval()
