"""The SQuAD study's three parts: disjoint articles, fixed subsets, and the tables that count them."""

import pytest

from repro.data.squad import load_dev
from repro.experiments.squad_parts import PARTS, article_table, sizes_table, split_parts
from repro.models.minilm import tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_parts_hold_disjoint_articles_and_their_tables_count_them():
    examples = load_dev()
    questions = {"training": 5, "validation": 4, "held out": 3}
    parts = split_parts(examples, 3, questions, tokenizer(), 64, 16)
    assert list(parts) == list(PARTS)
    titles = {name: {e.title for e in part.every} for name, part in parts.items()}
    assert [len(titles[name]) for name in PARTS] == [len({e.title for e in examples}) - 13, 3, 10]
    assert not (titles["training"] & titles["validation"] or titles["training"] & titles["held out"]
                or titles["validation"] & titles["held out"])
    assert sum(len(part.every) for part in parts.values()) == len(examples)
    assert [len(part.used) for part in parts.values()] == [5, 4, 3]
    assert all(set(map(id, part.used)) <= set(map(id, part.every)) for part in parts.values())
    again = split_parts(examples, 3, questions, tokenizer(), 64, 16)
    assert [e.id for e in again["validation"].used] == [e.id for e in parts["validation"].used]
    sizes = sizes_table(parts)
    assert sizes["questions in the part"].sum() == len(examples) and sizes.loc["held out", "articles"] == 10
    articles = article_table(examples, parts)
    assert articles["questions"].sum() == len(examples) and set(articles["part"]) == set(PARTS)
