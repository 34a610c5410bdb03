"""Every correct answer to the longer mates of the chess test sets, from Stockfish's analysis, committed.

A puzzle whose solution mates in three moves or more often has another move that mates as fast (issue 19 found a second
mating move in 7 of 15 such test puzzles), and scoring only the solution calls that move wrong. Up to mate in two
`repro.data.chess.correct_moves` finds every answer by exact search; beyond it an exact search is too slow, so the
engine decides, one legal move at a time (`analyse_position`): each is searched on its own (UCI `searchmoves`) at a
fixed node budget, one thread, a fixed hash and a new game per search, so the analysis is a pure function of the
position, the settings and the Stockfish build. The shortest mate found over all moves sets the position's distance,
and the answers are the moves that mate in it, plus the puzzle's own solution; where that distance exceeds the
puzzle's recorded one the engine has missed a mate and the solution stands alone. A mate the engine misses at the
budget is scored wrong, so a score stays a lower bound, as it was with the solution alone. Of the 1,982 committed
positions, 238 have several answers (56 of the 856 whose shortest mate is 3), 376 mate sooner than recorded and 21
show no mate at the budget.

The analysed positions (`long_mate_puzzles`) are every Lichess puzzle whose line mates in 3 or more and the first
`mined` mined puzzles of the "mate in 3+" test bucket in notebook 04's seeded order (`split_order`): the test sets of
every profile up to `paper` draw from these. `make chess-mates` writes `data/chess_mates/analysis.csv.xz` (with the
settings and versions in `settings.json`, both in data/MANIFEST.json); `load_answers` reads it back, verified, and
notebook 04 stops, saying to run the command, when a test puzzle's long mate is missing from it.
"""

import argparse
import csv
import io
import json
import lzma
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import chess
import chess.engine
import torch

from repro import ROOT
from repro.config import StrictConfig
from repro.data.chess import ChessPuzzles, concatenate, load_lichess
from repro.data.chess_corpus import CORPUS_DIR, load_mined, split_order
from repro.data.chess_mining import stockfish_path
from repro.data.files import verify_if_committed, write_atomically

ANSWERS_DIR = ROOT / "data" / "chess_mates"
ANALYSIS_FILE, SETTINGS_FILE = "analysis.csv.xz", "settings.json"
COLUMNS = ("FEN", "Solution", "RecordedMate", "ShortestMate", "Answers")
LONG_MATE = 3
"""Mates in this many moves or more are answered by the engine; shorter ones by exact search."""
COMMAND = "make chess-mates"


@dataclass(frozen=True)
class MateAnalysisSettings(StrictConfig):
    RANGES = {"nodes_per_move": "[1, inf)", "hash_mb": "[1, inf)", "mined": "[0, inf)"}

    nodes_per_move: int
    """Stockfish nodes for each legal move's own search."""
    hash_mb: int
    mined: int
    """The first this many mined puzzles of the "mate in 3+" bucket (notebook 04's largest `test_size`)."""


# DEVIATION: [chess-long-mate-answers] answers to mates in 3+ are Stockfish's (20,000 nodes per legal move).
SETTINGS = MateAnalysisSettings(nodes_per_move=20_000, hash_mb=16, mined=1000)
"""20,000 nodes a move, about 1 s a position on one thread. Measured on 42 test positions of the `cpu` profile (the
first 6 of the mined "mate in 3+" bucket and of each Lichess band): the shortest distance and the answers were the
same at 20,000, 100,000 and 400,000 nodes (1.0, 3.9 and 12.9 s a position) on all 42."""


@dataclass(frozen=True)
class MateAnswers:
    """One analysed position: the distance of the shortest mate found and the moves that mate in it (UCI)."""

    solution: str
    recorded_mate: int
    """The puzzle's own mate distance (the line's for Lichess, the miner's for mined puzzles)."""
    shortest_mate: int
    """The shortest mate the engine found over every legal move (0: none, the solution kept alone)."""
    answers: tuple[str, ...]


def analyse_position(engine: chess.engine.SimpleEngine, fen: str, solution: str, recorded_mate: int,
                     settings: MateAnalysisSettings) -> MateAnswers:
    """Search every legal move of `fen` on its own for a forced mate; answer with those that mate soonest."""
    board = chess.Board(fen)
    mates = {}
    for move in board.legal_moves:
        # A new `game` per search sends ucinewgame, which clears the hash: no search sees another's table.
        info = engine.analyse(board, chess.engine.Limit(nodes=settings.nodes_per_move), root_moves=[move],
                              game=object())
        score = info["score"].relative
        if score.is_mate() and score.mate() > 0:
            mates[move.uci()] = score.mate()
    shortest = min(mates.values(), default=0)
    # Past the recorded distance the engine has missed the solution's own mate, so its distances there are not
    # trusted: the solution stands alone (14 of the 1,982 committed positions).
    trusted = shortest <= recorded_mate
    answers = sorted({solution, *(move for move, mate in mates.items() if trusted and mate == shortest)})
    return MateAnswers(solution, recorded_mate, shortest, tuple(answers))


