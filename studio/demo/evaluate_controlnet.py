"""Measure how closely the demo ControlNets follow their control maps; print a markdown table.

    python -m studio.demo.evaluate_controlnet --n 24
    python -m studio.demo.evaluate_controlnet --speed 5    # seconds per image, 20 steps, 128x128

Held-out scenes (seeds from EVAL_SCENE_BASE, never used in training) are generated from captions
that name their objects and background but not where they are (the demo model places objects
from position words by itself, so only the map can supply the layout), with fixed seeds, through
the app's engine (default sampler, 20 steps, CFG 7), once with the scene's control map and once
without; both images are scored against the same map:

- canny: F1 between the control edges and cv2.Canny edges of the image, 2 px tolerance.
- depth: depth-region IoU: for each object, the region the depth map gives it (its depth level)
  against the pixels painted in the object's colour (the caption names it); mean over objects.
- pose: keypoint distance: mean distance in pixels from each of the 18 ground-truth keypoints to
  the nearest pixel of the figure's colour (capped at 64 px); and figure-mask IoU between the
  drawn figure and the ground-truth figure, which a blob covering everything cannot game.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from studio.demo import world
from studio.demo.checker import opening, segment
from studio.demo.train_controlnet import KINDS, control_map, scene_seeds

EVAL_SCENE_BASE = 8_000_000  # training scenes start at 1_000_000; demo evaluation uses 9_000_000
GEN_SEED = 4242
SIZE = world.NATIVE_SIZE
EDGE_TOLERANCE = 2  # px
KEYPOINT_CAP = 64.0  # px: a missing figure costs this much per keypoint
METRICS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    # kind: (metric key, label, higher is better)
    "canny": (("edge_f1", "edge F1 (2 px)", True),),
    "depth": (("region_iou", "depth-region IoU", True),),
    "pose": (
        ("keypoint_px", "keypoint distance (px)", False),
        ("figure_iou", "figure-mask IoU", True),
    ),
}
PALETTE_INDEX = {name: i for i, name in enumerate(world.PALETTE)}


@dataclass
class Case:
    scene: world.Scene
    control: Image.Image  # the control map fed with preprocessor "none"
    seed: int  # generation seed


def cases(kind: str, n: int, base: int = EVAL_SCENE_BASE) -> list[Case]:
    out = []
    for i, s in enumerate(scene_seeds(kind, n, base)):
        scene = world.make_scene(s)
        out.append(Case(scene, Image.fromarray(control_map(scene, kind)), GEN_SEED + i))
    return out


# ---------------------------------------------------------------- metrics


def _colour_mask(image: Image.Image, colour: str) -> np.ndarray:
    return opening(segment(image) == PALETTE_INDEX[colour])


def edge_f1(control: np.ndarray, image: Image.Image) -> float:
    """F1 of the image's Canny edges against the control edges, each within 2 px of the other."""
    from studio.engine.control import preprocess

    want = control > 127
    got = np.asarray(preprocess(image, "canny", (SIZE, SIZE)))[:, :, 0] > 127
    if not want.any() or not got.any():
        return 0.0
    k = np.ones((2 * EDGE_TOLERANCE + 1,) * 2, np.uint8)
    near_want = cv2.dilate(want.astype(np.uint8), k) > 0
    near_got = cv2.dilate(got.astype(np.uint8), k) > 0
    precision = (got & near_want).sum() / got.sum()
    recall = (want & near_got).sum() / want.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def region_iou(scene: world.Scene, depth: np.ndarray, image: Image.Image) -> float:
    """Mean over objects of IoU(region at the object's depth level, pixels of its colour)."""
    levels = sorted(v for v in np.unique(depth) if v > 0)  # nearer objects are brighter
    objs = scene.layout.objects
    if len(levels) != len(objs):
        raise ValueError(f"Depth map has {len(levels)} object levels for {len(objs)} objects.")
    # the world's depth levels rise with drawing order, so level k belongs to object k
    return float(
        np.mean(
            [
                _iou(depth == lv, _colour_mask(image, o.colour))
                for lv, o in zip(levels, objs, strict=True)
            ]
        )
    )


