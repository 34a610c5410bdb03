import json
import lzma

import chess
import pytest
from chess.engine import Cp, Mate

import repro.data.chess_mining as mining
from repro.data.chess import parse_lichess_rows
from repro.data.chess_corpus import load_calibration, load_mined
from repro.data.chess_mining import (MinerSettings, analyse_position, calibration_rows, first_found_depth, is_puzzle,
                                     mine, open_engine, win_percent)

try:
    mining.stockfish_path()
    HAVE_STOCKFISH = True
except FileNotFoundError:
    HAVE_STOCKFISH = False
needs_stockfish = pytest.mark.skipif(not HAVE_STOCKFISH,
                                     reason="Stockfish is not installed (apt-get install stockfish)")

RULE = MinerSettings()
TINY = MinerSettings(games_per_shard=1, max_plies=40, min_play_nodes=30, max_play_nodes=300, analysis_nodes=2_000,
                     calibration_size=0)
"""Budgets small enough for a test; a few puzzles per game."""
SCHOLARS_MATE = "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"
"""White mates in one with Qh5xf7, the only mating move."""


# --- the puzzle rule and the difficulty measure --------------------------------------------------

def test_win_percent_follows_the_lichess_curve():
    assert win_percent(Cp(0)) == 50
    assert win_percent(Cp(300)) == pytest.approx(75.1, abs=0.05)
    assert win_percent(Cp(-300)) == pytest.approx(100 - win_percent(Cp(300)))
    assert (win_percent(Mate(3)), win_percent(Mate(-1))) == (100, 0)


def test_puzzle_rule_on_hand_made_scores():
    assert is_puzzle(Mate(3), Cp(150), RULE)                 # a forced mate, nothing else mates
    assert is_puzzle(Mate(1), Mate(1), RULE)                 # mate in one: every mate solves it
    assert not is_puzzle(Mate(3), Mate(5), RULE)             # two mating moves: no single answer
    assert is_puzzle(Cp(400), Cp(0), RULE)                   # wins a piece; every other move is level
    assert not is_puzzle(Cp(400), Cp(350), RULE)             # no margin: two moves win
    assert not is_puzzle(Cp(-300), Cp(-900), RULE)           # a large margin, but the best move loses
    assert not is_puzzle(Cp(100), Mate(-2), RULE)            # only move, yet not winning (win% 59 < 65)
    assert not is_puzzle(Cp(500), None, RULE)                # one legal move is no choice


def info(depth: int, move: str, multipv: int = 1, **flags) -> dict:
    return {"depth": depth, "multipv": multipv, "pv": [chess.Move.from_uci(move)], "score": Cp(0), **flags}


def test_depth_is_where_the_final_move_was_found_and_kept():
    infos = [info(1, "e2e4"), info(1, "d2d4", multipv=2), info(2, "d2d4"), info(3, "e2e4"),
             info(3, "d2d4", multipv=2),                     # the second line does not count
             info(4, "d2d4", lowerbound=True),               # nor does a provisional fail-high PV
             {"depth": 4, "string": "NNUE evaluation"},      # nor a line without a PV
             info(4, "e2e4"), info(5, "e2e4")]
    assert first_found_depth(infos) == (chess.Move.from_uci("e2e4"), 3)
    assert first_found_depth([info(1, "e2e4"), info(2, "e2e4")])[1] == 1
    with pytest.raises(RuntimeError, match="no principal variation"):
        first_found_depth([{"depth": 1, "string": "x"}])


def test_settings_reject_bad_values_and_unknown_keys():
    with pytest.raises(ValueError, match="min_opening_plies <= max_opening_plies"):
        MinerSettings(min_opening_plies=9, max_opening_plies=3)
    with pytest.raises(ValueError, match=r"min_win must be a win% in \(50, 100\]"):
        MinerSettings(min_win=40)
    with pytest.raises(ValueError, match="unknown key.*analysis_node'.*valid keys"):
        MinerSettings.from_dict({"analysis_node": 10})


def test_missing_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(mining, "STOCKFISH_PATHS", ())
    with pytest.raises(FileNotFoundError, match="apt-get install stockfish.*make reproduce` runs without"):
        mining.stockfish_path()


# --- Stockfish -----------------------------------------------------------------------------------

@needs_stockfish
def test_a_mate_in_one_is_a_puzzle_with_mate_distance_one():
    analyst = open_engine(TINY)
    try:
        result = analyse_position(analyst, SCHOLARS_MATE, TINY)
    finally:
        analyst.quit()
    assert (result.move.uci(), result.mate, result.depth, result.puzzle) == ("h5f7", 1, 1, True)


def shard_bytes(directory) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("shard_*.csv.xz"))}


@needs_stockfish
def test_mining_is_deterministic_and_gives_legal_records(tmp_path):
    first = mine(3, workers=2, settings=TINY, directory=tmp_path / "a", progress=lambda line: None)
    second = mine(3, workers=1, settings=TINY, directory=tmp_path / "b", progress=lambda line: None)
    # Two workers may finish one shard more than one worker needs; the shards both hold are identical.
    two, one = shard_bytes(tmp_path / "a"), shard_bytes(tmp_path / "b")
    assert one and set(one) <= set(two) and all(two[name] == one[name] for name in one)
    assert all(first["shards"][shard] == record for shard, record in second["shards"].items())
    puzzles = load_mined(tmp_path / "a")                 # verifies every FEN, move and checksum
    assert len(puzzles) >= 3 and (puzzles.depths >= 1).all()
    recorded = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert MinerSettings.from_dict(recorded["settings"]) == TINY and recorded["stockfish"].startswith("Stockfish")


