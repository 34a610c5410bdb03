"""Chess puzzles mined from Stockfish self-play: the training corpus, built the way Lichess builds puzzles.

Method (settings in `MinerSettings`, recorded in the corpus):
1. Self-play (`play_game`). Game g opens with k uniformly random legal plies, k drawn from
   [min_opening_plies, max_opening_plies]; then Stockfish plays both sides, each side at its own
   node budget drawn log-uniformly from [min_play_nodes, max_play_nodes], searching
   `play_multipv` lines and drawing its move among those within `play_window` win% points of the
   best (a mate it sees is always played). Random openings, weak and unequal players and
   imprecise moves are what make tactics, as human mistakes do in Lichess games; the draws also
   keep games apart. Every random choice of game g comes from its own generator seeded by
   `repro.seeding.derive("chess-mining", seed, g)`.
2. The puzzle test (`analyse_position`). A position after the random opening is analysed when it
   has two or more legal moves, was not analysed before in its shard (EPD: pieces, side to move,
   castling, en passant) and its mover's own self-play search gives it at least `screen_win`.
   The analysis searches the FEN alone with MultiPV 2 at `analysis_nodes` nodes. With the Lichess
   win-probability curve

       win%(cp) = 50 + 50 * (2 / (1 + exp(-0.00368208 * cp)) - 1),   a forced mate = 100 (0 if mated)

   the position is a puzzle when (`is_puzzle`)
   - the best move mates by force and the second best does not (any mate in one counts, as
     every mating move solves a mate in one), or
   - win%(best) >= `min_win` and win%(best) - win%(second) >= `min_margin`.
3. Difficulty (`first_found_depth`). The search depth from which the final best move is PV[0] of
   the main line at every later reported depth ("first found and kept"), read from the info lines
   of that same analysis; for a mate also the mate distance in moves.

Why these settings (measured on this project's 2-core machine, Stockfish 15.1, one thread each):
- min_win 65 (about +1.7 pawns, a position the mover wins in practice) and min_margin 20 (winning
  a knight from equality is about 25 points) are our choice; 80% of the 1,000 real Lichess
  puzzles of the committed calibration pass this test at our budget, and Stockfish's move solves
  96.6% of them.
- analysis_nodes 12,000 (about depth 9 in a middlegame, deeper in endgames): on those puzzles the
  found depth spreads over 1..11 (median rating 1,191 at depth 1, 1,900-2,400 at depths 6-10),
  with a rank correlation of 0.47 with the rating; on a first sample of 300 it was no higher at
  20,000 or 50,000 nodes, which cost 1.5x to 3x more per puzzle.
- screen_win 50: the deep analysis rarely finds a winning move where the mover's own search does
  not even see a level game; skipping those positions saves about 45% of the analyses and loses
  about 3% of the puzzles.
- play nodes 30..3,000, play_window 25 with 4 lines: about 3 puzzles per game and 1.2 times as many
  per analysed position as a window of 10 with 3 lines (games are shorter). All told about 0.35
  CPU-seconds per puzzle, a quarter of it python-chess reading the engine's output: 100,000
  puzzles in about 5 hours of CPU time on 2 cores; the wall-clock pace measured here was 6-7 hours.

Determinism: both engines run with one thread and a fixed hash; the player starts every game with
`ucinewgame` and the analyst every position, so each analysis is a pure function of the FEN and
the settings (which also lets the same measure run on the real puzzles, `calibration_rows`). Each
shard is therefore a pure function of its settings, the Stockfish build and python-chess.

Corpus (`CORPUS_DIR`, committed, so `make reproduce` needs no Stockfish): xz-compressed CSV shards,
shard s holding games [s * games_per_shard, (s + 1) * games_per_shard), and `settings.json` with
the settings, the Stockfish and python-chess versions, and each shard's sha256 and row count.
Mining resumes: a shard whose checksum matches is kept, a missing, partial or corrupt one is mined
again, and every file is written through a temporary name. A shard whose engine dies mid-run is
mined again from its start (`SHARD_RETRIES`), to the same rows. `calibration.csv.xz` holds the same
difficulty measure on a seeded sample of the real Lichess puzzles. `repro.data.chess_corpus`
reads the corpus back, verified (`load_mined`, `load_calibration`).
"""

import argparse
import csv
import io
import itertools
import json
import lzma
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import chess
import chess.engine
import torch

