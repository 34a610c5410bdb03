import json

import pytest
import torch

from repro.data.images import Preprocessing, channel_statistics
from repro.data.sort_of_clevr import ANSWERS, QUESTION_KINDS, all_questions, sort_of_clevr
from repro.data.vqa import (EASY_VQA_SIZES, QuestionBatches, VQASet, _easy_vqa_data, easy_vqa, easy_vqa_kind,
                            hold_out_images, questions_in_order, sort_of_clevr_vqa)
from repro.data.words import Vocabulary


@pytest.fixture(scope="module")
def easy_test():
    return easy_vqa("test")


def test_vocabulary_round_trip_padding_and_errors():
    vocabulary = Vocabulary(["is the red object on the left ?", "what shape ?"])
    assert vocabulary.words[0] == "<pad>" and len(vocabulary) == 10
    ids, mask = vocabulary.encode(["what shape ?", "is the red object on the left ?"])
    assert ids.shape == mask.shape == (2, 8)
    assert mask.sum(dim=1).tolist() == [3, 8] and (ids[~mask] == 0).all() and (ids[mask] > 0).all()
    assert vocabulary.decode(ids[0]) == "what shape ?"
    assert vocabulary.encode(["what shape ?"], length=5)[0].shape == (1, 5)
    with pytest.raises(ValueError, match=r"words \['blue'\] of 'what blue shape \?' are not in the vocabulary"):
        vocabulary.encode(["what blue shape ?"])
    with pytest.raises(ValueError, match="more than the length 2"):
        vocabulary.encode(["what shape ?"], length=2)
    with pytest.raises(ValueError, match="empty"):
        vocabulary.encode(["  "])
    with pytest.raises(ValueError, match="at least one word"):
        Vocabulary([""])


def test_easy_vqa_matches_its_readme_and_its_question_file(easy_test):
    images, questions = EASY_VQA_SIZES["test"]
    assert easy_test.images.shape == (images, 3, 64, 64) and easy_test.images.dtype == torch.uint8
    assert len(easy_test) == questions and len(easy_test.answer_words) == 13
    raw = json.loads((_easy_vqa_data() / "test" / "questions.json").read_text())
    for i in (0, 1, 4321, questions - 1):
        text, answer, image = raw[i]
        assert easy_test.questions[i] == text.lower().replace("?", " ?")
        assert easy_test.answer_words[easy_test.answers[i]] == answer and easy_test.image_index[i] == image
    # The package's README: 7,136 of the test questions are yes/no.
    assert easy_test.kinds.count("yes/no") == 7136
    assert set(easy_test.kinds) == {"yes/no", "shape", "colour"} and not easy_test.relational.any()


def test_easy_vqa_question_types_follow_the_answers():
    assert [easy_vqa_kind(a) for a in ("yes", "no", "triangle", "teal")] == ["yes/no", "yes/no", "shape", "colour"]
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        easy_vqa("validation")


def test_easy_vqa_test_questions_use_only_training_words(easy_test):
    vocabulary = Vocabulary(easy_vqa("train").questions)
    vocabulary.encode(easy_test.questions)  # raises on any unseen word


def test_sort_of_clevr_vqa_has_every_question_of_every_scene():
    scenes = sort_of_clevr(3, seed=0)
    data = sort_of_clevr_vqa(scenes)
    assert len(data) == 3 * 36 and data.images.dtype == torch.uint8
    expected = [(i, q) for i, scene in enumerate(scenes.scenes) for q in all_questions(scene)]
    assert data.image_index.tolist() == [i for i, _ in expected]
    assert [ANSWERS[a] for a in data.answers] == [q.answer for _, q in expected]
    assert data.kinds == [q.kind for _, q in expected] and set(data.kinds) == set(QUESTION_KINDS)
    assert data.relational.tolist() == [q.relational for _, q in expected]


def test_vqa_set_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="one image index, text, answer"):
        VQASet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 0]), ["a ?"], torch.tensor([0]), ("x",),
               ["k"], torch.tensor([False]))
    with pytest.raises(ValueError, match=r"image indices must lie in \[0, 1\)"):
        VQASet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.tensor([1]), ["a ?"], torch.tensor([0]), ("x",),
               ["k"], torch.tensor([False]))


def test_question_batches_are_a_pure_function_of_seed_and_step_and_pair_each_question_with_its_image():
    data = sort_of_clevr_vqa(sort_of_clevr(4, seed=1))
    vocabulary = Vocabulary(data.questions)
    preprocess = Preprocessing(*channel_statistics(data.images))
    batches = QuestionBatches(data, vocabulary, preprocess, batch_size=16, seed=3)
    images, words, mask, answers = batches.batch_at(5)
    assert images.shape == (16, 3, 64, 64) and images.dtype == torch.float32
    for part, again in zip(batches.batch_at(5), QuestionBatches(data, vocabulary, preprocess, 16, 3).batch_at(5)):
        assert torch.equal(part, again)
    # Every (image, question, answer) triple of the batch is one of the set's.
    triples = {(int(i), q, int(a)) for i, q, a in zip(data.image_index, data.questions, data.answers)}
    by_image = {int(i): preprocess(data.images[i:i + 1])[0] for i in data.image_index.unique()}
    for image, row, row_mask, answer in zip(images, words, mask, answers):
        index = next(i for i, pixels in by_image.items() if torch.equal(pixels, image))
        assert (index, vocabulary.decode(row[row_mask]), int(answer)) in triples
    in_order = list(questions_in_order(data, vocabulary, preprocess, batch_size=50))
    assert sum(len(batch[0]) for batch in in_order) == len(data)
    assert torch.equal(torch.cat([batch[3] for batch in in_order]), data.answers)


def test_holding_out_images_takes_every_question_about_them_and_keeps_each_on_its_image():
    data = sort_of_clevr_vqa(sort_of_clevr(10, seed=0))
    rest, held = hold_out_images(data, 3, "test-hold-out")
    assert len(rest.images) == 7 and len(held.images) == 3 and len(rest) + len(held) == len(data) == 10 * 36
    pixels = {bytes(image.numpy()) for image in data.images}
    assert {bytes(image.numpy()) for image in held.images}.isdisjoint(bytes(image.numpy()) for image in rest.images)
    assert {bytes(image.numpy()) for image in (*held.images, *rest.images)} == pixels

    def facts(part):
        return {(bytes(part.images[i].numpy()), q, int(a), k) for i, q, a, k in zip(part.image_index, part.questions,
                                                                                    part.answers, part.kinds)}
    # every question still points at its own image, with its answer and kind, and none is lost or repeated
    assert facts(rest) | facts(held) == facts(data) and not facts(rest) & facts(held)
    again = hold_out_images(data, 3, "test-hold-out")[1]
    assert torch.equal(again.images, held.images) and again.questions == held.questions
    for count in (0, 10):
        with pytest.raises(ValueError, match=r"images to hold out must be in \[1, 9\]"):
            hold_out_images(data, count, "test-hold-out")
