"""Image-text retrieval captions read off a Sort-of-CLEVR scene's ground truth, with one-edit hard
negatives.

A caption is a conjunction of facts, each true of the scene:
- an object fact, "red circle at the top left": the object's colour, shape and image half along
  each axis (top: y < S/2, left: x < S/2, as in `repro.data.sort_of_clevr`);
- a relation fact, "the red object is left of the blue object": subject and reference colours and
  one of RELATIONS, true when the coordinates compare strictly (x_s < x_r for "left of"; y grows
  downward, so "above" is y_s < y_r). A relation is only stated between centres at least
  RELATION_MARGIN = 2 r + 1 pixels apart along its axis, so the two objects do not overlap in
  that direction and the relation is plainly visible.

A hard negative changes exactly one attribute of one fact (an object's colour, shape, vertical or
horizontal half; a relation flipped to its opposite) so that the caption becomes false of the
scene: a retrieval model that ranks the positive above it must bind attributes to the right object
and read the spatial relation, not merely spot which words occur.

The SELF paper evaluates retrieval on MS COCO and Flickr30k, which are not reachable offline.
"""

from dataclasses import dataclass, fields, replace
from itertools import combinations

import numpy as np

from repro.config import choice
from repro.data.sort_of_clevr import COLOURS, OBJECT_RADIUS, SHAPES, Scene, object_with_colour

# DEVIATION: [retrieval-scene-captions] retrieval is tested on generated scenes with templated captions
# and one-edit hard negatives, not on MS COCO / Flickr30k.
RELATIONS = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
RELATION_GEOMETRY = {"left of": ("x", True), "right of": ("x", False), "above": ("y", True), "below": ("y", False)}
"""Relation -> (the coordinate it compares, whether the subject's is the smaller)."""
VERTICALS = ("top", "bottom")
HORIZONTALS = ("left", "right")

RELATION_MARGIN = 2 * OBJECT_RADIUS + 1
"""Least centre difference along the relation's axis for a relation to be stated."""

ATTRIBUTES = ("colour", "shape", "vertical", "horizontal", "relation")
ATTRIBUTE_VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "vertical": VERTICALS, "horizontal": HORIZONTALS}
"""The values an object fact's attribute may be edited to (a relation is only ever flipped)."""


@dataclass(frozen=True)
class ObjectFact:
    colour: str
    shape: str
    vertical: str
    horizontal: str

    def __post_init__(self):
        for attribute, values in ATTRIBUTE_VALUES.items():
            choice(attribute, getattr(self, attribute), values)

    @property
    def text(self) -> str:
        return f"{self.colour} {self.shape} at the {self.vertical} {self.horizontal}"


@dataclass(frozen=True)
class RelationFact:
    subject: str
    relation: str
    reference: str

    def __post_init__(self):
        choice("subject colour", self.subject, tuple(COLOURS))
        choice("reference colour", self.reference, tuple(COLOURS))
        choice("relation", self.relation, RELATIONS)
        if self.subject == self.reference:
            raise ValueError(f"a relation needs two different objects, got {self.subject!r} twice")

    @property
    def text(self) -> str:
        return f"the {self.subject} object is {self.relation} the {self.reference} object"


Fact = ObjectFact | RelationFact
Caption = tuple[Fact, ...]

MAX_RELATIONS = len(COLOURS) * (len(COLOURS) - 1) // 2
"""One relation per pair of objects, so a caption never states a relation and its mirror image."""


def caption_text(caption: Caption) -> str:
    return " and ".join(fact.text for fact in caption)


def holds(fact: Fact, scene: Scene) -> bool:
    """The exact truth of `fact` on the scene (relations: strict coordinate comparison)."""
    if isinstance(fact, RelationFact):
        axis, subject_smaller = RELATION_GEOMETRY[fact.relation]
        subject = getattr(object_with_colour(scene, fact.subject), axis)
        reference = getattr(object_with_colour(scene, fact.reference), axis)
        return subject < reference if subject_smaller else subject > reference
    described = object_with_colour(scene, fact.colour)
    return (described.shape == fact.shape
            and fact.vertical == ("top" if described.at_top else "bottom")
            and fact.horizontal == ("left" if described.on_left else "right"))


def caption_holds(caption: Caption, scene: Scene) -> bool:
    return all(holds(fact, scene) for fact in caption)


def _object_fact(scene: Scene, colour: str) -> ObjectFact:
    described = object_with_colour(scene, colour)
    return ObjectFact(colour, described.shape, "top" if described.at_top else "bottom",
                      "left" if described.on_left else "right")