from repro.config import StrictConfig
from repro.data.chess import ChessPuzzles, is_correct, load_lichess, mover_move
from repro.data.chess_corpus import (CALIBRATION_COLUMNS, CALIBRATION_FILE, CORPUS_DIR, MANIFEST, PUZZLE_COLUMNS,
                                     _read_manifest, _sha256)
from repro.data.files import write_atomically
from repro.seeding import derive, rng

STOCKFISH_PATHS = ("/usr/games/stockfish",)
"""Where Debian and Ubuntu's `stockfish` package puts the engine, off the usual PATH."""
STOCKFISH_INSTALL_HINT = (
    "install the Debian/Ubuntu package (`apt-get install stockfish`; `make setup` does this where apt is "
    "available); only mining needs it: the mined corpus is committed under data/chess_mined/, so "
    "`make reproduce` runs without Stockfish")
SHARD_RETRIES = 1
"""Times a shard whose mining raised (an engine that died) is mined again before the run stops."""


@dataclass(frozen=True)
class MinerSettings(StrictConfig):
    """How a corpus is mined; stored in its settings.json. The defaults made the committed corpus."""

    seed: int = 0
    """Corpus seed: game g's random choices come from derive('chess-mining', seed, g)."""
    games_per_shard: int = 500
    """Games per shard file, the unit of resumption and of parallel work (11-18 minutes on one core here)."""
    min_opening_plies: int = 2
    max_opening_plies: int = 8
    """Range (inclusive) of the number of uniformly random legal plies that open each game."""
    min_play_nodes: int = 30
    max_play_nodes: int = 3_000
    """Range of the node budget per self-play move; each side of each game draws its own, log-uniformly."""
    play_multipv: int = 4
    """Lines searched per self-play move, the candidates of the seeded draw."""
    play_window: float = 25.0
    """A self-play move is drawn among the lines within this many win% points of the best."""
    analysis_nodes: int = 12_000
    """Node budget of the puzzle test and difficulty measure (MultiPV 2)."""
    screen_win: float = 50.0
    """Positions whose mover the self-play search gives a lower win% are not analysed (see `play_game`)."""
    min_win: float = 65.0
    """A puzzle's best move reaches at least this win% ..."""
    min_margin: float = 20.0
    """... and at least this many win% points more than the second best move."""
    max_plies: int = 200
    """A game is cut after this many plies (counting the opening)."""
    hash_mb: int = 16
    """Transposition table size of each engine, fixed so that searches are reproducible."""
    calibration_size: int = 1_000
    """Real Lichess puzzles analysed for `calibration.csv.xz` (0: none)."""

    def __post_init__(self):
        checks = (
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.games_per_shard >= 1, f"games_per_shard must be >= 1, got {self.games_per_shard}"),
            (0 <= self.min_opening_plies <= self.max_opening_plies,
             f"need 0 <= min_opening_plies <= max_opening_plies, got {self.min_opening_plies}, "
             f"{self.max_opening_plies}"),
            (self.max_plies > self.max_opening_plies,
             f"max_plies ({self.max_plies}) must exceed max_opening_plies ({self.max_opening_plies})"),
            (1 <= self.min_play_nodes <= self.max_play_nodes,
             f"need 1 <= min_play_nodes <= max_play_nodes, got {self.min_play_nodes}, {self.max_play_nodes}"),
            (self.analysis_nodes >= 1, f"analysis_nodes must be >= 1, got {self.analysis_nodes}"),
            (0 <= self.screen_win < self.min_win,
             f"screen_win must be a win% in [0, min_win), got {self.screen_win}"),
            (self.play_multipv >= 1, f"play_multipv must be >= 1, got {self.play_multipv}"),
            (self.play_window >= 0, f"play_window must be >= 0 win% points, got {self.play_window}"),
            (50 < self.min_win <= 100, f"min_win must be a win% in (50, 100], got {self.min_win}"),
            (0 < self.min_margin <= 100, f"min_margin must be win% points in (0, 100], got {self.min_margin}"),
            (self.hash_mb >= 1, f"hash_mb must be >= 1, got {self.hash_mb}"),
            (self.calibration_size >= 0, f"calibration_size must be >= 0, got {self.calibration_size}"),
        )
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError(f"MinerSettings: {'; '.join(problems)}")


# --- the engine ----------------------------------------------------------------------------------

