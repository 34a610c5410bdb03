import hashlib
import json
import lzma

import chess
import pytest

import repro.data.chess_corpus as corpus
from repro.data.chess_corpus import load_calibration, load_mined, parse_mined_rows

SCHOLARS_MATE = "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"
"""White mates in one with Qh5xf7, the only mating move."""


# --- loading and its errors ----------------------------------------------------------------------

def test_loading_a_missing_corpus_names_the_folder_and_the_make_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="data/chess_mined/.*make mine-chess"):
        load_mined(tmp_path / "chess_mined")
    with pytest.raises(FileNotFoundError, match="data/chess_mined/.*make mine-chess"):
        load_calibration(tmp_path / "chess_mined")


def mined_row(**changes) -> dict:
    row = {"PuzzleId": "mined-7-12", "FEN": SCHOLARS_MATE, "Move": "h5f7", "Depth": "1", "Mate": "1",
           "WinMargin": "0.0", "Game": "7", "Ply": "12"}
    return {**row, **changes}


def test_mined_rows_are_encoded_with_their_difficulty():
    puzzles = parse_mined_rows([mined_row(), mined_row(Mate="", Depth="6")], ["shard_00000.csv.xz line 2"] * 2)
    assert puzzles.depths.tolist() == [1, 6] and puzzles.mates.tolist() == [1, 0]
    assert (puzzles.from_squares[0].item(), puzzles.to_squares[0].item()) == (chess.H5, chess.F7)
    assert puzzles.subset(slice(1, 2)).depths.tolist() == [6]


@pytest.mark.parametrize("change, problem", [
    ({"FEN": "not a fen"}, "malformed FEN"),
    ({"FEN": "8/8/8/8/8/8/8/8 w - - 0 1"}, "not a legal position"),
    ({"Move": "e2e5"}, "solution move e2e5 is illegal"),
    ({"Move": "castle"}, "is not a UCI move"),
    ({"Depth": "0"}, "Depth '0' is not a positive integer"),
    ({"Mate": "x"}, "Mate 'x' is not a positive integer or blank"),
])
def test_a_malformed_record_is_named(change, problem):
    with pytest.raises(ValueError, match=rf"mined-7-12 \(shard_00003.csv.xz line 3\).*{problem}"):
        parse_mined_rows([mined_row(PuzzleId="mined-7-11"), mined_row(**change)],
                         ["shard_00003.csv.xz line 2", "shard_00003.csv.xz line 3"])


def write_corpus(directory, shards: list[list[dict]]) -> None:
    """A corpus written by hand, as the miner lays it out."""
    directory.mkdir()
    records = {}
    for index, rows in enumerate(shards):
        path = directory / f"shard_{index:05d}.csv.xz"
        header = ",".join(corpus.PUZZLE_COLUMNS)
        path.write_bytes(lzma.compress("\n".join([header] + [",".join(row[c] for c in corpus.PUZZLE_COLUMNS)
                                                             for row in rows]).encode() + b"\n"))
        records[f"{index:05d}"] = {"file": path.name, "first_game": index, "last_game": index, "rows": len(rows),
                                   "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (directory / "settings.json").write_text(json.dumps({"settings": {}, "shards": records, "calibration": None}))


def test_a_position_in_two_shards_is_loaded_once(tmp_path):
    write_corpus(tmp_path / "corpus", [[mined_row()], [mined_row(PuzzleId="mined-9-12", Game="9")]])
    puzzles = load_mined(tmp_path / "corpus")
    assert puzzles.ids == ["mined-7-12"]
