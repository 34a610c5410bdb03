"""Execute the numbered notebooks with papermill and build the HTML report.

    python -m repro.reproduce [--profile auto|smoke|cpu|gpu|paper] [--nb 01_parity ...] [--jobs N] [--exploratory]
    python -m repro.reproduce --report-only
    torchrun --standalone --nproc-per-node N -m repro.reproduce [--profile ...] [--nb ...]

A reference run (any profile but smoke) writes the committed `results/`, `figures/` and one rendered page per
notebook under `report/`, then rebuilds `report/index.html`; it refuses to start from a tree with uncommitted changes,
since its results must name the code that made them. `--exploratory` runs from any tree and writes all of that under
`build/exploratory/` instead. A smoke run writes under `build/smoke/`, and its report carries a banner, so it never
replaces the reference report. Executed notebooks go to `build/`.

Lanes: notebooks run in `--jobs` parallel processes (default: the core count), each notebook one-threaded (the fast
setting on these CPUs: the speed issue measured two one-thread processes at 1.76x the throughput of one, two threads
in one process at 1.06x), longest
first by their last recorded wall time. Every notebook is its own process and random stream, so its results do not
depend on the lanes. With one lane each notebook's printed output (the training loops' progress bars with steps/s and
time left) streams to the terminal; with more it goes to `build/logs/<notebook>.log`.

A reference run gives every notebook a checkpoint folder `build/checkpoints/<profile>/<commit>/<notebook>/`, so a killed
run resumes where it stopped at the same commit and never from another commit's state.

A failing notebook does not stop the others: the terminal shows its cell and error, `build/status.json` records it,
the report shows it, and the exit code is 1.

Under torchrun (`make reproduce NPROC=N`, or the multi-node command in the README) every rank executes the notebooks one
after another with papermill, and each notebook's kernel inherits the rank's place from torchrun's environment, so its
training loops run data-parallel (`repro.train`, `repro.distributed`). papermill runs a notebook in a kernel of its own,
which the ranks cannot share, so each rank runs its own copy of the notebook, the copies kept in step by their training
loops' collectives; the notebook stays the unit of execution, with its executed copy and its page. Rank 0 streams its
output to the terminal, writes the results, figures and checkpoints, renders the pages and builds the report; rank r
keeps its executed copies and logs under `build/ranks/<r>/`.
"""

import argparse
import ast
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import papermill
from papermill.exceptions import PapermillExecutionError

from repro import ROOT, distributed
from repro.config import choice
from repro.data.files import write_atomically
from repro.profiles import PROFILES, resolve
from repro.results import git_state

NOTEBOOKS = ROOT / "notebooks"
REPORT_NOTEBOOK = "99_report"
REPORT_DIR = ROOT / "report"
SMOKE_BANNER = ("Smoke run: it checks the plumbing with a few training steps, and its verdicts mean nothing. "
                "The reference report is report/index.html.")


def study_notebooks() -> list[str]:
    """Stems of the numbered notebooks that produce results, in order (the report excluded)."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if p.stem != REPORT_NOTEBOOK)


def check_parameters(stem: str, parameters: dict) -> None:
    """Reject a parameter the notebook's `parameters` cell does not declare (papermill would only warn)."""
    declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"notebook {stem} has no parameter(s) {unknown}; its parameters are {sorted(declared)}")


def execute(stem: str, output_dir: Path, parameters: dict, output=None) -> Path:
    """Run one notebook top to bottom with its working directory at notebooks/, as in JupyterLab.

    With `output` (an open text stream: the terminal, a log file), what the cells print (the training loops' progress
    bars among it) goes there as it comes; tables and figures stay in the executed notebook."""
    choice("notebook", stem, study_notebooks() + [REPORT_NOTEBOOK])
    check_parameters(stem, parameters)
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / f"{stem}.ipynb"
    streams = {"stdout_file": output, "stderr_file": output} if output is not None else {}
    papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(executed), parameters=parameters,
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3", **streams)
    return executed


