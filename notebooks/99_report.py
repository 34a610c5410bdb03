# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (repro)
#     language: python
#     name: repro
# ---

# %% tags=["parameters"]
RESULTS_DIR = "results"
FIGURES_DIR = "figures"
STATUS_FILE = ""   # build/status.json of the last `make reproduce`, if any
BANNER = ""        # shown above everything (a smoke run says that its verdicts mean nothing)
SOURCE_ROOT = ".."  # the repository root as seen from the report's folder: where its links to code point

# %%
import html
import json
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Image, Markdown, display

from repro import ROOT
from repro.claims import CLAIMS, VERDICT_MEANINGS, VERDICTS, claim
from repro.deviations import DEVIATIONS
from repro.plots import VERDICT_COLOURS, forest
from repro.replicates import straddling_budget
from repro.data.files import recorded_sha256
from repro.results import load_results
from repro.staleness import freshness
from repro.verdicts import redecide, stale_definition

results = load_results(RESULTS_DIR)
status_path = Path(STATUS_FILE) if STATUS_FILE else None
status = json.loads(status_path.read_text()) if status_path is not None and status_path.exists() else None
failures = {stem: s["error"].splitlines()[0] for stem, s in (status or {}).items() if not s["ok"]}
# What a reader must know before trusting each result: a failed last run, changed inputs, unrecorded inputs.
cautions = {stem: freshness(stem, document, recorded_sha256, failures.get(stem))
            for stem, document in results.items()}
figures = ROOT / FIGURES_DIR
pd.set_option("display.max_colwidth", None)
if BANNER:
    display(HTML(f'<p style="background:#fff3cd;border:1px solid #e0a800;padding:8px"><b>{html.escape(BANNER)}</b></p>'))
display(Markdown("**Built from:** " + "; ".join(
    f"{stem}: {p['profile']}, commit `{p['git_sha'][:8]}`{' (dirty)' if p['git_dirty'] else ''}, {p['device']}"
    for stem, p in ((stem, document["provenance"]) for stem, document in results.items())) + "."))


def show(frame: pd.DataFrame) -> None:
    display(HTML(frame.to_html(index=False, escape=False, na_rep="")))


def number(value: float) -> str:
    return f"{value:.3g}"


def part_cell(part: dict, replicate: str) -> str:
    """The part's interval against its margin; where it straddles the margin, the replicates that would decide it."""
    need = f"needs {part['direction']} {part['margin']:g} {part['unit']}"
    if part["interval"] is None:
        measured = "no per-seed values" if part["values"] is None else \
            f"{len(part['values'])} value(s): " + ", ".join(map(number, part["values"]))
    else:
        low, high = part["interval"]
        measured = (f"<b>{number(part['mean'])}</b> [{number(low)}, {number(high)}], "
                    f"P(improvement) {part['probability_of_improvement']:.2f} → {part['verdict']}")
        budget = straddling_budget(part)
        if budget is not None:
            measured += f"; {html.escape(budget.describe(replicate))}"
    return f"{html.escape(part['quantity'])}: {measured} ({html.escape(need)})"


def gate_cell(gate: dict) -> str:
    if gate["value"] is None:
        measured = "not measured"
    else:
        measured = f"{number(gate['value'])} ({'pass' if gate['passed'] else '<b>fail</b>'})"
    return f"{html.escape(gate['key'])} {html.escape(gate['op'])} {gate['threshold']:g}: {measured}"


def from_cell(stem: str, provenance: dict, entry: dict) -> str:
    """The rendered notebook, its source, and the library functions that measured the claim (`pipeline`; result files
    written before the field existed name none)."""
    functions = "".join(f'<br><a href="{SOURCE_ROOT}/{html.escape(f["source"])}"><code>{html.escape(f["function"])}</code></a> '
                        f'(line {f["line"]})' for f in entry.get("pipeline") or [])
    return (f'<a href="{stem}.html">{stem}</a> (<a href="#{stem}">its tables and figures</a>, '
            f'<a href="{SOURCE_ROOT}/notebooks/{stem}.ipynb">source</a>), {provenance["profile"]}, '
            f'<code>{provenance["git_sha"][:8]}</code>{functions}')


def decided_now(entry: dict) -> dict:
    """The entry re-decided from its stored values, or as stored where its rule changed since (the values may not fit
    the new rule; the verdict then says so)."""
    return entry if stale_definition(entry) else redecide(entry)


def badge(verdict: str) -> str:
    colour = VERDICT_COLOURS[verdict.split(" (")[0]]
    return (f'<span style="background:{colour};color:white;padding:1px 7px;border-radius:9px;white-space:nowrap">'
            f"{html.escape(verdict)}</span>")


# %% [markdown]
# # Adaptive computation in transformers: a reproduction study
#
# We re-implement three papers in PyTorch and re-run them at the scale this study can afford:
# SELF-Transformer (fixed-point attention), AdaTape (elastic input sequences) and looped transformers (fixed points of a
# weight-tied layer). This report is built only from the committed `results/*.json` and `figures/`. Every number
# gives its profile, hardware, seeds and wall time. A verdict says what our data show *at our scale*; it does not judge the paper at its own scale.
#
# **How to read it.** The claims table comes first: one row per tested claim, with what decides it. Each claim's
# *parts* (the deciding quantities, pre-registered in `repro/claims.py`) show their mean over seeds, their 95% interval
# and the margin the claim needs; its *gates* (the competence its evidence must show first) show their measured value and
# whether they passed. The verdict is decided by `repro/verdicts.py` and re-decided here from the stored per-seed values.
# Where an interval straddles its margin, its cell says how many seeds would decide it at the measured mean and spread
# (`repro/replicates.py`: an extrapolation, like the projected training budgets in the evidence).
# Its *from* column links the rendered notebook that produced the result, the notebook's source and the library
# functions that measured it. The deviations log comes next, then one section per notebook.

