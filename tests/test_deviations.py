"""The deviations log and the `DEVIATION: [id]` comments in the code stay in step."""

import re

from repro import ROOT
from repro.deviations import DEVIATIONS

PATTERN = re.compile(r"DEVIATION: \[([a-z0-9-]+)\]")


def cited_ids() -> set[str]:
    sources = list((ROOT / "repro").rglob("*.py")) + list((ROOT / "notebooks").glob("*.ipynb"))
    return {match for path in sources for match in PATTERN.findall(path.read_text())}


def test_every_deviation_is_marked_in_the_code_and_every_mark_is_logged():
    cited = cited_ids()
    assert set(DEVIATIONS) - cited == set(), "logged deviations without a DEVIATION comment"
    assert cited - set(DEVIATIONS) == set(), "DEVIATION comments without a row in repro/deviations.py"
