"""Each speed lever of the study measured on its own, as a ratio on a notebook's own training step: the lever table of
the README's performance section.

    python benchmarks/levers.py [--steps 20] [--rounds 3] [--only fused-adamw plain-attention threads lanes]

The runs are the pipelines' own, captured as `benchmarks/train_step.py` captures them (the notebook executed in the
cpu profile until it trains the run). A lever is timed against what it replaced on the same captured run, from the
same state, in `--rounds` alternating rounds (lever, baseline, lever, ...), so that a change of the machine's load
during the benchmark falls on both sides; the ratio is the baseline's median seconds per step over the lever's.

- fused-adamw: `repro.train.adamw` (the fused kernel) against torch's default per-parameter loop on the CPU
  (`foreach=False, fused=False`), on the pretrained MiniLM step of 05: the optimizer phase and the whole step;
- plain-attention: `repro.nn.attention` as it is (plain softmax attention with a bias up to
  `PLAIN_ATTENTION_MAX_TOKENS["bias"]` keys) against SDPA always (the threshold at 0), on the looped steps of 02
  (33 tokens) and 03 (81 cells);
- threads: two threads in one process against one, on AdaTape's parity step (01);
- lanes: two one-thread processes side by side against one process alone, the same step: the throughput of the pair
  over that of one process (how `make reproduce JOBS=2` uses a two-core machine), and each side's steps/s.

The last two need an otherwise idle machine to mean anything (anything else running takes the cores they compare);
the first two compare paths within one thread and hold under load. A benchmark, never part of the tests.
"""

import argparse
import copy
import statistics
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context

import torch

import repro.nn
from repro.intercept import execute_intercepted
from repro.seeding import derive, torch_seed
from repro.train import learning_rate_factor
from train_step import PHASES, PROFILE, Trainer, one_step, positive

LEVERS = ("fused-adamw", "plain-attention", "threads", "lanes")
RUNS = {"minilm": ("05_glue", "pretrained STS-B seed 0 vanilla"),
        "prefix-sums": ("02_prefix_sums", "recall standard, outer norm on seed 0"),
        "sudoku": ("03_sudoku", "recall standard, outer norm on seed 0"),
        "adatape": ("01_parity", "adatape AdaTape (input bank) seed 0")}
"""Run name -> (notebook, the run's progress-bar label): the captured training calls the levers are timed on."""
WARMUP = 3


class Captured(Exception):
    """Raised by the training hook once the run is captured: the rest of the notebook is not run."""


def capture(name: str) -> dict:
    """The arguments of the training call of run `name` (`RUNS`), the runs before it trained one step each."""
    stem, description = RUNS[name]
    found = {}

    def hook(train, arguments):
        if arguments["description"] == description:
            found.update(arguments)
            raise Captured
        return one_step(train, arguments)

    try:
        execute_intercepted(stem, PROFILE, hook)
    except Captured:
        return found | {"initial": copy.deepcopy(found["model"].state_dict())}
    raise ValueError(f"notebook {stem} never trained the run {description!r}")


class Timer:
    """One captured run's training step (`train_step.Trainer`, or with `optimizer(model)` in place of its AdamW),
    started from the run's initial weights and put back to the same state before every timing."""

    def __init__(self, run: dict, optimizer=None):
        model, config = run["model"], run["config"]
        model.load_state_dict(run["initial"])
        self.trainer = Trainer(model.train(), run["loss_fn"], run["data"], config)
        if optimizer is not None:
            self.trainer.optimizer = optimizer(model)
            self.trainer.schedule = torch.optim.lr_scheduler.LambdaLR(
                self.trainer.optimizer, lambda step: learning_rate_factor(step, config))
        with torch_seed(derive("train", config.seed)):
            self.trainer.steps(range(WARMUP))
        self.start = self.trainer.state()

    def phases(self, steps: int) -> list[float]:
        """Median seconds per step of each of `PHASES` over `steps` steps from the saved state."""
        self.trainer.restore(self.start)
        seconds = self.trainer.steps(range(WARMUP, WARMUP + steps))
        return [statistics.median(step[i] for step in seconds) for i in range(len(PHASES))]

    def per_step(self, steps: int) -> float:
        return sum(self.phases(steps))


def alternate(rounds: int, lever, baseline) -> tuple[float, float]:
    """Median of `lever()` and of `baseline()` over `rounds` rounds, the two alternating."""
    lever_times, baseline_times = [], []
    for _ in range(rounds):
        lever_times.append(lever())
        baseline_times.append(baseline())
    return statistics.median(lever_times), statistics.median(baseline_times)


