"""The engine's answers to the longer chess mates (`repro.data.chess_mates`): checked against an exact search where one
is affordable, read back verified, and required by the split for every long mate it tests."""

import json
import lzma
import subprocess
import sys
from dataclasses import asdict, replace

import chess
import chess.engine
import pytest
import torch

import repro.data.chess_mates as mates
from repro.data.chess import concatenate, correct_moves, encode_puzzles
from repro.data.chess_mining import stockfish_path
from repro.data.files import DataIntegrityError
from repro.experiments.chess import long_mate_answers

try:
    stockfish_path()
    HAVE_STOCKFISH = True
except FileNotFoundError:
    HAVE_STOCKFISH = False
needs_stockfish = pytest.mark.skipif(not HAVE_STOCKFISH, reason="Stockfish is not installed (apt-get install stockfish)")


def mates_within(board: chess.Board, moves: int) -> bool:
    """Exact: can the side to move force mate within `moves` moves? (Brute force; a few seconds at 3.)"""
    for move in board.legal_moves:
        if forces_within(board, move, moves):
            return True
    return False


def forces_within(board: chess.Board, move: chess.Move, moves: int) -> bool:
    """Exact: does `move` mate at once, or leave every reply a mate within `moves` - 1?"""
    board.push(move)
    try:
        if board.is_checkmate():
            return True
        replies = list(board.legal_moves)
        if moves == 1 or not replies:
            return False
        for reply in replies:
            board.push(reply)
            held = mates_within(board, moves - 1)
            board.pop()
            if not held:
                return False
        return True
    finally:
        board.pop()


def committed_rows(shortest: int, several: bool) -> list[tuple[str, mates.MateAnswers]]:
    """The committed positions with this shortest mate and one or several answers, fewest legal moves first (the
    cheapest to search exactly)."""
    rows = [(fen, a) for fen, a in mates.load_answers().items()
            if a.shortest_mate == shortest and (len(a.answers) > 1) == several]
    return sorted(rows, key=lambda row: chess.Board(row[0]).legal_moves.count())


@pytest.mark.parametrize("several", [True, False])
def test_committed_mate_in_3_answers_match_an_exact_search(several):
    """Two committed positions whose shortest mate is 3: the answers are exactly the moves that force mate in 3 (none
    mates sooner), whether there are several or one."""
    rows = committed_rows(3, several)[:1]
    assert rows, "the committed analysis holds no such mate in 3"
    for fen, answers in rows:
        board = chess.Board(fen)
        assert not mates_within(board, 2)
        exact = sorted(m.uci() for m in board.legal_moves if forces_within(board, m, 3))
        assert list(answers.answers) == exact, fen


@needs_stockfish
def test_the_engine_analysis_is_reproducible_and_keeps_the_solution():
    fen, committed = committed_rows(3, True)[0]
    recorded = json.loads((mates.ANSWERS_DIR / mates.SETTINGS_FILE).read_text())["stockfish"]
    engine = mates.open_analyst(mates.SETTINGS)
    try:
        if engine.id.get("name") != recorded:
            pytest.skip(f"the analysis was made with {recorded}; {engine.id.get('name')} is installed")
        again = mates.analyse_position(engine, fen, committed.solution, committed.recorded_mate, mates.SETTINGS)
        twice = mates.analyse_position(engine, fen, committed.solution, committed.recorded_mate, mates.SETTINGS)
    finally:
        engine.quit()
    assert again == twice == committed and committed.solution in committed.answers


class ScriptedEngine:
    """Stands in for Stockfish: the mate distance (0: none) it reports for each root move, by UCI."""

    def __init__(self, mates: dict[str, int]):
        self.mates = mates

    def analyse(self, board, limit, root_moves, game):
        mate = self.mates.get(root_moves[0].uci(), 0)
        score = chess.engine.Mate(mate) if mate else chess.engine.Cp(0)
        return {"score": chess.engine.PovScore(score, board.turn)}


@pytest.mark.parametrize("recorded, expected", [(3, ("b1c3", "e2e4", "g1f3")), (4, ("b1c3", "e2e4", "g1f3")),
                                                (2, ("e2e4",))])
