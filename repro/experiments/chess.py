"""The chess half of the looped study (notebook 04): the mined corpus split into a training pool and test buckets,
the move readout and its metrics, the puzzle stream, the reference rows (a random legal move, a one-ply heuristic, a
non-looped MLP of equal training compute), and the small valid edit of the stability axes.

A puzzle is read as 64 square tokens in the mover's frame; the model scores every square s(square) as part of the
move. Its move is the legal (from, to) with the highest s(from) + s(to) (`legal_move_correct`, the metric that decides);
the two top squares over all 64, which may be no legal move, are kept as a second metric (`both_squares_correct`).
Both accept every correct move (`repro.data.chess.correct_moves`); `accepted_moves` finds them once per puzzle, so
that reading the metrics after every test-time iteration is a table lookup rather than a chess search.
"""

import copy
from dataclasses import dataclass

import chess
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from torch import nn

from repro.data.chess import (RATING_EDGES, ChessPuzzles, bucket_labels, concatenate, correct_pairs, load_lichess,
                              load_mate_in_one, mates_in_one, mover_frame, rating_buckets)
from repro.data.chess_corpus import load_calibration, load_mined, split_order
from repro.data.chess_mates import ANSWERS_DIR, COMMAND, LONG_MATE, load_answers
from repro.cost import count_flops
from repro.experiments.looped import ExtrapolationSettings, bucket_index, bucket_means, mean_std_table
from repro.losses import token_loss
from repro.plots import finish
from repro.results import mean_std_text, spearman
from repro.seeding import derive, rng, torch_seed
from repro.study import Study, bounded
from repro.train import TrainConfig, train

SQUARES = torch.arange(64)
RANK, FILE = SQUARES // 8, SQUARES % 8
# DEVIATION: [chess-square-tokens] 64 piece tokens with rank/file/diagonal embeddings and a shared-line attention score.
STRUCTURE = (RANK.tolist(), FILE.tolist(), (RANK - FILE + 7).tolist(), (RANK + FILE).tolist())
"""Rank, file, diagonal and anti-diagonal of every square: the lines along which rooks, bishops and queens move."""
KINGS = (1, 7)
"""The square tokens of the two kings (1 + their plane index)."""


@dataclass(frozen=True)
class ChessSettings(ExtrapolationSettings):
    train_share: float = bounded(0, 1)
    """The training depth limit is the smallest depth at or below which this share of the corpus lies."""
    train_cap: int
    test_size: int
    """Puzzles per mined bucket and of BIG-bench mate-in-one (binomial s.e. <= 0.025 at any rate)."""
    lichess_test_size: int
    """Puzzles per Lichess rating band (s.e. <= 0.035)."""
    validation_size: int


def square_tokens(puzzles: ChessPuzzles) -> torch.Tensor:
    """(N, 64) token per square: 0 empty, 1 + plane index of the piece on it (mover's frame)."""
    return (puzzles.boards.reshape(-1, 12, 64).long() * torch.arange(1, 13)[:, None]).sum(dim=1)


def _move_table(pairs: list[list[tuple[int, int]]]) -> torch.Tensor:
    """(N, 64 * 64) bool with True at index 64 * from + to of every pair of each row."""
    table = torch.zeros(len(pairs), 64 * 64, dtype=torch.bool)
    for row, moves in enumerate(pairs):
        table[row, [64 * a + b for a, b in moves]] = True
    return table


def accepted_moves(puzzles: ChessPuzzles, long_mates: dict[str, tuple[str, ...]]) -> torch.Tensor:
    """(N, 64 * 64) bool: the (from, to) pairs of every correct move (mover's frame), index 64 * from + to; `long_mates`
    answers the longer mates (FEN -> UCI moves)."""
    return _move_table(correct_pairs(puzzles, long_mates))


def legal_moves(puzzles: ChessPuzzles) -> torch.Tensor:
    """(N, 64 * 64) bool: the (from, to) pairs of every legal move (mover's frame)."""
    return _move_table([[(m.from_square, m.to_square) for m in mover_frame(chess.Board(fen)).legal_moves]
                        for fen in puzzles.fens])


def square_scores(logits: torch.Tensor) -> torch.Tensor:
    """(..., 64) s(square): how strongly the model puts each square in the move (logit of 'in' minus 'out')."""
    return logits[..., 1] - logits[..., 0]