def fused_adamw(steps: int, rounds: int) -> list[dict]:
    run = capture("minilm")
    settings = dict(lr=run["config"].lr, weight_decay=run["config"].weight_decay)
    fused = Timer(run)
    loop = Timer(run, lambda model: torch.optim.AdamW(model.parameters(), foreach=False, fused=False, **settings))
    lever, baseline = [], []
    for _ in range(rounds):
        lever.append(fused.phases(steps))
        baseline.append(loop.phases(steps))
    optimizer = PHASES.index("optimizer")
    label = dict(lever="fused AdamW (`repro.train.adamw`)", against="the per-parameter loop (torch's CPU default)",
                 run=f"{RUNS['minilm'][0]}: {RUNS['minilm'][1]}")
    return [label | {"measure": "optimizer phase, ms",
                     "lever value": 1e3 * statistics.median(r[optimizer] for r in lever),
                     "baseline value": 1e3 * statistics.median(r[optimizer] for r in baseline)},
            label | {"measure": "whole step, ms", "lever value": 1e3 * statistics.median(map(sum, lever)),
                     "baseline value": 1e3 * statistics.median(map(sum, baseline))}]


@contextmanager
def plain_attention_threshold(tokens: int):
    saved = dict(repro.nn.PLAIN_ATTENTION_MAX_TOKENS)
    repro.nn.PLAIN_ATTENTION_MAX_TOKENS["bias"] = tokens
    try:
        yield
    finally:
        repro.nn.PLAIN_ATTENTION_MAX_TOKENS.update(saved)


def plain_attention(steps: int, rounds: int) -> list[dict]:
    rows = []
    for name in ("prefix-sums", "sudoku"):
        timer = Timer(capture(name))

        def sdpa():
            with plain_attention_threshold(0):
                return timer.per_step(steps)
        lever, baseline = alternate(rounds, lambda: timer.per_step(steps), sdpa)
        rows.append({"lever": "plain softmax attention with a bias (`repro.nn.attention`)", "against": "SDPA always",
                     "run": f"{RUNS[name][0]}: {RUNS[name][1]}", "measure": "whole step, ms",
                     "lever value": 1e3 * lever, "baseline value": 1e3 * baseline})
    return rows


def threads(steps: int, rounds: int) -> list[dict]:
    timer = Timer(capture("adatape"))

    def on(count: int) -> float:
        torch.set_num_threads(count)
        try:
            return timer.per_step(steps)
        finally:
            torch.set_num_threads(1)
    two, one = alternate(rounds, lambda: on(2), lambda: on(1))
    return [{"lever": "two threads in one process", "against": "one thread", "run": f"{RUNS['adatape'][0]}: "
             f"{RUNS['adatape'][1]}", "measure": "whole step, ms", "lever value": 1e3 * two, "baseline value": 1e3 * one}]


def lane(steps: int, rounds: int, ready) -> float:
    """In a fresh one-thread process: capture AdaTape's step, wait at the barrier `ready` for the other lanes, then
    time it `rounds` x `steps` steps; its steps per second."""
    torch.set_num_threads(1)
    timer = Timer(capture("adatape"))
    ready.wait()
    return 1 / statistics.median(timer.per_step(steps) for _ in range(rounds))


def lanes(steps: int, rounds: int) -> list[dict]:
    spawn = get_context("spawn")
    with spawn.Manager() as manager:
        rates = {}
        for count in (1, 2):  # one process alone, then two side by side; this process only waits
            ready = manager.Barrier(count)
            with ProcessPoolExecutor(max_workers=count, mp_context=spawn) as pool:
                rates[count] = [f.result() for f in [pool.submit(lane, steps, rounds, ready) for _ in range(count)]]
    pair = rates[2]
    return [{"lever": "two one-thread processes side by side (`make reproduce JOBS=2`)", "against": "one process alone",
             "run": f"{RUNS['adatape'][0]}: {RUNS['adatape'][1]}",
             "measure": f"steps/s (the pair: the sum of {pair[0]:.1f} and {pair[1]:.1f})", "lever value": sum(pair),
             "baseline value": rates[1][0], "higher is faster": True}]


MEASURE = {"fused-adamw": fused_adamw, "plain-attention": plain_attention, "threads": threads, "lanes": lanes}


def markdown(rows: list[dict]) -> str:
    lines = ["| lever | against | run | measure | lever | baseline | speed-up |", "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        ratio = (r["lever value"] / r["baseline value"] if r.get("higher is faster")
                 else r["baseline value"] / r["lever value"])
        lines.append(f"| {r['lever']} | {r['against']} | {r['run']} | {r['measure']} | {r['lever value']:.1f} | "
                     f"{r['baseline value']:.1f} | {ratio:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive, default=20, help="timed training steps per round (default 20)")
    parser.add_argument("--rounds", type=positive, default=3, help="alternating rounds per side (default 3)")
    parser.add_argument("--only", nargs="+", choices=LEVERS, metavar="LEVER", help=f"the levers to time: {LEVERS}")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [row for lever in args.only or LEVERS for row in MEASURE[lever](args.steps, args.rounds)]
    print(f"levers, profile {PROFILE}, torch {torch.__version__}, {args.rounds} alternating rounds of {args.steps} "
          f"steps per side after {WARMUP} untimed ones; speed-up: the baseline's median time over the lever's")
    print(markdown(rows))


if __name__ == "__main__":
    main()
