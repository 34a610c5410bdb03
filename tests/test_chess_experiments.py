"""The chess pieces of the looped study (`repro.experiments.chess`): square tokens, the move readout and its
metric, the stream, and the stability edit."""

from dataclasses import replace
from types import SimpleNamespace

import chess as pychess
import pandas as pd
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
    accepted = chess.accepted_moves(p, {})
    assert accepted[torch.arange(2), p.from_squares * 64 + p.to_squares].all()
    assert accepted[1].sum() == 1   # a non-mate accepts only its solution
    legal = chess.legal_moves(p)
    assert legal[1].sum() == 20 and not (accepted & ~legal).any()
    # Chance is exact: accepted over legal moves, per puzzle.
    assert torch.allclose(chess.expected_score(legal, accepted), accepted.sum(1) / legal.sum(1).float())


def test_the_legal_readout_is_the_best_legal_pair_by_brute_force():
    p = puzzles()
    legal, accepted = chess.legal_moves(p), chess.accepted_moves(p, {})
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(2, 64, 2, generator=generator)
        s = chess.square_scores(logits)
        for row, fen in enumerate(p.fens):
            board = chess.mover_frame(pychess.Board(fen))
            best = max(board.legal_moves, key=lambda m: (s[row, m.from_square] + s[row, m.to_square]).item())
            expected = accepted[row, 64 * best.from_square + best.to_square].float()
            assert chess.legal_move_correct(logits, legal, accepted)[row] == expected


def test_the_legal_readout_ignores_a_top_square_that_makes_no_legal_move():
    p = puzzles()
    legal, accepted = chess.legal_moves(p), chess.accepted_moves(p, {})
    logits = torch.zeros(2, 64, 2)
    logits[1, pychess.A8, 1] = 9.0   # the opponent's rook: no legal move of the mover starts or ends there
    logits[1, pychess.E2, 1], logits[1, pychess.E4, 1] = 5.0, 4.0
    assert chess.both_squares_correct(logits, accepted)[1] == 0.0
    assert chess.legal_move_correct(logits, legal, accepted)[1] == 1.0


def test_the_one_ply_heuristic_mates_first_then_takes_the_most_valuable_piece():
    p = puzzles()
    assert chess.heuristic_moves(pychess.Board(p.fens[0])) == [(pychess.H5, pychess.F7)]   # Qxf7# (not Bxf7)
    # White can take the rook on d5 with the knight or the pawn, or the pawn on a6 with the bishop: pawn takes rook.
    board = pychess.Board("4k3/8/p7/3r4/1N2P3/8/8/4K1B1 w - - 0 1")
    board.set_piece_at(pychess.F1, pychess.Piece(pychess.BISHOP, pychess.WHITE))
    board.remove_piece_at(pychess.G1)
    assert chess.heuristic_moves(board) == [(pychess.E4, pychess.D5)]
    assert len(chess.heuristic_moves(pychess.Board())) == 20   # nothing to take: every legal move, equally


def test_both_squares_correct_reads_the_two_top_squares_in_either_order():
    p = puzzles()
    accepted = chess.accepted_moves(p, {})
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


def test_the_stability_edit_removes_one_piece_but_no_king_and_nothing_on_the_move():
    p = puzzles()
    tokens, removable = chess.removable_pieces(p)
    assert len(tokens) == 2 and not removable[tokens == 1].any() and not removable[tokens == 7].any()
    assert not removable[torch.arange(2), p.from_squares].any()
    original, edited, _ = chess.remove_one_piece(tokens, removable, 1, 0, torch.device("cpu"))
    changed = edited != original
    assert (changed.sum(dim=1) == 1).all() and (edited[changed] == 0).all() and removable[changed].all()


