"""The decision rule on synthetic evidence, one case per outcome, and every committed result re-decided."""

import json

import numpy as np
import pytest
from scipy import stats

from repro import ROOT
from repro.claims import PREREGISTRATIONS, VERDICT_MEANINGS, VERDICTS, preregistration
from repro.reproduce import REPORT_NOTEBOOK
from repro.results import claims_hash, load_results
from repro.verdicts import decide, interval, probability_of_improvement, redecide, stale_definition, summary

A4_GATE_OK = {"size_matched": 1.0}
GAINS = [0.010, 0.020, 0.015, 0.012, 0.018, 0.011]  # every seed well above A4's margin of 0


def s5(easy, clevr, retrieval, gates=None):
    return decide("S5", {"easy_vqa": easy, "sort_of_clevr": clevr, "retrieval": retrieval},
                  gates or {"vqa_learned": 0.2, "retrieval_learned": 0.3, "fpsa_converges": 0.0})


def test_every_verdict_word_has_a_one_line_meaning():
    assert set(VERDICT_MEANINGS) == set(VERDICTS)


def test_a_clear_effect_with_every_gate_passing_is_reproduced():
    entry = decide("A4", {"separate_ffn_gain": GAINS}, A4_GATE_OK)
    assert entry["verdict"] == "reproduced" and entry["reasons"] == []
    low, high = entry["parts"][0]["interval"]
    assert low > 0 and entry["parts"][0]["probability_of_improvement"] == 1.0


def test_one_seed_can_never_be_reproduced():
    entry = decide("A4", {"separate_ffn_gain": [0.5]}, A4_GATE_OK)
    assert entry["verdict"] == "inconclusive" and "the rule needs 6" in entry["reasons"][0]


def test_fewer_seeds_than_the_rule_needs_is_inconclusive():
    assert preregistration("A4").min_replicates == 6
    assert decide("A4", {"separate_ffn_gain": GAINS[:5]}, A4_GATE_OK)["verdict"] == "inconclusive"


@pytest.mark.parametrize("size_ratio", [1.53, None, float("nan")])
def test_a_failed_or_unmeasured_gate_is_inconclusive_whatever_the_difference(size_ratio):
    entry = decide("A4", {"separate_ffn_gain": [1.0, 1.1, 0.9, 1.0, 1.05, 0.95]}, {"size_matched": size_ratio})
    assert entry["verdict"] == "inconclusive"
    assert entry["parts"][0]["verdict"] == "reproduced"  # the part is decided; the gate withholds the claim
    assert "size_matched" in entry["reasons"][0]


def test_an_interval_straddling_the_margin_is_inconclusive():
    entry = decide("A4", {"separate_ffn_gain": [0.02, -0.01, 0.03, -0.02, 0.01, 0.0]}, A4_GATE_OK)
    assert entry["verdict"] == "inconclusive" and "straddles" in entry["reasons"][0]


def test_a_reversed_effect_with_every_gate_passing_is_not_reproduced():
    entry = decide("A4", {"separate_ffn_gain": [-g for g in GAINS]}, A4_GATE_OK)
    assert entry["verdict"] == "not reproduced"
    assert entry["parts"][0]["probability_of_improvement"] == 0.0


def test_an_effect_smaller_than_the_margin_is_not_reproduced():
    # S5 asks for at least +0.01; a clear but tiny gain of about +0.002 is not the claimed effect.
    tiny = [0.002, 0.0021, 0.0019]
    assert s5(tiny, tiny, tiny)["verdict"] == "not reproduced"


def test_a_multi_part_claim_is_partially_only_when_its_parts_disagree():
    up, down = [0.05, 0.06, 0.055], [-0.05, -0.06, -0.055]
    assert s5(up, up, up)["verdict"] == "reproduced"
    assert s5(down, down, down)["verdict"] == "not reproduced"
    assert s5(up, down, up)["verdict"] == "partially"
    assert s5(up, [0.05, -0.05, 0.0], down)["verdict"] == "inconclusive"  # an undecided part decides nothing


def test_a_failed_competence_gate_withholds_a_multi_part_verdict():
    up = [0.05, 0.06, 0.055]
    assert s5(up, up, up, {"vqa_learned": 0.02, "retrieval_learned": 0.3, "fpsa_converges": 0.0})[
        "verdict"] == "inconclusive"


