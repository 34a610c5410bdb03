"""The only place a verdict is decided: from the pre-registered rule in `repro/claims.py` and per-replicate values.

For each part of a claim, the deciding quantity's values over replicates (seeds) give a 95% interval, a paired
t interval (`scipy.stats`), since the seeds are the replicates and the differences are paired by seed. A part is

    reproduced      when the whole interval lies on the claim's side of the margin,
    not reproduced  when the whole interval lies on the other side,
    inconclusive    when the interval straddles the margin.

A claim is then

    not attempted   when it has no evidence at all,
    inconclusive    when a gate failed or was not measured, fewer replicates than the rule asks for were run, a part
                    has no per-replicate values, or some part is inconclusive,
    reproduced / not reproduced  when every part says so,
    partially       when decided parts disagree.

Next to each interval the entry records the probability of improvement, the share of replicates on the claim's
side of the margin (ties count half): with paired replicates this is the paired form of the P(X > Y) of rliable
(Agarwal et al. 2021).

`decide` writes the entry a result file stores; `redecide` decides a stored entry's values again, so the
report and the tests re-decide every committed result without training, and `stale_definition` says whether the
rule changed since the entry was decided.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from repro.claims import Preregistration, check_verdict, preregistration

CONFIDENCE = 0.95
# Part of every definition hash: a change to how this module decides re-decides every result.
RULE_VERSION = "paired-t-95/v1"


def interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided paired t interval of the mean over replicates; a point when every replicate agrees."""
    sample = np.asarray(values, dtype=float)
    if sample.size < 2:
        raise ValueError(f"an interval needs at least 2 replicates, got {sample.size}")
    if not np.isfinite(sample).all():
        raise ValueError(f"non-finite replicate value(s) in {sample.tolist()}")
    if np.ptp(sample) == 0:
        return float(sample[0]), float(sample[0])
    low, high = stats.ttest_1samp(sample, 0.0).confidence_interval(confidence)
    return float(low), float(high)


def probability_of_improvement(values: Sequence[float], direction: str, margin: float) -> float:
    """Share of replicates on the claim's side of the margin, ties counting half."""
    sample = np.asarray(values, dtype=float)
    beyond = sample > margin if direction == "at least" else sample < margin
    return float(np.mean(beyond + 0.5 * (sample == margin)))


def part_verdict(direction: str, margin: float, low: float, high: float) -> str:
    """reproduced / not reproduced / inconclusive for one interval against its margin."""
    if direction == "at least":
        return "reproduced" if low >= margin else "not reproduced" if high < margin else "inconclusive"
    return "reproduced" if high <= margin else "not reproduced" if low > margin else "inconclusive"


