import pytest
import torch

from repro.data.parity import GENERATORS, ParityStream, evaluation_set, generate
from repro.seeding import rng


@pytest.mark.parametrize("kind", GENERATORS)
def test_labels_match_a_brute_force_count(kind):
    length = GENERATORS[kind]
    symbols, labels = generate(kind, 500, length, rng("test", kind))
    for row, label in zip(symbols.tolist(), labels.tolist()):
        values = [s - 1 for s in row]
        assert set(values) <= {-1, 0, 1}
        plus_ones = 0
        for v in values:
            if v == 1:
                plus_ones += 1
        assert label == plus_ones % 2


def test_generators_follow_their_distributions():
    symbols, _ = generate("adatape", 20000, 32, rng("test-distribution"))
    shares = torch.bincount(symbols.flatten(), minlength=3).float() / symbols.numel()
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.01)
    symbols, _ = generate("act", 20000, 64, rng("test-distribution"))
    nonzero = (symbols != 1).sum(dim=1)
    assert nonzero.min() >= 1 and nonzero.max() <= 64
    # The count of non-zero entries is uniform on 1..64: mean 32.5.
    assert abs(nonzero.float().mean().item() - 32.5) < 0.5
    # Among non-zero entries, +1 and -1 are equally likely.
    assert abs((symbols == 2).sum().item() / (symbols != 1).sum().item() - 0.5) < 0.01


def test_same_seed_same_data_and_streams_do_not_collide():
    stream = ParityStream("adatape", 32, 16, seed=3)
    assert torch.equal(stream.batch_at(7)[0], ParityStream("adatape", 32, 16, seed=3).batch_at(7)[0])
    assert not torch.equal(stream.batch_at(7)[0], stream.batch_at(8)[0])
    assert not torch.equal(stream.batch_at(7)[0], ParityStream("adatape", 32, 16, seed=4).batch_at(7)[0])
    assert torch.equal(evaluation_set("act", 64, 10, 0)[0], evaluation_set("act", 64, 10, 0)[0])
    evaluation = evaluation_set("adatape", 32, 16, 0)[0]
    assert all(not torch.equal(evaluation, ParityStream("adatape", 32, 16, seed=0).batch_at(s)[0]) for s in range(50))


def test_unknown_generator_names_the_valid_ones():
    with pytest.raises(ValueError, match="'adatape', 'act'"):
        generate("ponder", 4, 8, rng("x"))


@pytest.mark.parametrize("kind,counts", [("adatape", (0, 15)), ("adatape", (15, 33)), ("act", (30, 65))])
def test_a_count_split_keeps_exactly_the_vectors_with_those_counts(kind, counts):
    symbols, labels = generate(kind, 300, GENERATORS[kind], rng("test-split", kind), counts)
    ones = (symbols == 2).sum(dim=1)
    assert len(symbols) == 300 and ((ones >= counts[0]) & (ones < counts[1])).all()
    assert torch.equal(labels, ones % 2)
    # Rejection keeps the generator's distribution within the range: the same draws, filtered.
    full, _ = generate(kind, 300, GENERATORS[kind], rng("test-split", kind))
    full_ones = (full == 2).sum(dim=1)
    kept = full[(full_ones >= counts[0]) & (full_ones < counts[1])]
    assert torch.equal(symbols[: len(kept)], kept)


def test_a_count_split_rejects_an_empty_or_impossible_range():
    with pytest.raises(ValueError, match="low < high"):
        generate("adatape", 4, 8, rng("x"), (5, 5))
    with pytest.raises(ValueError, match="almost never"):
        generate("adatape", 4, 32, rng("x"), (32, 33))
    stream = ParityStream("adatape", 32, 16, seed=0, counts=(0, 15))
    assert ((stream.batch_at(3)[0] == 2).sum(dim=1) < 15).all()