def pose_scores(scene: world.Scene, image: Image.Image) -> dict[str, float]:
    dists, ious = [], []
    for i, obj in enumerate(scene.layout.objects):
        if obj.kind != world.FIGURE:
            continue
        got = _colour_mask(image, obj.colour)
        ious.append(_iou(scene.rendering.labels == i + 1, got))
        if got.any():
            # distance of every pixel to the nearest figure pixel
            far = cv2.distanceTransform((~got).astype(np.uint8), cv2.DIST_L2, 5)
            for x, y in obj.keypoints or ():
                px = min(SIZE - 1, max(0, round(x * SIZE)))
                py = min(SIZE - 1, max(0, round(y * SIZE)))
                dists.append(min(KEYPOINT_CAP, float(far[py, px])))
        else:
            dists.extend([KEYPOINT_CAP] * len(obj.keypoints or ()))
    if not ious:
        raise ValueError(f"Scene {scene.seed} has no stick figure to score a pose against.")
    return {"keypoint_px": float(np.mean(dists)), "figure_iou": float(np.mean(ious))}


def score(kind: str, case: Case, image: Image.Image) -> dict[str, float]:
    control = np.asarray(case.control)[:, :, 0]
    if kind == "canny":
        return {"edge_f1": edge_f1(control, image)}
    if kind == "depth":
        return {"region_iou": region_iou(case.scene, control, image)}
    if kind == "pose":
        return pose_scores(case.scene, image)
    raise ValueError(f"Unknown ControlNet kind {kind!r}; choose one of {', '.join(KINDS)}.")


# ---------------------------------------------------------------- generation


def layout_free_caption(scene: world.Scene) -> str:
    """The scene's objects and background, without positions or relations."""
    rng = random.Random(scene.seed)
    objects = [world.object_phrase(o, rng) for o in scene.layout.objects]
    return f"{' and '.join(objects)}, on a {scene.layout.background} background"


def request_for(
    case: Case,
    model: str,
    controls: tuple = (),
    steps: int = 20,
    cfg: float | None = None,
):
    from studio.engine.request import GenerationRequest

    extra = {} if cfg is None else {"cfg_scale": cfg}
    return GenerationRequest(
        model=model, prompt=layout_free_caption(case.scene), seed=case.seed, steps=steps,
        width=SIZE, height=SIZE, controls=controls, **extra,
    )  # fmt: skip


def control_spec(kind_ref: str, case: Case, weight: float = 1.0):
    from studio.engine.request import ControlSpec

    return ControlSpec(model=kind_ref, image=case.control, preprocessor="none", weight=weight)


def generate_pair(
    cache, case: Case, model: str, controlnet: str, steps: int = 20, cfg: float | None = None
) -> tuple[Image.Image, Image.Image]:
    """(image with the control, image without), same prompt and seed."""
    from studio.engine.generate import generate

    free = generate(request_for(case, model, (), steps, cfg), cache).images[0]
    spec = control_spec(controlnet, case)
    led = generate(request_for(case, model, (spec,), steps, cfg), cache).images[0]
    return led, free


def controlnet_ref(kind: str, folder: Path | None) -> str:
    return f"demo-{kind}" if folder is None else str(folder / kind)


def evaluate(
    model: str,
    kinds: list[str],
    n: int,
    steps: int = 20,
    folder: Path | None = None,
    out_dir: Path | None = None,
) -> str:
    from studio.engine.pipelines import PipelineCache

    cache = PipelineCache()
    rows = ["| ControlNet | metric | with control | without control | n |", "|---|---|---|---|---|"]
    for kind in kinds:
        scored: dict[str, list[tuple[float, float]]] = {m: [] for m, _, _ in METRICS[kind]}
        sheet = []
        for case in cases(kind, n):
            led, free = generate_pair(cache, case, model, controlnet_ref(kind, folder), steps)
            s_led, s_free = score(kind, case, led), score(kind, case, free)
            for m in scored:
                scored[m].append((s_led[m], s_free[m]))
            sheet.append((case.control, led, free))
        for key, label, higher in METRICS[kind]:
            led_mean, free_mean = np.mean(scored[key], axis=0)
            arrow = "↑" if higher else "↓"
            rows.append(
                f"| {kind} | {label} {arrow} | {led_mean:.3f} | {free_mean:.3f} | {len(scored[key])} |"
            )
        if out_dir is not None:
            _sheet(sheet, out_dir / f"controlnet_{kind}.png")
    return "\n".join(rows)


