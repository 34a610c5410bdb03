"""Whether a committed result still describes the code and data of today's tree.

A result records the sha256 of every input that shaped it: its notebook, each `repro` module the notebook's kernel had
imported when it wrote the result, and each shared data file it read. The report hashes the same files again and marks
the result stale when any of them changed or went missing, naming which; a result written before inputs were recorded
says so instead of passing for fresh.

Three modules are registries or bookkeeping rather than computation (`REGISTRIES`), and are judged by the entries a
result uses, not as whole files: a new claim or deviation for one notebook would otherwise mark every result stale.
"""

import hashlib
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from repro import ROOT
from repro.deviations import DEVIATIONS

REGISTRIES = {
    "repro/claims.py": "the pre-registrations: the report checks each claim a result decided against its own rule "
                       "(`repro.verdicts.stale_definition`), so another claim's rule cannot touch it",
    "repro/deviations.py": "the deviations log, which the report renders from today's tree: a result is stale when a "
                           "deviation it cites is gone (`gone_deviations`)",
    "repro/staleness.py": "this module, which records and compares the hashes of a result's inputs and computes none "
                          "of its values",
}
"""Recorded inputs whose file hash does not decide staleness, and what does instead."""


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def imported_sources() -> list[str]:
    """The repository-relative source files of every `repro` module imported in this process."""
    sources = set()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if (name == "repro" or name.startswith("repro.")) and location:
            path = Path(location).resolve()
            if path.is_relative_to(ROOT):
                sources.add(path.relative_to(ROOT).as_posix())
    return sorted(sources)


def code_inputs(stem: str) -> dict[str, str]:
    """{repository path: sha256} of the notebook `stem` and of the `repro` modules imported so far."""
    paths = [f"notebooks/{stem}.ipynb", *imported_sources()]
    return {path: sha256_of(ROOT / path) for path in paths if (ROOT / path).is_file()}


def changed_inputs(provenance: dict, data_sha256) -> list[str] | None:
    """The recorded inputs whose file changed or is gone since the result was written, `REGISTRIES` aside; None when
    none were recorded.

    Code is hashed again under the repository; data files are compared with `data_sha256(relative)`, the hash the
    data's manifest records today (hashing every dataset again for each report would take minutes)."""
    inputs = provenance.get("inputs")
    if inputs is None:
        return None
    changed = [path for path, sha in inputs["code"].items() if path not in REGISTRIES
               and (not (ROOT / path).is_file() or sha256_of(ROOT / path) != sha)]
    for relative, sha in inputs["data"].items():
        try:
            now = data_sha256(relative)
        except (KeyError, ValueError):  # gone from its manifest: changed. A data directory that cannot be found
            now = None  # (REPRO_DATA_DIR unset or wrong) raises its own error: it says nothing about the data.
        if now != sha:
            changed.append(f"data:{relative}")
    return changed


def changed_since_commit(stem: str, sha: str) -> list[str] | None:
    """For a result that recorded no inputs: the notebook and `repro` files that differ between its commit and today's
    tree (any of them may matter); None where git cannot tell (no checkout, or a commit it does not have)."""
    try:
        listed = subprocess.run(["git", "diff", "--name-only", sha, "--", f"notebooks/{stem}.ipynb", "repro"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return listed.split()


def gone_deviations(claims: list[dict]) -> list[str]:
    """The deviations the result's claims cite that the log no longer holds."""
    return sorted({name for entry in claims for name in entry.get("deviations", ()) if name not in DEVIATIONS})


def freshness(stem: str, result: dict, data_sha256, failure: str | None = None,
              now: datetime | None = None) -> list[str]:
    """What a reader must know before trusting the result on display (a document with "provenance" and "claims"): a
    failed last run (and the age of the result shown instead), changed inputs, cited deviations that are gone, or
    inputs that were never recorded. Empty for a fresh result."""
    provenance = result["provenance"]
    notes = []
    if failure:
        notes.append(f"the last run of {stem} failed ({failure}); shown instead: its result of {provenance['started']}, "
                     f"{age_days(provenance, now):.1f} days old")
    changed = changed_inputs(provenance, data_sha256)
    if changed:
        notes.append(f"stale: {len(changed)} input(s) changed since it was written: " + ", ".join(changed))
    gone = gone_deviations(result["claims"])
    if gone:
        notes.append("stale: it cites deviation(s) the log no longer holds: " + ", ".join(gone))
    if changed is None:
        since = changed_since_commit(stem, provenance["git_sha"])
        notes.append("its inputs were not recorded (written before input hashes were) and "
                     + ("git cannot tell what changed since" if since is None else
                        f"{len(since)} notebook or repro file(s) changed since commit {provenance['git_sha'][:8]}"
                        + (": " + ", ".join(since) if since else "")))
    return notes


def age_days(provenance: dict, now: datetime | None = None) -> float:
    """Days since the result's run started."""
    started = datetime.fromisoformat(provenance["started"])
    return ((now or datetime.now(timezone.utc)) - started).total_seconds() / 86400