def render(executed: Path, page: Path, code: bool = True) -> None:
    """Write an executed notebook as one self-contained HTML page (figures inlined)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code, exclude_output_prompt=not code)
    body, _ = exporter.from_filename(str(executed))
    page.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(page, body.encode())


def failure_text(stem: str, error: Exception, executed: Path) -> str:
    """What the terminal and the report say about a notebook that failed."""
    if isinstance(error, PapermillExecutionError):
        last_lines = [line for line in "".join(error.traceback).splitlines() if line.strip()][-6:]
        return (f"{stem} failed in cell {error.cell_index} (execution count {error.exec_count}): "
                f"{error.ename}: {error.evalue}\n" + "\n".join(last_lines) + f"\nexecuted copy: {executed}")
    return f"{stem} failed before or outside its cells: {type(error).__name__}: {error}"


def run_notebook(stem: str, profile: str, output_dir: Path, parameters: dict, pages_dir: Path | None,
                 log: Path | None = None) -> dict:
    """Execute one notebook and render its page into `pages_dir` (None: no page); its status, wall time and error. Its
    printed output streams to the terminal, or into `log` when given."""
    started = time.time()
    print(f"[reproduce] {stem} (profile {profile}) ..." + (f" output in {log}" if log else ""), flush=True)
    executed = output_dir / f"{stem}.ipynb"
    try:
        if log is None:
            execute(stem, output_dir, {"PROFILE": profile, **parameters}, output=sys.stdout)
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as output:
                execute(stem, output_dir, {"PROFILE": profile, **parameters}, output=output)
        if pages_dir is not None:
            render(executed, pages_dir / f"{stem}.html")
        status = {"ok": True, "error": None}
    except Exception as error:  # noqa: BLE001 - any failure is recorded and the next notebook runs
        status = {"ok": False, "error": failure_text(stem, error, executed)[-3000:]}
        print(f"[reproduce] FAILED: {status['error']}", file=sys.stderr, flush=True)
    status.update(profile=profile, wall_seconds=round(time.time() - started, 1))
    print(f"[reproduce] {stem}: {'ok' if status['ok'] else 'FAILED'} in {status['wall_seconds']} s", flush=True)
    return status


def longest_first(stems: list[str], results_dir: Path) -> list[str]:
    """The notebooks ordered by their last recorded wall time, longest first (unknown ones first of all), so the lanes
    end together."""
    def recorded(stem: str) -> float:
        path = results_dir / f"{stem}.json"
        if not path.exists():
            return float("inf")
        return json.loads(path.read_text()).get("provenance", {}).get("wall_seconds", float("inf"))
    return sorted(stems, key=recorded, reverse=True)


def from_root(path: Path) -> str:
    """`path` as a notebook parameter: relative to the repository root where it lies inside it (the notebooks resolve
    their folders from the root), so the executed notebook and its report page name no folder of this machine."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_study(stems: list[str], profile: str, output_dir: Path, parameters: dict, pages_dir: Path, jobs: int = 1,
              checkpoints: Path | None = None) -> dict:
    """Execute each notebook in `jobs` lanes and render its page into `pages_dir`: {stem: status} in `stems` order.
    With `checkpoints`, each notebook gets its own checkpoint folder under it. Under torchrun (one lane) rank 0 does
    that, and every other rank executes the same notebooks into `output_dir/ranks/<rank>/`, with no pages."""
    rank = distributed.rank()

    def arguments(stem):
        own = {"CHECKPOINT_DIR": from_root(checkpoints / stem)} if checkpoints is not None else {}
        if rank > 0:
            folder = output_dir / "ranks" / str(rank)
            return stem, profile, folder, {**own, **parameters}, None, folder / "logs" / f"{stem}.log"
        log = output_dir / "logs" / f"{stem}.log" if jobs > 1 else None
        return stem, profile, output_dir, {**own, **parameters}, pages_dir, log

    if distributed.launched():
        status = {}
        for stem in stems:
            os.environ[distributed.GROUP_ENV] = stem  # the kernel inherits it; `repro.distributed.GROUP_ENV` says why
            status[stem] = run_notebook(*arguments(stem))
        return status
    if jobs == 1:
        return {stem: run_notebook(*arguments(stem)) for stem in stems}
    order = longest_first(stems, ROOT / str(parameters.get("RESULTS_DIR", "results")))
    # spawn, not fork: each lane starts a clean interpreter, with no Jupyter client state copied from this one.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as lanes:
        futures = {stem: lanes.submit(run_notebook, *arguments(stem)) for stem in order}
        return {stem: futures[stem].result() for stem in stems}


