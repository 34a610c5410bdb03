"""Each notebook and its percent script (jupytext) hold the same cells, so a review of the script is a review of the
notebook that `make reproduce` runs."""

import jupytext
import pytest

from repro.reproduce import NOTEBOOKS, REPORT_NOTEBOOK, study_notebooks


def cells(notebook) -> list[tuple]:
    return [(cell.cell_type, cell.source.strip(), tuple(cell.metadata.get("tags", ()))) for cell in notebook.cells]


@pytest.mark.parametrize("stem", study_notebooks() + [REPORT_NOTEBOOK])
def test_the_notebook_and_its_script_agree(stem):
    notebook = jupytext.read(NOTEBOOKS / f"{stem}.ipynb")
    script = jupytext.read(NOTEBOOKS / f"{stem}.py")
    assert cells(script) == cells(notebook), (
        f"notebooks/{stem}.py and .ipynb differ: after editing the script run `make notebooks`, "
        "after editing the notebook outside JupyterLab run `make scripts`")
    assert notebook.metadata["kernelspec"]["name"] == script.metadata["kernelspec"]["name"] == "repro"


def test_every_script_has_its_notebook():
    scripts = {path.stem for path in NOTEBOOKS.glob("*.py")}
    assert scripts == set(study_notebooks() + [REPORT_NOTEBOOK])


def code_lines(stem: str) -> int:
    """Non-blank lines of a notebook's code cells that are not comments."""
    notebook = jupytext.read(NOTEBOOKS / f"{stem}.ipynb")
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" for line in cell.source.splitlines()
               if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("stem", study_notebooks())
def test_a_notebook_narrates_and_the_library_experiments(stem):
    """The mechanisms live in repro/ (tested, importable); a notebook sets up, runs, shows and decides."""
    assert code_lines(stem) <= 160, f"{stem} has {code_lines(stem)} code lines; move mechanisms into repro/experiments/"
