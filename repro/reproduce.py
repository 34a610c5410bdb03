"""Execute the numbered notebooks with papermill and build the HTML report.

    python -m repro.reproduce [--profile auto|smoke|cpu|gpu|paper] [--nb 01_parity ...]
    python -m repro.reproduce --report-only

A reference run (any profile but smoke) writes the committed `results/`, `figures/` and one rendered page per
notebook under `report/`, then rebuilds `report/index.html`. A smoke run writes all of that under `build/smoke/`, and
its report carries a banner, so it never replaces the reference report. Executed notebooks go to `build/`. Each
notebook's printed output (the training loops' progress bars with steps/s and time left) streams to the terminal. A
failing notebook does not stop the others: the terminal shows its cell and error, `build/status.json` records it,
the report shows it, and the exit code is 1.
"""

import argparse
import os
import ast
import json
import sys
import time
from pathlib import Path

import papermill
from papermill.exceptions import PapermillExecutionError

from repro import ROOT
from repro.config import choice
from repro.profiles import PROFILES, resolve

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


def execute(stem: str, output_dir: Path, parameters: dict, stream: bool = False) -> Path:
    """Run one notebook top to bottom with its working directory at notebooks/, as in JupyterLab.

    With `stream`, what the cells print (the training loops' progress bars among it) goes to the terminal as it comes;
    tables and figures stay in the executed notebook."""
    choice("notebook", stem, study_notebooks() + [REPORT_NOTEBOOK])
    check_parameters(stem, parameters)
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / f"{stem}.ipynb"
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if stream else {}
    papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(executed), parameters=parameters,
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3", **streams)
    return executed


def render(executed: Path, page: Path, code: bool = True) -> None:
    """Write an executed notebook as one self-contained HTML page (figures inlined)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code, exclude_output_prompt=not code)
    body, _ = exporter.from_filename(str(executed))
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(body)


def failure_text(stem: str, error: Exception, executed: Path) -> str:
    """What the terminal and the report say about a notebook that failed."""
    if isinstance(error, PapermillExecutionError):
        last_lines = [line for line in "".join(error.traceback).splitlines() if line.strip()][-6:]
        return (f"{stem} failed in cell {error.cell_index} (execution count {error.exec_count}): "
                f"{error.ename}: {error.evalue}\n" + "\n".join(last_lines) + f"\nexecuted copy: {executed}")
    return f"{stem} failed before or outside its cells: {type(error).__name__}: {error}"


def run_study(stems: list[str], profile: str, output_dir: Path, parameters: dict, pages_dir: Path) -> dict:
    """Execute each notebook and render its page into `pages_dir`, recording its status, wall time and error."""
    status = {}
    for stem in stems:
        started = time.time()
        print(f"[reproduce] {stem} (profile {profile}) ...", flush=True)
        executed = output_dir / f"{stem}.ipynb"
        try:
            execute(stem, output_dir, {"PROFILE": profile, **parameters}, stream=True)
            render(executed, pages_dir / f"{stem}.html")
            status[stem] = {"ok": True, "error": None}
        except Exception as error:  # noqa: BLE001 - any failure is recorded and the next notebook runs
            status[stem] = {"ok": False, "error": failure_text(stem, error, executed)[-3000:]}
            print(f"[reproduce] FAILED: {status[stem]['error']}", file=sys.stderr, flush=True)
        status[stem].update(profile=profile, wall_seconds=round(time.time() - started, 1))
        print(f"[reproduce] {stem}: {'ok' if status[stem]['ok'] else 'FAILED'} "
              f"in {status[stem]['wall_seconds']} s", flush=True)
    return status


def build_report(output_dir: Path, report_dir: Path, parameters: dict) -> None:
    """Execute 99_report and render it, without its code, as `report_dir/index.html`; its links to the notebooks and
    the library are relative to `report_dir`, so they work wherever the report is written."""
    source_root = os.path.relpath(ROOT, report_dir.resolve())
    executed = execute(REPORT_NOTEBOOK, output_dir, parameters | {"SOURCE_ROOT": source_root})
    render(executed, report_dir / "index.html", code=False)
    print(f"[reproduce] report: {report_dir / 'index.html'}")


def destinations(profile: str, build: Path, report_dir: Path | None) -> tuple[dict, Path, dict]:
    """Where a run of `profile` writes: the notebooks' result and figure folders, the report folder, and the report's
    parameters. The notebooks' own defaults point at a scratch folder, so a reference run names the committed ones;
    a smoke run checks plumbing and never writes over the reference results or report."""
    if profile == "smoke":
        sources = {"RESULTS_DIR": str(build / "smoke" / "results"), "FIGURES_DIR": str(build / "smoke" / "figures")}
        return sources, report_dir or build / "smoke" / "report", {"BANNER": SMOKE_BANNER}
    return {"RESULTS_DIR": "results", "FIGURES_DIR": "figures"}, report_dir or REPORT_DIR, {}


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
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="default: report/ for a reference run, <build>/smoke/report for a smoke run")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from results/ and figures/")
    args = parser.parse_args(argv)
    status_file = args.build / "status.json"
    ok, sources, report_parameters = True, {}, {}
    report_dir = args.report_dir or REPORT_DIR
    if not args.report_only:
        profile = resolve(args.profile)
        stems = args.nb if args.nb else study_notebooks()
        for stem in stems:
            choice("notebook", stem, study_notebooks())
        sources, report_dir, report_parameters = destinations(profile, args.build, args.report_dir)
        parameters = {**sources, **dict(args.param)}
        sources = {key: parameters[key] for key in sources}
        status = run_study(stems, profile, args.build, parameters, report_dir)
        args.build.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps(status, indent=2) + "\n")
        ok = all(entry["ok"] for entry in status.values())
        report_parameters["STATUS_FILE"] = str(status_file)
    build_report(args.build, report_dir, {**report_parameters, **sources})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
