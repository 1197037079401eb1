"""The demo model's procedural world: flat-coloured shapes and stick figures with captions.

Everything is deterministic from a seed. Coordinates are in unit space ([0, 1], y down) so a
scene renders at any size; 128x128 is the native size of the demo model.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

NATIVE_SIZE = 128

# Well separated in RGB so a checker can segment by nearest colour.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (245, 220, 30),
    "purple": (140, 50, 190),
    "orange": (245, 130, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "star", "ring")
FIGURE = "figure"
POSES = ("standing", "arms up", "waving", "walking", "jumping")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "centre")

ANCHORS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
# Radius ranges in unit space; a figure's "radius" is half its height.
SHAPE_RADIUS = {"small": (0.09, 0.11), "large": (0.18, 0.21)}
FIGURE_HEIGHT = {"small": 0.40, "large": 0.62}
JITTER = 0.03

# OpenPose 18-keypoint convention (controlnet-aux draw_bodypose): limbs as 1-based index pairs.
OPENPOSE_LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
    (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
)  # fmt: skip
OPENPOSE_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip


@dataclass(frozen=True)
class WorldObject:
    kind: str  # one of SHAPES or FIGURE
    colour: str
    size: str
    position: str
    cx: float
    cy: float
    radius: float
    pose: str | None = None
    # 18 OpenPose keypoints (x, y) in unit space, figures only.
    keypoints: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class Layout:
    objects: tuple[WorldObject, ...]
    background: str
    # "and" lists positions; "left of" / "above" phrase two objects by their relation.
    relation: str = "and"


@dataclass
class Rendering:
    image: np.ndarray  # H x W x 3 uint8
    labels: np.ndarray  # H x W int, 0 = background, i + 1 = objects[i] where visible
    depth: np.ndarray  # H x W uint8, brighter = nearer (MiDaS convention), background 0
    edges: np.ndarray  # H x W uint8, 255 on object outlines
    pose: np.ndarray  # H x W x 3 uint8, OpenPose skeletons on black

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


@dataclass
class Scene:
    seed: int
    layout: Layout
    caption: str
    rendering: Rendering = field(repr=False)

    @property
    def image(self) -> Image.Image:
        return self.rendering.pil()


# ---------------------------------------------------------------- layout sampling


def _figure_keypoints(
    pose: str, cx: float, cy: float, height: float, rng: random.Random
) -> tuple[tuple[float, float], ...]:
    # Local coordinates: unit height, y down, the person faces the viewer, so their right is -x.
    s = 1.0 if rng.random() < 0.5 else -1.0  # mirror one-sided poses
    arms = {
        "standing": ((-0.15, -0.10), (-0.17, 0.06), (0.15, -0.10), (0.17, 0.06)),
        "arms up": ((-0.17, -0.40), (-0.20, -0.54), (0.17, -0.40), (0.20, -0.54)),
        "waving": ((-0.15, -0.10), (-0.17, 0.06), (0.24, -0.32), (0.22, -0.50)),
        "walking": ((-0.12, -0.10), (-0.02, 0.05), (0.14, -0.12), (0.22, 0.00)),
        "jumping": ((-0.22, -0.34), (-0.32, -0.44), (0.22, -0.34), (0.32, -0.44)),
    }[pose]
    legs = {
        "standing": ((-0.07, 0.25), (-0.08, 0.47), (0.07, 0.25), (0.08, 0.47)),
        "arms up": ((-0.07, 0.25), (-0.08, 0.47), (0.07, 0.25), (0.08, 0.47)),
        "waving": ((-0.07, 0.25), (-0.08, 0.47), (0.07, 0.25), (0.08, 0.47)),
        "walking": ((-0.12, 0.24), (-0.20, 0.46), (0.06, 0.26), (0.14, 0.47)),
        "jumping": ((-0.17, 0.22), (-0.27, 0.42), (0.17, 0.22), (0.27, 0.42)),
    }[pose]
    if pose in ("waving", "walking"):
        arms = tuple((x * s, y) for x, y in arms)
        legs = tuple((x * s, y) for x, y in legs)
        if s < 0:  # mirrored: swap left and right limbs so indices stay anatomical
            arms = (arms[2], arms[3], arms[0], arms[1])
            legs = (legs[2], legs[3], legs[0], legs[1])
    head = (0.0, -0.38)
    local = [
        (head[0], head[1] + 0.01),  # 0 nose
        (0.0, -0.28),  # 1 neck
        (-0.10, -0.27),  # 2 right shoulder
        arms[0],
        arms[1],
        (0.10, -0.27),  # 5 left shoulder
        arms[2],
        arms[3],
        (-0.06, 0.04),  # 8 right hip
        legs[0],
        legs[1],
        (0.06, 0.04),  # 11 left hip
        legs[2],
        legs[3],
        (-0.03, -0.41),  # 14 right eye
        (0.03, -0.41),  # 15 left eye
        (-0.07, -0.39),  # 16 right ear
        (0.07, -0.39),  # 17 left ear
    ]
    out = []
    for i, (x, y) in enumerate(local):
        j = 0.015 if i in (3, 4, 6, 7, 9, 10, 12, 13) else 0.0
        out.append((cx + (x + rng.uniform(-j, j)) * height, cy + (y + rng.uniform(-j, j)) * height))
    return tuple(out)


def _make_object(kind: str, colour: str, size: str, position: str, rng: random.Random):
    ax, ay = ANCHORS[position]
    cx, cy = ax + rng.uniform(-JITTER, JITTER), ay + rng.uniform(-JITTER, JITTER)
    if kind == FIGURE:
        height = FIGURE_HEIGHT[size] * rng.uniform(0.95, 1.05)
        pose = rng.choice(POSES)
        kps = _figure_keypoints(pose, cx, cy, height, rng)
        return WorldObject(kind, colour, size, position, cx, cy, height / 2, pose, kps)
    radius = rng.uniform(*SHAPE_RADIUS[size])
    return WorldObject(kind, colour, size, position, cx, cy, radius)


def _fits(obj: WorldObject) -> bool:
    r = obj.radius * (0.9 if obj.kind == FIGURE else 1.0)
    return r <= obj.cx <= 1 - r and r <= obj.cy <= 1 - r


def _apart(objs: list[WorldObject]) -> bool:
    for i, a in enumerate(objs):
        for b in objs[i + 1 :]:
            if math.hypot(a.cx - b.cx, a.cy - b.cy) < a.radius + b.radius + 0.02:
                return False
    return True


_RELATION_PAIRS = {"left of": ("left", "right"), "above": ("top", "bottom")}


def sample_layout(rng: random.Random) -> Layout:
    u = rng.random()
    if u < 0.45:
        kinds = [rng.choice(SHAPES)]
    elif u < 0.70:
        kinds = [rng.choice(SHAPES), rng.choice(SHAPES)]
    elif u < 0.80:
        kinds = [rng.choice(SHAPES) for _ in range(3)]
    elif u < 0.92:
        kinds = [FIGURE]
    else:
        kinds = [FIGURE, rng.choice(SHAPES)]
        rng.shuffle(kinds)
    n = len(kinds)
    colours = rng.sample(COLOURS, n + 1)
    background, colours = colours[0], colours[1:]
    relation = "and"
    for _ in range(50):
        if n == 2 and rng.random() < 0.5:
            relation = rng.choice(tuple(_RELATION_PAIRS))
            positions = list(_RELATION_PAIRS[relation])
        else:
            relation = "and"
            positions = rng.sample(POSITIONS, n)
        sizes = [rng.choice(SIZES) for _ in range(n)]
        objs = [
            _make_object(k, c, s, p, rng)
            for k, c, s, p in zip(kinds, colours, sizes, positions, strict=True)
        ]
        if all(_fits(o) for o in objs) and _apart(objs):
            return Layout(tuple(objs), background, relation)
    # Always fits: small objects at opposite anchors without jitter.
    positions = ["left", "right", "centre"][:n]
    objs = []
    for k, c, p in zip(kinds, colours, positions, strict=True):
        ax, ay = ANCHORS[p]
        r = FIGURE_HEIGHT["small"] / 2 if k == FIGURE else SHAPE_RADIUS["small"][0]
        pose = "standing" if k == FIGURE else None
        kps = _figure_keypoints("standing", ax, ay, 2 * r, rng) if k == FIGURE else None
        objs.append(WorldObject(k, c, "small", p, ax, ay, r, pose, kps))
    return Layout(tuple(objs), background, "and")


# ---------------------------------------------------------------- captions

SIZE_WORDS = {"small": ("small", "small", "little"), "large": ("large", "large", "big")}
POSITION_PHRASES = {
    "left": ("on the left", "at the left", "on the left side"),
    "right": ("on the right", "at the right", "on the right side"),
    "top": ("at the top", "near the top", "at the top of the image"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the image"),
    "centre": ("in the centre", "in the center", "in the middle"),
}
POSE_PHRASES = {
    "standing": ("standing",),
    "arms up": ("with arms up", "raising its arms"),
    "waving": ("waving",),
    "walking": ("walking",),
    "jumping": ("jumping",),
}
FIGURE_NOUNS = ("stick figure", "stick figure", "person")
BACKGROUND_TEMPLATES = ("on a {} background", "against a {} background", "with a {} background")
RELATION_PHRASES = {"left of": ("left of", "to the left of"), "above": ("above",)}
INVERSE_RELATION_PHRASES = {"left of": ("right of", "to the right of"), "above": ("below", "under")}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(obj: WorldObject, rng: random.Random, with_size: bool = True) -> str:
    words = []
    if with_size:
        words.append(rng.choice(SIZE_WORDS[obj.size]))
    words.append(obj.colour)
    if obj.kind == FIGURE:
        words.append(rng.choice(FIGURE_NOUNS))
        words.append(rng.choice(POSE_PHRASES[obj.pose or "standing"]))
    else:
        words.append(obj.kind)
    return f"{_article(words[0])} {' '.join(words)}"


def caption(layout: Layout, rng: random.Random, omit: bool = True) -> str:
    # Omitting attributes now and then lets short prompts ("a red circle") work too.
    p_omit = 0.2 if omit else 0.0
    objs = layout.objects
    phrases = [object_phrase(o, rng, with_size=rng.random() >= p_omit) for o in objs]
    bg = rng.choice(BACKGROUND_TEMPLATES).format(layout.background)
    with_bg = rng.random() >= p_omit
    if layout.relation != "and" and len(objs) == 2:
        if rng.random() < 0.5:
            body = f"{phrases[0]} {rng.choice(RELATION_PHRASES[layout.relation])} {phrases[1]}"
        else:
            inverse = rng.choice(INVERSE_RELATION_PHRASES[layout.relation])
            body = f"{phrases[1]} {inverse} {phrases[0]}"
    else:
        with_pos = len(objs) > 1 or rng.random() >= p_omit
        parts = [
            f"{ph} {rng.choice(POSITION_PHRASES[o.position])}" if with_pos else ph
            for ph, o in zip(phrases, objs, strict=True)
        ]
        order = list(range(len(parts)))
        rng.shuffle(order)
        parts = [parts[i] for i in order]
        body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if not with_bg:
        return body
    if rng.random() < 0.25:
        return f"{_article(layout.background)} {layout.background} background with {body}"
    return f"{body}, {bg}" if rng.random() < 0.7 else f"{body} {bg}"


# ---------------------------------------------------------------- rendering


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * 0.45
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _draw_object_mask(obj: WorldObject, size: int) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    cx, cy, r = obj.cx * size, obj.cy * size, obj.radius * size
    if obj.kind == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif obj.kind == "square":
        h = r * 0.85
        d.rectangle((cx - h, cy - h, cx + h, cy + h), fill=255)
    elif obj.kind == "triangle":
        d.polygon(
            [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)],
            fill=255,
        )
    elif obj.kind == "star":
        d.polygon(_star(cx, cy, r * 1.1), fill=255)
    elif obj.kind == "ring":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        ri = r * 0.55
        d.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif obj.kind == FIGURE:
        kp = [(x * size, y * size) for x, y in obj.keypoints or ()]
        h = 2 * obj.radius * size
        w = max(3, round(h * 0.09))
        hip = ((kp[8][0] + kp[11][0]) / 2, (kp[8][1] + kp[11][1]) / 2)
        for a, b in ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12)):
            d.line([kp[a], kp[b]], fill=255, width=w)
        d.line([kp[12], kp[13]], fill=255, width=w)
        d.line([kp[1], hip], fill=255, width=w)
        d.line([kp[8], kp[11]], fill=255, width=w)
        for p in (kp[4], kp[7], kp[10], kp[13], kp[2], kp[5], kp[3], kp[6], kp[9], kp[12]):
            d.ellipse((p[0] - w / 2, p[1] - w / 2, p[0] + w / 2, p[1] + w / 2), fill=255)
        hr = h * 0.11
        hx, hy = kp[0][0], kp[0][1] - 0.01 * h
        d.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=255)
    else:
        raise ValueError(f"Unknown object kind {obj.kind!r}; expected one of {SHAPES + (FIGURE,)}")
    return np.asarray(mask) > 127


def _pose_image(objs: tuple[WorldObject, ...], size: int) -> np.ndarray:
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(canvas)
    stick = max(2, round(4 * size / 512 * 2))  # controlnet-aux uses 4 px at 512
    for obj in objs:
        if obj.keypoints is None:
            continue
        kp = [(x * size, y * size) for x, y in obj.keypoints]
        for (a, b), colour in zip(
            OPENPOSE_LIMBS, OPENPOSE_COLOURS[: len(OPENPOSE_LIMBS)], strict=True
        ):
            dim = tuple(int(c * 0.6) for c in colour)
            d.line([kp[a - 1], kp[b - 1]], fill=dim, width=stick)
        for (x, y), colour in zip(kp, OPENPOSE_COLOURS, strict=True):
            d.ellipse((x - stick / 2, y - stick / 2, x + stick / 2, y + stick / 2), fill=colour)
    return np.asarray(canvas).copy()


def render(layout: Layout, size: int = NATIVE_SIZE) -> Rendering:
    if size < 16:
        raise ValueError(f"Scene size must be at least 16 pixels, got {size}")
    labels = np.zeros((size, size), dtype=np.int16)
    for i, obj in enumerate(layout.objects):  # later objects are drawn on top
        labels[_draw_object_mask(obj, size)] = i + 1
    colours = np.array(
        [PALETTE[layout.background]] + [PALETTE[o.colour] for o in layout.objects], np.uint8
    )
    image = colours[labels]
    n = len(layout.objects)
    # Background far (0); objects drawn later are nearer.
    depth_levels = np.array([0] + [120 + round(120 * (i + 1) / n) for i in range(n)], np.uint8)
    depth = depth_levels[labels]
    edge = np.zeros((size, size), dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edges = np.where(edge, 255, 0).astype(np.uint8)
    return Rendering(image, labels, depth, edges, _pose_image(layout.objects, size))


def make_scene(seed: int, size: int = NATIVE_SIZE) -> Scene:
    rng = random.Random(seed)
    layout = sample_layout(rng)
    return Scene(seed, layout, caption(layout, rng), render(layout, size))


def single_object_layout(
    kind: str,
    colour: str,
    background: str,
    size: str = "large",
    position: str = "centre",
    seed: int = 0,
) -> Layout:
    """A layout with fixed attributes, for tests and the checker's reference renderings."""
    if colour == background:
        raise ValueError(f"Object and background colours must differ (both {colour!r})")
    for value, allowed in (
        (kind, SHAPES + (FIGURE,)),
        (colour, COLOURS),
        (background, COLOURS),
        (size, SIZES),
        (position, POSITIONS),
    ):
        if value not in allowed:
            raise ValueError(f"Unknown value {value!r}; expected one of {', '.join(allowed)}")
    return Layout((_make_object(kind, colour, size, position, random.Random(seed)),), background)


def vocabulary() -> list[str]:
    """Every word the caption grammar can produce, sorted."""
    words: set[str] = {"a", "an", "and", "background", "with"}
    words.update(COLOURS)
    words.update(SHAPES)
    for table in (SIZE_WORDS, POSITION_PHRASES, POSE_PHRASES, RELATION_PHRASES):
        for options in table.values():
            for phrase in options:
                words.update(phrase.split())
    for options in INVERSE_RELATION_PHRASES.values():
        for phrase in options:
            words.update(phrase.split())
    for phrase in FIGURE_NOUNS + BACKGROUND_TEMPLATES:
        words.update(w for w in phrase.split() if w != "{}")
    return sorted(words)