def test_an_at_most_claim_reads_its_interval_from_above():
    ratios = {"flops_ratio": [1.5, 1.6, 1.7]}
    assert decide("S6.flops", ratios, {"fpsa_converges": 0.0})["verdict"] == "reproduced"
    assert decide("S6.flops", {"flops_ratio": [3.0, 3.1, 2.9]}, {"fpsa_converges": 0.0})["verdict"] == "not reproduced"


def test_a_claim_without_evidence_is_not_attempted():
    entry = decide("S2.squad_v2_0", None, not_attempted="no SQuAD v2.0 here")
    assert entry["verdict"] == "not attempted" and redecide(entry)["verdict"] == "not attempted"


def test_a_corrected_interval_is_wider():
    values = [1.2, 1.5, 1.1, 1.4]
    plain = decide("S7.glue", {"largest_gain": values}, dict.fromkeys(
        ("vanilla_competent", "full_dev", "fpsa_converges"), None))["parts"][0]
    corrected = decide("S7.glue", {"largest_gain": values}, dict.fromkeys(
        ("vanilla_competent", "full_dev", "fpsa_converges"), None), {"largest_gain": 10})["parts"][0]
    assert corrected["confidence"] == pytest.approx(0.995)
    assert corrected["interval"][0] < plain["interval"][0] and corrected["interval"][1] > plain["interval"][1]


def test_the_interval_is_the_paired_t_interval():
    values = [0.3, 0.1, 0.25, 0.2]
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert interval(values) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert interval([0.4, 0.4, 0.4]) == (0.4, 0.4)


def test_probability_of_improvement_counts_ties_half():
    assert probability_of_improvement([1, 0, -1, 2], "at least", 0) == pytest.approx(0.625)
    assert probability_of_improvement([1, 0, -1, 2], "at most", 0) == pytest.approx(0.375)


@pytest.mark.parametrize("parts, gates, message", [
    ({"separate_ffn_gainn": GAINS}, A4_GATE_OK, "unknown \\['separate_ffn_gainn'\\]"),
    ({"separate_ffn_gain": GAINS}, {}, "missing \\['size_matched'\\]"),
])
def test_misspelled_or_missing_keys_name_the_declared_ones(parts, gates, message):
    with pytest.raises(ValueError, match=message):
        decide("A4", parts, gates)


def test_a_claim_without_a_rule_names_those_with_one():
    with pytest.raises(KeyError, match="pre-registered: A1"):
        decide("A1.len128", {}, {})


def test_non_finite_values_are_an_error():
    with pytest.raises(ValueError, match="non-finite"):
        decide("A4", {"separate_ffn_gain": GAINS[:5] + [float("nan")]}, A4_GATE_OK)


def test_summary_names_every_part_and_gate():
    text = summary(decide("A4", {"separate_ffn_gain": GAINS}, {"size_matched": 1.53}))
    assert "inconclusive" in text and "size_matched" in text and "FAIL" in text and "[" in text


def test_every_rule_hashes_differently():
    hashes = [p.definition_hash() for p in PREREGISTRATIONS]
    assert len(set(hashes)) == len(hashes)


COMMITTED = [(stem, entry) for stem, document in load_results().items() for entry in document["claims"]]


@pytest.mark.parametrize("stem, entry", COMMITTED, ids=[f"{s}:{e['id']}" for s, e in COMMITTED])
def test_every_committed_result_was_decided_under_todays_rules_and_re_decides_identically(stem, entry):
    assert not stale_definition(entry), (
        f"{stem}: {entry['id']} was decided under a rule that has changed since; re-run its notebook and log the change "
        "of rule in the deviations log")
    assert redecide(entry)["verdict"] == entry["verdict"]


@pytest.mark.parametrize("stem", sorted(load_results()))
def test_every_committed_result_records_the_hash_of_its_rules(stem):
    document = load_results()[stem]
    assert document["provenance"]["claims_hash"] == claims_hash(document["claims"])


def test_no_study_notebook_decides_a_verdict():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if path.stem == REPORT_NOTEBOOK:
            continue
        code = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]
                         if cell["cell_type"] == "code")
        for word in VERDICTS:
            assert f'"{word}"' not in code and f"'{word}'" not in code, f"{path.name} names the verdict {word!r}"
