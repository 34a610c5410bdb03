import pytest
import torch

from repro.data.batches import ShuffledBatches, in_order, trim_padding


def padded(lengths: list[int], width: int = 8) -> tuple[torch.Tensor, ...]:
    mask = torch.stack([torch.arange(width) < n for n in lengths]).long()
    ids = (torch.arange(len(lengths))[:, None] + 1) * mask
    return ids, mask, torch.arange(len(lengths))


def test_trim_cuts_to_the_longest_real_sequence_and_keeps_other_tensors():
    ids, mask, labels = trim_padding(padded([2, 5, 3]))
    assert ids.shape == mask.shape == (3, 5) and mask[1].all()
    assert torch.equal(labels, torch.arange(3))


def test_batches_are_a_pure_function_of_seed_and_step_and_cover_each_epoch():
    tensors = padded([1, 2, 3, 4, 5, 6, 7])
    stream = ShuffledBatches(tensors, batch_size=3, seed=11)
    assert stream.per_epoch == 2
    again = ShuffledBatches(tensors, batch_size=3, seed=11)
    for step in range(6):
        assert all(torch.equal(a, b) for a, b in zip(stream.batch_at(step), again.batch_at(step)))
    for epoch in range(3):
        seen = torch.cat([stream.batch_at(2 * epoch + i)[2] for i in range(2)])
        assert len(set(seen.tolist())) == 6  # six distinct examples per epoch; the seventh waits for another order
    other = ShuffledBatches(tensors, batch_size=3, seed=12)
    assert any(not torch.equal(stream.batch_at(s)[2], other.batch_at(s)[2]) for s in range(4))


def test_bad_shapes_and_batch_sizes_are_rejected():
    ids, mask, labels = padded([1, 2, 3])
    with pytest.raises(ValueError, match="share their first axis"):
        ShuffledBatches((ids, mask, labels[:2]), 2, 0)
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 3\]"):
        ShuffledBatches((ids, mask, labels), 4, 0)


def test_in_order_visits_every_example_once():
    tensors = padded([3, 1, 4, 1, 5])
    labels = torch.cat([batch[2] for batch in in_order(tensors, 2)])
    assert torch.equal(labels, torch.arange(5))
