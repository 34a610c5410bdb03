from dataclasses import replace

import chess
import pytest
import torch

from repro.data.chess import (LICHESS_FILES, RATING_EDGES, bucket_labels, concatenate, correct_moves, encode_boards,
                              forces_mate_in_two, is_correct, load_lichess, load_mate_in_one, mates_in_one, mover_frame,
                              parse_lichess_rows, planes_to_board, quantile_edges, rating_buckets)
from repro.data.files import data_file


# Lichess puzzle 00008: Black plays f2g3 first, so White (the solver) moves e6e7.
# Lichess puzzle 0000D: White plays d3d6 first, so Black (the solver) moves f8d8.
WHITE_SOLVES = {"PuzzleId": "00008", "FEN": "r6k/pp2r2p/4Rp1Q/3p4/8/1N1P2R1/PqP2bPP/7K b - - 0 24",
                "Moves": "f2g3 e6e7 b2b1 b3c1 b1c1 h6c1", "Rating": "1800"}
BLACK_SOLVES = {"PuzzleId": "0000D", "FEN": "5rk1/1p3ppp/pq3b2/8/8/1P1Q1N2/P4PPP/3R2K1 w - - 2 27",
                "Moves": "d3d6 f8d8 d6d8 f6d8", "Rating": "1492"}


def board_after_first_move(row: dict) -> chess.Board:
    board = chess.Board(row["FEN"])
    board.push_uci(row["Moves"].split()[0])
    return board


def test_white_to_move_puzzle_is_encoded_unmirrored():
    puzzles = parse_lichess_rows([WHITE_SOLVES])
    assert puzzles.white_to_move.tolist() == [True]
    assert (puzzles.from_squares.item(), puzzles.to_squares.item()) == (chess.E6, chess.E7)
    board = puzzles.boards[0]
    assert board[0, 0, 7] == 1  # mover's king on h1: channel 0, row 0 (rank 1), column 7 (file h)
    assert board[6, 7, 7] == 1  # opponent's king on h8
    assert board[2].sum() == 0 and board[8, 2, 6] == 1  # the opponent's bishop took on g3


def test_black_to_move_puzzle_is_mirrored_so_the_mover_is_at_the_bottom():
    puzzles = parse_lichess_rows([BLACK_SOLVES])
    assert puzzles.white_to_move.tolist() == [False]
    # Black's rook f8 -> d8 becomes f1 -> d1 in the mover's frame.
    assert (puzzles.from_squares.item(), puzzles.to_squares.item()) == (chess.F1, chess.D1)
    board = puzzles.boards[0]
    assert board[0, 0, 6] == 1  # Black's king g8 is the mover's king on g1
    assert board[6, 7, 6] == 1  # White's king g1 is the opponent's king on g8
    # Black's pawns a6 | b7 f7 g7 h7 are the mover's pawns on rows 2 | 1; White's a2 f2 g2 h2 | b3
    # are the opponent's on rows 6 | 5.
    assert (board[5, 2].sum(), board[5, 1].sum(), board[11, 6].sum(), board[11, 5].sum()) == (1, 4, 4, 1)
    target = puzzles.target_map()[0]
    assert target.sum() == 2 and target[chess.F1] == 1 and target[chess.D1] == 1


def test_planes_decode_to_the_mover_frame_board():
    for row in (WHITE_SOLVES, BLACK_SOLVES):
        board = board_after_first_move(row)
        decoded = planes_to_board(encode_boards([board])[0])
        assert decoded.board_fen() == mover_frame(board).board_fen()
        assert decoded.turn == chess.WHITE