def test_mined_buckets_split_mates_from_depths():
    assert chess.mined_buckets(4) == ["depth ≤ 4", "mate in 1", "depth > 4", "mate in 2", "mate in 3+"]
    mined = replace(puzzles(), depths=torch.tensor([6, 2]), mates=torch.tensor([1, 0]))
    assert chess.mined_bucket(mined, 4) == ["mate in 1", "depth ≤ 4"]
    longer = replace(puzzles(), depths=torch.tensor([6, 9]), mates=torch.tensor([2, 5]))
    assert chess.mined_bucket(longer, 4) == ["mate in 2", "mate in 3+"]


def test_a_reseeded_stream_shares_its_targets_and_draws_another_batch():
    stream = chess.PuzzleStream(chess.concatenate([puzzles()] * 8), batch=4, seed=0)
    other = stream.with_seed(1)
    assert other.targets is stream.targets and stream.seed == 0
    assert torch.equal(other.batch_at(3)[0], chess.PuzzleStream(chess.concatenate([puzzles()] * 8), 4, 1).batch_at(3)[0])


def test_the_mlp_reads_a_board_and_costs_no_more_than_the_looped_forward():
    from repro.cost import count_flops
    from repro.models.looped import LoopedConfig, LoopedTransformer
    looped = LoopedTransformer(LoopedConfig(vocab=13, outputs=2, iterations=3, width=16, heads=2, mlp_hidden=32,
                                            max_offset=0, structure=chess.STRUCTURE, structure_bias=True))
    hidden = chess.equal_compute_hidden(looped, 3)
    tokens = chess.square_tokens(puzzles())
    logits, _ = chess.BoardMLP(chess.MLPConfig(hidden))(tokens)
    assert logits.shape == (2, 64, 2)
    target = count_flops(lambda: looped(tokens[:1], 3))
    cost = lambda h: count_flops(lambda: chess.BoardMLP(chess.MLPConfig(h))(tokens[:1]))
    assert cost(hidden) <= target < cost(hidden + 1)



def test_the_long_mates_are_the_puzzles_that_mate_in_3_or_more_in_bucket_order():
    board, move = pychess.Board(), pychess.Move.from_uci("e2e4")
    puzzles = lambda n: encode_puzzles([f"p{i}" for i in range(n)], [board] * n, [move] * n, None)
    tests = {("mined", "a"): replace(puzzles(3), mates=torch.tensor([0, 3, 5])),
             ("BIG-bench", "mate in one"): puzzles(2),          # no mate distances: none is long
             ("Lichess", "b"): replace(puzzles(2), mates=torch.tensor([2, 4]))}
    assert chess.is_long_mate(tests).tolist() == [False, True, True, False, False, False, True]


def test_accuracy_by_role_reads_models_over_seeds_and_references_per_role():
    """Two buckets (one in distribution, one held out), one model on two seeds, one reference."""
    roles = {("mined", "d1"): "in-distribution", ("mined", "d5"): "deeper"}
    finals = pd.DataFrame([{"model": "m", "seed": seed, "read_at": read, "role": role, "accuracy": acc,
                            "unmasked": 1.0}
                           for seed, shift in ((0, 0.0), (1, 0.2)) for read in ("T = M", "T = 4M")
                           for role, acc in (("in-distribution", 0.5 + shift), ("deeper", 0.1 + shift))])
    references = pd.DataFrame({"random legal move": [0.3, 0.05]}, index=pd.Index(list(roles)))
    table, held_out, held_out_references = chess.accuracy_by_role(
        finals, SimpleNamespace(roles=roles), references, {"T = M": 1, "T = 4M": 4}, ["m"])
    assert held_out.loc["m"].round(3).tolist() == [0.1, 0.3]
    assert table.loc["m", "T = 4M deeper"] == "0.200 ± 0.141" and table.loc["m", "held-out accuracy"] == "0.200 ± 0.141"
    assert table.loc["random legal move", "T = M in-distribution"] == "0.300"
    assert table.loc["random legal move", "held-out accuracy"] == "0.050" == f"{held_out_references.iloc[0]:.3f}"
