"""The three parts of the SQuAD study (notebook 06), cut from the only SQuAD data here, v1.1's dev set.

`split_parts` holds articles out by `repro.data.squad.split_by_article`: first the held-out part (the test set), then,
by the same rule on the remaining titles, a validation part that only the competence curve reads; the rest is trained
on. Each part keeps all its questions and a fixed random subset of them (`fine_tuning.fixed_subset`, a named stream per
part), encoded in windows. `article_table` and `sizes_table` are the notebook's two data tables.
"""

from dataclasses import dataclass

import pandas as pd

from repro.data.squad import Example, Windows, encode, split_by_article
from repro.experiments.fine_tuning import fixed_subset

PARTS = ("training", "validation", "held out")
STREAMS = {"training": "squad-train-questions", "validation": "squad-validation-questions",
           "held out": "squad-held-out-questions"}
"""The named stream of each part's subset of questions."""


@dataclass
class Part:
    every: list[Example]
    """All the questions of the part's articles."""
    used: list[Example]
    """The fixed subset trained on or scored."""
    windows: Windows
    """`used`, encoded."""


def split_parts(examples: list[Example], validation_articles: int, questions: dict[str, int | None], tokenizer,
                max_length: int, stride: int) -> dict[str, Part]:
    """{part: Part} in the order of `PARTS`; `questions[part]` is the size of its subset (None: all of it)."""
    training, held_out = split_by_article(examples)
    training, validation = split_by_article(training, validation_articles)
    parts = {}
    for name, every in zip(PARTS, (training, validation, held_out)):
        used = fixed_subset(every, questions[name], STREAMS[name])
        parts[name] = Part(every, used, encode(used, tokenizer, max_length, stride))
    return parts


def article_table(examples: list[Example], parts: dict[str, Part]) -> pd.DataFrame:
    """One row per article: its part and its questions."""
    part_of = {e.title: name for name, part in parts.items() for e in part.every}
    return (pd.DataFrame([{"article": e.title, "part": part_of[e.title]} for e in examples]).value_counts()
            .rename("questions").reset_index().sort_values(["part", "article"]).set_index("article"))


def sizes_table(parts: dict[str, Part]) -> pd.DataFrame:
    """One row per part: articles, questions in it and used, windows and windows without the answer."""
    return pd.DataFrame([{"part": name, "articles": len({e.title for e in part.every}),
                          "questions in the part": len(part.every), "questions used": len(part.used),
                          "windows": len(part.windows),
                          "windows without the answer": int((part.windows.start_positions == 0).sum())}
                         for name, part in parts.items()]).set_index("part")
