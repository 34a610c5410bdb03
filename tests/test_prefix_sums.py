import pytest
import torch

from repro.data.prefix_sums import START, PrefixSumStream, evaluation_set, generate
from repro.losses import IGNORE
from repro.seeding import rng


def test_targets_are_the_running_parity_computed_directly():
    tokens, targets = generate(50, 37, rng("check"))
    assert tokens.shape == targets.shape == (50, 38)
    assert (tokens[:, 0] == START).all() and (targets[:, 0] == IGNORE).all()
    for row_tokens, row_targets in zip(tokens.tolist(), targets.tolist()):
        parity = 0
        for bit, target in zip(row_tokens[1:], row_targets[1:]):
            parity ^= bit
            assert target == parity


def test_bits_are_fair_coins():
    tokens, _ = generate(2000, 64, rng("fair"))
    assert abs(tokens[:, 1:].float().mean().item() - 0.5) < 0.01


def test_training_batches_are_a_pure_function_of_the_step_and_never_the_evaluation_set():
    stream = PrefixSumStream(32, 16, seed=0)
    assert torch.equal(stream.batch_at(5)[0], PrefixSumStream(32, 16, seed=0).batch_at(5)[0])
    assert not torch.equal(stream.batch_at(5)[0], stream.batch_at(6)[0])
    assert not torch.equal(evaluation_set(32, 16, seed=0)[0], stream.batch_at(0)[0])


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="length >= 1"):
        generate(4, 0, rng("x"))
