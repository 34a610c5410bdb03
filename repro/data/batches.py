"""Batches of a fixed, already-encoded dataset (GLUE pairs, SQuAD windows) for `repro.train.train`
and for evaluation, with dynamic padding: each batch is cut to its longest real sequence, so short
sentences do not pay for the padding of the longest one in the set.
"""

from typing import Callable

import torch

from repro.seeding import rng


def trim_padding(batch: tuple[torch.Tensor, ...], attention_mask_index: int = 1) -> tuple[torch.Tensor, ...]:
    """Cut every (batch, tokens) tensor of `batch` to the longest sequence its attention mask keeps.

    Inputs are right-padded, so the columns after the last real token carry nothing; tensors of
    another shape (labels, answer positions) pass unchanged.
    """
    mask = batch[attention_mask_index]
    length = int(mask.sum(dim=1).max())
    return tuple(t[:, :length] if t.dim() == 2 and t.shape == mask.shape else t for t in batch)


class ShuffledBatches:
    """`batch_at(step)`: the step-th batch of epochs of seeded permutations of the examples.

    A pure function of (seed, step), so a resumed run sees the batches it would have seen, and two
    seeds see the same examples in different orders. The tensors share their first axis; the one at
    `attention_mask_index` is the (batch, tokens) mask by which batches are trimmed (None: no trimming).
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int,
                 attention_mask_index: int | None = 1):
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors must share their first axis, got sizes {sorted(sizes)}")
        self.tensors, self.size = tensors, sizes.pop()
        if not 1 <= batch_size <= self.size:
            raise ValueError(f"batch_size must be in [1, {self.size}] (the number of examples), got {batch_size}")
        self.batch_size, self.seed, self.attention_mask_index = batch_size, seed, attention_mask_index
        self.per_epoch = self.size // batch_size  # the incomplete last batch of an epoch is dropped

    def batch_at(self, step: int) -> tuple[torch.Tensor, ...]:
        epoch, position = divmod(step, self.per_epoch)
        order = torch.randperm(self.size, generator=rng("shuffled-batches", self.seed, epoch))
        index = order[position * self.batch_size:(position + 1) * self.batch_size]
        batch = tuple(t[index] for t in self.tensors)
        return batch if self.attention_mask_index is None else trim_padding(batch, self.attention_mask_index)


def in_order(tensors: tuple[torch.Tensor, ...], batch_size: int, attention_mask_index: int = 1):
    """Every example once, in order, in trimmed batches: for evaluation."""
    for start in range(0, len(tensors[0]), batch_size):
        yield trim_padding(tuple(t[start:start + batch_size] for t in tensors), attention_mask_index)


class ImageLookup:
    """Turns the first tensor of a batch, indices into `images` (uint8, stored once however many
    examples share an image), into the preprocessed images themselves."""

    def __init__(self, images: torch.Tensor, preprocess: Callable[[torch.Tensor], torch.Tensor]):
        self.images, self.preprocess = images, preprocess

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        index, *rest = batch
        return (self.preprocess(self.images[index]), *rest)
