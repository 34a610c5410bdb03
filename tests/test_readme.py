"""The README's Python examples run as written and its map of `repro/` matches the tree, so neither rots."""

import re

import pytest

from repro import ROOT

EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert EXAMPLES


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_example_runs(number, one_thread, capsys):
    exec(compile(EXAMPLES[number], f"README.md example {number + 1}", "exec"), {})


def map_of_the_library() -> dict[str, set[str]]:
    """The README's module table: for each row, the folder it maps ("" for the package itself, "models/", ...) and
    the files named in it."""
    table = re.search(r"^\| module \| what it holds \|\n\|---\|---\|\n((?:\|.*\n)+)", (ROOT / "README.md").read_text(),
                      flags=re.M)
    assert table, "README.md has no '| module | what it holds |' table"
    rows = {}
    for row in table.group(1).splitlines():
        first, rest = row.split("|")[1:3]
        folder = re.match(r"\s*`(\w+/)?", first).group(1) or ""
        names = {name.removeprefix(folder) for name in re.findall(r"`([\w/]+\.py)`", first + rest)}
        rows.setdefault(folder, set()).update(names)
    return rows


def test_the_readme_maps_every_module_of_the_library_and_nothing_else():
    mapped = {folder + name for folder, names in map_of_the_library().items() for name in names}
    modules = {str(path.relative_to(ROOT / "repro")) for path in (ROOT / "repro").rglob("*.py")
               if path.name != "__init__.py"}
    assert modules - mapped == set(), "modules missing from the README's map of repro/"
    assert mapped - modules == set(), "the README's map of repro/ names modules that do not exist"