def long_mate_puzzles(mined_corpus: ChessPuzzles, lichess: ChessPuzzles, mined: int) -> ChessPuzzles:
    """The puzzles to analyse: every Lichess mate in 3+, and the first `mined` mined mates in 3+ in the split order."""
    lichess_rows = (lichess.mates >= LONG_MATE).nonzero().flatten()
    mined_rows = [i for i in split_order(mined_corpus) if mined_corpus.mates[i] >= LONG_MATE][:mined]
    return concatenate([lichess.subset(lichess_rows), mined_corpus.subset(torch.tensor(mined_rows, dtype=torch.long))])


BATCH = 20
"""Positions per engine process start: an engine is opened and quit per batch, so no worker exits holding one (an
engine left open keeps its worker, and so the pool, from ever shutting down)."""


def _analyse_batch(jobs: list[tuple[str, str, int, MateAnalysisSettings]]) -> list[MateAnswers]:
    engine = open_analyst(jobs[0][3])
    try:
        return [analyse_position(engine, fen, solution, recorded, settings) for fen, solution, recorded, settings in jobs]
    finally:
        engine.quit()


def open_analyst(settings: MateAnalysisSettings) -> chess.engine.SimpleEngine:
    engine = chess.engine.SimpleEngine.popen_uci(stockfish_path())
    engine.configure({"Threads": 1, "Hash": settings.hash_mb})
    return engine


def analyse(puzzles: ChessPuzzles, settings: MateAnalysisSettings = SETTINGS, workers: int = 2,
            directory: Path = ANSWERS_DIR) -> Path:
    """Analyse `puzzles` (each position once) in `workers` engine processes; write the table and its settings."""
    jobs = {}
    for fen, solution, mate in zip(puzzles.fens, puzzles.solutions, puzzles.mates.tolist()):
        job = (fen, solution, int(mate), settings)
        if jobs.setdefault(fen, job) != job:
            raise ValueError(f"position {fen} is two puzzles, with solution and mate {jobs[fen][1:3]} and {job[1:3]}; "
                             "the analysis answers each position once")
    batches = [list(jobs.values())[start:start + BATCH] for start in range(0, len(jobs), BATCH)]
    analysed = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for results in pool.map(_analyse_batch, batches):
            analysed.extend(results)
            if len(analysed) % 100 == 0 or len(analysed) == len(jobs):
                print(f"[chess-mates] {len(analysed)} of {len(jobs)} positions analysed", flush=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for fen, result in zip(jobs, analysed):
        writer.writerow([fen, result.solution, result.recorded_mate, result.shortest_mate, " ".join(result.answers)])
    directory.mkdir(parents=True, exist_ok=True)
    engine = open_analyst(settings)
    try:
        versions = {"stockfish": engine.id.get("name", "unknown"), "python_chess": chess.__version__}
    finally:
        engine.quit()
    write_atomically(directory / SETTINGS_FILE,
                     (json.dumps({"settings": asdict(settings), **versions, "positions": len(jobs)}, indent=1)
                      + "\n").encode())
    write_atomically(directory / ANALYSIS_FILE, lzma.compress(buffer.getvalue().encode()))
    return directory / ANALYSIS_FILE


def load_answers(directory: Path = ANSWERS_DIR, settings: MateAnalysisSettings = SETTINGS) -> dict[str, MateAnswers]:
    """{FEN: its answers} from the committed analysis, checked against data/MANIFEST.json and made with `settings`; a
    missing file says how to make it."""
    path = directory / ANALYSIS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no analysis of the chess test sets' longer mates at {path}; `{COMMAND}` writes it "
                                f"(Stockfish, about 20 minutes on two cores)")
    verify_if_committed(path)
    verify_if_committed(directory / SETTINGS_FILE)
    recorded = json.loads((directory / SETTINGS_FILE).read_text()).get("settings")
    if recorded != asdict(settings):
        raise ValueError(f"{path} was analysed with {recorded}, not the {asdict(settings)} asked for; `{COMMAND}` "
                         "analyses again")
    answers = {}
    with lzma.open(path, "rt") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                board = chess.Board(row["FEN"])
                moves = row["Answers"].split()
                if not moves or any(chess.Move.from_uci(m) not in board.legal_moves for m in moves):
                    raise ValueError(f"answers {row['Answers']!r} are not legal moves there")
                answers[row["FEN"]] = MateAnswers(row["Solution"], int(row["RecordedMate"]),
                                                  int(row["ShortestMate"]), tuple(moves))
            except ValueError as error:
                raise ValueError(f"{path} line {line}: {error}") from None
    return answers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="the mined corpus whose test sets to analyse")
    parser.add_argument("--directory", type=Path, default=ANSWERS_DIR, help="where to write the analysis")
    args = parser.parse_args(argv)
    puzzles = long_mate_puzzles(load_mined(args.corpus), load_lichess(), SETTINGS.mined)
    print(f"[chess-mates] analysing {len(puzzles)} positions with {args.workers} engine(s), "
          f"{SETTINGS.nodes_per_move:,} nodes a move", flush=True)
    print(f"[chess-mates] wrote {analyse(puzzles, workers=args.workers, directory=args.directory)}")


if __name__ == "__main__":
    main()
