from collections import Counter
from dataclasses import fields

import pytest

from repro.data.scene_captions import (
    ATTRIBUTES, RELATION_MARGIN, RELATIONS, ObjectFact, RelationFact, caption_holds, caption_text, describe,
    hard_negative, holds)
from repro.data.sort_of_clevr import COLOURS, IMAGE_SIZE, SceneObject, generate_scene
from repro.seeding import derive

SCENES = [generate_scene(derive("test-scene-captions", index)) for index in range(300)]


def by_colour(scene, colour):
    return next(o for o in scene if o.colour == colour)


def true_in_test(fact, scene) -> bool:
    """The truth of a fact by explicit comparisons, independent of the module."""
    if isinstance(fact, ObjectFact):
        o = by_colour(scene, fact.colour)
        return (o.shape == fact.shape and fact.vertical == ("top" if o.y < IMAGE_SIZE / 2 else "bottom")
                and fact.horizontal == ("left" if o.x < IMAGE_SIZE / 2 else "right"))
    s, r = by_colour(scene, fact.subject), by_colour(scene, fact.reference)
    return {"left of": s.x < r.x, "right of": s.x > r.x, "above": s.y < r.y, "below": s.y > r.y}[fact.relation]


def margin(fact: RelationFact, scene) -> int:
    s, r = by_colour(scene, fact.subject), by_colour(scene, fact.reference)
    return abs(s.x - r.x) if fact.relation in ("left of", "right of") else abs(s.y - r.y)


def test_captions_are_true_templated_and_state_relations_only_with_the_margin():
    for index, scene in enumerate(SCENES):
        caption = describe(scene, seed=index)
        assert [type(f) for f in caption] == [ObjectFact, ObjectFact, RelationFact]
        assert caption[0].colour != caption[1].colour
        assert caption_holds(caption, scene) and all(true_in_test(f, scene) for f in caption)
        assert margin(caption[2], scene) >= RELATION_MARGIN
        text = caption_text(caption)
        assert text == text.lower() and text.count(" and ") == 2


def test_known_texts_and_strict_relations():
    scene = (SceneObject("red", "circle", 10, 50), SceneObject("green", "square", 40, 10),
             SceneObject("blue", "circle", 10, 30), SceneObject("orange", "square", 55, 55),
             SceneObject("gray", "square", 25, 10), SceneObject("yellow", "circle", 55, 30))
    caption = (ObjectFact("red", "circle", "bottom", "left"), RelationFact("green", "right of", "gray"))
    assert caption_text(caption) == "red circle at the bottom left and the green object is right of the gray object"
    assert caption_holds(caption, scene)
    # Equal x: the blue object is neither left nor right of the red one.
    assert not holds(RelationFact("blue", "left of", "red"), scene)
    assert not holds(RelationFact("blue", "right of", "red"), scene)
    assert holds(RelationFact("blue", "above", "red"), scene) and not holds(RelationFact("red", "above", "blue"), scene)
    assert not holds(ObjectFact("blue", "circle", "bottom", "left"), scene)  # y = 30 < 32 is the top


def test_every_generated_pair_has_the_margin_so_all_relation_counts_are_possible():
    for index, scene in enumerate(SCENES[:50]):
        caption = describe(scene, seed=index, objects=6, relations=15)
        relations = caption[6:]
        assert {f.colour for f in caption[:6]} == set(COLOURS)
        assert len({frozenset((f.subject, f.reference)) for f in relations}) == 15
        assert all(margin(f, scene) >= RELATION_MARGIN and true_in_test(f, scene) for f in relations)


def differences(positive, negative) -> list[tuple[int, str]]:
    """Every (fact index, field name) where the two captions differ, compared field by field."""
    assert len(positive) == len(negative)
    changed = []
    for index, (a, b) in enumerate(zip(positive, negative)):
        assert type(a) is type(b)
        changed += [(index, field.name) for field in fields(a) if getattr(a, field.name) != getattr(b, field.name)]
    return changed


def test_hard_negatives_change_one_attribute_of_one_fact_and_are_false():
    seen = Counter()
    for index, scene in enumerate(SCENES):
        positive = describe(scene, seed=index)
        for draw in range(4):
            negative, attribute = hard_negative(positive, scene, seed=derive(index, draw))
            [(position, field_name)] = differences(positive, negative)
            assert field_name == attribute and attribute in ATTRIBUTES
            assert not caption_holds(negative, scene)
            assert not true_in_test(negative[position], scene)
            if attribute == "relation":
                opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
                assert negative[position].relation == opposite[positive[position].relation]
            if attribute == "colour":
                other_colours = {f.colour for i, f in enumerate(positive) if isinstance(f, ObjectFact) and i != position}
                assert negative[position].colour not in other_colours
            seen[attribute] += 1
    print(dict(seen))
    assert set(seen) == set(ATTRIBUTES)


def test_same_seed_same_caption_and_negative():
    scene = SCENES[0]
    assert describe(scene, seed=5) == describe(scene, seed=5)
    assert len({describe(scene, seed=s) for s in range(20)}) > 1
    positive = describe(scene, seed=5)
    assert hard_negative(positive, scene, seed=9) == hard_negative(positive, scene, seed=9)
    assert len({hard_negative(positive, scene, seed=s) for s in range(20)}) > 1


def test_bad_input_is_rejected_with_the_valid_range():
    scene = SCENES[0]
    with pytest.raises(ValueError, match=r"objects must be an integer in 0\.\.6"):
        describe(scene, seed=0, objects=7)
    with pytest.raises(ValueError, match=r"relations must be an integer in 0\.\.15"):
        describe(scene, seed=0, relations=-1)
    with pytest.raises(ValueError, match="at least one fact"):
        describe(scene, seed=0, objects=0, relations=0)
    crowded = tuple(SceneObject(colour, "circle", 20 + i, 20 + i) for i, colour in enumerate(COLOURS))
    with pytest.raises(ValueError, match="only 0 pair"):
        describe(crowded, seed=0)
    assert len(describe(crowded, seed=0, relations=0)) == 2
    positive = describe(scene, seed=0)
    negative, _ = hard_negative(positive, scene, seed=0)
    with pytest.raises(ValueError, match="not true of the scene"):
        hard_negative(negative, scene, seed=0)
    with pytest.raises(ValueError, match="empty caption"):
        hard_negative((), scene, seed=0)
    with pytest.raises(ValueError, match="'circle', 'square'"):
        ObjectFact("red", "triangle", "top", "left")
    with pytest.raises(ValueError, match="'top', 'bottom'"):
        ObjectFact("red", "circle", "middle", "left")
    with pytest.raises(ValueError, match=", ".join(map(repr, RELATIONS))):
        RelationFact("red", "near", "blue")
    with pytest.raises(ValueError, match="two different objects"):
        RelationFact("red", "above", "red")
