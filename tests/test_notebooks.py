"""Every notebook runs end to end in the smoke profile, writing only into a temporary folder; the runner and the
report."""

import hashlib
import json
import sys
from pathlib import Path

import papermill
import pytest
import torch

from repro import ROOT
from repro.claims import VERDICTS
from repro.reproduce import (NOTEBOOKS, REPORT_DIR, REPORT_NOTEBOOK, SMOKE_BANNER, build_report, check_parameters,
                             destinations, execute, main, study_notebooks)
from repro.results import Run
from repro.verdicts import redecide


# The notebooks that read the shared datasets under REPRO_DATA_DIR; without it the others still run.
NEEDS_SHARED_DATA = {"04_chess", "05_glue", "06_squad", "07_image_classification", "10_scaling"}


def snapshot() -> dict:
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("results", "figures") for p in sorted((ROOT / folder).glob("*")) if p.is_file()}


@pytest.mark.parametrize("stem", [pytest.param(stem, marks=pytest.mark.needs_data) if stem in NEEDS_SHARED_DATA else stem
                                  for stem in study_notebooks()])
def test_smoke_run_writes_results_with_provenance_and_verdicts(stem, tmp_path):
    before = snapshot()
    execute(stem, tmp_path / "build", {"PROFILE": "smoke", "RESULTS_DIR": str(tmp_path / "results"),
                                      "FIGURES_DIR": str(tmp_path / "figures")})
    assert snapshot() == before, "a smoke run wrote over the committed results or figures"
    document = json.loads((tmp_path / "results" / f"{stem}.json").read_text())
    provenance = document["provenance"]
    for key in ("git_sha", "git_dirty", "profile", "device", "torch", "seeds", "started", "wall_seconds", "claims_hash"):
        assert key in provenance
    assert provenance["profile"] == "smoke"
    assert document["claims"] and all(c["verdict"] in VERDICTS for c in document["claims"])
    for entry in document["claims"]:  # decided by repro.verdicts from what the notebook measured, never by the notebook
        measured = any(part["values"] for part in entry["parts"]) or any(g["value"] is not None for g in entry["gates"])
        assert entry["verdict"] == "not attempted" or measured, entry["id"]
        assert redecide(entry)["verdict"] == entry["verdict"]
    assert list((tmp_path / "figures").glob(f"{stem}_*.png"))
    # What the report page shows (cell outputs) names no folder of this machine: not the checkout, not the venv.
    cells = json.loads((tmp_path / "build" / f"{stem}.ipynb").read_text())["cells"]
    shown = json.dumps([cell.get("outputs", []) for cell in cells])
    assert str(ROOT) not in shown and sys.prefix not in shown, "an output names a folder of this machine"
    # The result schema of the committed reference run: the same claims and tables, each claim naming the library
    # functions that measured it (the report links them).
    committed = json.loads((ROOT / "results" / f"{stem}.json").read_text())
    assert [c["id"] for c in document["claims"]] == [c["id"] for c in committed["claims"]]
    assert set(document["tables"]) == set(committed["tables"])
    for entry in document["claims"]:
        assert entry["pipeline"] and all((ROOT / f["source"]).is_file() for f in entry["pipeline"]), entry["id"]


def test_the_report_rebuilds_from_the_committed_results(tmp_path):
    build_report(tmp_path / "build", tmp_path / "report", {})
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Claims" in page and "Deviations log" in page and "Built from" in page and "Smoke run" not in page


def test_unknown_notebook_parameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['PROFIL'\].*'PROFILE'"):
        check_parameters("01_parity", {"PROFIL": "cpu"})


def test_unknown_notebook_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="01_parity"):
        execute("01_parity_typo", tmp_path, {})


def test_a_failing_notebook_ends_the_run_non_zero_and_the_report_says_why(tmp_path):
    code = main(["--profile", "smoke", "--nb", "01_parity", "--param", "NO_SUCH_PARAMETER=1",
                 "--build", str(tmp_path / "build"), "--report-dir", str(tmp_path / "report")])
    assert code == 1
    status = json.loads((tmp_path / "build" / "status.json").read_text())
    assert not status["01_parity"]["ok"] and "NO_SUCH_PARAMETER" in status["01_parity"]["error"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "FAILED" in page and "NO_SUCH_PARAMETER" in page and "Smoke run" in page


def test_a_notebook_that_fails_in_a_cell_is_reported_with_its_cell_and_error(tmp_path, capsys):
    code = main(["--profile", "smoke", "--nb", "10_scaling", "--param", "PROFILE=bogus",
                 "--build", str(tmp_path / "build"), "--report-dir", str(tmp_path / "report")])
    assert code == 1
    error = json.loads((tmp_path / "build" / "status.json").read_text())["10_scaling"]["error"]
    assert "failed in cell" in error and "ValueError" in error and "bogus" in error
    assert f"executed copy: {tmp_path / 'build' / '10_scaling.ipynb'}" in error
    assert "failed in cell" in capsys.readouterr().err


def test_smoke_runs_refuse_to_write_the_committed_results():
    with pytest.raises(ValueError, match="smoke run must not write"):
        Run("01_parity", "smoke", torch.device("cpu"), {}, results_dir="results", figures_dir="figures")


def test_a_reference_run_writes_the_committed_folders_and_a_smoke_run_never_does(tmp_path):
    sources, report_dir, report_parameters = destinations("cpu", tmp_path, None)
    assert sources == {"RESULTS_DIR": "results", "FIGURES_DIR": "figures"} and report_dir == REPORT_DIR
    assert report_parameters == {}
    sources, report_dir, report_parameters = destinations("smoke", tmp_path, None)
    assert all(Path(folder).is_relative_to(tmp_path / "smoke") for folder in sources.values())
    assert report_dir == tmp_path / "smoke" / "report" and report_parameters == {"BANNER": SMOKE_BANNER}


@pytest.mark.parametrize("stem", study_notebooks() + [REPORT_NOTEBOOK])
def test_a_notebook_opens_with_the_project_kernel_and_by_hand_writes_only_to_scratch(stem):
    path = NOTEBOOKS / f"{stem}.ipynb"
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "repro"
    if stem == REPORT_NOTEBOOK:
        return
    defaults = {name: value["default"] for name, value in papermill.inspect_notebook(str(path)).items()}
    for folder in ("RESULTS_DIR", "FIGURES_DIR"):
        assert defaults[folder].strip("'\"").startswith("build/scratch/"), (stem, folder, defaults[folder])
