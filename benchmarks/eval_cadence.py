"""The share of every notebook's training time spent in its held-out evaluations, cpu profile, one thread: the speed
issue's bar is about 5% of a run.

    python benchmarks/eval_cadence.py [--nb 01_parity ...] [--timed-steps 20]

Each notebook is projected as `make gpu-check` projects it (`repro.gpu_check.project`, in a fresh process): run top to
bottom with every training call cut to its first `--timed-steps` steps, its seconds per step and the seconds of each
evaluation it made measured. A call's training seconds are then its full steps times its seconds per step, its
evaluation seconds its full count of evaluations (every `eval_every` steps and at the last) times the mean measured
evaluation. Per notebook the table gives the calls, their steps and evaluations, both totals, the evaluation share and
the call with the largest share. An evaluation of a barely trained model costs what a trained one's does, except where
the compute adapts (ponder steps, tape length, fixed-point iterations): there it is an estimate. A benchmark, never
part of the tests.
"""

import argparse

from repro.gpu_check import project_apart
from repro.reproduce import study_notebooks


def cadence(row: dict) -> dict:
    """A projected notebook's training and evaluation seconds, its evaluation share and its worst call."""
    calls = []
    for call in row["calls"]:
        evaluation = sum(call["timed_evaluations"]) / len(call["timed_evaluations"]) if call["timed_evaluations"] else 0
        training = call["steps"] * (call["seconds_per_step"] or 0.0)
        calls.append((call["description"], training, call["evaluations"] * evaluation, call["steps"],
                      call["evaluations"]))
    training, evaluating = sum(c[1] for c in calls), sum(c[2] for c in calls)
    worst = max(calls, key=lambda c: c[2] / (c[1] + c[2]) if c[1] + c[2] else 0, default=None)
    return {"notebook": row["notebook"], "calls": len(calls), "steps": sum(c[3] for c in calls),
            "evaluations": sum(c[4] for c in calls), "train min": training / 60, "eval min": evaluating / 60,
            "eval share": evaluating / (training + evaluating) if training + evaluating else 0.0,
            "worst call": "" if worst is None else f"{worst[0]} ({worst[2] / (worst[1] + worst[2]):.0%})",
            "error": row["error"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nb", nargs="+", choices=study_notebooks(), default=study_notebooks(), metavar="STEM")
    parser.add_argument("--timed-steps", type=int, default=20)
    args = parser.parse_args()
    print("| notebook | train calls | steps | evaluations | train min | eval min | eval share | largest share |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for stem in args.nb:
        row = cadence(project_apart(stem, "cpu", args.timed_steps))
        if row["error"]:
            print(f"| {stem} | failed: {row['error'].splitlines()[-1]} |||||||")
            continue
        print(f"| {stem} | {row['calls']} | {row['steps']:,} | {row['evaluations']:,} | {row['train min']:.1f} | "
              f"{row['eval min']:.2f} | {row['eval share']:.1%} | {row['worst call']} |", flush=True)


if __name__ == "__main__":
    main()
