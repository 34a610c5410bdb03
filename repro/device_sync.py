"""When a hot loop may read the device from the host, and how often the sync-free loops look.

A host read of a tensor the device computed (`.item()`, `bool()` or an `if` on a tensor, `nonzero`, indexing with a
boolean mask, `torch.equal`) makes the host wait until the device has run every kernel queued before it: the queue
drains, and the device idles while the host launches the next kernels. On the CPU the host is the device and such a
read costs nothing. So the loops that run per solver iteration or per ponder step (`repro.fixed_point`'s solvers, the
FPSA solve, ACT, AdaTape's tape reading) have two forms:

- on the CPU, the data-dependent one: finished examples leave the batch (FPSA's active set) and a loop ends the moment
  every example is done, which saves real compute; the committed reference results were made with it;
- on any other device, a sync-free one: every example is computed every iteration, a finished one frozen by
  `torch.where` with its values of the iteration it finished at, so the outputs equal the data-dependent form's up to
  rounding, and "is everyone done?" is asked only every `EXIT_CHECK_EVERY` iterations.

`sync_free(device)` decides which; `forced_sync_free()` runs the sync-free form on the CPU too, which is how the
tests check that both forms agree and that the sync-free one does not read the device per iteration
(`HostReadCounter`).
"""

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

EXIT_CHECK_EVERY = 4
"""Iterations between two all-done checks of a sync-free loop. The study's FPSA solves take 2-9 refinement steps
(the S6 medians of README section 11), ACT at most 8 steps, so a check every 4 iterations costs at most 3 iterations
that change nothing (the finished examples are frozen) while reading the device 4x less often than every iteration;
a check every iteration would be the per-iteration read this form exists to avoid, none at all would run every
solve to its cap (32 FPSA evaluations for a median of 4-7)."""

_FORCED: ContextVar[bool] = ContextVar("forced_sync_free", default=False)


def sync_free(device: torch.device) -> bool:
    """Whether loops on `device` must not read it per iteration: every device but the CPU, and the CPU inside
    `forced_sync_free()`."""
    return device.type != "cpu" or _FORCED.get()


@contextmanager
def forced_sync_free():
    """Run the sync-free form of every loop inside the block, on the CPU as well (for tests and the benchmark)."""
    token = _FORCED.set(True)
    try:
        yield
    finally:
        _FORCED.reset(token)


def exit_check_due(iterations: int) -> bool:
    """Whether a sync-free loop that has run `iterations` iterations asks now whether every example is done."""
    return iterations % EXIT_CHECK_EVERY == 0


def evaluations_needed(steps: torch.Tensor, evaluation: int, cap: int, tol: float) -> int | None:
    """The evaluations a data-dependent solve would have run, once a sync-free one can tell; None while it goes on.

    `steps` (batch,) holds each example's evaluation of convergence and `cap` for one still open, after `evaluation`
    evaluations of at most `cap`. The data-dependent solve stops at the first evaluation where every example is done,
    or at the cap: that is max(steps). It is read (one wait for the device) only when `exit_check_due` and at the cap,
    and never under `tol` 0, where no example converges."""
    if evaluation == cap and tol == 0:
        return cap
    if tol == 0 or (evaluation < cap and not exit_check_due(evaluation)):
        return None
    needed = int(steps.max())
    return needed if needed <= evaluation else None


HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
              torch.ops.aten.masked_select.default, torch.ops.aten.equal.default}
"""Operators that make the host wait for a value the device computed: a scalar read (`.item()`, `bool()`, `int()` of
a tensor, an `if` on one), a comparison whose answer is a Python bool, and the ops whose output size depends on the
data."""
MASK_INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default, torch.ops.aten.index_put_.default,
                 torch.ops.aten._index_put_impl_.default}
"""Indexing ops that turn a boolean index into positions (`nonzero`) first, reading the device."""
COPIES_TO_HOST = {torch.Tensor.tolist, torch.Tensor.numpy}
"""Tensor methods that copy to host memory: on a device a read, on the CPU a call that dispatches no operator at all
(so `HostReadCounter` counts them at the Python level)."""


def reads_the_device(func, args) -> bool:
    """Whether the ATen operator `func(*args)` waits for the device: one of `HOST_READS`, or indexing with a boolean
    mask (its output size, or the positions it writes, are the mask's count)."""
    if func in HOST_READS:
        return True
    return func in MASK_INDEXING and any(
        index is not None and index.dtype in (torch.bool, torch.uint8) for index in args[1])


class _Operators(TorchDispatchMode):
    def __init__(self, counter: "HostReadCounter"):
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counter.operators += 1
        self.counter.reads += reads_the_device(func, args)
        return func(*args, **(kwargs or {}))


class _Copies(TorchFunctionMode):
    def __init__(self, counter: "HostReadCounter"):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.counter.reads += func in COPIES_TO_HOST
        return func(*args, **(kwargs or {}))


class HostReadCounter:
    """Counts, while active, the ATen operators that reach a kernel (forward and backward: counted below autograd,
    so a composite op counts as its parts) and, among them and the `COPIES_TO_HOST` calls, the host reads: on an
    accelerator each is a synchronisation that stalls the queue of kernels. On the CPU it counts the reads a device
    run would make, wherever the loops run the form that device would (`forced_sync_free`)."""

    def __init__(self):
        self.operators = self.reads = 0
        self._modes = (_Copies(self), _Operators(self))

    def __enter__(self):
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
