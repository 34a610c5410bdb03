"""`make gpu-check`: time every notebook's `gpu`-profile training loops, project each notebook's wall time, and run the
notebooks that fit the per-notebook budget, apart from the reference results.

    python -m repro.gpu_check [--profile gpu] [--nb 01_parity ...] [--timed-steps 50] [--budget-minutes 8]
                              [--out build/gpu-check]

The `gpu` settings are meant to fit 8 minutes a notebook on one GPU, and only measured step times can size them.

Phase 1, projection. Each notebook runs in a fresh process of its own (so no CUDA memory, thread count or backend
flag of one reaches the next), top to bottom in the profile, with every training call cut to its first `--timed-steps`
steps (50) and timed (`repro.intercept`: the notebook's own model, loss, batches and config; no checkpoint); the rest of
the notebook (evaluation, stability measures, figures) runs as written on the barely trained models. A notebook's
projected wall time is that short run's wall time plus, for every training call, its steps left times its seconds per
step and its evaluations left times its seconds per evaluation. Seconds per step are measured from the start of one
step's loss to the next's on the device's own clock (CUDA events, so timing adds no host sync to the loop), leaving out
the first `WARMUP_STEPS` steps of every call (the CUDA context, kernel selection, the allocator's growth) and the
evaluations in between. Not projected, and so left to phase 2 to show: checkpoint writes, compute that changes as the
model learns (ponder steps, tape length, fixed-point iterations of a trained model), and papermill's share: the
kernel's start and the page's rendering (about 10 s of a smoke run on a CPU).

Phase 2. Every notebook whose projection fits `--budget-minutes` (0: none, a projection only) runs for real as
`make reproduce` runs it (papermill, `repro.reproduce.run_notebook`), writing its results, figures, executed copy,
page and log under `--out`, never into results/ or figures/. Its checkpoints are written, as a reference run writes
them, into a temporary folder deleted after it, so a second check never resumes from the first.

It prints the projection table after phase 1 and the whole table at the end, and writes both phases' numbers, per
training call, to `<out>/gpu_check.json`. Exit code 1 when a notebook failed in either phase.
"""

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from repro import ROOT
from repro.data.files import write_atomically
from repro.intercept import execute_intercepted
from repro.profiles import PROFILES, device_for, resolve
from repro.reproduce import from_root, run_notebook, study_notebooks
from repro.results import git_state

TIMED_STEPS = 50
"""The default of `--timed-steps`."""
WARMUP_STEPS = 3
"""Steps at the start of every call left out of its seconds per step, when it has more than one step after them."""
SAMPLE_COMMAND = "python -m repro.gpu_check --profile smoke --nb 08_image_restoration"


class Clock:
    """Moments at the start of each training step: CUDA events on a CUDA device (recorded in the stream's order, read
    once the call is over), the host's clock elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self, first: int, last: int) -> float:
        """Seconds from mark `first` to mark `last`."""
        if self.cuda:
            self.marks[last].synchronize()
            return self.marks[first].elapsed_time(self.marks[last]) / 1e3
        return self.marks[last] - self.marks[first]


def evaluations(steps: int, eval_every: int) -> int:
    """How many times `repro.train.train` evaluates in `steps` steps: every `eval_every` and at the last step."""
    return -(-steps // eval_every) if eval_every else 1


@dataclass
class TimedCall:
    """One training call of a notebook, cut short and timed."""
    description: str
    steps: int
    """The steps the notebook asked for."""
    timed_steps: int
    seconds_per_step: float | None
    """None when the call had a single step, which has no next step to end it."""
    evaluations: int
    """The evaluations the full call would make (0 without an evaluation function)."""
    timed_evaluations: list[float]
    """Seconds of each evaluation the short call made."""

    def seconds_left(self) -> float:
        """What the full call would add to the short one's time."""
        steps = (self.steps - self.timed_steps) * (self.seconds_per_step or 0.0)
        if not self.timed_evaluations:
            return steps
        mean = sum(self.timed_evaluations) / len(self.timed_evaluations)
        return steps + (self.evaluations - len(self.timed_evaluations)) * mean


