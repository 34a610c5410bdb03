"""Execute the numbered notebooks with papermill and build the HTML report.

    python -m repro.reproduce [--profile auto|smoke|cpu|gpu|paper] [--nb 01_parity ...]
    python -m repro.reproduce --report-only

Executed copies go to `build/`; results and figures to the folders the notebooks are given
(committed `results/` and `figures/` by default). A failing notebook does not stop the others:
its error is recorded in `build/status.json`, the report shows it, and the exit code is 1.
"""

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import papermill

from repro import ROOT
from repro.config import choice
from repro.profiles import PROFILES, resolve

NOTEBOOKS = ROOT / "notebooks"
REPORT_NOTEBOOK = "99_report"


def study_notebooks() -> list[str]:
    """Stems of the numbered notebooks that produce results, in order (the report excluded)."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if p.stem != REPORT_NOTEBOOK)


def check_parameters(stem: str, parameters: dict) -> None:
    """Reject a parameter the notebook's `parameters` cell does not declare (papermill would only warn)."""
    declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"notebook {stem} has no parameter(s) {unknown}; its parameters are {sorted(declared)}")


def execute(stem: str, output_dir: Path, parameters: dict) -> None:
    """Run one notebook top to bottom with its working directory at notebooks/, as in JupyterLab."""
    choice("notebook", stem, study_notebooks() + [REPORT_NOTEBOOK])
    check_parameters(stem, parameters)
    output_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(output_dir / f"{stem}.ipynb"),
                               parameters=parameters, cwd=str(NOTEBOOKS), progress_bar=False,
                               kernel_name="python3")


def run_study(stems: list[str], profile: str, output_dir: Path, parameters: dict) -> dict:
    """Execute each notebook, recording per notebook its status, wall time and error."""
    status = {}
    for stem in stems:
        started = time.time()
        print(f"[reproduce] {stem} (profile {profile}) ...", flush=True)
        try:
            execute(stem, output_dir, {"PROFILE": profile, **parameters})
            status[stem] = {"ok": True, "error": None}
        except Exception as error:  # noqa: BLE001 - any failure is recorded and the next notebook runs
            status[stem] = {"ok": False, "error": f"{type(error).__name__}: {error}"[-2000:]}
        status[stem].update(profile=profile, wall_seconds=round(time.time() - started, 1))
        print(f"[reproduce] {stem}: {'ok' if status[stem]['ok'] else 'FAILED'} "
              f"in {status[stem]['wall_seconds']} s", flush=True)
    return status


def build_report(output_dir: Path, report_dir: Path, parameters: dict) -> None:
    """Execute 99_report and render it (without code) as index.html, plus one page per executed notebook."""
    from nbconvert import HTMLExporter

    execute(REPORT_NOTEBOOK, output_dir, parameters)
    report_dir.mkdir(parents=True, exist_ok=True)
    for executed in sorted(output_dir.glob("[0-9][0-9]_*.ipynb")):
        is_report = executed.stem == REPORT_NOTEBOOK
        body, _ = HTMLExporter(exclude_input=is_report, exclude_input_prompt=is_report,
                               exclude_output_prompt=is_report).from_filename(str(executed))
        page = report_dir / ("index.html" if is_report else f"{executed.stem}.html")
        page.write_text(body)
    print(f"[reproduce] report: {report_dir / 'index.html'}")


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
    parser.add_argument("--report-dir", type=Path, default=ROOT / "report")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from results/ and figures/")
    args = parser.parse_args(argv)
    status_file = args.build / "status.json"
    ok, parameters = True, {}
    if not args.report_only:
        profile = resolve(args.profile)
        stems = args.nb if args.nb else study_notebooks()
        for stem in stems:
            choice("notebook", stem, study_notebooks())
        parameters = dict(args.param)
        if profile == "smoke":
            # Smoke runs check plumbing; they never write over the committed reference results.
            parameters = {"RESULTS_DIR": str(args.build / "smoke" / "results"),
                          "FIGURES_DIR": str(args.build / "smoke" / "figures"), **parameters}
        status = run_study(stems, profile, args.build, parameters)
        args.build.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps(status, indent=2) + "\n")
        ok = all(entry["ok"] for entry in status.values())
    report_sources = {k: v for k, v in parameters.items() if k in ("RESULTS_DIR", "FIGURES_DIR")}
    build_report(args.build, args.report_dir, {"STATUS_FILE": str(status_file), **report_sources})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