def legal_move_correct(logits: torch.Tensor, legal: torch.Tensor, accepted: torch.Tensor) -> torch.Tensor:
    """(N,) float: the legal (from, to) with the highest s(from) + s(to) is an accepted move."""
    # DEVIATION: [chess-legal-readout] the move is read among legal moves only; the two top squares are a second metric.
    s = square_scores(logits.float())
    pair = (s[:, :, None] + s[:, None, :]).flatten(1).masked_fill(~legal, float("-inf"))
    return accepted.gather(1, pair.argmax(dim=1, keepdim=True)).squeeze(1).float()


def legal_accuracy(tokens: torch.Tensor, legal: torch.Tensor, accepted: torch.Tensor):
    """`evaluate(model, depth=None)` for the training loops: the legal readout's accuracy on these puzzles, after
    `depth` iterations of a looped model, or of a model that takes no depth (the MLP)."""
    def evaluate(model: nn.Module, depth: int | None = None) -> dict:
        logits = model(tokens)[0] if depth is None else model(tokens, depth)[0]
        return {"accuracy": legal_move_correct(logits, legal, accepted).mean().item()}
    return evaluate


def validation_accuracy(split: "ChessSplit", device: torch.device):
    """The learning curves' `evaluate`: the legal readout on the held-out in-distribution validation puzzles."""
    puzzles = split.validation_set
    return legal_accuracy(*(x.to(device) for x in (square_tokens(puzzles), legal_moves(puzzles),
                                                   accepted_moves(puzzles, split.long_mates))))


def both_squares_correct(logits: torch.Tensor, accepted: torch.Tensor) -> torch.Tensor:
    """(N,) float: the two top-scoring squares over all 64 are the from- and to-square of an accepted move (in either
    order); the unmasked metric, which may read a move that is not legal."""
    a, b = square_scores(logits).topk(2, dim=-1).indices.unbind(-1)
    rows = torch.arange(len(a), device=a.device)
    return (accepted[rows, a * 64 + b] | accepted[rows, b * 64 + a]).float()


PIECE_VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9, chess.KING: 0}


def heuristic_moves(board: chess.Board) -> list[tuple[int, int]]:
    """The one-ply heuristic's candidates (mover's frame (from, to)), all equally good to it: every mate in one if
    there is one; else the captures of the most valuable piece, by the least valuable attacker; else every legal move."""
    frame = mover_frame(board)
    moves = mates_in_one(frame)
    if not moves:
        captures = [m for m in frame.legal_moves if frame.is_capture(m)]
        if captures:
            def gain(m):   # en passant takes a pawn from a square other than `to`
                taken = chess.PAWN if frame.is_en_passant(m) else frame.piece_type_at(m.to_square)
                return PIECE_VALUES[taken], -PIECE_VALUES[frame.piece_type_at(m.from_square)]
            best = max(map(gain, captures))
            moves = [m for m in captures if gain(m) == best]
        else:
            moves = list(frame.legal_moves)
    return list(dict.fromkeys((m.from_square, m.to_square) for m in moves))


def expected_score(candidates: torch.Tensor, accepted: torch.Tensor) -> torch.Tensor:
    """(N,) the exact expected score of a move drawn uniformly from each row's `candidates` ((N, 4096) bool)."""
    return (candidates & accepted).sum(dim=1) / candidates.sum(dim=1)


class PuzzleStream:
    """`batch_at(step)`: a seeded draw of `batch` training puzzles, a pure function of (seed, step)."""

    def __init__(self, puzzles: ChessPuzzles, batch: int, seed: int):
        # Targets: the squares of every correct move (several mates in one are all right).
        self.tokens, self.targets = square_tokens(puzzles), puzzles.target_map().long()
        self.batch, self.seed = min(batch, len(puzzles)), seed

    def with_seed(self, seed: int) -> "PuzzleStream":
        """The same pool and targets (computed once) drawn under another seed."""
        stream = copy.copy(self)
        stream.seed = seed
        return stream

    def batch_at(self, step: int):
        index = torch.randint(len(self.tokens), (self.batch,), generator=rng("chess-batches", self.seed, step))
        return self.tokens[index], self.targets[index]


