"""The sudoku half of the looped study (notebook 03): the split into training pool and test buckets, the classical
reference, and the metrics the looped pipeline (`repro.experiments.looped`) reads at every iteration.

The puzzles have two difficulty axes, qqwing's class (the hardest human technique its solver needs) and the number of
givens. Training sees only the two easier classes with many givens; every test bucket crosses a class with a number of
givens on puzzles never seen in training, and its *role* says which axes lie outside the training range, so accuracy
can be read against each kind of distance from training.
"""

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from repro import ROOT
from repro.data.sudoku import (DIFFICULTIES, SudokuBatch, SudokuSet, board_string, concatenate, encode, is_solved,
                               load_or_generate, solve, with_givens)
from repro.experiments.looped import ExtrapolationSettings, bucket_index, bucket_means
from repro.plots import finish
from repro.seeding import rng

AS_GENERATED = "as generated"
"""A test level: the puzzle with qqwing's own givens (22-29)."""
COMMITTED = dict(simple=3000, easy=3000, intermediate=500, expert=500)
"""The sets under data/sudoku/."""
DATA_DIR = ROOT / "data" / "sudoku"
TRAIN_CLASSES = ("simple", "easy")
ROLES = ["in-distribution", "fewer givens", "harder class", "both harder"]


@dataclass(frozen=True)
class SudokuSettings(ExtrapolationSettings):
    puzzles: dict
    """Puzzles per class to load (or generate)."""
    test_pool: int
    """The first puzzles of every class, held out for testing."""
    train_givens: tuple[int, ...]
    """(low, high): the range of givens of a training board."""
    test_givens: tuple[int | str, ...]
    """The givens of the test buckets; AS_GENERATED: qqwing's own."""
    eval_size: int
    validation_size: int


def givens_label(givens) -> str:
    return givens if givens == AS_GENERATED else f"{givens} givens"


def role(difficulty: str, givens, low: int) -> str:
    """Which difficulty axes of a bucket lie outside the training range (fewer givens than `low`, a harder class)."""
    fewer = givens == AS_GENERATED or givens < low
    harder = difficulty not in TRAIN_CLASSES
    return {(False, False): "in-distribution", (True, False): "fewer givens", (False, True): "harder class",
            (True, True): "both harder"}[fewer, harder]


@dataclass
class SudokuSplit:
    generated: dict[str, SudokuSet]
    """Every loaded puzzle, by class."""
    test_pools: dict[str, SudokuSet]
    train_pool: SudokuSet
    tests: dict[tuple[str, str], SudokuSet]
    """(class, givens label) -> the bucket's puzzles."""
    roles: dict[tuple[str, str], str]

    @property
    def buckets(self) -> list[tuple[str, str]]:
        return list(self.tests)


def split(settings: SudokuSettings, data_dir=DATA_DIR) -> SudokuSplit:
    """Hold out the first `test_pool` puzzles of every class; train on the rest of the training classes; test buckets
    of `eval_size` puzzles per (class, givens), extra givens revealed from the solution, seeded per bucket."""
    generated = {c: load_or_generate(data_dir, c, settings.puzzles[c]) for c in DIFFICULTIES}
    # DEVIATION: [sudoku-split] train on simple/easy with many givens, test on held-out puzzles of all classes and fewer givens.
    test_pools = {c: generated[c].subset(slice(0, settings.test_pool)) for c in DIFFICULTIES}
    train_pool = concatenate([generated[c].subset(slice(settings.test_pool, None)) for c in TRAIN_CLASSES])
    seen = {board_string(p) for p in train_pool.puzzles}
    if any(board_string(p) in seen for pool in test_pools.values() for p in pool.puzzles):
        raise ValueError("a test puzzle is in the training pool")
    low, high = settings.train_givens
    if not all(g == AS_GENERATED or g <= high for g in settings.test_givens):
        raise ValueError(f"test levels above the training range ({high} givens) add nothing: {settings.test_givens}")
    tests = {(c, givens_label(g)): test_pools[c].subset(slice(0, settings.eval_size)) if g == AS_GENERATED else
             with_givens(test_pools[c].subset(slice(0, settings.eval_size)), g, rng("sudoku-test", c, g))
             for c in DIFFICULTIES for g in settings.test_givens}
    roles = {(c, givens_label(g)): role(c, g, low) for c in DIFFICULTIES for g in settings.test_givens}
    return SudokuSplit(generated, test_pools, train_pool, tests, roles)


def datasets_table(split: SudokuSplit) -> pd.DataFrame:
    """One row per class: what it is used for, its pools and the range of its givens as generated."""
    generated, pools = split.generated, split.test_pools
    return pd.DataFrame([{
        "class": c, "used for": "training and test" if c in TRAIN_CLASSES else "test only",
        "puzzles": len(generated[c]), "training pool": len(generated[c]) - len(pools[c]) if c in TRAIN_CLASSES else 0,
        "test pool": len(pools[c]), "givens min": int(generated[c].givens().min()),
        "givens median": int(generated[c].givens().median()), "givens max": int(generated[c].givens().max())}
        for c in DIFFICULTIES]).set_index("class")


def native_givens(split: SudokuSplit) -> pd.DataFrame:
    """One row per generated puzzle: its class and its givens as generated."""
    return pd.concat([pd.DataFrame({"class": c, "givens": split.generated[c].givens().numpy()}) for c in DIFFICULTIES])