def _sheet(rows: list[tuple[Image.Image, ...]], path: Path) -> None:
    # columns: control map, with control, without control (one case per row, up to 12)
    rows = rows[:12]
    sheet = Image.new("RGB", (3 * SIZE, len(rows) * SIZE), (128, 128, 128))
    for r, images in enumerate(rows):
        for c, im in enumerate(images):
            sheet.paste(im.convert("RGB").resize((SIZE, SIZE)), (c * SIZE, r * SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


# ---------------------------------------------------------------- speed


def speed(model: str, n: int, steps: int = 20, folder: Path | None = None) -> str:
    """Seconds per image at `steps`, 128x128, without ControlNet, with one, and with two."""
    import torch

    from studio.engine.control import preprocess
    from studio.engine.generate import generate
    from studio.engine.pipelines import PipelineCache

    cache = PipelineCache()
    pose_case = cases("pose", 1)[0]
    canny_case = cases("canny", 1)[0]
    t0 = time.perf_counter()
    for _ in range(n):
        preprocess(canny_case.scene.image, "canny", (SIZE, SIZE))
    canny_s = (time.perf_counter() - t0) / n
    setups = {
        "no ControlNet": (),
        "canny (preprocessor canny)": (
            _spec(controlnet_ref("canny", folder), canny_case.scene.image, "canny"),
        ),
        "depth (map, preprocessor none)": (
            control_spec(controlnet_ref("depth", folder), cases("depth", 1)[0]),
        ),
        "pose (skeleton, preprocessor none)": (
            control_spec(controlnet_ref("pose", folder), pose_case),
        ),
        "canny + pose": (
            _spec(controlnet_ref("canny", folder), pose_case.scene.image, "canny"),
            control_spec(controlnet_ref("pose", folder), pose_case),
        ),
    }
    lines = ["| setup | s / image |", "|---|---|"]
    for name, controls in setups.items():
        req = request_for(pose_case, model, controls, steps)
        generate(req, cache)  # warm-up: loads weights and builds the pipeline
        t0 = time.perf_counter()
        for _ in range(n):
            generate(req, cache)
        lines.append(f"| {name} | {(time.perf_counter() - t0) / n:.3f} |")
    lines.append(f"| Canny preprocessor alone (128 px) | {canny_s:.4f} |")
    lines.append(
        f"\n{steps} steps, DPM++ 2M Karras, CFG 7, 128x128, batch 1, "
        f"{torch.get_num_threads()} torch threads, mean of {n}"
    )
    return "\n".join(lines)


def _spec(ref: str, image: Image.Image, preprocessor: str):
    from studio.engine.request import ControlSpec

    return ControlSpec(model=ref, image=image, preprocessor=preprocessor)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="demo", help="'demo' or a diffusers folder")
    p.add_argument("--controlnets", type=Path, default=None,
                   help="folder with canny/, depth/, pose/ (default: the shipped demo ones)")  # fmt: skip
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--n", type=int, default=24, help="held-out scenes per ControlNet")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=None, help="save contact sheets here")
    p.add_argument("--speed", type=int, default=0, help="only time N images per setup")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    try:
        if a.speed:
            print(speed(a.model, a.speed, a.steps, a.controlnets))
            return
        print(evaluate(a.model, a.kinds, a.n, a.steps, a.controlnets, a.out_dir))
    except ValueError as e:
        raise SystemExit(str(e)) from e


if __name__ == "__main__":
    main()
