"""Data parallelism under torchrun: the process group, each rank's share of a global batch, and the collectives the
training loop needs.

torchrun starts one process per device and tells each its place through the environment (`RANK`, `LOCAL_RANK`,
`WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`). Without a `WORLD_SIZE` above one nothing here is used and training runs in
one process, as it always did.

Why the ranks' step is the one-process step: every rank draws the same global batch from the stream and keeps its own
equal, contiguous share; DistributedDataParallel averages the ranks' gradients, so for a loss that is a mean over the
examples of the batch the average of the shares' gradients is the gradient of the global batch (to float rounding;
tests/test_distributed.py). Two kinds of loss are only approximated that way, as in every data-parallel run: a mean
over a varying number of labelled tokens (`repro.losses.token_loss`) weighs each share by its own count, and a
contrastive loss sees only its own share's negatives. Every rank trains under the same random stream, so a draw made
once per batch (the progressive loss's iteration counts) is the one-process draw; a draw per element (dropout) repeats
the same pattern on every share, and BatchNorm normalises each share by its own statistics.
"""

import atexit
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

GROUP_ENV = "REPRO_PROCESS_GROUP"
"""A name for this process's group on torchrun's store. One torchrun launch of `repro.reproduce` runs the notebooks'
kernels one after another on each rank, each kernel with a process group of its own; without a name per kernel the keys
of the previous groups linger on the store and a later rendezvous hangs (measured: the third one did)."""

TIMEOUT_ENV = "REPRO_COLLECTIVE_TIMEOUT_S"
"""Seconds a rank waits at a collective before it fails (default 1,800, torch's gloo default). A rank whose notebook
failed on its own leaves the others waiting there, so a launch that would rather fail early sets it lower; it must
stay above rank 0's longest evaluation, which the other ranks wait through."""


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process is one of several that torchrun started."""
    return world_size() > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0, the one that evaluates, logs, checkpoints and writes; a process started without torchrun is it too."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This rank's device: under torchrun, CUDA device `LOCAL_RANK`, made the current one so that code naming plain
    "cuda" lands on it too; otherwise `device` itself."""
    if device.type != "cuda" or not launched():
        return device
    index = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def start(device: torch.device) -> None:
    """Join this launch's process group, once per process (later calls do nothing): NCCL for CUDA, gloo for the CPU."""
    if dist.is_initialized():
        return
    store, this_rank, size = next(dist.rendezvous("env://"))
    if os.environ.get(GROUP_ENV):
        store = dist.PrefixStore(os.environ[GROUP_ENV], store)
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))
    if timeout.total_seconds() <= 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {os.environ[TIMEOUT_ENV]!r}")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=this_rank, world_size=size,
                            timeout=timeout)
    atexit.register(dist.destroy_process_group)


def shard(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """This rank's share of a global batch: of B examples over W ranks, rank r keeps rows [r B/W, (r + 1) B/W) of
    every tensor (views, no copy). Equal shares are what make the averaged gradient the global batch's."""
    size, ranks = len(batch[0]), world_size()
    uneven = {len(t) for t in batch} - {size}
    if uneven:
        raise ValueError(f"cannot split a batch whose tensors have {sorted({size} | uneven)} rows over ranks: every "
                         "tensor of a training batch needs one row per example")
    if size % ranks:
        raise ValueError(f"a global batch of {size} examples does not split evenly over {ranks} processes "
                         f"(WORLD_SIZE={ranks}); use a batch size divisible by the process count")
    share = size // ranks
    return tuple(t[rank() * share:(rank() + 1) * share] for t in batch)


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean over the ranks of a tensor (detached): a sum, then a division, since gloo has no average."""
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


def from_main(value):
    """Rank 0's `value` (any picklable object) on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class LossOf(nn.Module):
    """`loss_fn(model, batch)` as a module's forward. DDP reduces the gradients of what runs through its own forward,
    and the study's losses call model methods other than forward (the progressive loss calls `embed`, `iterate` and
    `readout`), which a DDP wrapper does not pass on."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


# DEVIATION: [ddp-approximations] dropout masks repeat over the shares, BatchNorm normalises each share, contrastive
# negatives are the share's own.
def data_parallel(model: nn.Module, loss_fn, device: torch.device) -> DistributedDataParallel:
    """`batch -> loss` on this rank's share, whose backward all-reduces the gradients into `model`'s parameters.

    Building it copies rank 0's parameters and buffers to every rank. Unused parameters are searched for on every step:
    the study's models are many and adaptive, and any parameter that one step's graph leaves out would otherwise stop
    DDP with an error."""
    return DistributedDataParallel(LossOf(model, loss_fn), device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)
