"""Figure idioms shared by the notebooks and the report, in one style."""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

# One style for every figure of the study: seaborn's white grid at notebook scale, the colour-blind palette.
sns.set_theme(style="whitegrid", context="notebook", palette="colorblind", font_scale=0.85)

VERDICT_COLOURS = {"reproduced": "#1a9850", "partially": "#f39c12", "not reproduced": "#d73027",
                   "inconclusive": "#7f7f7f", "not attempted": "#c7c7c7"}


def forest(entries: list[dict]):
    """One row per deciding quantity: its mean and 95% interval over seeds (and each seed's value as a tick) against
    the claim's margin (dashed), the side where the claim holds shaded, coloured by the claim's verdict. Each row has
    its own unit and scale."""
    rows = [(entry, part) for entry in entries for part in entry["parts"]]
    if not rows:
        raise ValueError("no deciding quantity to plot: every entry is without parts")
    fig, axes = plt.subplots(len(rows), 1, figsize=(8.5, 0.36 * len(rows) + 0.8), squeeze=False)
    for ax, (entry, part) in zip(axes[:, 0], rows):
        colour, margin = VERDICT_COLOURS[entry["verdict"]], part["margin"]
        values = part["values"] or []
        if part["interval"] is None:
            reason = "no per-seed values" if part["values"] is None else f"{len(values)} {entry['replicate']}(s)"
            ax.text(0.5, 0.75, f"no interval: {reason}", transform=ax.transAxes, ha="center", va="center",
                    fontsize=7, color=colour)
        else:
            ax.hlines(0, *part["interval"], color=colour, lw=3)
            ax.plot(part["mean"], 0, "o", color=colour, ms=5)
        ax.plot(values, [-0.5] * len(values), "|", color=colour, ms=6)  # the replicates themselves
        if not values:
            ax.set_xticks([])
        shown = [margin, *values, *(part["interval"] or [])]
        pad = max(max(shown) - min(shown), abs(margin) * 0.5, 1e-3) * 0.3
        left, right = min(shown) - pad, max(shown) + pad
        ax.set_xlim(left, right)
        ax.axvspan(margin, right if part["direction"] == "at least" else left, color=VERDICT_COLOURS["reproduced"],
                   alpha=0.08)
        ax.axvline(margin, color="black", lw=0.8, ls="--")
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        ax.set_ylabel(f"{entry['id']} · {part['key']}", rotation=0, ha="right", va="center", fontsize=7)
        ax.text(1.01, 0.5, part["unit"], transform=ax.transAxes, fontsize=7, va="center")
        ax.tick_params(axis="x", labelsize=6, pad=1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    handles = [plt.Line2D([], [], color=c, lw=3, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()), h_pad=0.15)
    return fig


def panels(count: int, width: float = 4.2, height: float = 3.6, sharey: bool = True):
    """`count` side-by-side axes (always a flat array, even for one)."""
    fig, axes = plt.subplots(1, count, figsize=(width * count, height), sharey=sharey, squeeze=False)
    return fig, axes[0]


def finish(fig, axes, legend_axis: int = -1):
    """One legend, outside the last panel, and a tight layout."""
    for index, ax in enumerate(axes):
        legend = ax.get_legend()
        if legend is not None and index != legend_axis % len(axes):
            legend.remove()
    if axes[legend_axis].get_legend() is not None:
        axes[legend_axis].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def over_seeds(data: pd.DataFrame, x: str, y: str, hue: str, xlabel: str, ylabel: str, ax, hue_order=None,
               xscale: str = "linear", marker: str | None = None):
    """Mean and ± one standard deviation over seeds of `y` against `x`, one line per `hue`: the idiom of learning
    curves and of accuracy against test-time iterations."""
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=hue_order, errorbar="sd", marker=marker, ax=ax)
    ax.set(xlabel=xlabel, ylabel=f"{ylabel} (mean ± sd over seeds)", xscale=xscale)
    return ax


def learning_curves(curves: pd.DataFrame, y: str, ylabel: str, hue: str = "model", hue_order=None,
                    panel: str | None = None, title: str = "held-out learning curves"):
    """`y` against the training step, mean ± sd over seeds, one panel per value of `panel`."""
    keys = list(dict.fromkeys(curves[panel])) if panel else [None]
    fig, axes = panels(len(keys), width=5.5 if len(keys) == 1 else 4.2)
    for ax, key in zip(axes, keys):
        data = curves if key is None else curves[curves[panel] == key]
        over_seeds(data, "step", y, hue, "training step", ylabel, ax, hue_order=hue_order)
        ax.set_title(title if key is None else f"{title}: {key}")
    return finish(fig, axes)