def build_report(output_dir: Path, report_dir: Path, parameters: dict) -> None:
    """Execute 99_report and render it, without its code, as `report_dir/index.html`; its links to the notebooks and
    the library are relative to `report_dir`, so they work wherever the report is written."""
    source_root = os.path.relpath(ROOT, report_dir.resolve())
    executed = execute(REPORT_NOTEBOOK, output_dir, parameters | {"SOURCE_ROOT": source_root})
    render(executed, report_dir / "index.html", code=False)
    print(f"[reproduce] report: {report_dir / 'index.html'}")


EXPLORATORY_BANNER = ("Exploratory run: made from a tree with uncommitted changes (or asked to be exploratory), so no "
                      "commit names its code. The reference report is report/index.html.")


def destinations(profile: str, build: Path, report_dir: Path | None,
                 exploratory: bool = False) -> tuple[dict, Path, dict]:
    """Where a run of `profile` writes: the notebooks' result and figure folders, the report folder, and the report's
    parameters. The notebooks' own defaults point at a scratch folder, so a reference run names the committed ones;
    a smoke or exploratory run never writes over the reference results or report."""
    if profile == "smoke":
        folder, banner = build / "smoke", SMOKE_BANNER
    elif exploratory:
        folder, banner = build / "exploratory" / profile, EXPLORATORY_BANNER
    else:
        return {"RESULTS_DIR": "results", "FIGURES_DIR": "figures"}, report_dir or REPORT_DIR, {}
    sources = {"RESULTS_DIR": from_root(folder / "results"), "FIGURES_DIR": from_root(folder / "figures")}
    return sources, report_dir or folder / "report", {"BANNER": banner}


def refuse_dirty_reference(profile: str, exploratory: bool) -> None:
    """A reference result names the commit that made it, so it is only made from a clean tree."""
    sha, dirty = git_state()
    if profile != "smoke" and not exploratory and dirty:
        raise SystemExit(f"reproduce: the tree has uncommitted changes (at {sha[:12]}), so a {profile} reference run "
                         f"would record results no commit can reproduce; commit first, or pass --exploratory to write "
                         f"them under build/exploratory/ instead")


def parse_parameter(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", choices=("auto",) + PROFILES)
    parser.add_argument("--nb", nargs="*", default=None, help="notebook stems (default: all numbered notebooks)")
    parser.add_argument("--param", action="append", type=parse_parameter, default=[],
                        help="KEY=VALUE passed to every study notebook (repeatable)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="parallel one-thread notebook processes (default: the core count; 1 under torchrun)")
    parser.add_argument("--exploratory", action="store_true",
                        help="run from any tree; write results, figures and report under <build>/exploratory/")
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="default: report/ for a reference run, <build>/smoke/report for a smoke run")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from results/ and figures/")
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = 1 if distributed.launched() else os.cpu_count() or 1
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if distributed.launched() and args.jobs > 1:
        parser.error(f"under torchrun every rank runs the notebooks one after another, each notebook on all "
                     f"{distributed.world_size()} processes: --jobs must be 1, got {args.jobs}")
    status_file = args.build / "status.json"
    ok, sources, report_parameters = True, {}, {}
    report_dir = args.report_dir or REPORT_DIR
    if not args.report_only:
        profile = resolve(args.profile)
        stems = args.nb if args.nb else study_notebooks()
        for stem in stems:
            choice("notebook", stem, study_notebooks())
        refuse_dirty_reference(profile, args.exploratory)
        sources, report_dir, report_parameters = destinations(profile, args.build, args.report_dir, args.exploratory)
        parameters = {**sources, **dict(args.param)}
        sources = {key: parameters[key] for key in sources}
        reference = profile != "smoke" and not args.exploratory
        checkpoints = args.build / "checkpoints" / profile / git_state()[0] if reference else None
        status = run_study(stems, profile, args.build, parameters, report_dir, min(args.jobs, len(stems)), checkpoints)
        ok = all(entry["ok"] for entry in status.values())
        if not distributed.is_main():  # rank 0 records the run and builds the report
            return 0 if ok else 1
        args.build.mkdir(parents=True, exist_ok=True)
        write_atomically(status_file, (json.dumps(status, indent=2) + "\n").encode())
        report_parameters["STATUS_FILE"] = str(status_file)
    build_report(args.build, report_dir, {**report_parameters, **sources})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
