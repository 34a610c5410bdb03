"""`make gpu-check` on the CPU, through its smoke profile: the projection of a notebook from a few timed steps of each
training call, the real run of the notebooks that fit the budget (apart from results/ and figures/), none when none
fits, and a clear stop where the gpu profile has no CUDA device."""

import json

import pytest
import torch

from repro import ROOT
import repro.gpu_check as gpu_check
from repro.gpu_check import TimedCall, evaluations, main, reason_not_run, time_call
from repro.train import TrainConfig

FAST = "08_image_restoration"  # the quickest smoke run that needs no shared data
TIMED = 2  # fewer than its smoke runs' steps, so the rest of every call is projected


def check(tmp_path, budget_minutes: float) -> dict:
    code = main(["--profile", "smoke", "--nb", FAST, "--timed-steps", str(TIMED),
                 "--budget-minutes", str(budget_minutes), "--out", str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["profile"] == "smoke" and summary["timed_steps"] == TIMED
    [row] = summary["notebooks"]
    assert row["notebook"] == FAST and row["error"] is None
    return row


def test_a_call_adds_its_steps_and_evaluations_left_at_the_measured_rates():
    assert [evaluations(10, 3), evaluations(9, 3), evaluations(10, 0)] == [4, 3, 1]  # every 3 steps and the last
    call = TimedCall("run", steps=1000, timed_steps=50, seconds_per_step=0.02, evaluations=10,
                     timed_evaluations=[0.5, 1.5])
    assert call.seconds_left() == pytest.approx(950 * 0.02 + 8 * 1.0)
    assert TimedCall("run", 1, 1, None, 0, []).seconds_left() == 0


def test_phase_two_runs_what_fits_the_budget_and_the_time_left():
    row = {"error": None, "projected_seconds": 300}
    assert reason_not_run(row, budget_minutes=8, minutes_left=10) is None
    assert reason_not_run(row, budget_minutes=4, minutes_left=10) == "over budget"
    assert reason_not_run(row, budget_minutes=8, minutes_left=4) == "out of time"
    assert reason_not_run({"error": "boom", "projected_seconds": None}, 8, 10) == "projection failed"


def committed() -> dict:
    return {path: path.stat().st_mtime_ns for folder in ("results", "figures") for path in (ROOT / folder).iterdir()}


def test_a_notebook_that_fits_is_projected_then_run_apart_from_the_reference(tmp_path):
    before = committed()
    row = check(tmp_path, budget_minutes=8)
    assert row["calls"] and all(call["steps"] > 0 and call["timed_steps"] == min(TIMED, call["steps"])
                                for call in row["calls"])
    assert any(call["steps"] > TIMED for call in row["calls"]), "no call had steps left to project"
    assert all(call["seconds_per_step"] > 0 for call in row["calls"])
    assert row["projected_seconds"] > row["wall_seconds"] > 0
    assert row["run"]["ok"] and row["run"]["wall_seconds"] > 0
    result = json.loads((tmp_path / "results" / f"{FAST}.json").read_text())
    assert result["provenance"]["profile"] == "smoke"
    assert list((tmp_path / "figures").glob(f"{FAST}_*.png")) and (tmp_path / "pages" / f"{FAST}.html").is_file()
    assert committed() == before, "the check wrote into results/ or figures/"


def test_a_budget_of_zero_projects_and_runs_nothing(tmp_path):
    row = check(tmp_path, budget_minutes=0)
    assert row["projected_seconds"] > 0 and "run" not in row
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here, so the gpu profile runs")
def test_the_gpu_profile_without_cuda_stops_at_once_and_names_the_cpu_way(tmp_path):
    with pytest.raises(SystemExit, match=r"needs CUDA.*--profile smoke"):
        main(["--nb", FAST, "--out", str(tmp_path)])
    assert not tmp_path.joinpath("gpu_check.json").exists()


def test_the_step_rate_leaves_out_the_warm_up_steps_and_the_evaluations(monkeypatch):
    """A stand-in for `repro.train.train` on a fake clock: 3 slow warm-up steps (10 s), then 1 s steps, and an
    evaluation of 5 s every 4 steps and at the last; the rate must be the 1 s of a plain step."""
    now = [0.0]
    monkeypatch.setattr(gpu_check.time, "perf_counter", lambda: now[0])

    def fake_train(model, loss_fn, data, config, evaluate, device, checkpoint, description):
        for step in range(config.steps):
            loss_fn(model, None)
            now[0] += 10.0 if step < gpu_check.WARMUP_STEPS else 1.0
            if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                evaluate(model)

    def slow_evaluation(model):
        now[0] += 5.0
        return {}

    calls = []
    arguments = {"model": None, "loss_fn": lambda model, batch: None, "data": None, "device": "cpu",
                 "config": TrainConfig(steps=100, warmup_steps=10, eval_every=4), "evaluate": slow_evaluation,
                 "checkpoint": "ignored.pt", "description": "fake"}
    time_call(fake_train, arguments, 10, calls)
    [call] = calls
    assert (call.steps, call.timed_steps, call.evaluations) == (100, 10, 25)
    assert call.seconds_per_step == pytest.approx(1.0) and call.timed_evaluations == [5.0, 5.0, 5.0]
    assert call.seconds_left() == pytest.approx(90 * 1.0 + 22 * 5.0)  # the steps and evaluations the full call adds