def classical_reference(split: SudokuSplit) -> pd.DataFrame:
    """Our backtracking solver on every test puzzle, per bucket: *solved* (exactly one solution, qqwing's), the time
    per puzzle, the mean number of guesses and the share solved by propagation alone (no guess)."""
    rows = []
    for (difficulty, givens), puzzles in split.tests.items():
        for puzzle, solution in zip(puzzles.puzzles, puzzles.solutions):
            tick = time.perf_counter()
            result = solve(puzzle.tolist())
            rows.append({"class": difficulty, "givens": givens, "ms": 1000 * (time.perf_counter() - tick),
                         "solved": result.solutions == [tuple(solution.tolist())], "guesses": result.guesses})
    rows = pd.DataFrame(rows)
    buckets = rows.groupby(["class", "givens"], sort=False).agg(
        solved=("solved", "mean"), ms_per_puzzle=("ms", "mean"), mean_guesses=("guesses", "mean"),
        no_guess=("guesses", lambda g: (g == 0).mean()))
    buckets.insert(0, "role", pd.Series(split.roles))
    buckets.insert(1, "puzzles", pd.Series({b: len(p) for b, p in split.tests.items()}))
    buckets.insert(2, "blanks (mean)", pd.Series({b: (81 - p.givens().float().mean()).item()
                                                  for b, p in split.tests.items()}))
    return buckets.loc[split.buckets]


def difficulty_figure(native: pd.DataFrame, buckets: pd.DataFrame, test_givens):
    """The givens of the generated puzzles by class, and the classical solver's mean guesses per test bucket."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    sns.countplot(data=native, x="givens", hue="class", hue_order=DIFFICULTIES, ax=axes[0])
    axes[0].set(title="givens of the generated puzzles, by qqwing class", ylabel="puzzles", yscale="log")
    sns.heatmap(buckets.mean_guesses.unstack("givens").loc[list(DIFFICULTIES), [givens_label(g) for g in test_givens]],
                annot=True, fmt=".1f", cmap="rocket_r", ax=axes[1], cbar_kws={"label": "guesses per puzzle"})
    axes[1].set(title="classical solver: mean guesses per puzzle (test buckets)")
    return finish(fig, axes, legend_axis=0)


def per_board(logits: torch.Tensor, batch: SudokuBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(solved, blank cells right) per board: the model's digits fill the blanks, the givens stay; solved is our
    checker's (every row, column and box holds 1..9 and every given is kept), not a match with qqwing's solution."""
    guess = logits.argmax(dim=-1)
    solved = is_solved(batch.tokens, torch.where(batch.blank, guess + 1, batch.tokens))
    return solved.float(), ((guess == batch.targets) & batch.blank).sum(dim=1).float()


def board_scores(logits: torch.Tensor, batch: SudokuBatch) -> dict:
    """Whole-board exact match and blank-cell accuracy of one batch."""
    solved, right = per_board(logits, batch)
    return {"exact_match": solved.mean().item(), "blank_accuracy": (right.sum() / batch.blank.sum()).item()}


class BucketScores:
    """Every test bucket in one batch; `rows(logits)` scores each bucket, pooled over its boards and blank cells."""

    def __init__(self, split: SudokuSplit, device: torch.device):
        self.split = split
        self.batch = encode(concatenate(list(split.tests.values()))).to(device)
        self.bucket_of = bucket_index(split.tests).to(device)
        self.blanks = self.batch.blank.sum(dim=1).float()

    def rows(self, logits: torch.Tensor) -> list[dict]:
        solved, right = per_board(logits, self.batch)
        count = len(self.split.tests)
        exact = bucket_means(solved, self.bucket_of, count)
        blank = bucket_means(right, self.bucket_of, count, self.blanks)
        return [{"class": c, "givens": g, "role": self.split.roles[c, g], "exact_match": exact[b],
                 "blank_accuracy": blank[b]} for b, (c, g) in enumerate(self.split.tests)]


def validation_batch(split: SudokuSplit, size: int, device: torch.device) -> SudokuBatch:
    """A seeded draw of `size` boards from the in-distribution test buckets: the learning curves' held-out set."""
    pool = concatenate([split.tests[b] for b in split.buckets if split.roles[b] == "in-distribution"])
    chosen = torch.randperm(len(pool), generator=rng("sudoku-validation"))[:size]
    return encode(pool.subset(chosen)).to(device)


def stability_puzzles(split: SudokuSplit, settings: SudokuSettings) -> SudokuSet:
    """Held-out puzzles of the training classes, givens at the middle of the training range: where the stability
    axes are measured."""
    held_out = concatenate([split.test_pools[c] for c in TRAIN_CLASSES])
    chosen = torch.randperm(len(held_out), generator=rng("sudoku-stability-set"))[:settings.stability_size]
    low, high = settings.train_givens
    return with_givens(held_out.subset(chosen), (low + high) // 2, rng("sudoku-stability-givens"))


def one_more_given(puzzles: SudokuSet, stream_seed: int, seed: int, device: torch.device):
    """The small valid edit of the stability axes (same solution): one more given revealed on every puzzle.
    Returns (tokens, edited tokens, the generator that drew the edit)."""
    generator = rng("sudoku-stability", stream_seed, seed)
    edited = with_givens(puzzles, puzzles.givens() + 1, generator)
    tokens, tokens_edited = (p.puzzles.long().to(device) for p in (puzzles, edited))
    return tokens, tokens_edited, generator
