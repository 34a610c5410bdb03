from collections import Counter

import numpy as np
import pytest
import torch

from repro.data.sort_of_clevr import (
    ANSWERS, COLOURS, IMAGE_SIZE, OBJECT_RADIUS, QUESTION_KINDS, RELATIONAL_KINDS, SHAPES, SceneObject,
    all_questions, ask, generate_scene, render, sort_of_clevr)


@pytest.fixture(scope="module")
def dataset():
    return sort_of_clevr(200, seed=11)


def brute_force_answers(scene) -> dict[tuple[str, str], str]:
    """Every (kind, colour) answer by explicit loops, independent of the module; asserts no ties."""
    answers = {}
    for subject in scene:
        answers["shape", subject.colour] = subject.shape
        answers["horizontal", subject.colour] = "yes" if 2 * subject.x < IMAGE_SIZE else "no"
        answers["vertical", subject.colour] = "yes" if 2 * subject.y < IMAGE_SIZE else "no"
        nearest, nearest_distance, farthest, farthest_distance = [], None, [], None
        same_shape = 0
        for other in scene:
            if other.shape == subject.shape:
                same_shape += 1
            if other.colour == subject.colour:
                continue
            distance = (other.x - subject.x) ** 2 + (other.y - subject.y) ** 2
            if nearest_distance is None or distance < nearest_distance:
                nearest, nearest_distance = [other], distance
            elif distance == nearest_distance:
                nearest.append(other)
            if farthest_distance is None or distance > farthest_distance:
                farthest, farthest_distance = [other], distance
            elif distance == farthest_distance:
                farthest.append(other)
        assert len(nearest) == 1 and len(farthest) == 1, f"tied distances around {subject.colour} in {scene}"
        answers["closest", subject.colour] = nearest[0].shape
        answers["furthest", subject.colour] = farthest[0].shape
        answers["count", subject.colour] = str(same_shape)
    return answers


def test_every_answer_matches_a_brute_force_reading_of_the_scene(dataset):
    for scene in dataset.scenes:
        expected = brute_force_answers(scene)
        questions = all_questions(scene)
        assert [(q.kind, q.colour) for q in questions] == [(k, c) for k in QUESTION_KINDS for c in COLOURS]
        for question in questions:
            assert question.answer == expected[question.kind, question.colour]
            assert question.answer in ANSWERS
            assert question.relational == (question.kind in RELATIONAL_KINDS)


def test_question_texts_are_lower_case_and_whitespace_tokenised():
    scene = generate_scene(0)
    texts = {q.kind: q.text for q in all_questions(scene) if q.colour == "red"}
    assert texts == {
        "shape": "what is the shape of the red object ?",
        "horizontal": "is the red object on the left ?",
        "vertical": "is the red object at the top ?",
        "closest": "what is the shape of the object closest to the red object ?",
        "furthest": "what is the shape of the object furthest from the red object ?",
        "count": "how many objects have the shape of the red object ?",
    }
    for question in all_questions(scene):
        assert question.text == question.text.lower() and question.text.split()[-1] == "?"
        assert question.colour in question.text.split()


def test_scenes_hold_one_object_per_colour_inside_the_image_and_apart(dataset):
    for scene in dataset.scenes:
        assert [o.colour for o in scene] == list(COLOURS)
        assert all(o.shape in SHAPES for o in scene)
        for o in scene:
            assert OBJECT_RADIUS <= o.x <= IMAGE_SIZE - 1 - OBJECT_RADIUS
            assert OBJECT_RADIUS <= o.y <= IMAGE_SIZE - 1 - OBJECT_RADIUS
        for i, a in enumerate(scene):
            for b in scene[i + 1:]:
                # At least one white row or column between the two 9x9 bounding boxes.
                assert max(abs(a.x - b.x), abs(a.y - b.y)) >= 2 * OBJECT_RADIUS + 2


def covered_pixels(o: SceneObject) -> set[tuple[int, int]]:
    pixels = set()
    for y in range(o.y - OBJECT_RADIUS, o.y + OBJECT_RADIUS + 1):
        for x in range(o.x - OBJECT_RADIUS, o.x + OBJECT_RADIUS + 1):
            if o.shape == "square" or (x - o.x) ** 2 + (y - o.y) ** 2 <= OBJECT_RADIUS ** 2:
                pixels.add((y, x))
    return pixels


def test_rendering_paints_exactly_each_objects_pixels_in_its_colour(dataset):
    assert dataset.images.shape == (200, 3, IMAGE_SIZE, IMAGE_SIZE) and dataset.images.dtype == torch.uint8
    for scene, image in zip(dataset.scenes[:50], dataset.images[:50]):
        assert torch.equal(image.float() / 255, render(scene))
        pixels = image.to(torch.int64).permute(1, 2, 0).numpy()
        expected = np.full_like(pixels, 255)
        owners = np.zeros(pixels.shape[:2], dtype=int)
        for o in scene:
            for y, x in covered_pixels(o):
                expected[y, x] = COLOURS[o.colour]
                owners[y, x] += 1
            assert tuple(pixels[o.y, o.x]) == COLOURS[o.colour]
            corner = tuple(pixels[o.y - OBJECT_RADIUS, o.x + OBJECT_RADIUS])
            assert corner == (COLOURS[o.colour] if o.shape == "square" else (255, 255, 255))
            assert tuple(pixels[o.y, o.x - OBJECT_RADIUS]) == COLOURS[o.colour]  # a circle's leftmost pixel
        assert owners.max() == 1, "two objects share a pixel"
        np.testing.assert_array_equal(pixels, expected)


def test_same_seed_same_set_and_larger_sets_extend_smaller_ones(dataset):
    again = sort_of_clevr(200, seed=11)
    assert again.scenes == dataset.scenes and torch.equal(again.images, dataset.images)
    prefix = sort_of_clevr(7, seed=11)
    assert prefix.scenes == dataset.scenes[:7] and torch.equal(prefix.images, dataset.images[:7])
    other = sort_of_clevr(200, seed=12)
    assert not set(other.scenes) & set(dataset.scenes)
    assert generate_scene(123) == generate_scene(123) != generate_scene(124)


def test_every_answer_of_every_kind_occurs():
    scenes = sort_of_clevr(1000, seed=0).scenes
    counts = {kind: Counter() for kind in QUESTION_KINDS}
    for scene in scenes:
        for question in all_questions(scene):
            counts[question.kind][question.answer] += 1
    print({kind: dict(sorted(counter.items())) for kind, counter in counts.items()})
    possible = {"shape": SHAPES, "closest": SHAPES, "furthest": SHAPES, "horizontal": ("yes", "no"),
                "vertical": ("yes", "no"), "count": ("1", "2", "3", "4", "5", "6")}
    for kind, answers in possible.items():
        assert set(counts[kind]) == set(answers), kind


def test_bad_input_names_the_valid_choices():
    scene = generate_scene(0)
    with pytest.raises(ValueError, match="'shape', 'horizontal', 'vertical', 'closest', 'furthest', 'count'"):
        ask(scene, "colour", "red")
    with pytest.raises(ValueError, match="'red', 'green', 'blue', 'orange', 'gray', 'yellow'"):
        ask(scene, "shape", "purple")
    for scenes in (0, -3, 2.5):
        with pytest.raises(ValueError, match="scenes must be a positive integer"):
            sort_of_clevr(scenes, seed=0)
    with pytest.raises(ValueError, match="valid centre coordinates: 4..59"):
        SceneObject("red", "circle", 3, 30)
    with pytest.raises(ValueError, match="'circle', 'square'"):
        SceneObject("red", "triangle", 30, 30)