def stockfish_path() -> str:
    """`stockfish` on PATH, else where the Debian package installs it; a clear error otherwise."""
    found = shutil.which("stockfish") or next((p for p in STOCKFISH_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        raise FileNotFoundError(f"the chess puzzle miner needs the Stockfish engine, found neither `stockfish` "
                                f"on PATH nor {' or '.join(STOCKFISH_PATHS)}; {STOCKFISH_INSTALL_HINT}")
    return found


def open_engine(settings: MinerSettings) -> chess.engine.SimpleEngine:
    """A Stockfish process with one thread and a fixed hash, so a search is reproducible."""
    engine = chess.engine.SimpleEngine.popen_uci(stockfish_path())
    engine.configure({"Threads": 1, "Hash": settings.hash_mb})
    return engine


# --- the puzzle rule and the difficulty measure --------------------------------------------------

def win_percent(score: chess.engine.Score) -> float:
    """The mover's winning chance in percent on Lichess's curve:
    win% = 50 + 50 * (2 / (1 + exp(-0.00368208 * cp)) - 1); a forced mate is 100, being mated 0."""
    mate = score.mate()
    if mate is not None:
        return 100.0 if mate > 0 else 0.0
    return 50 + 50 * (2 / (1 + math.exp(-0.00368208 * score.score())) - 1)


def is_puzzle(best: chess.engine.Score, second: chess.engine.Score | None, settings: MinerSettings) -> bool:
    """Is a position with these two best lines (scores for the mover) a puzzle? See the module
    docstring; a position with one legal move (`second` None) is not."""
    if second is None:
        return False
    best_mate, second_mate = best.mate(), second.mate()
    if best_mate is not None and best_mate > 0:
        # DEVIATION: [chess-mined-unique-mate] a forced mate is a puzzle only when no other move mates too.
        return best_mate == 1 or second_mate is None or second_mate < 0
    # DEVIATION: [chess-mined-rule] one analysis of the first move with our thresholds decides, not
    # Lichess's check of every move of the line.
    best_win = win_percent(best)
    return best_win >= settings.min_win and best_win - win_percent(second) >= settings.min_margin


def _exact_lines(infos: Iterable[chess.engine.InfoDict]) -> Iterable[chess.engine.InfoDict]:
    """The info lines that report a finished principal variation: a depth, a PV and an exact score
    (a fail-high or fail-low line's PV is provisional)."""
    for info in infos:
        if info.get("pv") and "depth" in info and "score" in info and not (
                info.get("lowerbound") or info.get("upperbound")):
            yield info


def first_found_depth(infos: Iterable[chess.engine.InfoDict]) -> tuple[chess.Move, int]:
    """The final best move and the depth from which it is PV[0] of the main line (multipv 1) at every
    later reported depth: the depth at which Stockfish found the move and kept it."""
    move, depth = None, None
    for info in _exact_lines(infos):
        if info.get("multipv", 1) == 1 and info["pv"][0] != move:
            move, depth = info["pv"][0], info["depth"]
    if move is None:
        raise RuntimeError("Stockfish reported no principal variation with an exact score")
    return move, depth


@dataclass(frozen=True)
class Analysis:
    """One position under the puzzle test and the difficulty measure."""

    move: chess.Move
    """Stockfish's final best move."""
    depth: int
    """Depth from which `move` was found and kept."""
    mate: int | None
    """Moves to mate where `move` mates by force; None otherwise."""
    margin: float
    """win% of the best line minus that of the second best (0 with one legal move)."""
    puzzle: bool
    """Does the position pass `is_puzzle`?"""


def analyse_position(analyst: chess.engine.SimpleEngine, fen: str, settings: MinerSettings) -> Analysis:
    """Run the puzzle test and the difficulty measure on `fen` (MultiPV 2, `analysis_nodes`)."""
    # A fresh game object makes python-chess send `ucinewgame`, which clears Stockfish's hash and
    # histories: the analysis depends on the FEN and the settings only, not on earlier searches.
    with analyst.analysis(chess.Board(fen), chess.engine.Limit(nodes=settings.analysis_nodes), multipv=2,
                          game=object()) as running:
        infos = list(running)
    move, depth = first_found_depth(infos)
    last = {info.get("multipv", 1): info["score"].relative for info in _exact_lines(infos)}
    best, second = last[1], last.get(2)
    mate = best.mate() if best.mate() is not None and best.mate() > 0 else None
    margin = 0.0 if second is None else win_percent(best) - win_percent(second)
    return Analysis(move, depth, mate, margin, is_puzzle(best, second, settings))


# --- self-play -----------------------------------------------------------------------------------

def _self_play_search(player: chess.engine.SimpleEngine, board: chess.Board, settings: MinerSettings,
                      nodes: int, choices: random.Random, game_key: object) -> tuple[chess.Move, float]:
    """The self-play move at `nodes` and the mover's win% by that search. The move is drawn among the
    lines within `play_window` of the best, except that a mate the search sees is played: otherwise
    a won game drags on among near-100% moves and yields the same mate in one again and again."""
    lines = [line for line in player.analyse(board, chess.engine.Limit(nodes=nodes), multipv=settings.play_multipv,
                                             game=game_key)
             if line.get("pv") and "score" in line]
    best_score = lines[0]["score"].relative
    best = win_percent(best_score)
    if best_score.mate() is not None and best_score.mate() > 0:
        return lines[0]["pv"][0], best
    near = [line["pv"][0] for line in lines if best - win_percent(line["score"].relative) <= settings.play_window]
    return choices.choice(near), best


def play_game(player: chess.engine.SimpleEngine, analyst: chess.engine.SimpleEngine, settings: MinerSettings,
              game: int, seen: set[str]) -> tuple[list[dict[str, str]], int]:
    """Play self-play game `game`; return its puzzle rows and the number of positions analysed.

    Each side plays at its own node budget, so the games pair players of different strength whose
    mistakes differ in depth, and so do the puzzles that punish them. A position is analysed unless
    it is in the random opening, has one legal move, is in `seen` (the EPDs analysed so far in this
    shard, which gains this game's) or the self-play search already gives its mover less than
    `screen_win`: a puzzle needs a winning move, and skipping such positions saves most of the
    analyses of the losing side."""
    # DEVIATION: [chess-mined-selfplay] positions come from Stockfish self-play with random openings,
    # not from human games after a blunder.
    choices = random.Random(derive("chess-mining", settings.seed, game))
    nodes = {colour: round(math.exp(choices.uniform(math.log(settings.min_play_nodes),
                                                    math.log(settings.max_play_nodes))))
             for colour in (chess.WHITE, chess.BLACK)}
    board = chess.Board()
    for _ in range(choices.randint(settings.min_opening_plies, settings.max_opening_plies)):
        if board.is_game_over():
            break
        board.push(choices.choice(sorted(board.legal_moves, key=chess.Move.uci)))
    rows, analysed = [], 0
    while len(board.move_stack) < settings.max_plies and not board.is_game_over(claim_draw=True):
        legal = list(board.legal_moves)
        if len(legal) == 1:
            board.push(legal[0])
            continue
        move, mover_win = _self_play_search(player, board, settings, nodes[board.turn], choices, ("self-play", game))
        # DEVIATION: [chess-mined-screen] positions the self-play search deems clearly lost for the
        # mover are not analysed; a deeper search would rarely find a winning move there.
        if mover_win >= settings.screen_win and board.epd() not in seen:
            seen.add(board.epd())
            analysed += 1
            result = analyse_position(analyst, board.fen(), settings)
            if result.puzzle:
                ply = len(board.move_stack)
                rows.append({"PuzzleId": f"mined-{game}-{ply}", "FEN": board.fen(), "Move": result.move.uci(),
                             "Depth": str(result.depth), "Mate": "" if result.mate is None else str(result.mate),
                             "WinMargin": f"{result.margin:.1f}", "Game": str(game), "Ply": str(ply)})
        board.push(move)
    return rows, analysed


# --- corpus files --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardRecord:
    """What settings.json records of one mined shard."""

    file: str
    first_game: int
    last_game: int
    rows: int
    sha256: str


def _shard_file(shard: int) -> str:
    return f"shard_{shard:05d}.csv.xz"


def _csv_xz(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return lzma.compress(text.getvalue().encode())


def mine_shard(settings: MinerSettings, shard: int, directory: Path) -> tuple[int, ShardRecord, int]:
    """Mine the games of `shard` into its file under `directory`; return the shard, its record and
    the number of positions analysed."""
    first = shard * settings.games_per_shard
    games = range(first, first + settings.games_per_shard)
    rows, analysed, seen = [], 0, set()
    player, analyst = open_engine(settings), open_engine(settings)
    try:
        for game in games:
            game_rows, game_analysed = play_game(player, analyst, settings, game, seen)
            rows += game_rows
            analysed += game_analysed
    finally:
        player.quit()
        analyst.quit()
    path = directory / _shard_file(shard)
    write_atomically(path, _csv_xz(PUZZLE_COLUMNS, rows))
    return shard, ShardRecord(path.name, games[0], games[-1], len(rows), _sha256(path)), analysed


def _versions(settings: MinerSettings) -> dict[str, str]:
    engine = open_engine(settings)
    try:
        return {"stockfish": engine.id.get("name", "unknown"), "python_chess": chess.__version__}
    finally:
        engine.quit()


def _start_manifest(directory: Path, settings: MinerSettings) -> dict:
    """The manifest to continue, keeping only the shards and calibration whose files are intact; a
    new one where there is none. A corpus made another way (settings, versions) is an error."""
    fresh = {"settings": asdict(settings), **_versions(settings), "shards": {}, "calibration": None}
    if not (directory / MANIFEST).is_file():
        return fresh
    manifest = _read_manifest(directory)
    for key in ("settings", "stockfish", "python_chess"):
        if manifest.get(key) != fresh[key]:
            raise ValueError(f"{directory / MANIFEST} records {key} {manifest.get(key)!r}, but this run has "
                             f"{fresh[key]!r}; a corpus must come from one setting, so mine into another "
                             f"directory or delete {directory} to start over")
    manifest["shards"] = {shard: record for shard, record in manifest["shards"].items()
                          if _intact(directory, record)}
    if manifest["calibration"] is not None and not _intact(directory, manifest["calibration"]):
        manifest["calibration"] = None
    return manifest


def _intact(directory: Path, record: dict) -> bool:
    path = directory / record["file"]
    return path.is_file() and _sha256(path) == record["sha256"]


def _save_manifest(directory: Path, manifest: dict) -> None:
    manifest["shards"] = dict(sorted(manifest["shards"].items()))
    write_atomically(directory / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def mine(target: int, workers: int = 2, settings: MinerSettings = MinerSettings(), directory: Path = CORPUS_DIR,
         progress: Callable[[str], None] = print) -> dict:
    """Calibrate (if not done yet), then mine shards 0, 1, ... into `directory` until the corpus
    holds at least `target` puzzles; return the manifest, also written to settings.json.

    Shards already there with their recorded checksum are kept and every other shard below the
    highest one kept is mined again, so the corpus is always shards 0..n-1. `workers` shards are
    mined at once, each by its own pair of Stockfish processes that search one at a time, so one
    core per worker. Shards are handed out in order, and no new one once the target is reached, so
    a run may end with up to `workers - 1` shards more than needed. A shard whose mining fails is
    mined again from its start, up to `SHARD_RETRIES` times; then the run stops with the error, the
    shards finished so far kept. Calibration runs first: it
    needs the real puzzles (REPRO_DATA_DIR), and a missing setting should stop the run before hours
    of mining, not after."""
    if target < 0 or workers < 1:
        raise ValueError(f"need target >= 0 and workers >= 1, got target={target}, workers={workers}")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = _start_manifest(directory, settings)
    _save_manifest(directory, manifest)
    if manifest["calibration"] is None and settings.calibration_size > 0:
        progress(f"calibrating on {settings.calibration_size} real Lichess puzzles")
        path = directory / CALIBRATION_FILE
        rows = calibration_rows(calibration_sample(settings), settings, workers)
        write_atomically(path, _csv_xz(CALIBRATION_COLUMNS, rows))
        manifest["calibration"] = {"file": path.name, "rows": len(rows), "sha256": _sha256(path)}
        _save_manifest(directory, manifest)
    total = sum(record["rows"] for record in manifest["shards"].values())
    last = max(map(int, manifest["shards"]), default=-1)
    unmined = (shard for shard in itertools.count() if _shard_key(shard) not in manifest["shards"])
    shard = next(unmined)
    started, analysed, mined = time.time(), 0, 0
    attempts: dict[int, int] = {}
    gave_up: RuntimeError | None = None
    with ThreadPoolExecutor(workers) as pool:
        running: set[Future] = set()
        shard_of: dict[Future, int] = {}
        while True:
            while gave_up is None and len(running) < workers and (shard <= last or total < target):
                submitted = pool.submit(mine_shard, settings, shard, directory)
                shard_of[submitted] = shard
                running.add(submitted)
                shard = next(unmined)
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                failed = future.exception()
                if failed is not None:
                    # A shard is a pure function of the settings, so mining it again with fresh engines gives
                    # the same rows; an engine that dies once in hours of searching should not end the run.
                    failed_shard = shard_of[future]
                    attempts[failed_shard] = attempts.get(failed_shard, 0) + 1
                    if attempts[failed_shard] > SHARD_RETRIES:
                        # The shards still running are finished and kept before the run stops.
                        gave_up = RuntimeError(f"shard {failed_shard} failed {attempts[failed_shard]} times; the "
                                               f"last error: {type(failed).__name__}: {failed}")
                        gave_up.__cause__ = failed
                        continue
                    progress(f"shard {failed_shard} failed ({type(failed).__name__}: {failed}); mining it again")
                    retry = pool.submit(mine_shard, settings, failed_shard, directory)
                    shard_of[retry] = failed_shard
                    running.add(retry)
                    continue
                done_shard, record, positions = future.result()
                manifest["shards"][_shard_key(done_shard)] = asdict(record)
                _save_manifest(directory, manifest)
                total, analysed, mined = total + record.rows, analysed + positions, mined + record.rows
                elapsed = time.time() - started
                hours_left = (target - total) / (mined / elapsed) / 3600 if mined and total < target else 0.0
                progress(f"shard {done_shard}: {record.rows} puzzles from games {record.first_game}-"
                         f"{record.last_game}; {total:,} of {target:,} puzzles; "
                         f"{analysed / elapsed:.1f} positions analysed/s; ETA {hours_left:.1f} h")
    if gave_up is not None:
        raise gave_up
    return manifest


def _shard_key(shard: int) -> str:
    return f"{shard:05d}"


# --- calibration on the real puzzles -------------------------------------------------------------

def calibration_sample(settings: MinerSettings) -> ChessPuzzles:
    """`calibration_size` real Lichess puzzles (REPRO_DATA_DIR), a seeded sample without repeats."""
    puzzles = load_lichess()
    if settings.calibration_size > len(puzzles):
        raise ValueError(f"calibration_size {settings.calibration_size} exceeds the {len(puzzles)} real puzzles")
    order = torch.randperm(len(puzzles), generator=rng("chess-mining-calibration", settings.seed))
    return puzzles.subset(order[:settings.calibration_size])


def _analyse_all(settings: MinerSettings, fens: Sequence[str]) -> list[Analysis]:
    analyst = open_engine(settings)
    try:
        return [analyse_position(analyst, fen, settings) for fen in fens]
    finally:
        analyst.quit()


def calibration_rows(puzzles: ChessPuzzles, settings: MinerSettings, workers: int = 1) -> list[dict[str, str]]:
    """The difficulty measure of mining on real puzzles, one row per puzzle (`CALIBRATION_COLUMNS`):
    the measured depth and mate distance, Stockfish's move and the Lichess solution, Solved (1 where
    Stockfish's move is one of the puzzle's correct moves, as `is_correct`
    scores a model), Puzzle (1 where the position passes our puzzle test), the win margin and the rating."""
    chunks = [puzzles.fens[worker::workers] for worker in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        analysed = list(pool.map(_analyse_all, [settings] * workers, chunks))
    results = [analysed[row % workers][row // workers] for row in range(len(puzzles))]
    moves = [mover_move(chess.Board(fen), result.move) for fen, result in zip(puzzles.fens, results)]
    solved = is_correct(puzzles, torch.tensor([move.from_square for move in moves], dtype=torch.long),
                        torch.tensor([move.to_square for move in moves], dtype=torch.long))
    ratings = [""] * len(puzzles) if puzzles.ratings is None else [str(int(r)) for r in puzzles.ratings]
    return [{"PuzzleId": puzzle, "Rating": rating, "Depth": str(result.depth),
             "Mate": "" if result.mate is None else str(result.mate), "Move": result.move.uci(),
             "Solution": solution, "Solved": str(int(ok)), "Puzzle": str(int(result.puzzle)),
             "WinMargin": f"{result.margin:.1f}"}
            for puzzle, rating, result, solution, ok in zip(puzzles.ids, ratings, results, puzzles.solutions, solved)]


# --- command line --------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mine chess puzzles from Stockfish self-play into data/chess_mined/.")
    parser.add_argument("--target", type=int, default=100_000, help="puzzles to reach (default 100000)")
    parser.add_argument("--workers", type=int, default=2, help="shards mined at once, one core each (default 2)")
    arguments = parser.parse_args(argv)
    manifest = mine(arguments.target, arguments.workers, progress=lambda line: print(line, flush=True))
    total = sum(record["rows"] for record in manifest["shards"].values())
    print(f"mined chess corpus: {total:,} puzzles in {len(manifest['shards'])} shards under {CORPUS_DIR}")


if __name__ == "__main__":
    main()
