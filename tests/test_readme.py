"""The README's Python examples run as written, so they never rot."""

import re

import pytest

from repro import ROOT

EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert EXAMPLES


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_example_runs(number, one_thread, capsys):
    exec(compile(EXAMPLES[number], f"README.md example {number + 1}", "exec"), {})
