"""Figure idioms shared by the notebooks and the report, in one style."""

import matplotlib.pyplot as plt

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
