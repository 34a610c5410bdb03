"""Visual question answering sets as (image, question, answer) triples, for notebook 09.

Two sources, both offline:
- easy-VQA (Zhou 2020; the PyPI package `easy-vqa` ships the data in its wheel): 64x64 images of
  one coloured shape each (4,000 train, 1,000 test), 38,575 + 9,673 templated questions, 13 answers.
  Every question asks a single fact of a single object, so its types are by answer: yes/no, shape,
  colour.
- Sort-of-CLEVR (`repro.data.sort_of_clevr`): six objects per scene, every (kind, colour) question
  of each scene, non-relational (shape, horizontal, vertical) and relational (closest, furthest,
  count).

A set keeps each image once and points every question at it, so a batch gathers only its images.
"""

import importlib.resources
import json
from dataclasses import dataclass
from typing import Callable

import imageio.v3 as imageio
import numpy as np
import torch

from repro.config import choice
from repro.data.batches import ImageLookup, ShuffledBatches, in_order
from repro.data.sort_of_clevr import ANSWERS as SORT_OF_CLEVR_ANSWERS
from repro.data.sort_of_clevr import SortOfClevr, all_questions
from repro.data.words import Vocabulary
from repro.seeding import rng

# DEVIATION: [vl-packaged-vqa] easy-VQA and Sort-of-CLEVR stand in for VQAv2, which is not reachable offline.
SPLITS = ("train", "test")
EASY_VQA_SIZES = {"train": (4000, 38575), "test": (1000, 9673)}
"""(images, questions) per split, as the package's data README states."""
EASY_VQA_SHAPES = ("circle", "rectangle", "triangle")


@dataclass
class VQASet:
    images: torch.Tensor
    """(images, 3, H, W) uint8 pixels."""
    image_index: torch.Tensor
    """(questions,): the image each question is about."""
    questions: list[str]
    """Lower-case, whitespace-tokenisable texts."""
    answers: torch.Tensor
    """(questions,): index into `answer_words`."""
    answer_words: tuple[str, ...]
    kinds: list[str]
    """The type of every question, the rows of the per-type tables."""
    relational: torch.Tensor
    """(questions,) bool: the question relates two or more objects."""

    def __post_init__(self):
        sizes = {len(self.image_index), len(self.questions), len(self.answers), len(self.kinds), len(self.relational)}
        if len(sizes) != 1:
            raise ValueError(f"a VQA set needs one image index, text, answer, kind and relational flag per question; "
                             f"got lengths {sorted(sizes)}")
        if len(self.image_index) and not 0 <= int(self.image_index.min()) <= int(self.image_index.max()) < len(self.images):
            raise ValueError(f"image indices must lie in [0, {len(self.images)}), the images of the set")

    def __len__(self) -> int:
        return len(self.questions)

    def first(self, questions: int) -> "VQASet":
        """The first `questions` questions (all the images stay): a cheaper evaluation set."""
        if not 1 <= questions <= len(self):
            raise ValueError(f"questions must be in [1, {len(self)}], got {questions}")
        return VQASet(self.images, self.image_index[:questions], self.questions[:questions], self.answers[:questions],
                      self.answer_words, self.kinds[:questions], self.relational[:questions])

    def of_images(self, images: torch.Tensor) -> "VQASet":
        """The questions about `images` (indices into this set's images), in their order, with those images only."""
        position = torch.full((len(self.images),), -1, dtype=torch.long)
        position[images] = torch.arange(len(images))
        keep = position[self.image_index] >= 0
        chosen = keep.nonzero().flatten().tolist()
        return VQASet(self.images[images], position[self.image_index[keep]], [self.questions[i] for i in chosen],
                      self.answers[keep], self.answer_words, [self.kinds[i] for i in chosen], self.relational[keep])


def hold_out_images(data: VQASet, count: int, *stream) -> tuple[VQASet, VQASet]:
    """(the rest, the held-out part): `count` images drawn from the named `stream` leave `data` with every question
    about them, so no held-out image or question is ever trained on."""
    if not 1 <= count < len(data.images):
        raise ValueError(f"images to hold out must be in [1, {len(data.images) - 1}] (the set's images less one), "
                         f"got {count}")
    order = torch.randperm(len(data.images), generator=rng(*stream))
    return data.of_images(order[count:].sort().values), data.of_images(order[:count].sort().values)


