import re

import pytest

from repro.claims import (CLAIMS, GLUE_LEVELS, PAPERS, PREREGISTRATIONS, VERDICTS, Gate, Part, check_verdict, claim,
                          gate_of, preregistration)

SPINE = [f"S{i}" for i in range(1, 8)] + [f"A{i}" for i in range(1, 5)] + [f"L{i}" for i in range(1, 5)]


def test_ids_are_the_fifteen_spine_ids_in_order():
    assert [c.id for c in CLAIMS] == SPINE


def test_every_claim_cites_a_known_paper():
    assert {c.paper for c in CLAIMS} <= set(PAPERS)


def test_every_notebook_is_a_notebook_stem():
    for c in CLAIMS:
        assert re.fullmatch(r"\d\d_[a-z_]+", c.notebook), c


def test_every_field_is_filled():
    for c in CLAIMS:
        assert all(getattr(c, f) for f in ("section", "statement", "paper_value", "source")), c


def test_finer_id_resolves_to_its_spine_claim():
    assert claim("A1.len64").id == "A1"
    assert claim("L2").id == "L2"


def test_unknown_id_lists_the_valid_ids():
    with pytest.raises(KeyError) as error:
        claim("S8")
    assert "S1" in str(error.value) and "L4" in str(error.value)


def test_check_verdict_accepts_each_verdict():
    for verdict in VERDICTS:
        assert check_verdict(verdict) == verdict


def test_check_verdict_rejects_a_misspelling_and_names_the_verdicts():
    with pytest.raises(ValueError) as error:
        check_verdict("reproducd")
    assert all(v in str(error.value) for v in VERDICTS)


def test_every_pre_registered_id_resolves_to_a_spine_claim_and_is_unique():
    ids = [p.id for p in PREREGISTRATIONS]
    assert len(ids) == len(set(ids))
    for p in PREREGISTRATIONS:
        assert claim(p.id) and p.parts and p.min_replicates >= 3


def test_every_spine_claim_has_a_decision_rule():
    assert {claim(p.id).id for p in PREREGISTRATIONS} == set(SPINE)


def test_a_misspelled_direction_or_operator_is_an_error():
    with pytest.raises(ValueError, match="'at least', 'at most'"):
        Part("gain", "a difference", "atleast", 0.0, "points")
    with pytest.raises(ValueError, match="'>=', '<='"):
        Gate("competent", "a score", ">", 0.5)


def test_a_gate_is_looked_up_by_claim_and_key_and_an_unknown_key_lists_the_claims_gates():
    assert gate_of("S2.squad_v1_1", "vanilla_f1") == Gate("vanilla_f1", gate_of("S2.squad_v1_1", "vanilla_f1").measured,
                                                          ">=", 70.0)
    with pytest.raises(KeyError, match="S4 has no gate 'vanilla_f1'; its gates: vanilla_beats_classical"):
        gate_of("S4", "vanilla_f1")


def test_each_glue_scale_is_its_own_claim_gated_by_its_own_vanilla_model_against_every_tasks_level():
    for claim_id, scale in (("S1.glue_mechanism", "pretrained"), ("S1.glue_scratch", "scratch"),
                            ("S7.glue", "pretrained")):
        competent = gate_of(claim_id, "vanilla_competent")
        assert (competent.op, competent.threshold) == (">=", 0.0) and f"the {scale} vanilla model" in competent.measured
        assert all(f"{task} {metric} >= {level:g}" in competent.measured
                   for task, (metric, level) in GLUE_LEVELS.items())
    assert [part.key for part in preregistration("S1.glue_mechanism").parts] == ["pretrained"]
    assert [part.key for part in preregistration("S1.glue_scratch").parts] == ["scratch"]
    assert GLUE_LEVELS == {"SST-2": ("accuracy", 85.0), "MRPC": ("f1", 85.0), "STS-B": ("pearson", 80.0)}
