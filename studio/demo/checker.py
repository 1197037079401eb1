"""Reads a demo-world image back into objects: colour segmentation plus a shape classifier.

The shape classifier is a nearest-neighbour vote over object masks rendered by the world itself
(ground truth only, never generated images), so it is deterministic and needs no weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from studio.demo import world

SIZE = world.NATIVE_SIZE
MASK_RES = 24  # masks are compared at 24x24
MIN_AREA = 40  # pixels at 128x128 after opening; smaller blobs are noise
KINDS = world.SHAPES + (world.FIGURE,)


@dataclass(frozen=True)
class FoundObject:
    colour: str
    kind: str
    size: str
    position: str
    area: int
    cx: float
    cy: float


@dataclass(frozen=True)
class Reading:
    background: str
    objects: tuple[FoundObject, ...]  # largest first

    def by_colour(self, colour: str) -> FoundObject | None:
        return next((o for o in self.objects if o.colour == colour), None)


def _shift_and(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= p[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def _shift_or(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=False)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= p[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def opening(mask: np.ndarray) -> np.ndarray:
    # Removes the thin bands of in-between colours along generated edges.
    return _shift_or(_shift_and(mask))


def segment(image: Image.Image | np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for every pixel, at 128x128."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an RGB image, got an array of shape {image.shape}")
    pal = np.array(list(world.PALETTE.values()), dtype=np.float32)
    d = ((image.astype(np.float32)[:, :, None, :] - pal[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def mask_feature(mask: np.ndarray) -> np.ndarray:
    """Crop a mask to its bounding box, pad it square, resize to MASK_RES, flatten."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = mask[y0:y1, x0:x1]
    h, w = crop.shape
    side = max(h, w)
    sq = np.zeros((side, side), dtype=np.uint8)
    sq[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = crop * 255
    img = Image.fromarray(sq).resize((MASK_RES, MASK_RES), Image.BILINEAR)
    v = np.asarray(img, dtype=np.float32).ravel() / 255.0
    return v / (np.linalg.norm(v) + 1e-6)


class ShapeClassifier:
    def __init__(self, per_kind: int = 120, seed: int = 12345) -> None:
        rng = random.Random(seed)
        feats, labels = [], []
        for k, kind in enumerate(KINDS):
            for _ in range(per_kind):
                colour, bg = rng.sample(world.COLOURS, 2)
                layout = world.single_object_layout(
                    kind,
                    colour,
                    bg,
                    size=rng.choice(world.SIZES),
                    position=rng.choice(("left", "right", "centre")),
                    seed=rng.randrange(10**9),
                )
                mask = world.render(layout).labels == 1
                # Ground-truth masks, made slightly rough as generated edges are.
                if rng.random() < 0.3:
                    mask = opening(mask)
                elif rng.random() < 0.3:
                    mask = _shift_or(mask)
                feats.append(mask_feature(mask))
                labels.append(k)
        self.features = np.stack(feats)
        self.labels = np.array(labels)

    def classify(self, mask: np.ndarray, k: int = 5) -> str:
        sims = self.features @ mask_feature(mask)
        top = np.argsort(-sims)[:k]
        votes = np.bincount(self.labels[top], weights=sims[top], minlength=len(KINDS))
        return KINDS[int(votes.argmax())]


def _position(cx: float, cy: float) -> str:
    dx, dy = cx - 0.5, cy - 0.5
    if max(abs(dx), abs(dy)) < 0.125:
        return "centre"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def _size(kind: str, mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    # Small shapes span ~25 px and large ~50 px; figures ~51 px and ~79 px.
    return "large" if extent > (65 if kind == world.FIGURE else 37) else "small"


class Checker:
    def __init__(self) -> None:
        self.shapes = ShapeClassifier()

    def read(self, image: Image.Image | np.ndarray) -> Reading:
        seg = segment(image)
        counts = np.bincount(seg.ravel(), minlength=len(world.COLOURS))
        bg = int(counts.argmax())
        objs = []
        for c in range(len(world.COLOURS)):
            if c == bg:
                continue
            mask = opening(seg == c)
            area = int(mask.sum())
            if area < MIN_AREA:
                continue
            kind = self.shapes.classify(mask)
            ys, xs = np.nonzero(mask)
            cx, cy = float(xs.mean()) / SIZE, float(ys.mean()) / SIZE
            objs.append(
                FoundObject(
                    world.COLOURS[c], kind, _size(kind, mask), _position(cx, cy), area, cx, cy
                )
            )
        objs.sort(key=lambda o: -o.area)
        return Reading(world.COLOURS[bg], tuple(objs))