def test_bad_input_names_the_puzzle():
    with pytest.raises(ValueError, match="chess puzzle 00008: malformed FEN"):
        parse_lichess_rows([{**WHITE_SOLVES, "FEN": "r6k/pp2r2p/9/8 b - - 0 24"}])
    with pytest.raises(ValueError, match="chess puzzle 00008: FEN .* is not a legal position"):
        parse_lichess_rows([{**WHITE_SOLVES, "FEN": "r7/pp2r2p/8/8/8/8/8/7K b - - 0 24"}])
    with pytest.raises(ValueError, match="chess puzzle 00008: solution move e6e8 is illegal in"):
        parse_lichess_rows([{**WHITE_SOLVES, "Moves": "f2g3 e6e8"}])
    with pytest.raises(ValueError, match="chess puzzle 00008: opponent's move 'f2-g3' is not a UCI move"):
        parse_lichess_rows([{**WHITE_SOLVES, "Moves": "f2-g3 e6e7"}])
    with pytest.raises(ValueError, match="chess puzzle 00008: Moves must hold"):
        parse_lichess_rows([{**WHITE_SOLVES, "Moves": "f2g3"}])
    with pytest.raises(ValueError, match=r"chess puzzle 00008: row lacks \['Rating'\]"):
        parse_lichess_rows([{key: value for key, value in WHITE_SOLVES.items() if key != "Rating"}])


def test_missing_data_dir_or_file_says_what_is_expected_where(monkeypatch, tmp_path):
    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="REPRO_DATA_DIR is not set.*lichess/lichess_puzzles.csv.xz"):
        load_lichess()
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"expected chess/checkmate_in_one.json.xz at {tmp_path}"):
        load_mate_in_one()


def test_scoring_accepts_every_mate_in_one():
    # After ...b5b4 both Re8 (the stored solution) and Ra8 mate on the back rank.
    puzzles = parse_lichess_rows([{"PuzzleId": "mate", "FEN": "6k1/5ppp/8/1p6/8/8/8/R3R2K b - - 0 1",
                                   "Moves": "b5b4 e1e8", "Rating": "600"}])
    assert is_correct(puzzles, torch.tensor([chess.E1]), torch.tensor([chess.E8])).item()
    assert is_correct(puzzles, torch.tensor([chess.A1]), torch.tensor([chess.A8])).item()
    assert not is_correct(puzzles, torch.tensor([chess.E1]), torch.tensor([chess.E7])).item()
    # Where the solution does not mate, only the solution counts.
    other = parse_lichess_rows([WHITE_SOLVES])
    assert not is_correct(other, torch.tensor([chess.E6]), torch.tensor([chess.E8])).item()
    # Both mates are targets; the line ends in mate, so its mate distance is recorded.
    target = puzzles.target_map()[0]
    assert target.sum() == 4 and target[[chess.E1, chess.E8, chess.A1, chess.A8]].eq(1).all()
    assert puzzles.mates.tolist() == [1] and other.mates.tolist() == [0]


def brute_force_mate_in_two(board: chess.Board, move: chess.Move) -> bool:
    """The reference: every reply answered by some mate, searching every move (no pruning to checks)."""
    board.push(move)
    if board.is_checkmate():
        board.pop()
        return True
    replies = list(board.legal_moves)
    forced = bool(replies)
    for reply in replies:
        board.push(reply)
        forced &= any(_mates(board, m) for m in list(board.legal_moves))
        board.pop()
    board.pop()
    return forced


def _mates(board, move):
    board.push(move)
    mates = board.is_checkmate()
    board.pop()
    return mates


# White: rooks a2 and b1 against a lone king on h8. No mate in one; Ra7 and Rb7 both force mate in two.
LADDER = chess.Board("7k/8/8/8/8/8/R7/1R4K1 w - - 0 1")


def test_mate_in_two_search_matches_brute_force_and_accepts_every_solution():
    assert mates_in_one(LADDER) == []
    for move in LADDER.legal_moves:
        assert forces_mate_in_two(LADDER, move) == brute_force_mate_in_two(LADDER, move), move
    accepted = correct_moves(LADDER, chess.Move.from_uci("a2a7"))
    assert {"a2a7", "b1b7"} <= {m.uci() for m in accepted}
    assert {m.uci() for m in accepted} == {m.uci() for m in LADDER.legal_moves if brute_force_mate_in_two(LADDER, m)}
    assert LADDER.fen() == "7k/8/8/8/8/8/R7/1R4K1 w - - 0 1"   # the search leaves the board as it found it
    # A move that does not force mate (here a quiet king move) is its own only answer.
    assert correct_moves(LADDER, chess.Move.from_uci("g1f1")) == [chess.Move.from_uci("g1f1")]