@dataclass
class ChessSplit:
    mined: ChessPuzzles
    calibration: object
    lichess: ChessPuzzles
    mate_in_one: ChessPuzzles
    train_depth: int
    """d: training puzzles have depth <= d (and no mate longer than one move)."""
    train_set: ChessPuzzles
    validation_set: ChessPuzzles
    stability_set: ChessPuzzles
    tests: dict[tuple[str, str], ChessPuzzles]
    """(source, bucket) -> its puzzles."""
    roles: dict[tuple[str, str], str]
    missing: list[str]
    """Mined buckets the corpus holds no held-out puzzle for."""
    long_mates: dict[str, tuple[str, ...]]
    """FEN -> the engine's answers (UCI), for every test puzzle that mates in 3 or more (`repro.data.chess_mates`)."""

    @property
    def buckets(self) -> list[tuple[str, str]]:
        return list(self.tests)


def mined_buckets(train_depth: int) -> list[str]:
    """The mined test buckets; the first two are in-distribution."""
    return [f"depth ≤ {train_depth}", "mate in 1", f"depth > {train_depth}", "mate in 2", "mate in 3+"]


def mined_bucket(puzzles: ChessPuzzles, train_depth: int) -> list[str]:
    """Non-mates by depth, mates by mate distance (1, 2, 3 or more)."""
    return [(f"mate in {mate}" if mate < 3 else "mate in 3+") if mate else
            (f"depth ≤ {train_depth}" if depth <= train_depth else f"depth > {train_depth}")
            for depth, mate in zip(puzzles.depths.tolist(), puzzles.mates.tolist())]


def split(settings: ChessSettings, corpus_dir, answers_dir=ANSWERS_DIR) -> ChessSplit:
    """The training depth d is fixed by a rule, not by results: the smallest depth at or below which `train_share`
    of the corpus lies. Test puzzles are drawn before the training pool, from a seeded order; the first
    in-distribution bucket also gives the validation and stability sets. Every test puzzle that mates in 3 or more
    must have the engine's answers in `answers_dir`."""
    mined = load_mined(corpus_dir)            # raises, saying how to mine it, when there is no corpus
    calibration = load_calibration(corpus_dir)
    lichess = load_lichess()
    mate_in_one = load_mate_in_one(settings.test_size)
    depth_counts = torch.bincount(mined.depths)
    train_depth = int((depth_counts.cumsum(0) >= settings.train_share * len(mined)).nonzero()[0])
    buckets = mined_buckets(train_depth)
    labels = mined_bucket(mined, train_depth)
    order = split_order(mined)
    held = {b: [i for i in order if labels[i] == b] for b in buckets}
    reserved = {b: settings.test_size + (settings.validation_size + settings.stability_size if b == buckets[0] else 0)
                for b in buckets}
    test_rows = {b: rows[:reserved[b]] for b, rows in held.items()}
    trainable = ((mined.depths <= train_depth) & (mined.mates <= 1)).tolist()
    taken = {i for rows in test_rows.values() for i in rows}
    train_rows = [i for i in order if trainable[i] and i not in taken][:settings.train_cap]
    rows_of = lambda rows: mined.subset(torch.tensor(rows, dtype=torch.long))
    first, size = test_rows[buckets[0]], settings.test_size
    tests, roles = {}, {}
    for b in buckets:
        rows = test_rows[b][:size]
        if rows:   # a small corpus may hold no long mates; the bucket is then left out, and said so
            tests["mined", b] = rows_of(rows)
            roles["mined", b] = "in-distribution" if b in buckets[:2] else "mined, harder"
    lichess_bucket = rating_buckets(lichess)
    for k, label in enumerate(bucket_labels()):
        members = (lichess_bucket == k).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=rng("chess-lichess-test", k))][
            :settings.lichess_test_size]
        if len(members):
            tests["Lichess", label] = lichess.subset(members)
            roles["Lichess", label] = "real (Lichess)"
    tests["BIG-bench", "mate in one"] = mate_in_one
    roles["BIG-bench", "mate in one"] = "real (mate in one)"
    train_set = rows_of(train_rows)
    if set(train_set.fens) & {p for b, t in tests.items() if b[0] == "mined" for p in t.fens}:
        raise ValueError("a mined test puzzle is in the training pool")
    return ChessSplit(mined, calibration, lichess, mate_in_one, train_depth, train_set,
                      rows_of(first[size:size + settings.validation_size]), rows_of(first[size + settings.validation_size:]),
                      tests, roles, [b for b in buckets if ("mined", b) not in tests],
                      long_mate_answers(tests, answers_dir))