# %% [markdown]
# ## Claims
#
# At a glance: each row is one deciding quantity, its mean over seeds (dot) and 95% interval (bar) against the margin the
# claim needs (dashed line; the side where the claim holds is shaded), coloured by the claim's verdict. Each row has its
# own unit and scale. The table below gives the numbers, the gates and the reasons.

# %%
import matplotlib.pyplot as plt

order = {spine.id: n for n, spine in enumerate(CLAIMS)}
decided = sorted((decided_now(entry) for document in results.values() for entry in document["claims"]),
                 key=lambda entry: order[claim(entry["id"]).id])
if any(entry["parts"] for entry in decided):
    forest(decided)
    plt.show()

# %%
display(Markdown("What each verdict word means:\n" + "\n".join(f"- **{word}**: {meaning}." for word, meaning in VERDICT_MEANINGS.items())))
tested = {}
for stem, document in results.items():
    for entry in document["claims"]:
        tested.setdefault(claim(entry["id"]).id, []).append((stem, document["provenance"], entry))

rows, sources = [], []
for spine in CLAIMS:
    for number_in_spine, (stem, provenance, entry) in enumerate(tested.get(spine.id) or [(spine.notebook, None, None)]):
        verdict = decided_now(entry)["verdict"] if entry else "not attempted"
        if entry and verdict != entry["verdict"]:
            verdict += f" (stored: {entry['verdict']})"
        if entry and stale_definition(entry):
            verdict += " (rule changed since)"
        if not number_in_spine:
            sources.append(spine.source)
        note = f'<sup><a href="#source-{len(sources)}">{len(sources)}</a></sup>'
        rows.append({
            "claim": entry["id"] if entry else spine.id,
            "statement (paper value)": "" if number_in_spine else
            html.escape(f"{spine.paper}: {spine.statement} Paper: {spine.paper_value}.") + note,
            "deciding quantities: mean [95% interval]": "<br>".join(part_cell(part, entry["replicate"])
                                                                    for part in entry["parts"]) if entry else "",
            "gates": "<br>".join(map(gate_cell, entry["gates"])) if entry else "",
            "verdict": badge(verdict),
            "why": html.escape("; ".join(entry["reasons"])) if entry else "no result file",
            "trust": "<br>".join(f"<b>{html.escape(note)}</b>" for note in cautions[stem]) if entry else "",
            "from": from_cell(stem, provenance, entry) if entry else spine.notebook,
            "deviations": f'<a href="#Deviations-log">{len(entry["deviations"])}</a>' if entry else "",
        })
claims_table = pd.DataFrame(rows)
show(claims_table)
counts = pd.Series([decided_now(e)["verdict"] if e else "not attempted" for e in
                    (entry for spine in CLAIMS for _, _, entry in tested.get(spine.id) or [(None, None, None)])]).value_counts()
display(Markdown(f"{len(claims_table)} claim rows over {len(CLAIMS)} spine claims "
                 f"({sum(c.id in tested for c in CLAIMS)} with results): "
                 + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS) + "."))
display(HTML("<p><b>Sources of the paper values</b></p><ol>" + "".join(
    f'<li id="source-{n}">{html.escape(text)}</li>' for n, text in enumerate(sources, 1)) + "</ol>"
             + "<p>The notes these sources refer to: " + ", ".join(
                 f'<a href="{SOURCE_ROOT}/docs/{name}">{name}</a>' for name in
                 ("DESIGN.md", "papers/adatape.md", "papers/looped-fixed-point.md", "papers/self-transformer.md")) + ".</p>"))

# %% [markdown]
# ## Last run

# %%
if status is not None:
    show(pd.DataFrame([{"notebook": f'<a href="{stem}.html">{stem}</a>', "profile": s["profile"],
                        "status": "ok" if s["ok"] else "<b>FAILED</b>", "wall seconds": s["wall_seconds"],
                        "error": html.escape(s["error"] or "")} for stem, s in status.items()]))
else:
    display(Markdown("No run status: this report was built from the committed results without running the notebooks."))

# %% [markdown]
# ## Deviations log
# Every departure from a paper. Each one is marked in the code by a `DEVIATION:` comment that names its id and cited by the claims it affects.

# %%
cited = {}
for stem, document in results.items():
    for entry in document["claims"]:
        for deviation in entry["deviations"]:
            cited.setdefault(deviation, set()).add(stem)
show(pd.DataFrame([{"id": key, "paper": d.paper, "what": html.escape(d.what), "why": html.escape(d.why),
                    "cited by": ", ".join(sorted(cited.get(key, ())))} for key, d in DEVIATIONS.items()]))

# %% [markdown]
# ## Notebooks

# %%
for stem, document in results.items():
    p = document["provenance"]
    display(Markdown(f"### {stem}\n"
                     f"Profile **{p['profile']}** on {p['device']}, torch {p['torch']}, seeds {p['seeds']}, "
                     f"wall time {p['wall_seconds'] / 60:.1f} min, started {p['started']}, "
                     f"commit `{p['git_sha'][:10]}`{' (dirty)' if p['git_dirty'] else ''}. "
                     f"[Executed notebook]({stem}.html)."
                     + "".join(f"\n\n**{note}**" for note in cautions[stem])))
    for name, records in document["tables"].items():
        display(Markdown(f"**Table: {name}**"))
        show(pd.DataFrame(records).round(4))
    for figure in sorted(figures.glob(f"{stem}_*.png")):
        display(Markdown(f"*{figure.stem}*"))
        display(Image(filename=str(figure)))