def time_call(train, arguments: dict, timed_steps: int, calls: list[TimedCall]):
    """Run one training call for its first `timed_steps` steps, recording its timing into `calls`."""
    config, loss_fn, evaluate = arguments["config"], arguments["loss_fn"], arguments["evaluate"]
    timed = min(timed_steps, config.steps)
    clock, evaluated = Clock(torch.device(arguments["device"])), []  # evaluated: (steps done, seconds)

    def timed_loss(model, batch):
        clock.mark()
        return loss_fn(model, batch)

    def timed_evaluate(model):
        started = time.perf_counter()
        row = evaluate(model)
        evaluated.append((len(clock.marks), time.perf_counter() - started))
        return row

    arguments |= {"loss_fn": timed_loss, "evaluate": None if evaluate is None else timed_evaluate, "checkpoint": None,
                  "config": replace(config, steps=timed, warmup_steps=min(config.warmup_steps, timed), progress=False)}
    result = train(**arguments)
    first = WARMUP_STEPS if timed - 1 > WARMUP_STEPS else 0
    rate = None
    if timed > 1:
        between = sum(seconds for done, seconds in evaluated if first < done < timed)
        rate = (clock.seconds(first, timed - 1) - between) / (timed - 1 - first)
    calls.append(TimedCall(arguments["description"], config.steps, timed, rate,
                           evaluations(config.steps, config.eval_every) if evaluate is not None else 0,
                           [seconds for _, seconds in evaluated]))
    return result


def project(stem: str, profile: str, timed_steps: int) -> dict:
    """Phase 1 for one notebook (in the process it is called in): its timed calls, the short run's wall seconds, the
    projected ones, and the error that stopped it (None when it ran to the end)."""
    calls, error = [], None
    started = time.perf_counter()
    try:
        execute_intercepted(stem, profile, lambda train, arguments: time_call(train, arguments, timed_steps, calls))
    except Exception:  # noqa: BLE001 - a failing notebook is reported and the next one is projected
        error = "\n".join(traceback.format_exc().strip().splitlines()[-6:])
    wall = time.perf_counter() - started
    return {"notebook": stem, "wall_seconds": wall, "calls": [asdict(call) for call in calls],
            "projected_seconds": wall + sum(call.seconds_left() for call in calls), "error": error}


def project_apart(stem: str, profile: str, timed_steps: int) -> dict:
    """`project` in a fresh process of its own; a process that died (killed for memory, a crashed driver) is reported
    as the notebook's error."""
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as fresh:
            return fresh.submit(project, stem, profile, timed_steps).result()
    except BrokenProcessPool as error:
        return {"notebook": stem, "wall_seconds": None, "calls": [], "projected_seconds": None,
                "error": f"the process projecting it died: {error}"}


def reason_not_run(row: dict, budget_minutes: float, minutes_left: float) -> str | None:
    """Why phase 2 does not run a projected notebook, or None when it runs it."""
    if row["error"]:
        return "projection failed"
    if row["projected_seconds"] > 60 * budget_minutes:
        return "over budget"
    if row["projected_seconds"] > 60 * minutes_left:
        return "out of time"
    return None


def run_for_real(stem: str, profile: str, out: Path) -> dict:
    """Phase 2 for one notebook: `repro.reproduce.run_notebook`'s status, with everything it writes under `out`."""
    with tempfile.TemporaryDirectory() as checkpoints:
        parameters = {"RESULTS_DIR": from_root(out / "results"), "FIGURES_DIR": from_root(out / "figures"),
                      "CHECKPOINT_DIR": checkpoints}
        return run_notebook(stem, profile, out, parameters, out / "pages", log=out / "logs" / f"{stem}.log")


def minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def table(rows: list[dict]) -> str:
    """notebook | train calls | steps | s/step | projected min | ran? | measured min | result path, in markdown."""
    header = ["notebook", "train calls", "steps", "s/step", "projected min", "ran?", "measured min", "result path"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        calls = [call for call in row["calls"] if call["seconds_per_step"] is not None]
        steps = sum(call["steps"] for call in calls)
        rate = sum(call["steps"] * call["seconds_per_step"] for call in calls) / steps if steps else None
        ran = row.get("run")
        if ran is not None:
            done = "yes" if ran["ok"] else "failed"
        else:
            done = f"no: {row['not_run']}" if "not_run" in row else "not yet"
        cells = [row["notebook"], str(len(row["calls"])), f"{sum(call['steps'] for call in row['calls']):,}",
                 "" if rate is None else f"{rate:.4f}",
                 "failed" if row["error"] else minutes(row["projected_seconds"]), done,
                 "" if ran is None else minutes(ran["wall_seconds"]), row.get("result", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record(path: Path, header: dict, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (json.dumps({**header, "notebooks": rows}, indent=2) + "\n").encode())


def require_device(profile: str) -> None:
    """Stop at once, saying why, when `profile` needs a CUDA device this machine lacks."""
    try:
        resolve(profile)
    except RuntimeError as error:
        raise SystemExit(f"gpu-check: {error}. The check times and runs the {profile!r} profile, so it needs CUDA; "
                         f"`--profile smoke` exercises the same check on the CPU, e.g. `{SAMPLE_COMMAND}`") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="gpu", choices=PROFILES,
                        help="the profile timed and run (default gpu; smoke exercises the check on a CPU)")
    parser.add_argument("--nb", nargs="+", choices=study_notebooks(), default=study_notebooks(), metavar="STEM",
                        help=f"notebook stems (default: all of {study_notebooks()})")
    parser.add_argument("--timed-steps", type=int, default=TIMED_STEPS,
                        help=f"steps timed of every training call (default {TIMED_STEPS})")
    parser.add_argument("--budget-minutes", type=float, default=8.0,
                        help="run a notebook for real when its projection is at most this (default 8; 0: none)")
    parser.add_argument("--total-minutes", type=float, default=None,
                        help="start no real run projected to end later than this many minutes after the check "
                             "began (default: no limit), to fit the check into one session on a machine")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check",
                        help="where results, figures, pages, logs and gpu_check.json go (default build/gpu-check)")
    args = parser.parse_args(argv)
    if args.timed_steps < 1:
        parser.error(f"--timed-steps must be at least 1, got {args.timed_steps}")
    if not args.budget_minutes >= 0:
        parser.error(f"--budget-minutes must be >= 0 (0: project only), got {args.budget_minutes}")
    if args.total_minutes is not None and not args.total_minutes >= 0:
        parser.error(f"--total-minutes must be >= 0, got {args.total_minutes}")
    require_device(args.profile)
    started = time.monotonic()
    sha, dirty = git_state()
    header = {"profile": args.profile, "budget_minutes": args.budget_minutes, "total_minutes": args.total_minutes,
              "timed_steps": args.timed_steps,
              "warmup_steps": WARMUP_STEPS, "torch": torch.__version__, "git_sha": sha, "git_dirty": dirty,
              "device": torch.cuda.get_device_name() if device_for(args.profile).type == "cuda" else "cpu"}
    summary = args.out / "gpu_check.json"
    rows = []
    for stem in args.nb:
        print(f"[gpu-check] projecting {stem} (profile {args.profile}, {args.timed_steps} steps per training call) ...",
              flush=True)
        rows.append(project_apart(stem, args.profile, args.timed_steps))
        if rows[-1]["error"]:
            print(f"[gpu-check] {stem} FAILED in the projection:\n{rows[-1]['error']}", file=sys.stderr, flush=True)
        record(summary, header, rows)
    print(table(rows), flush=True)
    for row in rows:
        elapsed = (time.monotonic() - started) / 60
        reason = reason_not_run(row, args.budget_minutes,
                                math.inf if args.total_minutes is None else args.total_minutes - elapsed)
        if reason:
            row["not_run"] = reason
        else:
            row["run"] = run_for_real(row["notebook"], args.profile, args.out)
            if row["run"]["ok"]:
                row["result"] = from_root(args.out / "results" / f"{row['notebook']}.json")
        record(summary, header, rows)
    print(f"[gpu-check] profile {args.profile} on {header['device']}, budget {args.budget_minutes:g} min per notebook; "
          f"numbers per training call in {summary}")
    print(table(rows))
    failed = any(row["error"] or not row.get("run", {"ok": True})["ok"] for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
