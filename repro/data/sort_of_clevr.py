"""Sort-of-CLEVR: seeded scenes of six coloured shapes and questions about them, relational or not.

The visual question answering task of Santoro et al. 2017 ("A simple neural network module for
relational reasoning"), after the standard public generator (kimhc6028/relational-networks,
`sort_of_clevr_generator.py`): six objects on a white background, one of each colour (red, green,
blue, orange, gray, yellow), each a circle or a square. Per object colour c, six questions:

- non-relational: the shape of c; is c on the left (x < S/2)? is c at the top (y < S/2)?
- relational: the shape of the object closest to c, of the object furthest from c, and the number
  of objects that share c's shape (c included, so 1..6), where, with centres p_o,

      closest(c) = argmin_{o != c} ||p_o - p_c||^2,     furthest(c) = argmax_{o != c} ||p_o - p_c||^2.

The original draws 75x75 images with objects of radius 5; ours are S = 64 pixels with radius 4 (a
9x9 square, or every pixel within distance 4 of the centre), so one ViT patching (8x8 patches, 64
tokens) serves this set and easy-VQA's 64x64 images alike. Coordinates are pixel indices, x to the
right, y downward (so "top" is small y).

Placement rule: centres are drawn uniformly with the whole object inside the image, each redrawn
until its Chebyshev distance max(|dx|, |dy|) to every earlier centre is at least 2 r + 2 = 10, so the
bounding boxes of any two objects are separated by at least one white row or column and no
object hides another. A placement where some object's closest or furthest other object is tied in
distance is rejected and redrawn, so every relational answer is unique. Everything is a pure
function of an integer seed (`np.random.default_rng`), never the global random state.
"""

from dataclasses import dataclass

import numpy as np
import torch

from repro.config import choice
from repro.seeding import derive

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "orange": (255, 156, 0),
    "gray": (128, 128, 128),
    "yellow": (255, 255, 0),
}
"""Colour name -> RGB (0..255). A scene holds one object of each, in this order."""

SHAPES = ("circle", "square")

# DEVIATION: [sort-of-clevr-64px] 64x64 images with radius-4 objects (the public generator: 75x75,
# radius 5), so one 8x8-patch ViT reads this set and easy-VQA alike; objects never touch.
IMAGE_SIZE = 64
OBJECT_RADIUS = 4
MIN_SEPARATION = 2 * OBJECT_RADIUS + 2
"""Least Chebyshev distance between two centres: one white pixel between bounding boxes."""

QUESTION_KINDS = ("shape", "horizontal", "vertical", "closest", "furthest", "count")
RELATIONAL_KINDS = ("closest", "furthest", "count")
ANSWERS = ("yes", "no", "circle", "square", "1", "2", "3", "4", "5", "6")

QUESTION_TEMPLATES = {
    "shape": "what is the shape of the {colour} object ?",
    "horizontal": "is the {colour} object on the left ?",
    "vertical": "is the {colour} object at the top ?",
    "closest": "what is the shape of the object closest to the {colour} object ?",
    "furthest": "what is the shape of the object furthest from the {colour} object ?",
    "count": "how many objects have the shape of the {colour} object ?",
}
"""Lower case, with the "?" spaced off, so a whitespace split tokenises every question."""


@dataclass(frozen=True)
class SceneObject:
    """One object: its colour, shape and centre in pixels (x right, y down), wholly inside the image."""

    colour: str
    shape: str
    x: int
    y: int

    def __post_init__(self):
        choice("colour", self.colour, tuple(COLOURS))
        choice("shape", self.shape, SHAPES)
        low, high = OBJECT_RADIUS, IMAGE_SIZE - 1 - OBJECT_RADIUS
        if not (low <= self.x <= high and low <= self.y <= high):
            raise ValueError(f"object centre ({self.x}, {self.y}) puts part of the {self.colour} object outside "
                             f"the {IMAGE_SIZE}x{IMAGE_SIZE} image; valid centre coordinates: {low}..{high}")

    @property
    def on_left(self) -> bool:
        return self.x < IMAGE_SIZE / 2

    @property
    def at_top(self) -> bool:
        return self.y < IMAGE_SIZE / 2


Scene = tuple[SceneObject, ...]
"""One object per colour, in COLOURS order."""


def object_with_colour(scene: Scene, colour: str) -> SceneObject:
    choice("colour", colour, tuple(COLOURS))
    for candidate in scene:
        if candidate.colour == colour:
            return candidate
    raise ValueError(f"the scene has no {colour} object; it has {[o.colour for o in scene]}")


def _has_tied_extremes(centres: np.ndarray) -> bool:
    """Whether some object's closest or furthest other object is tied (integer squared distances,
    so ties are exact)."""
    count = len(centres)
    distances = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    others = distances[~np.eye(count, dtype=bool)].reshape(count, count - 1)
    closest, furthest = others.min(axis=1, keepdims=True), others.max(axis=1, keepdims=True)
    return bool(((others == closest).sum(axis=1) > 1).any() or ((others == furthest).sum(axis=1) > 1).any())


