"""Data-parallel training under torchrun: 2 gloo processes on the CPU take the steps one process takes on the same
global batches, and their checkpoint resumes in one process.

The test launches this file as the worker of `torchrun --standalone` (which picks a free port itself, so parallel
test workers never collide) and trains the one-process reference in its own process meanwhile.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from repro import distributed
from repro.data.prefix_sums import VOCAB, PrefixSumStream
from repro.losses import progressive_loss
from repro.seeding import torch_seed
from repro.train import TrainConfig, train

ROOT = Path(__file__).parents[1]
PROCESSES = 2
CONFIG = TrainConfig(steps=8, lr=3e-3, warmup_steps=2, eval_every=4, checkpoint_every=4, progress=False, seed=2)
LOSS = progressive_loss(max_iterations=3, alpha=0.5)
"""Calls model methods other than forward, and draws its iteration counts once per batch: every rank must draw what
one process draws."""


class LoopedMLP(nn.Module):
    """The interface of `repro.models.looped` (embed, initial_state, iterate, readout) without attention, whose key bias
    gets a gradient of pure rounding noise that Adam blows up to a visible step: here every parameter gets a real
    gradient, so the two runs must agree to float rounding."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embedding, self.step = nn.Embedding(VOCAB, width), nn.Linear(2 * width, width)
        self.out = nn.Linear(width, 2)

    def embed(self, tokens):
        return self.embedding(tokens)

    def initial_state(self, e):
        return e

    def iterate(self, z, e, start, count):
        for _ in range(count):
            z = torch.tanh(self.step(torch.cat([z, e], dim=-1)))
        return z

    def readout(self, z):
        return self.out(z)


def pieces():
    with torch_seed(0):
        model = LoopedMLP()
    return model, PrefixSumStream(length=6, batch_size=16, seed=1)


def evaluate(model):
    return {"evaluated_by": distributed.rank()}


def rank_run(output: Path) -> None:
    """One rank's run: train with a checkpoint, then save what this rank ended with."""
    model, stream = pieces()
    shares, shard = [], distributed.shard  # the rows each step trained on, so the test sees the batch was split

    def recorded_shard(batch):
        share = shard(batch)
        shares.append(len(share[0]))
        return share

    distributed.shard = recorded_shard
    result = train(model, LOSS, stream, CONFIG, evaluate, checkpoint=output / "run.pt")
    torch.save({"history": result.history, "model": model.state_dict(), "shares": shares},
               output / f"rank{distributed.rank()}.pt")


def failing_evaluation_run(output: Path) -> None:
    """One rank's run whose evaluation fails on rank 0: each rank writes down how it stopped."""
    model, stream = pieces()

    def evaluate(model):
        raise ArithmeticError("an evaluation that fails")

    try:
        train(model, LOSS, stream, CONFIG, evaluate)
    except Exception as error:
        (output / f"rank{distributed.rank()}.txt").write_text(f"{type(error).__name__}: {error}")


def launch(worker: str, output: Path, timeout_s: float = 120) -> subprocess.Popen:
    """`worker(output)` of this file on each of PROCESSES gloo ranks under torchrun."""
    environment = os.environ | {"OMP_NUM_THREADS": "1", distributed.TIMEOUT_ENV: str(timeout_s)}
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(variable, None)
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc-per-node={PROCESSES}", __file__, __name__, worker, str(output)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=ROOT)


def finish(ranks: subprocess.Popen, timeout_s: float = 120) -> str:
    try:
        log, _ = ranks.communicate(timeout=timeout_s)
    finally:
        ranks.kill()  # a no-op once it ended; after a timeout, no rank is left running
    return log


def test_two_processes_take_the_steps_of_one_on_the_same_global_batches(tmp_path):
    ranks = launch("rank_run", tmp_path)
    alone, stream = pieces()
    reference = train(alone, LOSS, stream, CONFIG, evaluate)
    log = finish(ranks)
    assert ranks.returncode == 0, log
    runs = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(PROCESSES)]
    # Each rank trained every step on its own half of the global batch, not on the whole of it.
    assert all(run["shares"] == [stream.batch_size // PROCESSES] * CONFIG.steps for run in runs)

    for name, tensor in alone.state_dict().items():
        assert torch.equal(runs[0]["model"][name], runs[1]["model"][name]), name  # the ranks stay in step
        torch.testing.assert_close(runs[0]["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    # Rank 0 alone evaluated, and every rank got its rows; the logged loss is the global batch's.
    assert runs[0]["history"] == runs[1]["history"]
    assert [row["evaluated_by"] for row in runs[0]["history"]] == [0, 0]
    assert [row["step"] for row in runs[0]["history"]] == [row["step"] for row in reference.history]
    for ours, theirs in zip(runs[0]["history"], reference.history):
        assert abs(ours["train_loss"] - theirs["train_loss"]) < 1e-5

    # The checkpoint holds the unwrapped model, and a finished 2-process run resumes in one process at once.
    resumed, stream = pieces()
    again = train(resumed, LOSS, stream, CONFIG, evaluate, checkpoint=tmp_path / "run.pt")
    assert again.history == runs[0]["history"]
    for name, tensor in resumed.state_dict().items():
        assert torch.equal(tensor, runs[0]["model"][name]), name


def test_an_evaluation_failing_on_rank_0_stops_every_rank_at_once_with_its_message(tmp_path):
    # The collective timeout is far above the test's own: a rank left waiting at a collective would time the test out.
    ranks = launch("failing_evaluation_run", tmp_path, timeout_s=600)
    log = finish(ranks, timeout_s=120)
    assert ranks.returncode == 0, log
    assert (tmp_path / "rank0.txt").read_text() == "ArithmeticError: an evaluation that fails"
    assert (tmp_path / "rank1.txt").read_text() == ("RuntimeError: rank 0's evaluation at step 4 failed "
                                                    "(ArithmeticError: an evaluation that fails); every rank stops "
                                                    "with it")


def test_the_ranks_shares_are_disjoint_equal_and_make_up_the_global_batch(monkeypatch):
    batch = (torch.arange(12).reshape(6, 2), torch.arange(6))
    shares = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        shares.append(distributed.shard(batch))
    for whole, parts in zip(batch, zip(*shares)):
        assert [len(part) for part in parts] == [2, 2, 2]
        assert torch.equal(torch.cat(parts), whole)


def test_a_batch_that_does_not_split_evenly_names_the_sizes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match="batch of 6 examples does not split evenly over 4 processes"):
        distributed.shard((torch.zeros(6, 2), torch.zeros(6)))
    with pytest.raises(ValueError, match=r"tensors have \[5, 8\] rows"):
        distributed.shard((torch.zeros(8, 2), torch.zeros(5)))


if __name__ == "__main__":  # a rank of the test's run: torchrun ... tests/test_distributed.py MODULE WORKER OUTPUT
    module, worker, output = sys.argv[1:]
    sys.path[:0] = [str(Path(__file__).parent), str(ROOT)]
    # Imported under the name the test knows it by, not as __main__, so this run's fingerprint names the same model
    # class as the test's own runs and they can resume its checkpoint.
    getattr(importlib.import_module(module), worker)(Path(output))
