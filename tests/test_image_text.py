import torch

from repro.data.image_text import (CAPTION_OBJECTS, CAPTION_RELATIONS, MAX_CAPTION_WORDS, CaptionBatches, _caption,
                                   caption_vocabulary, retrieval_set)
from repro.data.images import Preprocessing, channel_statistics
from repro.data.scene_captions import ObjectFact, RelationFact, caption_holds, caption_text
from repro.data.sort_of_clevr import sort_of_clevr
from repro.seeding import derive


def test_the_caption_vocabulary_is_exactly_the_words_of_the_templates():
    vocabulary = caption_vocabulary()
    assert set(vocabulary.words[1:]) == {
        "red", "green", "blue", "orange", "gray", "yellow", "circle", "square", "at", "the", "top", "bottom", "left",
        "right", "of", "above", "below", "object", "is", "and"}


def test_caption_batches_pair_distinct_scenes_with_fresh_true_captions():
    data = sort_of_clevr(40, seed=2)
    vocabulary = caption_vocabulary()
    preprocess = Preprocessing(*channel_statistics(data.images))
    batches = CaptionBatches(data, vocabulary, preprocess, batch_size=8, seed=0)
    images, words, mask = batches.batch_at(3)
    assert images.shape == (8, 3, 64, 64) and words.shape == mask.shape and words.shape[0] == 8
    scenes = [next(i for i in range(len(data.scenes)) if torch.equal(preprocess(data.images[i:i + 1])[0], image))
              for image in images]
    assert len(set(scenes)) == 8, "a batch of contrastive pairs must not repeat a scene"
    texts = [vocabulary.decode(row[row_mask]) for row, row_mask in zip(words, mask)]
    for scene, text in zip(scenes, texts):
        assert text.count(" and ") == CAPTION_OBJECTS + CAPTION_RELATIONS - 1
        assert text in _true_captions_seen(data, scene, batches)
    again = CaptionBatches(data, vocabulary, preprocess, batch_size=8, seed=0).batch_at(3)
    assert all(torch.equal(a, b) for a, b in zip((images, words, mask), again))


def _true_captions_seen(data, scene, batches):
    """The texts of every caption `batches` draws for `scene` over its first epochs, each checked true of it."""
    texts = set()
    for step in range(batches.scenes.per_epoch * 3):
        (scenes,) = batches.scenes.batch_at(step)
        for position, drawn in enumerate(scenes.tolist()):
            if drawn == scene:
                caption = _caption(data, scene, derive("training-caption", batches.seed, step, position))
                assert caption_holds(caption, data.scenes[scene])
                texts.add(caption_text(caption))
    return texts


def test_a_scene_is_described_differently_across_epochs():
    data = sort_of_clevr(16, seed=3)
    batches = CaptionBatches(data, caption_vocabulary(), lambda images: images.float(), batch_size=16, seed=1)
    assert len(_true_captions_seen(data, 0, batches)) > 1


def test_retrieval_set_positives_hold_and_negatives_do_not():
    data = sort_of_clevr(30, seed=4)
    test = retrieval_set(data, seed=0)
    assert len(test.captions) == len(test.negatives) == len(test.changed) == 30
    for scene, caption, negative, changed in zip(data.scenes, test.captions, test.negatives, test.changed):
        assert caption_holds(caption, scene) and not caption_holds(negative, scene)
        assert [type(f) for f in caption] == [ObjectFact] * CAPTION_OBJECTS + [RelationFact] * CAPTION_RELATIONS
        assert sum(a != b for a, b in zip(caption, negative)) == 1 and changed
    assert retrieval_set(data, seed=0).captions == test.captions
    assert retrieval_set(data, seed=1).captions != test.captions


def test_no_caption_is_longer_than_the_longest_the_templates_allow():
    data = sort_of_clevr(60, seed=5)
    test = retrieval_set(data, seed=2)
    lengths = [len(caption_text(c).split()) for c in test.captions + test.negatives]
    assert max(lengths) <= MAX_CAPTION_WORDS and MAX_CAPTION_WORDS in lengths
