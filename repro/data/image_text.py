"""Image-text pairs for retrieval (notebook 09): Sort-of-CLEVR scenes with captions read off their
ground truth (`repro.data.scene_captions`), three object facts and one relation each.

Training pairs a scene with a fresh caption every time it is drawn, so a model learns what the
words say of the image rather than one sentence per image. The test set fixes one caption and one
hard negative per scene.
"""

from dataclasses import dataclass
from itertools import permutations, product
from typing import Callable

import torch

from repro.data.batches import ImageLookup, ShuffledBatches
from repro.data.scene_captions import (HORIZONTALS, RELATIONS, VERTICALS, Caption, ObjectFact, RelationFact,
                                       caption_text, describe, hard_negative)
from repro.data.sort_of_clevr import COLOURS, SHAPES, SortOfClevr
from repro.data.words import Vocabulary
from repro.seeding import derive

# With two object facts and one relation, 86% of the captions of 250 test scenes were true of another test
# scene too (a retrieval whose exact-truth oracle reaches R@1 0.2-0.4); a third object fact makes a caption
# about 8x rarer by chance.
CAPTION_OBJECTS, CAPTION_RELATIONS = 3, 1
# Colour words are single words and "left of" is the longest relation, so this caption is as long as any.
MAX_CAPTION_WORDS = len(caption_text((ObjectFact("red", "circle", "top", "left"),) * CAPTION_OBJECTS
                                     + (RelationFact("red", "left of", "blue"),) * CAPTION_RELATIONS).split())


def caption_vocabulary() -> Vocabulary:
    """Every word a caption can use: the words of every possible fact and the conjunction."""
    facts = [ObjectFact(*values) for values in product(COLOURS, SHAPES, VERTICALS, HORIZONTALS)]
    facts += [RelationFact(subject, relation, reference)
              for (subject, reference), relation in product(permutations(COLOURS, 2), RELATIONS)]
    return Vocabulary([caption_text(tuple(facts))])


def _caption(data: SortOfClevr, scene: int, seed: int) -> Caption:
    return describe(data.scenes[scene], seed, CAPTION_OBJECTS, CAPTION_RELATIONS)


class CaptionBatches:
    """`batch_at(step)` = (preprocessed images, words, word mask): `batch_size` distinct scenes
    (seeded epochs, as `ShuffledBatches`), each with a caption drawn for (seed, step, position): a
    pure function of (seed, step)."""

    def __init__(self, data: SortOfClevr, vocabulary: Vocabulary, preprocess: Callable[[torch.Tensor], torch.Tensor],
                 batch_size: int, seed: int):
        self.data, self.vocabulary, self.seed = data, vocabulary, seed
        self.scenes = ShuffledBatches((torch.arange(len(data.scenes)),), batch_size, seed, attention_mask_index=None)
        self.lookup = ImageLookup(data.images, preprocess)

    def batch_at(self, step: int) -> tuple[torch.Tensor, ...]:
        (scenes,) = self.scenes.batch_at(step)
        captions = [caption_text(_caption(self.data, scene, derive("training-caption", self.seed, step, position)))
                    for position, scene in enumerate(scenes.tolist())]
        return self.lookup((scenes, *self.vocabulary.encode(captions)))


@dataclass
class RetrievalSet:
    """One caption and one hard negative per scene of a test set."""
    data: SortOfClevr
    captions: list[Caption]
    negatives: list[Caption]
    changed: list[str]
    """The attribute each negative changed (`scene_captions.ATTRIBUTES`)."""


def retrieval_set(data: SortOfClevr, seed: int) -> RetrievalSet:
    captions = [_caption(data, scene, derive("test-caption", seed, scene)) for scene in range(len(data.scenes))]
    negatives = [hard_negative(caption, data.scenes[scene], derive("test-negative", seed, scene))
                 for scene, caption in enumerate(captions)]
    return RetrievalSet(data, captions, [negative for negative, _ in negatives], [changed for _, changed in negatives])