def gate_passes(op: str, value: float, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def combine(part_verdicts: Sequence[str]) -> str:
    """One claim's verdict from its parts' verdicts (gates and replicate counts already passed)."""
    if "inconclusive" in part_verdicts:
        return "inconclusive"
    return part_verdicts[0] if len(set(part_verdicts)) == 1 else "partially"


def definition_hash(rule: Preregistration) -> str:
    return f"{RULE_VERSION}:{rule.definition_hash()}"


def _check_keys(what: str, given: Mapping, declared: Sequence[str], claim_id: str) -> None:
    unknown, missing = sorted(set(given) - set(declared)), sorted(set(declared) - set(given))
    if unknown or missing:
        raise ValueError(f"{claim_id}: {what} keys must be exactly {list(declared)}; "
                         f"unknown {unknown}, missing {missing} (pass None for one that was not measured)")


def _measured(value) -> float | None:
    """A gate's one number; NaN (e.g. a mean over nothing) is stored as not measured, which the verdict reports."""
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _replicates(values) -> list[float] | None:
    return None if values is None else [float(v) for v in np.asarray(values, dtype=float).ravel()]


def decide(claim_id: str, parts: Mapping[str, Sequence[float] | None] | None,
           gates: Mapping[str, float | None] | None = None, comparisons: Mapping[str, int] | None = None,
           not_attempted: str | None = None) -> dict:
    """Decide `claim_id` under its pre-registered rule and return the entry a result file stores.

    parts: per part key, the deciding quantity's value for each replicate (None: not measured);
    gates: per gate key, the one measured number (None: not measured);
    comparisons: per part key, how many comparisons its interval is corrected for (Bonferroni, which for the
    most extreme of k comparisons is also Holm's first step);
    not_attempted: the reason, when there is no evidence at all (parts and gates are then not given).
    """
    rule = preregistration(claim_id)
    if not_attempted is not None:
        if parts or gates:
            raise ValueError(f"{claim_id}: a claim that was not attempted has no parts or gates to record")
        entry = {"id": claim_id, "definition_hash": definition_hash(rule), "replicate": rule.replicate,
                 "min_replicates": rule.min_replicates, "parts": [], "gates": [], "reasons": [not_attempted]}
        return entry | {"verdict": "not attempted"}
    parts, gates, comparisons = dict(parts or {}), dict(gates or {}), dict(comparisons or {})
    _check_keys("part", parts, [p.key for p in rule.parts], claim_id)
    _check_keys("gate", gates, [g.key for g in rule.gates], claim_id)
    unknown = sorted(set(comparisons) - {p.key for p in rule.parts})
    if unknown or any(int(k) != k or k < 1 for k in comparisons.values()):
        raise ValueError(f"{claim_id}: comparisons must map part keys to counts >= 1; got {comparisons}")
    entry = {"id": claim_id, "definition_hash": definition_hash(rule), "replicate": rule.replicate,
             "min_replicates": rule.min_replicates,
             "parts": [{"key": p.key, "quantity": p.quantity, "direction": p.direction, "margin": p.margin,
                        "unit": p.unit, "values": _replicates(parts[p.key]),
                        "comparisons": int(comparisons.get(p.key, 1))} for p in rule.parts],
             "gates": [{"key": g.key, "measured": g.measured, "op": g.op, "threshold": g.threshold,
                        "value": _measured(gates[g.key])} for g in rule.gates]}
    return _judge(entry)


def _judge(entry: dict) -> dict:
    """Fill in intervals, gate outcomes, reasons and the verdict of an entry holding values."""
    reasons = []
    for gate in entry["gates"]:
        value = gate["value"]
        gate["passed"] = None if value is None else gate_passes(gate["op"], value, gate["threshold"])
        if gate["passed"] is None:
            reasons.append(f"gate {gate['key']} was not measured")
        elif not gate["passed"]:
            reasons.append(f"gate {gate['key']} failed: {value:.4g} (needs {gate['op']} {gate['threshold']:g})")
    for part in entry["parts"]:
        values = part["values"]
        part.update(mean=None, interval=None, confidence=None, probability_of_improvement=None, verdict=None)
        if values is None:
            reasons.append(f"part {part['key']} has no per-{entry['replicate']} values")
            continue
        if len(values) < max(2, entry["min_replicates"]):
            reasons.append(f"part {part['key']} has {len(values)} {entry['replicate']}(s); the rule needs "
                           f"{entry['min_replicates']}")
            continue
        confidence = 1 - (1 - CONFIDENCE) / part["comparisons"]
        low, high = interval(values, confidence)
        part.update(mean=float(np.mean(values)), interval=[low, high], confidence=confidence,
                    probability_of_improvement=probability_of_improvement(values, part["direction"], part["margin"]),
                    verdict=part_verdict(part["direction"], part["margin"], low, high))
        if part["verdict"] == "inconclusive":
            reasons.append(f"part {part['key']}: the interval [{low:.4g}, {high:.4g}] straddles the margin "
                           f"{part['direction']} {part['margin']:g}")
    if reasons:
        verdict = "inconclusive"
    else:
        verdict = combine([part["verdict"] for part in entry["parts"]])
    entry["reasons"] = reasons
    entry["verdict"] = check_verdict(verdict)
    return entry


def redecide(entry: dict) -> dict:
    """Decide a stored entry's values again under the current rule (its stored intervals and verdict unread)."""
    if not entry["parts"] and not entry["gates"]:
        return decide(entry["id"], None, not_attempted="; ".join(entry["reasons"]))
    return decide(entry["id"], {part["key"]: part["values"] for part in entry["parts"]},
                  {gate["key"]: gate["value"] for gate in entry["gates"]},
                  {part["key"]: part["comparisons"] for part in entry["parts"] if part["comparisons"] > 1})


def stale_definition(entry: dict) -> bool:
    """True when the claim's pre-registered rule has changed since `entry` was decided."""
    return entry["definition_hash"] != definition_hash(preregistration(entry["id"]))



def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def summary(entry: dict) -> str:
    """The decided entry in a few Markdown lines: verdict, each part's interval against its margin, each gate."""
    lines = [f"**{entry['id']}: {entry['verdict']}**"]
    for part in entry["parts"]:
        if part["interval"] is None:
            shown = "no decision" if part["values"] is None else \
                "values " + ", ".join(_number(v) for v in part["values"])
        else:
            low, high = part["interval"]
            shown = (f"{_number(part['mean'])} [{_number(low)}, {_number(high)}] "
                     f"({part['confidence']:.1%} interval over {len(part['values'])} {entry['replicate']}s, "
                     f"P(improvement) {part['probability_of_improvement']:.2f}): {part['verdict']}")
        lines.append(f"- {part['quantity']} ({part['unit']}), needs {part['direction']} {part['margin']:g}: {shown}")
    for gate in entry["gates"]:
        value = "not measured" if gate["value"] is None else _number(gate["value"])
        outcome = "not measured" if gate["passed"] is None else "pass" if gate["passed"] else "FAIL"
        lines.append(f"- gate {gate['key']} ({gate['measured']}) {gate['op']} {gate['threshold']:g}: {value}, {outcome}")
    if entry["reasons"]:
        lines.append("- why " + entry["verdict"] + ": " + "; ".join(entry["reasons"]))
    return "\n".join(lines)