@needs_stockfish
def test_a_corrupt_shard_is_detected_and_mined_again(tmp_path):
    directory = tmp_path / "chess_mined"
    mine(1, workers=1, settings=TINY, directory=directory, progress=lambda line: None)
    original = shard_bytes(directory)
    shard = directory / "shard_00000.csv.xz"
    shard.write_bytes(lzma.compress(b"PuzzleId,FEN\n"))
    with pytest.raises(ValueError, match="shard_00000.csv.xz does not match its sha256"):
        load_mined(directory)
    (directory / "shard_00001.csv.xz.partial").write_bytes(b"an interrupted write")
    mine(1, workers=1, settings=TINY, directory=directory, progress=lambda line: None)
    assert shard_bytes(directory) == original
    assert len(load_mined(directory)) >= 1


def dying_engine(shard: int, times: int):
    """A `mine_shard` whose first `times` calls for `shard` raise as when Stockfish dies mid-search."""
    real, deaths = mining.mine_shard, []

    def mine_shard(settings, number, directory):
        if number == shard and len(deaths) < times:
            deaths.append(number)
            raise chess.engine.EngineTerminatedError("engine process died unexpectedly (exit code: -9)")
        return real(settings, number, directory)
    return mine_shard


@needs_stockfish
def test_a_shard_whose_engine_dies_is_mined_again_to_the_same_rows(tmp_path, monkeypatch):
    reference = mine(2, workers=1, settings=TINY, directory=tmp_path / "a", progress=lambda line: None)
    monkeypatch.setattr(mining, "mine_shard", dying_engine(shard=0, times=1))
    lines = []
    retried = mine(2, workers=2, settings=TINY, directory=tmp_path / "b", progress=lines.append)
    assert any("shard 0 failed (EngineTerminatedError" in line and "mining it again" in line for line in lines)
    assert all(retried["shards"][shard] == record for shard, record in reference["shards"].items())


@needs_stockfish
def test_a_shard_that_keeps_failing_stops_the_run_and_keeps_the_finished_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(mining, "mine_shard", dying_engine(shard=1, times=1 + mining.SHARD_RETRIES))
    with pytest.raises(RuntimeError, match=r"shard 1 failed 2 times; the last error: EngineTerminatedError"):
        mine(100, workers=2, settings=TINY, directory=tmp_path, progress=lambda line: None)
    recorded = json.loads((tmp_path / "settings.json").read_text())["shards"]
    assert "00000" in recorded and "00001" not in recorded


@needs_stockfish
def test_resuming_with_other_settings_is_refused(tmp_path):
    mine(0, workers=1, settings=TINY, directory=tmp_path, progress=lambda line: None)
    with pytest.raises(ValueError, match="records settings.*delete"):
        mine(0, workers=1, settings=MinerSettings(calibration_size=0), directory=tmp_path, progress=lambda line: None)


@needs_stockfish
def test_calibration_measures_real_puzzles_as_mining_does(tmp_path):
    # Lichess 00008 (White solves e6e7) and 0000D (Black solves f8d8), as in tests/test_chess.py.
    real = parse_lichess_rows([
        {"PuzzleId": "00008", "FEN": "r6k/pp2r2p/4Rp1Q/3p4/8/1N1P2R1/PqP2bPP/7K b - - 0 24",
         "Moves": "f2g3 e6e7 b2b1 b3c1 b1c1 h6c1", "Rating": "1800"},
        {"PuzzleId": "0000D", "FEN": "5rk1/1p3ppp/pq3b2/8/8/1P1Q1N2/P4PPP/3R2K1 w - - 2 27",
         "Moves": "d3d6 f8d8 d6d8 f6d8", "Rating": "1492"}])
    settings = MinerSettings(analysis_nodes=20_000)
    rows = calibration_rows(real, settings, workers=2)
    assert [(row["PuzzleId"], row["Rating"], row["Solution"]) for row in rows] == [
        ("00008", "1800", "e6e7"), ("0000D", "1492", "f8d8")]
    assert all(row["Solved"] == "1" and int(row["Depth"]) >= 1 for row in rows)
    # The same measure as mining: a fresh analysis of the FEN.
    analyst = open_engine(settings)
    try:
        depths = [str(analyse_position(analyst, fen, settings).depth) for fen in real.fens]
    finally:
        analyst.quit()
    assert depths == [row["Depth"] for row in rows]


@needs_stockfish
@pytest.mark.needs_data
def test_mining_writes_a_calibration_table_first(tmp_path):
    mine(0, workers=1, settings=MinerSettings(analysis_nodes=2_000, calibration_size=4), directory=tmp_path,
         progress=lambda line: None)
    calibration = load_calibration(tmp_path)
    assert len(calibration.ids) == 4 and (calibration.ratings > 0).all() and (calibration.depths >= 1).all()
    with pytest.raises(ValueError, match="mined chess corpus .* lists no shards"):
        load_mined(tmp_path)
