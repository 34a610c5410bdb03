"""A result knows the inputs that shaped it, and the report can tell when one of them changed."""

import json
from datetime import datetime, timedelta, timezone

import pytest
import torch

import repro.staleness as staleness
from repro import ROOT
from repro.data.files import recorded_sha256
from repro.results import Run
from repro.staleness import age_days, changed_inputs, code_inputs, freshness, imported_sources, sha256_of


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A stand-in repository with a notebook and one module, so a test can change files freely."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "repro").mkdir()
    (tmp_path / "notebooks" / "01_parity.ipynb").write_text("{}")
    (tmp_path / "repro" / "layer.py").write_text("WIDTH = 32\n")
    monkeypatch.setattr(staleness, "ROOT", tmp_path)
    return tmp_path


def recorded(tree, data=None) -> dict:
    code = {path: sha256_of(tree / path) for path in ("notebooks/01_parity.ipynb", "repro/layer.py")}
    return {"started": "2026-12-01T00:00:00+00:00", "git_sha": "0" * 40, "inputs": {"code": code, "data": data or {}}}


def test_a_result_records_its_notebook_and_every_imported_repro_module():
    inputs = code_inputs("01_parity")
    assert "notebooks/01_parity.ipynb" in inputs and "repro/staleness.py" in inputs
    assert set(imported_sources()) <= set(inputs) | {"notebooks/01_parity.ipynb"}
    assert inputs["repro/staleness.py"] == sha256_of(ROOT / "repro" / "staleness.py")


def test_unchanged_inputs_are_fresh_and_each_change_is_named(tree):
    provenance = recorded(tree, data={"sst2/train.tsv": "a" * 64})
    manifest = {"sst2/train.tsv": "a" * 64}
    assert changed_inputs(provenance, manifest.__getitem__) == []
    (tree / "repro" / "layer.py").write_text("WIDTH = 64\n")
    assert changed_inputs(provenance, manifest.__getitem__) == ["repro/layer.py"]
    (tree / "notebooks" / "01_parity.ipynb").unlink()
    manifest["sst2/train.tsv"] = "b" * 64
    assert changed_inputs(provenance, manifest.__getitem__) == ["notebooks/01_parity.ipynb", "repro/layer.py",
                                                               "data:sst2/train.tsv"]


def test_a_data_file_gone_from_the_manifest_counts_as_changed(tree):
    provenance = recorded(tree, data={"gone.tsv": "a" * 64})
    assert changed_inputs(provenance, {}.__getitem__) == ["data:gone.tsv"]


def test_a_data_directory_that_cannot_be_found_is_an_error_not_a_change(tree, monkeypatch):
    provenance = recorded(tree, data={"glue/SST-2/dev.tsv": "a" * 64})
    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="REPRO_DATA_DIR is not set"):
        changed_inputs(provenance, recorded_sha256)


def test_a_result_without_recorded_inputs_is_not_passed_for_fresh(tree):
    provenance = {"started": "2026-12-01T00:00:00+00:00", "git_sha": "0" * 40}
    assert changed_inputs(provenance, {}.__getitem__) is None
    notes = freshness("01_parity", {"provenance": provenance, "claims": []}, {}.__getitem__)
    assert len(notes) == 1 and "inputs were not recorded" in notes[0]


def test_a_failed_run_shows_the_failure_and_the_age_of_the_result_on_display(tree):
    provenance = recorded(tree)
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    result = {"provenance": provenance, "claims": []}
    assert freshness("01_parity", result, {}.__getitem__, now=now) == []
    notes = freshness("01_parity", result, {}.__getitem__, failure="ValueError: bad", now=now)
    assert notes == ["the last run of 01_parity failed (ValueError: bad); shown instead: its result of "
                     "2026-12-01T00:00:00+00:00, 3.5 days old"]
    assert age_days(provenance, now + timedelta(days=1)) == pytest.approx(4.5)


def test_a_written_result_carries_its_inputs(tmp_path):
    run = Run("01_parity", "smoke", torch.device("cpu"), {}, tmp_path, tmp_path)
    inputs = json.loads(run.write().read_text())["provenance"]["inputs"]
    assert {"notebooks/01_parity.ipynb", "repro/results.py", "repro/staleness.py"} <= set(inputs["code"])
    assert changed_inputs({"inputs": inputs}, recorded_sha256) == []


def test_registries_are_judged_by_the_entries_a_result_uses(tree):
    """A change elsewhere in the claims or deviations registry leaves a result fresh; a deviation it cites that is gone
    makes it stale. (Its own claim's rule is checked per entry by `repro.verdicts.stale_definition`.)"""
    for path in staleness.REGISTRIES:
        (tree / path).write_text("ENTRIES = {}\n")
    provenance = recorded(tree)
    provenance["inputs"]["code"].update({path: sha256_of(tree / path) for path in staleness.REGISTRIES})
    for path in staleness.REGISTRIES:
        (tree / path).write_text("ENTRIES = {'another notebook': 1}\n")
    cited = {"provenance": provenance, "claims": [{"id": "A1", "deviations": ["parity-unseen-counts"]}]}
    assert changed_inputs(provenance, {}.__getitem__) == []
    assert freshness("01_parity", cited, {}.__getitem__) == []
    cited["claims"][0]["deviations"].append("a-deviation-since-removed")
    assert freshness("01_parity", cited, {}.__getitem__) == [
        "stale: it cites deviation(s) the log no longer holds: a-deviation-since-removed"]
    (tree / "repro" / "layer.py").write_text("WIDTH = 64\n")
    assert changed_inputs(provenance, {}.__getitem__) == ["repro/layer.py"]
