"""Execute a notebook in this process with every call of `repro.train.train` handed to a hook: how the training-step
benchmark and `make gpu-check` time a notebook's own training loops, with the model, loss, batch stream and training
config exactly as the notebook builds them.

    execute_intercepted("02_prefix_sums", "cpu", hook)   # hook(train, arguments) -> what the notebook's call returns

`arguments` are the call's arguments by name, defaults filled in; the hook may change them and call `train(**arguments)`
(the real loop), or raise to stop the notebook there. The notebook runs its cells in order, as papermill would, from
notebooks/ and with its results and figures in a temporary folder that is deleted after it, so nothing is kept; what it
prints is swallowed.
"""

import inspect
import io
import pkgutil
import sys
import tempfile
import types
from collections.abc import Callable
from contextlib import ExitStack, chdir, redirect_stdout
from unittest import mock

import matplotlib
import nbformat

import repro.experiments
import repro.train
from repro.reproduce import NOTEBOOKS, check_parameters


def import_pipelines() -> None:
    """Import every experiment module before the hook is installed, so each one's `train` is found and replaced."""
    for found in pkgutil.iter_modules(repro.experiments.__path__):
        __import__(f"repro.experiments.{found.name}")


def execute_intercepted(stem: str, profile: str, hook: Callable) -> None:
    """Run notebook `stem` in `profile` top to bottom with `hook(train, arguments)` in place of every training call."""
    matplotlib.use("Agg")  # the notebooks draw figures; nothing shows them here
    import_pipelines()
    original = repro.train.train
    signature = inspect.signature(original)

    def intercepted(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        return hook(original, dict(call.arguments))

    module = types.ModuleType(f"notebook_{stem}")  # a real module: dataclasses defined in a cell resolve their types
    # Every module that imported `train` by name calls the hook instead.
    holders = [m for m in list(sys.modules.values()) if getattr(m, "train", None) is original]
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        parameters = {"PROFILE": profile, "RESULTS_DIR": f"{scratch}/results", "FIGURES_DIR": f"{scratch}/figures",
                      "CHECKPOINT_DIR": ""}
        check_parameters(stem, parameters)
        for holder in holders:
            stack.enter_context(mock.patch.object(holder, "train", intercepted))
        sys.modules[module.__name__] = module  # only this entry: what the notebook imports stays imported
        stack.callback(sys.modules.pop, module.__name__)
        stack.enter_context(chdir(NOTEBOOKS))
        stack.enter_context(redirect_stdout(io.StringIO()))
        for index, cell in enumerate(nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).cells):
            if cell.cell_type == "code":
                exec(compile(cell.source, f"{stem}.ipynb cell {index}", "exec"), module.__dict__)
                if "parameters" in cell.metadata.get("tags", []):
                    module.__dict__.update(parameters)
