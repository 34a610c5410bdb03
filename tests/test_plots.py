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