def _easy_vqa_data():
    try:
        return importlib.resources.files("easy_vqa") / "data"
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError("easy-VQA is read from the `easy-vqa` package, which is not installed: "
                                  "`pip install easy-vqa==1.0` (make setup does)") from missing


def easy_vqa_kind(answer: str) -> str:
    """easy-VQA's question type, which its answer determines: yes/no, shape or colour."""
    return "yes/no" if answer in ("yes", "no") else "shape" if answer in EASY_VQA_SHAPES else "colour"


def easy_vqa(split: str) -> VQASet:
    """easy-VQA's `split` ("train" or "test"), read from the installed wheel and checked against its README."""
    choice("split", split, SPLITS)
    root = _easy_vqa_data()
    answer_words = tuple(line.strip() for line in (root / "answers.txt").read_text().splitlines() if line.strip())
    records = json.loads((root / split / "questions.json").read_text())
    image_files = sorted((root / split / "images").glob("*.png"), key=lambda path: int(path.stem))
    expected = EASY_VQA_SIZES[split]
    if (len(image_files), len(records)) != expected or [int(p.stem) for p in image_files] != list(range(expected[0])):
        raise ValueError(f"easy-VQA {split} at {root / split} has {len(image_files)} images and {len(records)} questions, "
                         f"expected images 0..{expected[0] - 1} and {expected[1]} questions: reinstall easy-vqa==1.0")
    pixels = np.stack([imageio.imread(path, mode="RGB") for path in image_files])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    texts, answers, image_ids = zip(*records)
    unknown = sorted(set(answers) - set(answer_words))
    if unknown:
        raise ValueError(f"easy-VQA {split} answers {unknown} are not in answers.txt ({', '.join(answer_words)})")
    return VQASet(images=images, image_index=torch.tensor(image_ids),
                  # "shape?" -> "shape ?": the mark is a word of its own, as in Sort-of-CLEVR's texts.
                  questions=[text.lower().replace("?", " ?") for text in texts],
                  answers=torch.tensor([answer_words.index(a) for a in answers]), answer_words=answer_words,
                  kinds=[easy_vqa_kind(a) for a in answers], relational=torch.zeros(len(records), dtype=torch.bool))


def sort_of_clevr_vqa(data: SortOfClevr) -> VQASet:
    """Every question of every scene of `data` (36 per scene)."""
    questions = [(i, q) for i, scene in enumerate(data.scenes) for q in all_questions(scene)]
    return VQASet(images=data.images, image_index=torch.tensor([i for i, _ in questions]),
                  questions=[q.text for _, q in questions],
                  answers=torch.tensor([SORT_OF_CLEVR_ANSWERS.index(q.answer) for _, q in questions]),
                  answer_words=SORT_OF_CLEVR_ANSWERS, kinds=[q.kind for _, q in questions],
                  relational=torch.tensor([q.relational for _, q in questions]))


def _encoded(data: VQASet, vocabulary: Vocabulary) -> tuple[torch.Tensor, ...]:
    words, mask = vocabulary.encode(data.questions)
    return data.image_index, words, mask, data.answers


class QuestionBatches:
    """`batch_at(step)` = (preprocessed images, words, word mask, answers): seeded epochs of the
    questions, a pure function of (seed, step), each batch trimmed to its longest question."""

    def __init__(self, data: VQASet, vocabulary: Vocabulary, preprocess: Callable[[torch.Tensor], torch.Tensor],
                 batch_size: int, seed: int):
        self.batches = ShuffledBatches(_encoded(data, vocabulary), batch_size, seed, attention_mask_index=2)
        self.lookup = ImageLookup(data.images, preprocess)

    def batch_at(self, step: int) -> tuple[torch.Tensor, ...]:
        return self.lookup(self.batches.batch_at(step))


def questions_in_order(data: VQASet, vocabulary: Vocabulary, preprocess: Callable[[torch.Tensor], torch.Tensor],
                       batch_size: int):
    """Every question once, in order, as (images, words, word mask, answers) batches: for evaluation."""
    lookup = ImageLookup(data.images, preprocess)
    for batch in in_order(_encoded(data, vocabulary), batch_size, attention_mask_index=2):
        yield lookup(batch)
