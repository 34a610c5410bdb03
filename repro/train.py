"""The one training loop of the study.

AdamW with linear warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA, a tqdm
progress bar, periodic evaluation, checkpoints that resume to the same result, and a clear stop
when the loss stops being finite. Data come from a stream whose `batch_at(step)` is a pure
function of the step, so a resumed run sees exactly the batches it would have seen.
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
from tqdm import tqdm  # text bars: `make reproduce` streams them to the terminal (a widget it could not)

from repro.config import StrictConfig
from repro.seeding import derive, torch_seed


class BatchStream(Protocol):
    def batch_at(self, step: int): ...


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops instead of continuing on garbage."""


@dataclass
class TrainConfig(StrictConfig):
    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    clip_norm: float = 1.0
    eval_every: int = 0
    checkpoint_every: int = 0
    amp: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        if self.steps < 1 or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"need steps >= 1 and 0 <= warmup_steps <= steps, got {self.steps}, {self.warmup_steps}")


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
    return tuple(t.to(device, non_blocking=True) for t in batch)


def train(model: nn.Module, loss_fn: Callable, data: BatchStream, config: TrainConfig,
          evaluate: Callable[[nn.Module], dict] | None = None, checkpoint: Path | None = None,
          device: torch.device = torch.device("cpu"), description: str = "train") -> TrainResult:
    """Train `model` in place on `loss_fn(model, batch) -> scalar loss`.

    With `checkpoint`, state is saved every `checkpoint_every` steps and at the end, and an
    existing checkpoint of the same configuration is resumed (a finished one returns at once).
    """
    model.to(device).train()
    optimizer = adamw(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    # Everything that changes the result; showing a progress bar or not does not.
    fingerprint = {"config": {k: v for k, v in asdict(config).items() if k != "progress"},
                   "model": type(model).__name__,
                   "parameters": sum(p.numel() for p in model.parameters())}
    started = time.time()
    history, step, window = [], 0, []
    with torch_seed(derive("train", config.seed), device):
        if checkpoint is not None and Path(checkpoint).exists():
            step, history, window = load_checkpoint(Path(checkpoint), fingerprint, model, optimizer, schedule)
        progress = tqdm(total=config.steps, initial=step, desc=description, disable=not config.progress,
                        leave=False, mininterval=10.0)
        while step < config.steps:
            batch = to_device(data.batch_at(step), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"):
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                last = f"{window[-1]:.4g}" if window else "none yet"
                raise NonFiniteLossError(
                    f"{description}: loss became {loss.item()} at step {step} (last finite loss {last}, "
                    f"learning rate {schedule.get_last_lr()[0]:.3g}); lower the learning rate or clip harder")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            schedule.step()
            step += 1
            window.append(loss.item())
            progress.update()
            if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                history.append(evaluation_row(model, evaluate, step, optimizer, window))
                progress.set_postfix(history[-1], refresh=False)
                window = []
            if checkpoint is not None and (step == config.steps or
                                           (config.checkpoint_every and step % config.checkpoint_every == 0)):
                save_checkpoint(Path(checkpoint), fingerprint, step, history, window, model, optimizer, schedule)
        progress.close()
    model.eval()
    return TrainResult(history, time.time() - started)


def evaluation_row(model: nn.Module, evaluate, step: int, optimizer, window: list[float]) -> dict:
    row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "train_loss": sum(window) / len(window)}
    if evaluate is not None:
        model.eval()
        with torch.no_grad():
            row.update(evaluate(model))
        model.train()
    return row


def save_checkpoint(path: Path, fingerprint: dict, step: int, history: list, window: list, model, optimizer,
                    schedule) -> None:
    """Written to a temporary file first, so a kill mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "step": step, "history": history, "window": window, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_checkpoint(path: Path, fingerprint: dict, model, optimizer, schedule) -> tuple[int, list, list]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {path} was written by another configuration "
                         f"({state['fingerprint']} != {fingerprint}); delete it to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["step"], state["history"], state["window"]