def _place_centres(generator: np.random.Generator) -> np.ndarray:
    """Centres one by one, each redrawn until it keeps MIN_SEPARATION from the earlier ones. Six
    exclusion squares of 19x19 cover at most 5 * 361 of the 56 * 56 possible centres, so a free
    spot always exists."""
    centres: list[np.ndarray] = []
    while len(centres) < len(COLOURS):
        candidate = generator.integers(OBJECT_RADIUS, IMAGE_SIZE - OBJECT_RADIUS, size=2)
        if all(np.abs(candidate - placed).max() >= MIN_SEPARATION for placed in centres):
            centres.append(candidate)
    return np.stack(centres)


def generate_scene(seed: int) -> Scene:
    """A scene as a pure function of `seed`: separated centres (see the module docstring), redrawn
    until every closest and furthest object is unique, then a fair coin per object for its shape."""
    generator = np.random.default_rng(seed)
    # DEVIATION: [sort-of-clevr-unique-answers] placements with a tie in a closest/furthest distance
    # are redrawn; the public generator answers for whichever tied object comes first in its list.
    centres = _place_centres(generator)
    while _has_tied_extremes(centres):
        centres = _place_centres(generator)
    shapes = generator.integers(0, len(SHAPES), size=len(COLOURS))
    return tuple(SceneObject(colour, SHAPES[shape], int(x), int(y))
                 for colour, shape, (x, y) in zip(COLOURS, shapes, centres))


def _shape_offsets(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) of the pixels a shape covers around its centre: the full (2r+1)^2 square, or the
    pixels with dx^2 + dy^2 <= r^2."""
    dy, dx = np.mgrid[-OBJECT_RADIUS:OBJECT_RADIUS + 1, -OBJECT_RADIUS:OBJECT_RADIUS + 1]
    covered = np.ones_like(dy, dtype=bool) if shape == "square" else dy ** 2 + dx ** 2 <= OBJECT_RADIUS ** 2
    return dy[covered], dx[covered]


SHAPE_OFFSETS = {shape: _shape_offsets(shape) for shape in SHAPES}


def _render_all(scenes: list[Scene]) -> torch.Tensor:
    """Paint every object of every scene at once with advanced indexing (exact colours, no
    antialiasing): (n, 3, S, S) uint8."""
    canvas = np.full((len(scenes), IMAGE_SIZE, IMAGE_SIZE, 3), 255, dtype=np.uint8)
    flat = [(index, o.shape, o.y, o.x, COLOURS[o.colour]) for index, scene in enumerate(scenes) for o in scene]
    for shape, (dy, dx) in SHAPE_OFFSETS.items():
        painted = [row for row in flat if row[1] == shape]
        if not painted:
            continue
        index, _, y, x, rgb = (np.array(column) for column in zip(*painted))
        canvas[index[:, None], y[:, None] + dy, x[:, None] + dx] = rgb[:, None, :]
    return torch.from_numpy(canvas).permute(0, 3, 1, 2).contiguous()


def render(scene: Scene) -> torch.Tensor:
    """The scene as a float32 (3, S, S) image in [0, 1] on white."""
    return _render_all([scene])[0].float() / 255


@dataclass(frozen=True)
class Question:
    kind: str
    colour: str
    text: str
    answer: str

    @property
    def relational(self) -> bool:
        return self.kind in RELATIONAL_KINDS


def _answer(scene: Scene, kind: str, subject: SceneObject) -> str:
    if kind == "shape":
        return subject.shape
    if kind == "horizontal":
        return "yes" if subject.on_left else "no"
    if kind == "vertical":
        return "yes" if subject.at_top else "no"
    if kind == "count":
        return str(sum(other.shape == subject.shape for other in scene))
    others = [other for other in scene if other.colour != subject.colour]
    distances = [(other.x - subject.x) ** 2 + (other.y - subject.y) ** 2 for other in others]
    extreme = min if kind == "closest" else max
    return others[distances.index(extreme(distances))].shape


def ask(scene: Scene, kind: str, colour: str) -> Question:
    """The question of `kind` about the `colour` object, with its answer (one of ANSWERS)."""
    choice("question kind", kind, QUESTION_KINDS)
    subject = object_with_colour(scene, colour)
    return Question(kind, colour, QUESTION_TEMPLATES[kind].format(colour=colour), _answer(scene, kind, subject))


def all_questions(scene: Scene) -> list[Question]:
    """Every kind about every colour: 36 questions, kinds outer, colours inner."""
    return [ask(scene, kind, colour) for kind in QUESTION_KINDS for colour in COLOURS]


@dataclass
class SortOfClevr:
    scenes: list[Scene]
    images: torch.Tensor
    """(n, 3, S, S) uint8 pixels; image i renders scenes[i] (`render` gives it as floats)."""


def sort_of_clevr(scenes: int, seed: int) -> SortOfClevr:
    """`scenes` scenes, scene i drawn from seed derive("sort-of-clevr", seed, i): a larger set
    extends a smaller one of the same seed, and different seeds give unrelated scenes."""
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise ValueError(f"scenes must be a positive integer, got {scenes!r}")
    drawn = [generate_scene(derive("sort-of-clevr", seed, index)) for index in range(scenes)]
    return SortOfClevr(drawn, _render_all(drawn))
