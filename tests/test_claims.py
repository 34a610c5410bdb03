import re

import pytest

from repro.claims import CLAIMS, PAPERS, VERDICTS, check_verdict, claim, verdict_from_checks

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


def test_verdict_rule_outcome_counts_passed_checks():
    assert verdict_from_checks(3, 3) == "reproduced"
    assert verdict_from_checks(1, 3) == "partially" and verdict_from_checks(0, 3) == "not reproduced"
    assert verdict_from_checks(3, 7, partial_from=4) == "not reproduced"
    with pytest.raises(ValueError, match="passed 4, total 3"):
        verdict_from_checks(4, 3)
