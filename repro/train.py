"""The one training loop of the study.

AdamW with linear warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA, a tqdm
progress bar, periodic evaluation, checkpoints that resume to the same result, and a clear stop
when the loss stops being finite. Data come from a stream whose `batch_at(step)` is a pure
function of the step, so a resumed run sees exactly the batches it would have seen.

No step waits for the device: the losses stay there and are read in one go at evaluations, checkpoints and every
`LOSS_READ_EVERY` steps (`LossWindow`), and on CUDA the next batch is built in pinned memory by a background thread
while the device runs this step (`device_batches`).

Launched by torchrun on several processes, it trains data-parallel (`repro.distributed`): every rank draws the global
batch of the step and trains on its own share, and only rank 0 evaluates, shows progress and checkpoints. A checkpoint
holds the unwrapped model's state, so a run resumes at any process count.
"""

import enum
import functools
import hashlib
import inspect
import json
import marshal
import math
import time
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path, PurePath
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
from tqdm import tqdm  # text bars: `make reproduce` streams them to the terminal (a widget it could not)

from repro import distributed
from repro.config import StrictConfig
from repro.seeding import derive, torch_seed


class BatchStream(Protocol):
    """`batch_at(step)` is a pure function of the step and of the stream's type and public attributes, which
    `run_fingerprint` reads as the stream's identity: they must hold everything that decides the batches."""

    def batch_at(self, step: int): ...


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops instead of continuing on garbage."""


class StaleCheckpointWarning(UserWarning):
    """A checkpoint was written by a run with another fingerprint: it is not resumed, training starts afresh."""


@dataclass
class TrainConfig(StrictConfig):
    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    clip_norm: float = 1.0
    """inf: no clipping."""
    eval_every: int = 0
    """0: evaluate at the last step only."""
    checkpoint_every: int = 0
    """0: checkpoint at the last step only."""
    amp: bool = True
    seed: int = 0
    progress: bool = True

    RANGES = {"steps": "[1, inf)", "lr": "(0, inf)", "weight_decay": "[0, inf)", "warmup_steps": "[0, steps]",
              "min_lr_ratio": "[0, 1]", "clip_norm": "(0, inf]", "eval_every": "[0, inf)",
              "checkpoint_every": "[0, inf)"}


@dataclass
class TrainResult:
    history: list[dict]
    """One row per evaluation: step, learning rate, mean training loss since the previous row,
    and the evaluation metrics."""
    wall_seconds: float


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """lr(step) / lr: linear warm-up to 1, then cosine decay to `min_lr_ratio` at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the installed torch has one for `device`: on CPU the speed issue
    measured the default per-parameter loop at 9x the fused update on a MiniLM step, and the two agree to
    float rounding (tests/test_train.py)."""
    fused = device.type in _get_fused_kernels_supported_devices()
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def steps_to_criterion(history: list[dict], metric: str, threshold: float) -> int | None:
    """The first evaluated step whose `metric` reached `threshold`, or None when no evaluation did.

    Its resolution is the evaluation cadence, so it is an upper bound on the step the criterion was met."""
    if history and metric not in history[0]:
        raise KeyError(f"no metric {metric!r} in the history; it has {sorted(history[0])}")
    return next((row["step"] for row in history if row[metric] >= threshold), None)


def to_device(batch, device: torch.device):
    """The batch on `device`; a copy from pinned host memory (`device_batches`) does not block the host."""
    return tuple(t.to(device, non_blocking=True) for t in batch)


def device_batches(data: BatchStream, start: int, stop: int, device: torch.device,
                   prepare: Callable | None = None) -> Iterator[tuple]:
    """`data.batch_at(step)`, through `prepare` where given, on `device` for the steps start .. stop - 1.

    On CUDA one background thread builds the next step's batch in pinned host memory while the device runs this one,
    and the copy to the device does not block the host; elsewhere each batch is built in turn (on the CPU a second
    thread would take the core from the training). `batch_at` is a pure function of the step, so prefetching changes
    when a batch is built, never what it holds: results and resumption are those of building it in turn."""
    build = data.batch_at if prepare is None else lambda step: prepare(data.batch_at(step))
    if device.type != "cuda":
        for step in range(start, stop):
            yield to_device(build(step), device)
        return
    pinned = lambda step: tuple(t.pin_memory() if t.device.type == "cpu" else t for t in build(step))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch") as pool:
        following = pool.submit(pinned, start) if start < stop else None
        for step in range(start, stop):
            batch = following.result()
            if step + 1 < stop:
                following = pool.submit(pinned, step + 1)
            yield to_device(batch, device)


LOSS_READ_EVERY = 50
"""Steps between two reads of the training loss at most, where evaluations and checkpoints come rarer: each read
waits for the device, and a loss that stopped being finite is caught at the next read, this many steps late at
worst."""


class LossWindow:
    """The training losses since the last evaluation row. A step leaves its loss on the device (`add`); `read` turns
    those pending into floats all at once, at evaluations, checkpoints, every `LOSS_READ_EVERY` steps and the end, so
    no step waits for the device. The floats are exactly those `.item()` gave step by step, and a loss that is not
    finite raises `NonFiniteLossError` naming its step, as a check at every step would have."""

    def __init__(self, values: list[float], description: str):
        self.values, self.description = list(values), description
        self.pending: list[tuple[int, float, torch.Tensor]] = []  # (step, learning rate, loss)

    def add(self, step: int, learning_rate: float, loss: torch.Tensor) -> None:
        self.pending.append((step, learning_rate, loss.detach().reshape(())))

    def read(self) -> list[float]:
        """The losses of the window as floats, pending ones included."""
        if not self.pending:
            return self.values
        losses = torch.stack([loss for _, _, loss in self.pending]).tolist()
        pending, self.pending = self.pending, []
        for (step, learning_rate, _), value in zip(pending, losses):
            if not math.isfinite(value):
                last = f"{self.values[-1]:.4g}" if self.values else "none yet"
                raise NonFiniteLossError(
                    f"{self.description}: loss became {value} at step {step} (last finite loss {last}, learning rate "
                    f"{learning_rate:.3g}); lower the learning rate or clip harder")
            self.values.append(value)
        return self.values


def train(model: nn.Module, loss_fn: Callable, data: BatchStream, config: TrainConfig,
          evaluate: Callable[[nn.Module], dict] | None = None, checkpoint: Path | None = None,
          device: torch.device = torch.device("cpu"), description: str = "train") -> TrainResult:
    """Train `model` in place on `loss_fn(model, batch) -> scalar loss`.

    With `checkpoint`, state is saved every `checkpoint_every` steps and at the end, and an
    existing checkpoint of the same configuration is resumed (a finished one returns at once).
    Under torchrun every rank returns the same history, the one rank 0 evaluated.
    """
    parallel = distributed.launched()
    if parallel:
        device = distributed.local_device(device)
        distributed.start(device)
    main = distributed.is_main()
    model.to(device).train()
    optimizer = adamw(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    fingerprint = None if checkpoint is None else run_fingerprint(model, loss_fn, data, config)
    started = time.time()
    history, step, window = [], 0, []
    with torch_seed(derive("train", config.seed), device):
        if checkpoint is not None:
            state = read_checkpoint(Path(checkpoint), fingerprint, description) if main else None
            if parallel:  # rank 0 alone reads it, so the other ranks need no shared file system
                state = distributed.from_main(state)
            if state is not None:
                step, history, window = restore(state, model, optimizer, schedule, device)
        losses = LossWindow(window, description)
        step_loss = distributed.data_parallel(model, loss_fn, device) if parallel else functools.partial(loss_fn, model)
        progress = tqdm(total=config.steps, initial=step, desc=description, disable=not (config.progress and main),
                        leave=False, mininterval=10.0)
        batches = device_batches(data, step, config.steps, device, distributed.shard if parallel else None)
        try:
            for batch in batches:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"):
                    loss = step_loss(batch)
                # The global batch's loss, the mean of the ranks' equal shares: every rank reads the same values at
                # the same steps, so a non-finite one stops them all together.
                losses.add(step, schedule.get_last_lr()[0], distributed.mean(loss) if parallel else loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                schedule.step()
                step += 1
                progress.update()
                checkpoint_due = checkpoint is not None and (
                    step == config.steps or (config.checkpoint_every and step % config.checkpoint_every == 0))
                # On every rank, rank 0's checkpoints included: a rank that raised alone would leave the others
                # waiting at the next collective.
                if step % LOSS_READ_EVERY == 0 or checkpoint_due:
                    losses.read()
                if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                    history.append(shared_evaluation(model, evaluate, step, optimizer, losses.read(), device)
                                   if parallel else evaluation_row(model, evaluate, step, optimizer, losses.read()))
                    progress.set_postfix(history[-1], refresh=False)
                    losses = LossWindow([], description)
                if main and checkpoint_due:
                    save_checkpoint(Path(checkpoint), fingerprint, step, history, losses.read(), model, optimizer,
                                    schedule, device)
        except Exception:
            # A step after a non-finite loss may fail on its garbage before the next read: the loss is the cause.
            losses.read()
            raise
        finally:
            batches.close()
        progress.close()
    model.eval()
    return TrainResult(history, time.time() - started)


def shared_evaluation(model: nn.Module, evaluate, step: int, optimizer, window: list[float],
                      device: torch.device) -> dict:
    """Rank 0's evaluation row on every rank, and rank 0's random state with it: an evaluation that drew random numbers
    moved rank 0's stream alone, and the ranks must go on drawing what one process would. An evaluation that fails on
    rank 0 stops every rank at once with its message, rather than leaving the others waiting at the next collective
    until the process group's timeout."""
    row, failure = None, None
    if distributed.is_main():
        try:
            row = evaluation_row(model, evaluate, step, optimizer, window)
        except Exception as error:  # re-raised below on rank 0 itself, with its traceback
            failure = error
    states = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    row, message, (cpu_state, cuda_state) = distributed.from_main(
        (row, None if failure is None else f"{type(failure).__name__}: {failure}", states))
    if failure is not None:
        raise failure
    if message is not None:
        raise RuntimeError(f"rank 0's evaluation at step {step} failed ({message}); every rank stops with it")
    torch.set_rng_state(cpu_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state(cuda_state, device)
    return row


LISTED_ENTRIES = 16
"""A list, tuple, set or dict whose description has more entries than this is fingerprinted by one digest, so a
mismatch message stays short."""
MAX_DIFFERENCES_SHOWN = 8


def run_fingerprint(model: nn.Module, loss_fn: Callable, data: BatchStream, config: TrainConfig) -> dict:
    """{field: value} of everything that shapes a training run, so a checkpoint resumes only the run it came from.

    - config.*: every `TrainConfig` field (showing a progress bar or not changes nothing);
    - model.*: its class, its dataclass config where it has one, its architecture (repr), the names, shapes and
      dtypes of its state and a digest of the initial weights;
    - data.*: the stream's type and public attributes, recursively (a tensor by its dtype, shape and sha256);
    - loss.*: its qualified name and bound arguments (functools.partial arguments, closure cells, defaults);
    - code.*: the sha256 of the source of every module that defines a class of the model or a class or function
      the loss and data are made of, and the torch version.
    """
    fingerprint = {f"config.{name}": value for name, value in asdict(config).items() if name != "progress"}
    code, seen = set(), {}
    fingerprint["model"] = qualified_name(type(model))
    if is_dataclass(getattr(model, "config", None)):
        describe(model.config, "model.config", fingerprint, code, seen)
    state = model.state_dict()
    fingerprint["model.architecture"] = sha256(repr(model).encode())
    shapes = [(key, list(tensor.shape), str(tensor.dtype)) for key, tensor in state.items()]
    fingerprint["model.state"] = sha256(json.dumps(shapes).encode())
    fingerprint["model.initial_weights"] = sha256(b"".join(tensor_digest(v).encode() for v in state.values()))
    code |= {type(module) for module in model.modules()}
    describe(data, "data", fingerprint, code, seen)
    describe(loss_fn, "loss", fingerprint, code, seen)
    return fingerprint | code_versions(code) | {"code.torch": torch.__version__}


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """'field: old -> new' for every field where two fingerprints differ."""
    absent = "(absent)"
    return [f"{key}: {old.get(key, absent)!r} -> {new.get(key, absent)!r}" for key in sorted(old.keys() | new.keys())
            if old.get(key, absent) != new.get(key, absent)]


def describe(value, name: str, into: dict, code: set, seen: dict) -> None:
    """Add to `into` the entries that identify `value` under `name` (`name.attribute`, `name[key]`), and to `code`
    the classes and functions whose source decides its behaviour. Raises a TypeError for a value it cannot read."""
    if value is None or isinstance(value, (bool, int, float, str)):
        into[name] = value
        return
    if isinstance(value, np.generic):  # a numpy scalar
        into[name] = value.item()
        return
    if isinstance(value, (torch.dtype, torch.device, enum.Enum, PurePath)):
        into[name] = repr(value)
        return
    if isinstance(value, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(value)
        into[name] = f"{tensor.dtype} {list(tensor.shape)} sha256:{tensor_digest(tensor)[:16]}"
        return
    if id(value) in seen:  # shared, or a cycle: named by where it was met first (held, so its id stays unique)
        into[name] = f"same as {seen[id(value)][0]}"
        return
    seen[id(value)] = (name, value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        items = value.items() if isinstance(value, dict) else \
            enumerate(sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value)
        parts = {}
        for key, item in items:
            describe(item, f"{name}[{key!r}]", parts, code, seen)
        if len(parts) > LISTED_ENTRIES:
            into[name] = f"{type(value).__name__} of {len(value)} sha256:{sha256(json.dumps(parts).encode())[:16]}"
        else:
            into[name] = type(value).__name__
            into.update(parts)
        return
    if isinstance(value, functools.partial):
        into[name] = "functools.partial"
        for part in ("func", "args", "keywords"):
            describe(getattr(value, part), f"{name}.{part}", into, code, seen)
        return
    if isinstance(value, types.MethodType):
        describe(value.__func__, name, into, code, seen)
        describe(value.__self__, f"{name}.__self__", into, code, seen)
        return
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        into[name] = qualified_name(value)
        code.add(value)
        if isinstance(value, types.FunctionType):
            cells = zip(value.__code__.co_freevars, value.__closure__ or ())
            bound = {variable: cell.cell_contents for variable, cell in cells}
            bound |= {"__defaults__": value.__defaults__, "__kwdefaults__": value.__kwdefaults__}
            for variable, content in bound.items():
                if content is not None:
                    describe(content, f"{name}.{variable}", into, code, seen)
        return
    if isinstance(value, nn.Module):
        state = value.state_dict()
        into[name] = f"{qualified_name(type(value))} sha256:" + sha256(
            (repr(value) + "".join(tensor_digest(v) for v in state.values())).encode())[:16]
        code |= {type(module) for module in value.modules()}
        return
    if is_dataclass(value):
        attributes = {f.name: getattr(value, f.name) for f in fields(value)}
    elif hasattr(value, "__dict__"):
        attributes = {key: item for key, item in vars(value).items() if not key.startswith("_")}
    else:
        raise TypeError(f"cannot fingerprint {name}: a {qualified_name(type(value))} has no fields or attributes to "
                        "identify it by")
    into[name] = qualified_name(type(value))
    code.add(type(value))
    for key, item in attributes.items():
        describe(item, f"{name}.{key}", into, code, seen)


def code_versions(objects: set) -> dict[str, str]:
    """{"code.<module>": sha256} of the source files that define `objects`; a function without a file (typed at a
    prompt) is versioned by its compiled code. torch's own modules are versioned by `code.torch`; a compiled
    built-in has no source to hash."""
    digests: dict[str, set] = {}
    for obj in objects:
        module = getattr(obj, "__module__", None) or ""
        if module.partition(".")[0] == "torch":
            continue
        try:
            source = inspect.getsourcefile(obj)
        except TypeError:  # compiled
            continue
        if source is not None and Path(source).is_file():
            digests.setdefault(module, set()).add(sha256(Path(source).read_bytes()))
        elif isinstance(obj, types.FunctionType):
            digests.setdefault(module, set()).add(sha256(marshal.dumps(obj.__code__)))
    # A notebook's cells are files of their own, all of module __main__.
    return {f"code.{module}": sha256("".join(sorted(found)).encode()) for module, found in sorted(digests.items())}


def qualified_name(obj) -> str:
    return f"{getattr(obj, '__module__', None) or type(obj).__module__}.{getattr(obj, '__qualname__', repr(obj))}"


def tensor_digest(tensor: torch.Tensor) -> str:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return sha256(flat.view(torch.uint8).numpy() if flat.numel() else b"")


def sha256(content) -> str:
    return hashlib.sha256(content).hexdigest()


def evaluation_row(model: nn.Module, evaluate, step: int, optimizer, window: list[float]) -> dict:
    row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "train_loss": sum(window) / len(window)}
    if evaluate is not None:
        model.eval()
        with torch.no_grad():
            row.update(evaluate(model))
        model.train()
    return row


def save_checkpoint(path: Path, fingerprint: dict, step: int, history: list, window: list, model, optimizer,
                    schedule, device: torch.device) -> None:
    """Written to a temporary file first, so a kill mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "step": step, "history": history, "window": window, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": torch.get_rng_state(), "cuda_rng": cuda_random_state(device)}
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def read_checkpoint(path: Path, fingerprint: dict, description: str) -> dict | None:
    """The state saved at `path`; None where there is none, or, with a `StaleCheckpointWarning` naming what differs,
    where another run wrote it."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    differences = fingerprint_differences(state.get("fingerprint", {}), fingerprint)
    if differences:
        shown = "; ".join(differences[:MAX_DIFFERENCES_SHOWN])
        more = len(differences) - MAX_DIFFERENCES_SHOWN
        warnings.warn(f"{description}: not resuming {path}, which another run wrote ({len(differences)} fingerprint "
                      f"field(s) differ: {shown}{f'; and {more} more' if more > 0 else ''}); starting afresh, and "
                      "this run's checkpoints replace it", StaleCheckpointWarning, stacklevel=3)
        return None
    return state


def cuda_random_state(device: torch.device) -> torch.Tensor | None:
    """The random state of the training device alone. Every rank trains under the same stream (`shared_evaluation`
    keeps it so), so rank 0's device state is every rank's own; the states of the other devices rank 0 can see are
    ones it never drew from, and restoring those on all ranks would give each rank another stream than it had."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def restore(state: dict, model, optimizer, schedule, device: torch.device) -> tuple[int, list, list]:
    """(step, history, loss window) of a checkpoint's `state`, restored into `model`, `optimizer` and `schedule`, and
    the random state into this process and its training `device` (on every rank, its own device)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"])
    if device.type == "cuda":
        if state["cuda_rng"] is None:
            raise ValueError("the checkpoint was written by a run on the CPU and holds no CUDA random state; resume "
                             "it on the CPU, or delete it to start afresh on CUDA")
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return state["step"], state["history"], state["window"]
