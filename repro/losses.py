"""The losses the study trains with, each a `loss_fn(model, batch)` for `repro.train.train` or a
task loss inside one, and `IGNORE`, the target of a token that carries no loss.
"""

from typing import Callable

import torch
from torch import nn


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy plus the model's own compute penalty (ponder cost, tape loss) where it has one."""
    inputs, labels = batch
    logits, aux = model(inputs)
    loss = nn.functional.cross_entropy(logits.float(), labels)
    return loss + aux["penalty"].mean() if "penalty" in aux else loss


IGNORE = -100
"""Target value of a token that carries no label (a start marker, a given sudoku cell)."""


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled tokens of (batch, tokens, classes) logits."""
    return nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def progressive_loss(max_iterations: int, alpha: float, task_loss: Callable = token_loss) -> Callable:
    """The loss of Bansal et al. (2022) for a looped model, as a `loss_fn` for `repro.train.train`.

    L = (1 - alpha) * task_loss(readout after `max_iterations` iterations, full backprop)
        + alpha * task_loss(readout after n + k iterations),
    with n ~ U{0, ..., M-1} iterations run without gradient and then k ~ U{1, ..., M-n} with it, so
    the second term teaches the loop to improve whatever state it is handed, not to count iterations.
    The model provides `embed`, `initial_state`, `iterate(z, e, start, count)` and `readout`.
    """
    if not 0 <= alpha <= 1 or max_iterations < 1:
        raise ValueError(f"need 0 <= alpha <= 1 and max_iterations >= 1, got {alpha}, {max_iterations}")

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        inputs, targets = batch
        e = model.embed(inputs)
        loss = torch.zeros((), device=e.device)
        if alpha < 1:
            z = model.iterate(model.initial_state(e), e, 0, max_iterations)
            loss = loss + (1 - alpha) * task_loss(model.readout(z), targets)
        if alpha > 0:
            # Drawn from the training loop's seeded generator, so a resumed run draws the same.
            n = int(torch.randint(0, max_iterations, ()))
            k = int(torch.randint(1, max_iterations - n + 1, ()))
            z = model.initial_state(e)
            if n:
                with torch.no_grad():
                    z = model.iterate(z, e, 0, n)
            z = model.iterate(z, e, n, k)
            loss = loss + alpha * task_loss(model.readout(z), targets)
        return loss

    return loss_fn