def test_the_answers_are_the_soonest_mates_unless_the_engine_missed_the_recorded_one(recorded, expected):
    """Moves mating in 3 answer (with the solution, which the engine sees mating in 5); a recorded mate in 2 that the
    engine did not find leaves the solution alone; a move it sees mating later, or not at all, never answers."""
    engine = ScriptedEngine({"g1f3": 3, "b1c3": 3, "e2e4": 5, "d2d4": 6, "a2a3": -2})
    answers = mates.analyse_position(engine, chess.STARTING_FEN, "e2e4", recorded, mates.SETTINGS)
    assert answers == mates.MateAnswers("e2e4", recorded, 3, expected)
    none = mates.analyse_position(ScriptedEngine({}), chess.STARTING_FEN, "e2e4", recorded, mates.SETTINGS)
    assert none == mates.MateAnswers("e2e4", recorded, 0, ("e2e4",))


def test_correct_moves_answer_a_long_mate_with_the_engine_answers():
    fen, committed = committed_rows(3, True)[0]
    board = chess.Board(fen)
    solution = chess.Move.from_uci(committed.solution)
    assert correct_moves(board, solution) == [solution]
    assert [m.uci() for m in correct_moves(board, solution, committed.answers)] == list(committed.answers)
    # Another puzzle on the same position keeps its own solution among the answers.
    other = next(m for m in board.legal_moves if m.uci() not in committed.answers)
    assert correct_moves(board, other, committed.answers)[-1] == other


def write_settings(directory, **change):
    (directory / mates.SETTINGS_FILE).write_text(json.dumps({"settings": asdict(mates.SETTINGS) | change}))


def long_mate_tests(fen: str, solution: str) -> dict:
    puzzles = encode_puzzles(["p"], [chess.Board(fen)], [chess.Move.from_uci(solution)], None)
    return {("mined", "mate in 3+"): replace(puzzles, mates=torch.tensor([3]))}


def test_the_split_stops_when_a_tested_long_mate_has_no_answers(tmp_path):
    fen, committed = committed_rows(3, True)[0]
    tests = long_mate_tests(fen, committed.solution)
    assert long_mate_answers(tests, mates.ANSWERS_DIR) == {fen: committed.answers}
    with pytest.raises(FileNotFoundError, match="make chess-mates"):
        long_mate_answers(tests, tmp_path)
    (tmp_path / mates.ANALYSIS_FILE).write_bytes(lzma.compress(b"FEN,Solution,RecordedMate,ShortestMate,Answers\n"))
    write_settings(tmp_path)
    with pytest.raises(ValueError, match="1 of the 1 test puzzles that mate in 3 or more have no answers.*chess-mates"):
        long_mate_answers(tests, tmp_path)
    shorter = {key: replace(t, mates=torch.tensor([2])) for key, t in tests.items()}
    assert long_mate_answers(shorter, tmp_path) == {}   # no long mate tested: no analysis needed


def test_a_bad_analysis_file_names_the_line_and_what_is_wrong(tmp_path):
    header = "FEN,Solution,RecordedMate,ShortestMate,Answers\n"
    write_settings(tmp_path)
    fen = chess.STARTING_FEN
    for body, message in ((f"{fen},e2e4,3,3,e2e5\n", "line 2: answers 'e2e5' are not legal moves there"),
                          (f"{fen},e2e4,three,3,e2e4\n", "line 2: invalid literal"),
                          ("", None)):
        (tmp_path / mates.ANALYSIS_FILE).write_bytes(lzma.compress((header + body).encode()))
        if message is None:
            assert mates.load_answers(tmp_path) == {}
        else:
            with pytest.raises(ValueError, match=message):
                mates.load_answers(tmp_path)
    (tmp_path / mates.ANALYSIS_FILE).write_bytes(lzma.compress(b"FEN,Answers\n"))
    with pytest.raises(ValueError, match="columns"):
        mates.load_answers(tmp_path)
    write_settings(tmp_path, nodes_per_move=1000)
    with pytest.raises(ValueError, match=r"analysed with \{'nodes_per_move': 1000.*make chess-mates"):
        mates.load_answers(tmp_path)


def test_a_changed_committed_analysis_is_refused(tmp_path, monkeypatch):
    import repro.data.files as files
    copy = tmp_path / "data"
    (copy / "chess_mates").mkdir(parents=True)
    for name in (mates.ANALYSIS_FILE, mates.SETTINGS_FILE):
        (copy / "chess_mates" / name).write_bytes((mates.ANSWERS_DIR / name).read_bytes())
    (copy / files.COMMITTED_MANIFEST).write_bytes((files.COMMITTED_DIR / files.COMMITTED_MANIFEST).read_bytes())
    monkeypatch.setattr(files, "COMMITTED_DIR", copy)
    assert mates.load_answers(copy / "chess_mates")
    analysis = copy / "chess_mates" / mates.ANALYSIS_FILE
    analysis.write_bytes(analysis.read_bytes()[:-8] + bytes(8))
    with pytest.raises(DataIntegrityError):
        mates.load_answers(copy / "chess_mates")