def is_long_mate(tests: dict[tuple[str, str], ChessPuzzles]) -> torch.Tensor:
    """(N,) bool over the puzzles of `tests` in order (as `concatenate` joins them): those that mate in 3 or more, which
    the engine's analysis answers."""
    return torch.cat([torch.zeros(len(t.fens), dtype=torch.bool) if t.mates is None else t.mates >= LONG_MATE
                      for t in tests.values()])


def long_mate_answers(tests: dict[tuple[str, str], ChessPuzzles], answers_dir) -> dict[str, tuple[str, ...]]:
    """{FEN: answers} of the test puzzles that mate in 3 or more; an error naming them when the analysis lacks one."""
    fens = {fen for fen, long in zip([fen for t in tests.values() for fen in t.fens], is_long_mate(tests).tolist())
            if long}
    if not fens:
        return {}
    analysis = load_answers(answers_dir)
    missing = sorted(fens - set(analysis))
    if missing:
        raise ValueError(f"{len(missing)} of the {len(fens)} test puzzles that mate in {LONG_MATE} or more have no "
                         f"answers in {answers_dir} (first: {missing[0]}); `{COMMAND}` analyses the test sets of the "
                         f"committed corpus (another corpus: python -m repro.data.chess_mates --corpus DIR --directory DIR)")
    return {fen: analysis[fen].answers for fen in sorted(fens)}


def data_tables(split: ChessSplit) -> dict[str, pd.DataFrame]:
    """The tables `datasets`, `mined_difficulty_distribution`, `test_buckets` and `lichess_rating_buckets`."""
    mined = split.mined
    datasets = pd.DataFrame([
        {"set": "mined corpus", "puzzles": len(mined), "used for": "training and test"},
        {"set": f"mined training pool (depth ≤ {split.train_depth}, no mate longer than 1)",
         "puzzles": len(split.train_set), "used for": "training"},
        {"set": "Lichess puzzles", "puzzles": len(split.lichess), "used for": "test"},
        {"set": "BIG-bench mate-in-one (loaded)", "puzzles": len(split.mate_in_one), "used for": "test"},
        {"set": "calibration (real puzzles analysed like mined ones)", "puzzles": len(split.calibration.ids),
         "used for": "difficulty calibration, classical reference"},
    ]).set_index("set")
    distribution = pd.crosstab(pd.Series(mined.depths.numpy(), name="depth"),
                               pd.Series(["no mate" if m == 0 else f"mate in {m}" if m < 4 else "mate in 4+"
                                          for m in mined.mates.tolist()], name="mate"), margins=True)
    tests = pd.DataFrame([{"source": s, "bucket": b, "role": split.roles[s, b], "puzzles": len(split.tests[s, b])}
                          for s, b in split.buckets]).set_index(["source", "bucket"])
    labels = bucket_labels()
    ratings = pd.Series(torch.bincount(rating_buckets(split.lichess), minlength=len(labels)).numpy(), index=labels,
                        name="Lichess puzzles").rename_axis("rating").to_frame()
    return {"datasets": datasets,
            "mined_difficulty_distribution": distribution.set_axis([str(c) for c in distribution.columns], axis=1),
            "test_buckets": tests, "lichess_rating_buckets": ratings}


def calibration_frame(split: ChessSplit) -> pd.DataFrame:
    """One row per calibration puzzle (a real Lichess puzzle analysed like a mined one): its rating and rating
    bucket, the depth and mate distance found, whether Stockfish solved it and whether it passes the puzzle test."""
    calibration = split.calibration
    frame = pd.DataFrame({"rating": calibration.ratings.numpy(), "depth": calibration.depths.numpy(),
                          "mate": calibration.mates.numpy(), "solved": calibration.solved.numpy(),
                          "puzzle": calibration.puzzles.numpy()})
    labels = bucket_labels()
    frame["rating bucket"] = pd.Categorical([labels[k] for k in torch.bucketize(
        calibration.ratings, torch.tensor(RATING_EDGES), right=True).tolist()], labels)
    return frame