def _relation_fact(scene: Scene, subject: str, reference: str, axis: str) -> RelationFact:
    subject_smaller = (getattr(object_with_colour(scene, subject), axis)
                       < getattr(object_with_colour(scene, reference), axis))
    relation = next(name for name, geometry in RELATION_GEOMETRY.items() if geometry == (axis, subject_smaller))
    return RelationFact(subject, relation, reference)


def _check_count(name: str, value, largest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
        raise ValueError(f"{name} must be an integer in 0..{largest}, got {value!r}")


def describe(scene: Scene, seed: int, objects: int = 2, relations: int = 1) -> Caption:
    """A true caption, a pure function of (scene, seed): `objects` object facts about distinct
    objects drawn at random, then `relations` relation facts about distinct pairs drawn at random
    among those whose centres differ by at least RELATION_MARGIN along some axis (then one such
    axis at random, and the pair's subject by a coin flip). Under the generator's placement rule
    every pair of centres is at least 2 r + 2 apart along some axis, so every one of the 15 pairs
    qualifies; a hand-made scene with fewer qualifying pairs than `relations` is an error."""
    _check_count("objects", objects, len(COLOURS))
    _check_count("relations", relations, MAX_RELATIONS)
    if objects + relations == 0:
        raise ValueError("a caption needs at least one fact; got objects=0 and relations=0")
    generator = np.random.default_rng(seed)
    colours = list(COLOURS)
    chosen = generator.choice(len(colours), objects, replace=False)
    described = [_object_fact(scene, colours[index]) for index in chosen]
    visible = {}
    for first, second in combinations(colours, 2):
        a, b = object_with_colour(scene, first), object_with_colour(scene, second)
        axes = [axis for axis in ("x", "y") if abs(getattr(a, axis) - getattr(b, axis)) >= RELATION_MARGIN]
        if axes:
            visible[first, second] = axes
    if len(visible) < relations:
        raise ValueError(f"{relations} relation(s) requested, but only {len(visible)} pair(s) of objects have centres "
                         f"{RELATION_MARGIN}+ pixels apart along an axis in this scene")
    pairs = list(visible)
    for index in generator.choice(len(pairs), relations, replace=False):
        pair = pairs[index]
        axis = visible[pair][generator.integers(len(visible[pair]))]
        subject, reference = pair if generator.integers(2) == 0 else pair[::-1]
        described.append(_relation_fact(scene, subject, reference, axis))
    return tuple(described)


def _edits(caption: Caption, position: int, attribute: str) -> list[Fact]:
    """The values fact `position` may take with `attribute` changed: a relation's opposite; any other
    value of an object attribute, where a colour may not repeat another object fact's colour."""
    fact = caption[position]
    if attribute == "relation":
        return [replace(fact, relation=OPPOSITE[fact.relation])]
    named = {other.colour for other in caption if isinstance(other, ObjectFact)}
    return [replace(fact, **{attribute: value}) for value in ATTRIBUTE_VALUES[attribute]
            if value != getattr(fact, attribute) and not (attribute == "colour" and value in named)]


def hard_negative(caption: Caption, scene: Scene, seed: int) -> tuple[Caption, str]:
    """`caption` with one attribute of one fact changed so that it is false of the scene; returns
    (negative, the attribute changed). The slot (fact, attribute) is drawn uniformly among those with
    at least one falsifying edit, then the edit uniformly among that slot's (only colour slots have
    several), so colour edits do not crowd out the others. Shape, half and relation flips always
    falsify a true fact; a colour edit does when the newly named object differs in shape or half."""
    if not caption:
        raise ValueError("cannot make a hard negative of an empty caption")
    if not caption_holds(caption, scene):
        raise ValueError(f"the caption is not true of the scene, so it has no hard negative: {caption_text(caption)!r}")
    slots = []
    for position, fact in enumerate(caption):
        for attribute in (field.name for field in fields(fact) if field.name in ATTRIBUTES):
            falsifying = [edited for edited in _edits(caption, position, attribute) if not holds(edited, scene)]
            if falsifying:
                slots.append((position, attribute, falsifying))
    generator = np.random.default_rng(seed)
    position, attribute, falsifying = slots[generator.integers(len(slots))]
    edited = falsifying[generator.integers(len(falsifying))]
    return caption[:position] + (edited,) + caption[position + 1:], attribute