def against_iterations(frame: pd.DataFrame, y: str, ylabel: str, trained_at: int, panel: str, panel_label: str,
                       hue: str = "model", hue_order=None):
    """`y` against the test-time iteration count (log scale), one panel per value of `panel` (test length,
    difficulty), the training iteration count dashed: where a curve falls past it, the model overthinks."""
    keys = list(dict.fromkeys(frame[panel]))
    fig, axes = panels(len(keys))
    for ax, key in zip(axes, keys):
        over_seeds(frame[frame[panel] == key], "iterations", y, hue, "test-time iterations", ylabel, ax,
                   hue_order=hue_order, xscale="log")
        ax.axvline(trained_at, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{panel_label} {key}")
    return finish(fig, axes)


def against_compute(summary: pd.DataFrame, cost: str, quality: str, xlabel: str, ylabel: str, label: str, ax=None):
    """Quality against cost, one point per row of `summary` (columns `<cost> mean`, `<cost> std`, `<quality> mean`,
    `<quality> std`, and `label`), with ± one standard deviation over seeds on both axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    for _, row in summary.iterrows():
        ax.errorbar(row[f"{cost} mean"], row[f"{quality} mean"], xerr=row[f"{cost} std"], yerr=row[f"{quality} std"],
                    fmt="o", capsize=3, label=row[label])
    ax.set(xlabel=xlabel, ylabel=f"{ylabel} (mean ± sd over seeds)")
    ax.legend(fontsize=7)
    return ax


def selection_heatmap(share, ax, title: str, label: str = "share of selections"):
    """A (rows, columns) map of how often each input region was selected, as a share."""
    sns.heatmap(share, cmap="magma", square=True, ax=ax, cbar_kws={"label": label}, xticklabels=False,
                yticklabels=False)
    ax.set(title=title, xlabel="patch column", ylabel="patch row")
    return ax


def evaluations_per_layer(frame: pd.DataFrame, hue: str, cap: int, ax, y: str = "iterations", over: str = "examples"):
    """FPSA's evaluations of f per layer (the column "layer"), mean ± sd over `over`, one line per `hue`, the
    iteration cap dashed: a layer on the cap ran every allowed evaluation without converging."""
    sns.pointplot(data=frame, x="layer", y=y, hue=hue, errorbar="sd", dodge=0.3, ax=ax)
    ax.axhline(cap, color="grey", lw=0.8, ls="--", label=f"cap ({cap})")
    ax.set(xlabel="encoder layer", ylabel=f"evaluations of f (mean ± sd over {over})", ylim=(0, cap + 0.5),
           title="FPSA evaluations per layer")
    ax.legend(fontsize=7)
    return ax


def against_stability(measures: pd.DataFrame, axes: dict[str, str], y: str, ylabel: str, hue_order=None):
    """`y` against each stability axis (column -> scale), one point per (configuration, seed), one panel per axis;
    on the spectral radius the line rho = 1 (left of it the fixed point attracts)."""
    fig, panel_axes = panels(len(axes))
    for ax, (measure, scale) in zip(panel_axes, axes.items()):
        sns.scatterplot(data=measures.reset_index(), x=measure, y=y, hue="model", hue_order=hue_order, style="model",
                        ax=ax, s=60)
        ax.set(xscale=scale, xlabel=f"{measure} (median over inputs)", ylabel=ylabel)
        if measure == "spectral radius":
            ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    return finish(fig, panel_axes)


def iterations_by_group(frame: pd.DataFrame, metrics: dict[str, str], residuals: pd.DataFrame, trained_at: int,
                        looped: list, reference: str, panel: str = "role", order: list | None = None):
    """One row per metric (column -> label), one panel per value of `panel`: the looped models' metric against the
    test-time iteration count (log scale, mean ± sd over seeds), the reference's one-depth value dashed, the training
    count dotted; a last panel holds the median relative residual of every looped iteration (log scale). `order`:
    the panels' values in order (default: as they first appear)."""
    keys = order or list(dict.fromkeys(frame[panel]))
    fig, grid = plt.subplots(len(metrics), len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.8 * len(metrics)),
                             squeeze=False)
    for row, (metric, label) in enumerate(metrics.items()):
        for ax, key in zip(grid[row], keys):
            data = frame[frame[panel] == key]
            over_seeds(data[data.model.isin(looped)], "iterations", metric, "model", "test-time iterations", label,
                       ax, hue_order=looped, xscale="log")
            ax.get_legend().remove()
            ax.axhline(data[data.model == reference][metric].mean(), color="black", lw=0.8, ls="--")
            ax.axvline(trained_at, color="grey", lw=0.8, ls=":")
            ax.set(title=str(key), ylim=(-0.02, 1.02))
        grid[row, -1].axis("off")
    ax = grid[0, -1]
    ax.axis("on")
    over_seeds(residuals, "iterations", "median residual", "model", "test-time iterations",
               "median relative residual", ax, hue_order=looped, xscale="log")
    ax.set(yscale="log", title="residual ||z_t - z_{t-1}|| / ||z_{t-1}||")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def learning_curves_by_metric(curves: pd.DataFrame, metrics: dict[str, str], hue: str = "model", hue_order=None,
                              title: str = "held-out learning curve"):
    """One panel per metric (column -> label, each on its own y scale: a loss beside an accuracy), each against the
    training step, mean ± sd over seeds."""
    fig, axes = panels(len(metrics), width=5.0, sharey=False)
    for ax, (metric, label) in zip(axes, metrics.items()):
        over_seeds(curves, "step", metric, hue, "training step", label, ax, hue_order=hue_order)
        ax.set_title(f"{title}: {label}", fontsize=9)
    return finish(fig, axes)
