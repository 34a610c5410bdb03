"""The runner: lanes give the results of one lane, a reference run needs a clean tree and gets checkpoints per
notebook and commit, an exploratory run never touches the committed folders."""

import json

import pytest

from repro import reproduce
from repro.reproduce import destinations, longest_first, main, run_study

FAST = ["08_image_restoration", "09_vqa_retrieval"]  # two smoke runs that need no shared data
TIMING = ("second", "ms", "time", "throughput", "latency", "per s", "/s", "wall")


def measured(value):
    """`value` without what a clock measured (keys that name a time or a rate, and the evidence prose, which quotes
    training-time ratios), which no two runs share."""
    if isinstance(value, dict):
        return {key: measured(item) for key, item in value.items()
                if key != "evidence" and not any(word in str(key).lower() for word in TIMING)}
    if isinstance(value, list):
        return [measured(item) for item in value]
    return value


def test_a_reference_run_refuses_a_tree_with_uncommitted_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "git_state", lambda: ("0123456789abcdef", True))
    with pytest.raises(SystemExit, match="uncommitted changes.*0123456789ab.*--exploratory"):
        main(["--profile", "cpu", "--nb", "01_parity", "--build", str(tmp_path)])


def test_an_exploratory_run_writes_only_under_build(tmp_path):
    sources, report_dir, parameters = destinations("cpu", tmp_path, None, exploratory=True)
    assert sources == {"RESULTS_DIR": str(tmp_path / "exploratory/cpu/results"),
                       "FIGURES_DIR": str(tmp_path / "exploratory/cpu/figures")}
    assert report_dir == tmp_path / "exploratory/cpu/report" and "Exploratory run" in parameters["BANNER"]


def test_a_reference_run_gives_each_notebook_a_checkpoint_folder_of_its_commit(tmp_path, monkeypatch):
    seen = {}

    def fake_run_study(stems, profile, output_dir, parameters, pages_dir, jobs, checkpoints):
        seen.update(stems=stems, jobs=jobs, checkpoints=checkpoints)
        return {stem: {"ok": True} for stem in stems}

    monkeypatch.setattr(reproduce, "git_state", lambda: ("feedc0de", False))
    monkeypatch.setattr(reproduce, "run_study", fake_run_study)
    monkeypatch.setattr(reproduce, "build_report", lambda *args: None)
    assert main(["--profile", "cpu", "--nb", "01_parity", "02_prefix_sums", "--jobs", "8",
                 "--build", str(tmp_path)]) == 0
    assert seen == {"stems": ["01_parity", "02_prefix_sums"], "jobs": 2,
                    "checkpoints": tmp_path / "checkpoints" / "cpu" / "feedc0de"}
    with pytest.raises(SystemExit):
        main(["--jobs", "0"])


def test_lanes_start_with_the_longest_notebook_by_its_last_wall_time(tmp_path):
    for stem, seconds in (("01_a", 10.0), ("02_b", 300.0)):
        (tmp_path / f"{stem}.json").write_text(json.dumps({"provenance": {"wall_seconds": seconds}}))
    assert longest_first(["01_a", "02_b", "03_new"], tmp_path) == ["03_new", "02_b", "01_a"]


def test_two_lanes_write_the_results_of_one_lane(tmp_path):
    def results(jobs):
        folder = tmp_path / f"jobs{jobs}"
        parameters = {"RESULTS_DIR": str(folder / "results"), "FIGURES_DIR": str(folder / "figures")}
        status = run_study(FAST, "smoke", folder / "build", parameters, folder / "pages", jobs=jobs)
        assert all(entry["ok"] for entry in status.values()), status
        documents = {stem: json.loads((folder / "results" / f"{stem}.json").read_text()) for stem in FAST}
        return {stem: measured([document["claims"], document["tables"]]) for stem, document in documents.items()}, folder

    one, _ = results(1)
    two, folder = results(2)
    assert two == one
    assert all((folder / "build" / "logs" / f"{stem}.log").exists() for stem in FAST)