def classical_reference(cal: pd.DataFrame) -> pd.DataFrame:
    """Stockfish's solve rate on the calibration puzzles per rating bucket (and over all): the classical reference."""
    classical = cal.groupby("rating bucket", observed=False).agg(
        puzzles=("rating", "size"), stockfish_solved=("solved", "mean"), passes_puzzle_test=("puzzle", "mean"),
        median_depth=("depth", "median"), mates=("mate", lambda m: (m > 0).mean()))
    classical.loc["all"] = [len(cal), cal.solved.mean(), cal.puzzle.mean(), cal.depth.median(), (cal.mate > 0).mean()]
    return classical


def calibration_tables(cal: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables `calibration_depth_rating` (median rating per depth), `classical_reference` and
    `calibration_summary` (Spearman of depth with rating, Stockfish's overall solve rate)."""
    depth_rating = cal.groupby("depth").agg(puzzles=("rating", "size"), median_rating=("rating", "median"),
                                             stockfish_solved=("solved", "mean"))
    summary = pd.DataFrame([{"spearman(depth, rating)": spearman(cal.depth, cal.rating),
                             "stockfish solved": cal.solved.mean(), "puzzles": len(cal)}])
    return {"calibration_depth_rating": depth_rating.round(3), "classical_reference": classical_reference(cal).round(3),
            "calibration_summary": summary}


def difficulty_figure(split: ChessSplit, cal: pd.DataFrame, depth_spearman: float):
    """The mined corpus by depth (the training limit dotted), rating against mined depth on the calibration
    puzzles, and the ratings of the real Lichess puzzles with the bucket edges."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    mined = pd.DataFrame({"depth": split.mined.depths.numpy(),
                          "kind": ["mate" if m else "no mate" for m in split.mined.mates.tolist()]})
    sns.countplot(data=mined, x="depth", hue="kind", order=range(1, mined.depth.max() + 1), ax=axes[0])
    axes[0].axvline(split.train_depth - 0.5, color="grey", ls=":")   # depth d sits at position d - 1
    axes[0].set(title=f"mined corpus ({len(mined)} puzzles): depth found and kept", ylabel="puzzles", yscale="log")
    sns.boxplot(data=cal, x="depth", y="rating", color="lightsteelblue", ax=axes[1])
    axes[1].set(title=f"calibration: rating per mined depth (Spearman {depth_spearman:.2f})", ylabel="Lichess rating")
    sns.histplot(split.lichess.ratings.numpy(), bins=40, ax=axes[2])
    for edge in RATING_EDGES:
        axes[2].axvline(edge, color="grey", lw=0.8, ls=":")
    axes[2].set(title=f"{len(split.lichess)} real Lichess puzzles: rating and buckets", xlabel="rating", ylabel="puzzles")
    return finish(fig, axes, legend_axis=0)


RANDOM, HEURISTIC = "random legal move", "one-ply heuristic"


class BucketScores:
    """Every test bucket in one batch, its legal and accepted moves; `rows(logits)` scores each bucket with the legal
    readout (`accuracy`, the deciding metric) and the unmasked one (`unmasked`)."""

    def __init__(self, split: ChessSplit, device: torch.device):
        self.split = split
        self.puzzles = concatenate(list(split.tests.values()))
        self.tokens = square_tokens(self.puzzles).to(device)
        self.accepted = accepted_moves(self.puzzles, split.long_mates).to(device)
        self.legal = legal_moves(self.puzzles).to(device)
        self.bucket_of = bucket_index(split.tests).to(device)

    def rows(self, logits: torch.Tensor) -> list[dict]:
        means = {metric: bucket_means(score, self.bucket_of, len(self.split.tests)) for metric, score in (
            ("accuracy", legal_move_correct(logits, self.legal, self.accepted)),
            ("unmasked", both_squares_correct(logits, self.accepted)))}
        return [{"source": s, "bucket": b, "role": self.split.roles[s, b], **{m: v[k] for m, v in means.items()}}
                for k, (s, b) in enumerate(self.split.tests)]

    def references(self) -> pd.DataFrame:
        """Per bucket, the exact expected score of a random legal move (chance) and of the one-ply heuristic (ties drawn
        uniformly), both under the legal readout's accepted moves."""
        accepted, bucket_of = self.accepted.cpu(), self.bucket_of.cpu()
        heuristic = _move_table([heuristic_moves(chess.Board(fen)) for fen in self.puzzles.fens])
        scores = {RANDOM: expected_score(self.legal.cpu(), accepted), HEURISTIC: expected_score(heuristic, accepted)}
        return pd.DataFrame({name: bucket_means(score, bucket_of, len(self.split.tests)) for name, score in scores.items()},
                            index=pd.MultiIndex.from_tuples(self.split.buckets, names=["source", "bucket"]))

    def answers(self) -> pd.DataFrame:
        """Per bucket: the puzzles with several correct moves, counted as the readout scores them, by distinct (from, to)
        squares (a promotion to two pieces is one); the mates in 3+ (answered by the engine's analysis) and those of them
        with several answers."""
        several = (self.accepted.sum(dim=1) > 1).cpu()
        bucket_of = self.bucket_of.cpu()
        long = is_long_mate(self.split.tests)
        return pd.DataFrame([{"source": s, "bucket": b,
                              "several correct moves": int(several[bucket_of == k].sum()),
                              "mates in 3+": int(long[bucket_of == k].sum()),
                              "mates in 3+, several answers": int((several & long)[bucket_of == k].sum())}
                             for k, (s, b) in enumerate(self.split.tests)]).set_index(["source", "bucket"])


def accuracy_figure(means: pd.DataFrame, buckets: list[tuple[str, str]], models: list[str], title: str):
    """A heatmap of legal-move accuracy, one row per test bucket and one column per model."""
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(buckets) + 1.5))
    sns.heatmap(means.loc[buckets, models].set_axis([f"{s}: {b}" for s, b in buckets]), annot=True, fmt=".2f", vmin=0,
                vmax=1, cmap="viridis", cbar_kws={"label": "legal move correct"}, ax=ax)
    ax.set(title=title, xlabel="model", ylabel="test bucket")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def accuracy_by_role(finals: pd.DataFrame, split: ChessSplit, references: pd.DataFrame, read_at: dict,
                     models: list[str]) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(the table of legal-move accuracy by role: per model, mean ± std over seeds per (read-out, role), the held-out
    accuracy and unmasked share at the last read-out, then a row per reference, which has no seed; the held-out
    accuracy per (model, seed); the references' held-out accuracy), from `looped.read_at`'s `finals`."""
    roles, last = list(dict.fromkeys(split.roles.values())), list(read_at)[-1]
    per_role = finals.groupby(["model", "seed", "read_at", "role"], as_index=False)[["accuracy", "unmasked"]].mean()
    held = finals[(finals.read_at == last) & (finals.role != "in-distribution")].groupby(["model", "seed"])
    held_out = held.accuracy.mean().rename("held-out accuracy")
    table = mean_std_table(per_role, "model", ["read_at", "role"], "accuracy", models,
                           [(r, g) for r in read_at for g in roles])
    table["held-out accuracy"] = held_out.groupby("model").apply(mean_std_text)
    table["held-out unmasked"] = held.unmasked.mean().groupby("model").apply(mean_std_text)
    role_of = pd.Series(split.roles)
    held_out_references = references[role_of != "in-distribution"].mean()
    for name, column in references.items():
        by_group = column.groupby(role_of).mean()
        table.loc[name] = {f"{r} {g}": f"{by_group[g]:.3f}" for r in read_at for g in roles} | {
            "held-out accuracy": f"{held_out_references[name]:.3f}"}
    return table, held_out, held_out_references


def scale_text(settings: ChessSettings, profile: str, split: ChessSplit, read_at: str) -> str:
    """The evidence's opening: the scale of the run and how its answers are scored."""
    held_out = sum(role != "in-distribution" for role in split.roles.values())
    return (f"profile {profile}, {len(settings.seeds)} seeds, {settings.steps} steps, width {settings.width}, "
            f"M = {settings.iterations}, read at {read_at}; trained on {len(split.train_set)} mined puzzles of depth ≤ "
            f"{split.train_depth}, {held_out} held-out buckets of at most {settings.test_size} (mined, BIG-bench) or "
            f"{settings.lichess_test_size} (Lichess) puzzles, legal-move readout, every correct move accepted (exact up "
            f"to mate in 2; for the {len(split.long_mates)} mates in 3+, Stockfish's answers)")


# --- the non-looped MLP of equal training compute ------------------------------------------------

@dataclass(frozen=True)
class MLPConfig:
    hidden: int
    layers: int = 2
    vocab: int = 13
    iterations: int = 1
    """One pass: `looped.read_every_iteration` reads a reference once, at its `config.iterations`."""


class BoardMLP(nn.Module):
    """The board as 64 one-hot square tokens, flattened, through `layers` hidden layers of `hidden` GELU units, to the
    two logits of every square: the same input, output and loss as the looped models, with no attention or loop."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        sizes = [64 * config.vocab] + [config.hidden] * config.layers
        self.body = nn.Sequential(*[m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.GELU())],
                                  nn.Linear(config.hidden, 64 * 2))

    def forward(self, tokens: torch.Tensor):
        x = nn.functional.one_hot(tokens, self.config.vocab).float().flatten(1)
        return self.body(x).reshape(len(tokens), 64, 2), {}


def mlp_loss(model: BoardMLP, batch) -> torch.Tensor:
    tokens, targets = batch
    return token_loss(model(tokens)[0], targets)


def equal_compute_hidden(looped: nn.Module, iterations: int, layers: int = 2) -> int:
    """The hidden width whose `BoardMLP` costs, per board, the matrix-product FLOPs of one forward pass of `looped` at
    its `iterations` (both train with the same steps and batch, so their training compute matches)."""
    tokens = torch.zeros(1, 64, dtype=torch.long)
    target = count_flops(lambda: looped(tokens, iterations))

    def cost(hidden: int) -> int:
        return count_flops(lambda: BoardMLP(MLPConfig(hidden, layers))(tokens))

    low, high = 1, 1
    while cost(high) < target:
        low, high = high, 2 * high
    while high - low > 1:   # cost grows with the width: bisect to the last width not above the target
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= target else (low, middle)
    return low


MLP = "MLP (equal training compute)"


def train_mlps(settings: ChessSettings, study: Study, stream, hidden: int, evaluate) -> tuple[dict, pd.DataFrame]:
    """The MLP reference trained on every seed with the looped models' steps, batch, optimiser and schedule;
    returns (models by (MLP, seed), runs with their train seconds)."""
    models, walls = {}, []
    for seed in settings.seeds:
        with torch_seed(derive("chess-model", MLP, seed)):
            model = BoardMLP(MLPConfig(hidden))
        config = TrainConfig(steps=settings.steps, lr=settings.lr, warmup_steps=settings.steps // 10,
                             eval_every=settings.steps // 4, checkpoint_every=settings.steps // 4, seed=seed)
        result = train(model.to(study.device), mlp_loss, stream(seed), config, evaluate=evaluate,
                       checkpoint=study.checkpoint(MLP, seed), device=study.device, description=f"{MLP} seed {seed}")
        models[MLP, seed] = model
        walls.append({"model": MLP, "seed": seed, "train_seconds": result.wall_seconds})
    return models, pd.DataFrame(walls)


def removable_pieces(puzzles: ChessPuzzles) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, removable) of the puzzles that have a piece the stability edit may remove: neither king nor a piece
    on the move's squares, so the position stays legal-looking and the move stays on the board."""
    tokens = square_tokens(puzzles)
    on_move = torch.zeros_like(tokens, dtype=torch.bool)
    on_move[torch.arange(len(puzzles)), puzzles.from_squares] = True
    on_move[torch.arange(len(puzzles)), puzzles.to_squares] = True
    removable = (tokens > 0) & (tokens != KINGS[0]) & (tokens != KINGS[1]) & ~on_move
    keep = removable.any(dim=1)
    return tokens[keep], removable[keep]


def remove_one_piece(tokens: torch.Tensor, removable: torch.Tensor, stream_seed: int, seed: int,
                     device: torch.device):
    """The small valid edit of the stability axes: one removable piece of every position taken off, drawn at random.
    Returns (tokens, edited tokens, the generator that drew the edit)."""
    generator = rng("chess-stability", stream_seed, seed)
    square = (torch.rand(removable.shape, generator=generator) * removable).argmax(dim=1)
    edited = tokens.clone()
    edited[torch.arange(len(edited)), square] = 0
    return tokens.to(device), edited.to(device), generator