def test_the_analysed_positions_are_every_lichess_long_mate_and_the_first_mined_ones_in_split_order():
    def puzzles(name, distances):
        boards = [chess.Board()] * len(distances)
        p = encode_puzzles([f"{name}{i}" for i in range(len(distances))], boards,
                           [chess.Move.from_uci("e2e4")] * len(distances), None)
        return replace(p, fens=[f"{name} {i}" for i in range(len(distances))], mates=torch.tensor(distances))
    lichess, mined = puzzles("lichess", [0, 3, 5, 2]), puzzles("mined", [3, 0, 4, 3, 7, 1])
    chosen = mates.long_mate_puzzles(mined, lichess, mined=2)
    order = [i for i in mates.split_order(mined) if mined.mates[i] >= 3][:2]
    assert chosen.ids == ["lichess1", "lichess2"] + [f"mined{i}" for i in order]
    assert chosen.mates.tolist() == [3, 5] + [mined.mates[i].item() for i in order]
    assert concatenate([lichess, mined]).mates.tolist() == lichess.mates.tolist() + mined.mates.tolist()


ANALYSE_TWO = """
import sys
from dataclasses import asdict, replace
from pathlib import Path
import repro.data.chess_mates as mates
from repro.data.chess import load_lichess
lichess = load_lichess()
two = lichess.subset((lichess.mates >= mates.LONG_MATE).nonzero().flatten()[:2])
mates.BATCH = 1  # a batch per position, so both engines work and the pool ends after several batches
print(mates.analyse(two, replace(mates.SETTINGS, nodes_per_move=2000), workers=2, directory=Path(sys.argv[1])))
"""


@needs_stockfish
def test_the_analysis_ends_and_writes_what_a_search_per_position_finds(tmp_path):
    """Two Lichess mates on two engine processes at a small budget: the run ends (an engine left open in a worker once
    kept the pool from shutting down), and the table holds each position's own analysis and reads back."""
    done = subprocess.run([sys.executable, "-c", ANALYSE_TWO, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    settings = replace(mates.SETTINGS, nodes_per_move=2000)
    written = mates.load_answers(tmp_path, settings)
    engine = mates.open_analyst(settings)
    try:
        for fen, answers in written.items():
            assert mates.analyse_position(engine, fen, answers.solution, answers.recorded_mate, settings) == answers
    finally:
        engine.quit()
    assert len(written) == 2


def test_a_position_that_is_two_puzzles_is_refused_before_any_engine_starts():
    board = chess.Board()
    two = encode_puzzles(["a", "b"], [board, board], [chess.Move.from_uci("e2e4"), chess.Move.from_uci("d2d4")], None)
    with pytest.raises(ValueError, match="is two puzzles, with solution and mate"):
        mates.analyse(replace(two, mates=torch.tensor([3, 3])), workers=1, directory=None)


def test_the_counts_quoted_for_the_committed_analysis_are_its_own():
    """The module docstring and the deviation quote the analysis; a new `make chess-mates` must update them."""
    from repro.deviations import DEVIATIONS
    answers = list(mates.load_answers().values())
    several = [a for a in answers if len(a.answers) > 1]
    counts = {"positions": f"{len(answers):,}", "several": str(len(several)),
              "several at 3": str(sum(a.shortest_mate == 3 for a in several)),
              "at 3": str(sum(a.shortest_mate == 3 for a in answers)),
              "sooner": str(sum(0 < a.shortest_mate < a.recorded_mate for a in answers)),
              "none": str(sum(a.shortest_mate == 0 for a in answers)),
              "missed": str(sum(a.shortest_mate > a.recorded_mate for a in answers))}
    assert (f"Of the {counts['positions']} committed\npositions, {counts['several']} have several answers "
            f"({counts['several at 3']} of the {counts['at 3']} whose shortest mate is 3), {counts['sooner']} mate sooner "
            f"than recorded and {counts['none']}\nshow no mate") in mates.__doc__
    text = DEVIATIONS["chess-long-mate-answers"].what
    assert f"({counts['missed']} of {counts['positions']} positions)" in text
    assert f"Of the {counts['positions']} analysed positions {counts['several']} have several answers" in text
