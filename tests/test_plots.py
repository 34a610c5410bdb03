"""The figure idioms: every axis labelled with its quantity, seeds aggregated, one legend."""

import matplotlib
import numpy as np
import pandas as pd

from repro.plots import against_compute, against_iterations, learning_curves, panels, selection_heatmap

matplotlib.use("Agg")


def curves() -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "seed": seed, "step": step, "task": task, "accuracy": step / 10 + seed / 100}
                         for model in ("a", "b") for seed in (0, 1) for step in (1, 5, 10) for task in ("x", "y")])


def test_learning_curves_label_both_axes_and_keep_one_legend():
    fig = learning_curves(curves(), "accuracy", "accuracy", panel="task")
    axes = fig.axes
    assert len(axes) == 2 and all(ax.get_xlabel() == "training step" for ax in axes)
    assert axes[0].get_ylabel() == "accuracy (mean ± sd over seeds)"
    assert [ax.get_legend() is not None for ax in axes] == [False, True]
    assert [ax.get_title() for ax in axes] == ["held-out learning curves: x", "held-out learning curves: y"]


def test_against_iterations_marks_the_training_count_on_a_log_axis():
    frame = curves().rename(columns={"step": "iterations"})
    fig = against_iterations(frame, "accuracy", "exact match", trained_at=5, panel="task", panel_label="task")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "test-time iterations"
    assert any(np.allclose(line.get_xdata(), 5) for line in ax.lines)


def test_against_compute_draws_one_point_per_row_with_both_spreads():
    summary = pd.DataFrame({"model": ["a", "b"], "flops mean": [1.0, 2.0], "flops std": [0.1, 0.2],
                            "top-1 mean": [0.5, 0.6], "top-1 std": [0.01, 0.02]})
    ax = against_compute(summary, "flops", "top-1", "MFLOPs per image", "top-1 accuracy", "model")
    assert ax.get_xlabel() == "MFLOPs per image" and len(ax.containers) == 2


def test_selection_heatmap_labels_its_grid():
    _, axes = panels(1)
    ax = selection_heatmap(np.eye(4) / 4, axes[0], "AdaTape")
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("patch column", "patch row", "AdaTape")


def test_against_stability_draws_one_panel_per_axis_and_marks_rho_one():
    from repro.plots import against_stability
    measures = pd.DataFrame({"model": ["a", "b"], "seed": [0, 0], "path spread": [0.1, 1.0],
                             "spectral radius": [0.5, 1.5], "accuracy": [0.9, 0.2]}).set_index(["model", "seed"])
    fig = against_stability(measures, {"path spread": "log", "spectral radius": "linear"}, "accuracy", "accuracy")
    first, second = fig.axes[:2]
    assert first.get_xscale() == "log" and first.get_xlabel() == "path spread (median over inputs)"
    assert any(np.allclose(line.get_xdata(), 1.0) for line in second.lines)


def test_iterations_by_group_adds_the_reference_and_a_residual_panel():
    from repro.plots import iterations_by_group
    frame = pd.DataFrame([{"model": m, "seed": s, "role": r, "iterations": t, "accuracy": t / 10}
                          for m in ("loop", "ref") for s in (0, 1) for r in ("easy", "hard")
                          for t in ((1, 2, 4) if m == "loop" else (1,))])
    residuals = pd.DataFrame([{"model": "loop", "seed": s, "iterations": t, "median residual": 1 / t}
                              for s in (0, 1) for t in (1, 2, 4)])
    fig = iterations_by_group(frame, {"accuracy": "accuracy"}, residuals, 2, ["loop"], "ref", order=["hard", "easy"])
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:2]] == ["hard", "easy"] and axes[2].get_yscale() == "log"
    assert any(np.allclose(line.get_ydata(), 0.1) for line in axes[0].lines)   # the reference, dashed


def test_learning_curves_by_metric_give_each_metric_its_own_scale():
    from repro.plots import learning_curves_by_metric
    frame = curves().assign(loss=lambda f: 10 * f.accuracy)
    fig = learning_curves_by_metric(frame, {"loss": "loss (nats)", "accuracy": "accuracy"})
    first, second = fig.axes[:2]
    assert first.get_ylabel() == "loss (nats) (mean ± sd over seeds)" and second.get_xlabel() == "training step"
    assert first.get_ylim() != second.get_ylim()
    assert [ax.get_legend() is not None for ax in fig.axes[:2]] == [False, True]


def test_evaluations_per_layer_marks_the_cap_and_labels_its_axes():
    from repro.plots import evaluations_per_layer

    solves = pd.DataFrame({"layer": [1, 1, 2, 2] * 2, "iterations": [1, 3, 2, 4, 2, 2, 3, 3],
                           "variant": ["FPSA"] * 4 + ["swapped"] * 4})
    _, axes = panels(1)
    ax = evaluations_per_layer(solves, "variant", cap=4, ax=axes[0], over="windows")
    assert ax.get_xlabel() == "encoder layer" and ax.get_ylabel() == "evaluations of f (mean ± sd over windows)"
    assert ax.get_ylim() == (0, 4.5) and any(np.allclose(line.get_ydata(), 4) for line in ax.lines)
