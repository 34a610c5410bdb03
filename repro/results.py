"""The results contract: one JSON per notebook with provenance, claims and tables, and figures
stamped with the same provenance.

`results/<stem>.json` = {"provenance": {...}, "claims": [...], "tables": {...}}; `99_report`
reads only these files and `figures/`.
"""

import hashlib
import inspect
import io
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from repro import ROOT, distributed
from repro.claims import claim
from repro.data.files import files_read, write_atomically
from repro.deviations import DEVIATIONS
from repro.staleness import code_inputs
from repro.verdicts import decide


# The study's own outputs: a reference run rewrites them notebook after notebook, so their changes do not make the
# code that produced the next notebook's results any less the committed code.
OUTPUTS = ("results", "figures", "report")


def git_state() -> tuple[str, bool]:
    """(commit sha, dirty flag) of the checkout, the flag ignoring the study's outputs; ("unknown", True) outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
                                + [f":!{folder}" for folder in OUTPUTS], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, bool(status.strip())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def mean_std(values) -> dict:
    """{"mean", "std", "n"} over seeds; std is the sample std (0 for one seed)."""
    series = pd.Series(list(values), dtype=float)
    return {"mean": float(series.mean()), "std": float(series.std(ddof=1)) if len(series) > 1 else 0.0,
            "n": int(len(series))}


def mean_std_text(values) -> str:
    """'mean ± std' over seeds with three decimals, the form of every table cell."""
    summary = mean_std(values)
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Rank correlation of two aligned series; NaN when either side is constant (e.g. every model at 0)."""
    return x.rank().corr(y.rank())


class Run:
    """Collects one notebook's claims, tables and figures, and writes them with provenance.

    `results_dir` and `figures_dir` are parameters so tests write into a temporary folder and
    never over the committed reference run.
    """

    def __init__(self, stem: str, profile: str, device: torch.device, seeds: dict,
                 results_dir: str | Path, figures_dir: str | Path):
        self.stem = stem
        self.results_dir = ROOT / results_dir
        self.figures_dir = ROOT / figures_dir
        committed = {(ROOT / "results").resolve(), (ROOT / "figures").resolve()}
        if profile == "smoke" and {self.results_dir.resolve(), self.figures_dir.resolve()} & committed:
            raise ValueError("a smoke run must not write over the committed results/ or figures/; "
                             "give RESULTS_DIR and FIGURES_DIR another folder (make reproduce does: build/smoke/)")
        self.started = time.time()
        sha, dirty = git_state()
        self.provenance = {
            "notebook": stem, "git_sha": sha, "git_dirty": dirty, "profile": profile,
            "device": device_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(),
            "seeds": seeds, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if distributed.launched():  # data-parallel: how far that matches one process, repro/distributed.py says
            self.provenance["processes"] = distributed.world_size()
        self.claims: list[dict] = []
        self.tables: dict[str, list[dict]] = {}

    def add_claim(self, claim_id: str, parts: dict | None = None, gates: dict | None = None, evidence: str = "",
                  deviations: tuple[str, ...] = (), comparisons: dict | None = None,
                  not_attempted: str | None = None, pipeline: tuple = ()) -> dict:
        """Decide one claim with `repro.verdicts.decide` and record the entry; returns it for display.

        `parts` maps each pre-registered part to its per-replicate values, `gates` each gate to its measured value
        (see `repro/claims.py`); `evidence` is the prose a reader needs beside the numbers; `pipeline` the library
        functions that measured them, which the report links to."""
        spine = claim(claim_id)
        unknown = [d for d in deviations if d not in DEVIATIONS]
        if unknown:
            raise ValueError(f"unknown deviation id(s) {unknown}; known: {sorted(DEVIATIONS)}")
        entry = decide(claim_id, parts, gates, comparisons, not_attempted)
        entry.update(paper=spine.paper, statement=spine.statement, paper_value=spine.paper_value,
                     evidence=evidence, deviations=list(deviations), pipeline=[where(f) for f in pipeline])
        self.claims.append(entry)
        return entry

    def add_table(self, name: str, table: pd.DataFrame) -> None:
        self.tables[name] = json.loads(table.reset_index().to_json(orient="records"))

    def save_figure(self, figure, what: str) -> Path:
        """Save `figures/<stem>_<what>.png` with the provenance in the PNG metadata.

        Rendered in memory and written atomically, so a kill or a failing render leaves the previous figure whole.
        Under torchrun only rank 0 writes."""
        path = self.figures_dir / f"{self.stem}_{what}.png"
        if not distributed.is_main():
            return path
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        stamp = {key: str(value) for key, value in self.provenance.items()}
        image = io.BytesIO()
        figure.savefig(image, format="png", dpi=120, bbox_inches="tight", metadata=stamp)
        write_atomically(path, image.getvalue())
        return path

    def write(self) -> Path:
        """Under torchrun only rank 0 writes; every rank records its wall time, so code after it runs on every rank."""
        path = self.results_dir / f"{self.stem}.json"
        self.provenance["wall_seconds"] = round(time.time() - self.started, 1)
        if not distributed.is_main():
            return path
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.provenance["claims_hash"] = claims_hash(self.claims)
        # Taken last, so every module the notebook imported and every data file it read is in: the report hashes them
        # again and marks the result stale when one changed (repro/staleness.py).
        self.provenance["inputs"] = {"code": code_inputs(self.stem), "data": files_read()}
        document = {"provenance": self.provenance, "claims": self.claims, "tables": self.tables}
        # Atomic: a kill or a failure midway leaves the previous result whole, never half a file.
        write_atomically(path, (json.dumps(document, indent=2) + "\n").encode())
        return path


def where(function) -> dict:
    """The qualified name of a `repro` function and its source file and line, relative to the repository."""
    module = inspect.getmodule(function)
    if module is None or not module.__name__.startswith("repro."):
        raise ValueError(f"a claim's pipeline names functions of the repro package, got {function!r}")
    source = Path(inspect.getsourcefile(function)).resolve().relative_to(ROOT)
    return {"function": f"{module.__name__}.{function.__qualname__}", "source": source.as_posix(),
            "line": inspect.getsourcelines(function)[1]}


def claims_hash(entries: list[dict]) -> str:
    """One hash of the definitions every claim of a result file was decided under."""
    joined = ",".join(sorted(f"{entry['id']}={entry['definition_hash']}" for entry in entries))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def load_results(results_dir: str | Path = "results") -> dict[str, dict]:
    """Every `<stem>.json` under `results_dir`, keyed by notebook stem."""
    return {path.stem: json.loads(path.read_text()) for path in sorted((ROOT / results_dir).glob("*.json"))}

