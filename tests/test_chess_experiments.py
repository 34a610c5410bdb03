"""The chess pieces of the looped study (`repro.experiments.chess`): square tokens, the move readout and its
metric, the stream, and the stability edit."""

from dataclasses import replace

import chess as pychess
import torch

from repro.data.chess import encode_puzzles
from repro.experiments import chess


def puzzles():
    """Scholar's mate (Qxf7#) and a quiet position where White's only sensible test move is given as e2e4."""
    mate = pychess.Board("r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4")
    quiet = pychess.Board()
    return encode_puzzles(["mate", "quiet"], [mate, quiet], [pychess.Move.from_uci("h5f7"),
                                                             pychess.Move.from_uci("e2e4")], None)


def test_square_tokens_name_the_piece_on_every_square():
    tokens = chess.square_tokens(puzzles())
    assert tokens.shape == (2, 64)
    assert (tokens[1] > 0).sum() == 32 and (tokens[1] == 0).sum() == 32
    assert set(tokens[1].tolist()) <= set(range(13))


def test_accepted_moves_hold_the_solution_and_chance_is_exact():
    p = puzzles()
    accepted = chess.accepted_moves(p)
    assert accepted[torch.arange(2), p.from_squares * 64 + p.to_squares].all()
    assert accepted[1].sum() == 1   # a non-mate accepts only its solution
    assert chess.legal_moves(p)[1] == 20


def test_both_squares_correct_reads_the_two_top_squares_in_either_order():
    p = puzzles()
    accepted = chess.accepted_moves(p)
    logits = torch.zeros(2, 64, 2)
    logits[torch.arange(2), p.to_squares, 1] = 2.0   # to-square ranked first: order does not matter
    logits[torch.arange(2), p.from_squares, 1] = 1.0
    assert chess.both_squares_correct(logits, accepted).tolist() == [1.0, 1.0]
    logits[1, 0, 1] = 5.0   # a third square outranks the from-square
    assert chess.both_squares_correct(logits, accepted).tolist() == [1.0, 0.0]


def test_the_puzzle_stream_is_a_pure_function_of_seed_and_step():
    stream = chess.PuzzleStream(puzzles(), batch=8, seed=3)
    tokens, targets = stream.batch_at(5)
    assert tokens.shape == (2, 64) and targets.shape == (2, 64)   # the batch never exceeds the pool
    assert torch.equal(tokens, chess.PuzzleStream(puzzles(), 8, 3).batch_at(5)[0])


def test_concatenate_keeps_order_and_drops_ratings():
    both = chess.concatenate([puzzles(), puzzles()])
    assert len(both) == 4 and both.ids == ["mate", "quiet", "mate", "quiet"] and both.ratings is None


def test_the_stability_edit_removes_one_piece_but_no_king_and_nothing_on_the_move():
    p = puzzles()
    tokens, removable = chess.removable_pieces(p)
    assert len(tokens) == 2 and not removable[tokens == 1].any() and not removable[tokens == 7].any()
    assert not removable[torch.arange(2), p.from_squares].any()
    original, edited, _ = chess.remove_one_piece(tokens, removable, 1, 0, torch.device("cpu"))
    changed = edited != original
    assert (changed.sum(dim=1) == 1).all() and (edited[changed] == 0).all() and removable[changed].all()


def test_mined_buckets_split_mates_from_depths():
    assert chess.mined_buckets(4) == ["depth ≤ 4", "mate in 1", "depth > 4", "mate in 2+"]
    mined = replace(puzzles(), depths=torch.tensor([6, 2]), mates=torch.tensor([1, 0]))
    assert chess.mined_bucket(mined, 4) == ["mate in 1", "depth ≤ 4"]