def test_rating_buckets_and_quantile_edges():
    puzzles = parse_lichess_rows([WHITE_SOLVES, BLACK_SOLVES, {**WHITE_SOLVES, "Rating": "700"},
                                  {**WHITE_SOLVES, "Rating": "2400"}])
    assert rating_buckets(puzzles).tolist() == [3, 2, 0, 5]
    assert bucket_labels() == ["<800", "800-1199", "1200-1599", "1600-1999", "2000-2399", ">=2400"]
    assert len(bucket_labels()) == len(RATING_EDGES) + 1
    edges = quantile_edges(torch.arange(1000, 2000), 4)
    assert all(abs(edge - expected) <= 1 for edge, expected in zip(edges, (1250, 1500, 1750), strict=True))


@pytest.mark.needs_data
def test_real_lichess_puzzles_load_deduplicated_and_round_trip():
    puzzles = load_lichess()
    assert len(set(puzzles.ids)) == len(puzzles) == 7213  # 1,000 + 6,605 rows, 392 ids in both files
    assert puzzles.ratings.min() >= 400 and puzzles.ratings.max() <= 3000
    assert 0.4 < puzzles.white_to_move.float().mean() < 0.6
    assert puzzles.boards[:, 0].sum(dim=(1, 2)).eq(1).all() and puzzles.boards[:, 6].sum(dim=(1, 2)).eq(1).all()
    generator = torch.Generator().manual_seed(0)
    for row in torch.randperm(len(puzzles), generator=generator)[:50].tolist():
        board = chess.Board(puzzles.fens[row])
        frame = mover_frame(board)
        assert planes_to_board(puzzles.boards[row]).board_fen() == frame.board_fen()
        move = chess.Move(puzzles.from_squares[row].item(), puzzles.to_squares[row].item())
        legal = {(m.from_square, m.to_square) for m in frame.legal_moves}
        assert (move.from_square, move.to_square) in legal
        assert chess.Move.from_uci(puzzles.solutions[row]) in board.legal_moves
    assert is_correct(puzzles, puzzles.from_squares, puzzles.to_squares).all()
    # The first file wins for an id in both: 00008 is rated 1800 there, 1811 in the second.
    assert puzzles.ratings[puzzles.ids.index("00008")] == 1800
    assert LICHESS_FILES[0] == "lichess/lichess_puzzles.csv.xz"


@pytest.mark.needs_data
def test_mate_in_one_positions_are_puzzles_without_an_opponent_move():
    puzzles = load_mate_in_one(limit=40)
    assert len(puzzles) == 40 and puzzles.ratings is None
    assert puzzles.ids[0] == "checkmate_in_one:0"
    # Record 0 ends "... 31. Kf5" with the mate Rg5#: Black to move, mirrored.
    assert puzzles.white_to_move[0].item() is False
    for row in range(len(puzzles)):
        frame = mover_frame(chess.Board(puzzles.fens[row]))
        assert planes_to_board(puzzles.boards[row]).board_fen() == frame.board_fen()
        mate = next(m for m in frame.legal_moves
                    if (m.from_square, m.to_square) == (puzzles.from_squares[row], puzzles.to_squares[row]))
        frame.push(mate)
        assert frame.is_checkmate()
    with pytest.raises(ValueError, match="no ratings"):
        rating_buckets(puzzles)


@pytest.mark.needs_data
def test_data_file_resolves_a_relative_setting_from_the_repository_root(monkeypatch, tmp_path):
    absolute = data_file(LICHESS_FILES[0]).resolve()
    monkeypatch.chdir(tmp_path)
    assert data_file(LICHESS_FILES[0]).resolve() == absolute


def test_concatenate_keeps_order_drops_ratings_and_keeps_mates_only_where_every_part_has_them():
    rated = parse_lichess_rows([WHITE_SOLVES, BLACK_SOLVES])
    both = concatenate([rated, rated])
    assert len(both) == 4 and both.ids == rated.ids * 2 and both.ratings is None
    assert both.mates.tolist() == rated.mates.tolist() * 2
    assert concatenate([rated, replace(rated, mates=None)]).mates is None
