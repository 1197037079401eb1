"""Measure the demo model's prompt adherence on held-out captions; print markdown tables.

    python -m studio.demo.evaluate --cfg 1 7 --single 100 --pairs 50
    python -m studio.demo.evaluate --speed 10     # seconds per image at 20 steps, 128x128
    python -m studio.demo.evaluate --vae-ceiling  # the checker on VAE round trips: the ceiling
    python -m studio.demo.evaluate --plain-diffusers --cfg 7 --pairs 0  # as other tools load it

Captions come from a seed range never used in training; the checker reads each image back with
colour segmentation and a shape classifier built from the world's own renderings.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.demo import world
from studio.demo.checker import Checker, Reading

EVAL_SEED = 9_000_000  # disjoint from training scenes (studio.demo.train.TRAIN_SEED_BASE)
SINGLE_ATTRIBUTES = ("colour", "shape", "size", "position", "background", "count")
PAIR_ATTRIBUTES = ("both colours", "both shapes", "binding", "positions", "background")


@dataclass(frozen=True)
class Case:
    prompt: str
    layout: world.Layout


def single_cases(n: int, seed: int = EVAL_SEED) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        colour, bg = rng.sample(world.COLOURS, 2)
        layout = world.single_object_layout(
            rng.choice(world.SHAPES),
            colour,
            bg,
            size=rng.choice(world.SIZES),
            position=rng.choice(world.POSITIONS),
            seed=rng.randrange(10**9),
        )
        cases.append(Case(world.caption(layout, rng, omit=False), layout))
    return cases


def pair_cases(n: int, seed: int = EVAL_SEED + 1) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        layout = world.sample_layout(rng)
        objs = layout.objects
        if len(objs) != 2 or any(o.kind == world.FIGURE for o in objs):
            continue
        cases.append(Case(world.caption(layout, rng, omit=False), layout))
    return cases


def score_single(case: Case, r: Reading) -> dict[str, bool]:
    want = case.layout.objects[0]
    got = r.by_colour(want.colour)
    return {
        "colour": got is not None,
        "shape": got is not None and got.kind == want.kind,
        "size": got is not None and got.size == want.size,
        "position": got is not None and got.position == want.position,
        "background": r.background == case.layout.background,
        "count": len(r.objects) == 1,
    }


def score_pair(case: Case, r: Reading) -> dict[str, bool]:
    wants = case.layout.objects
    gots = [r.by_colour(w.colour) for w in wants]
    kinds = {o.kind for o in r.objects}
    return {
        "both colours": all(g is not None for g in gots),
        "both shapes": all(w.kind in kinds for w in wants),
        "binding": all(
            g is not None and g.kind == w.kind for g, w in zip(gots, wants, strict=True)
        ),
        "positions": all(
            g is not None and g.position == w.position for g, w in zip(gots, wants, strict=True)
        ),
        "background": r.background == case.layout.background,
    }


def load_pipeline(model: Path, threads: int | None = None):
    import torch
    from diffusers import StableDiffusionPipeline

    from studio.engine.request import GenerationRequest, ScheduleOptions
    from studio.engine.samplers import make_scheduler

    if threads:
        torch.set_num_threads(threads)
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model), local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    # The app's default sampler ("DPM++ 2M Karras"), built from the model's config as the app does.
    pipe.scheduler = make_scheduler(
        pipe.scheduler.config, GenerationRequest().sampler, ScheduleOptions()
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_plain_pipeline(model: Path, threads: int | None = None):
    """The model as any diffusers user loads it: DiffusionPipeline and the scheduler it ships."""
    import torch
    from diffusers import DiffusionPipeline

    if threads:
        torch.set_num_threads(threads)
    pipe = DiffusionPipeline.from_pretrained(str(model), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(
    pipe,
    prompts: list[str],
    seeds: list[int],
    cfg: float,
    steps: int = 20,
    negative: list[str] | None = None,
    batch: int = 8,
):
    import torch

    images = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch]]
        out = pipe(
            prompts[i : i + batch],
            negative_prompt=negative[i : i + batch] if negative else None,
            num_inference_steps=steps,
            guidance_scale=cfg,
            generator=gens,
            height=world.NATIVE_SIZE,
            width=world.NATIVE_SIZE,
        )
        images.extend(out.images)
    return images


def _table(
    title: str, attrs: tuple[str, ...], rows: dict[float | str, list[dict[str, bool]]]
) -> str:
    """Rows keyed by CFG (a number) or by a label."""
    lines = [f"**{title}** (n = {len(next(iter(rows.values())))})", ""]
    lines.append("| CFG | " + " | ".join(attrs) + " |")
    lines.append("|---|" + "---|" * len(attrs))
    for key, scores in rows.items():
        cells = [f"{100 * np.mean([s[a] for s in scores]):.0f}%" for a in attrs]
        label = key if isinstance(key, str) else f"{key:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sheet(images, path: Path, cols: int = 10) -> None:
    from PIL import Image

    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 128, rows * 128), (128, 128, 128))
    for i, im in enumerate(images):
        sheet.paste(im.resize((128, 128)), ((i % cols) * 128, (i // cols) * 128))
    sheet.save(path)


def evaluate(
    model: Path,
    cfgs: list[float],
    n_single: int,
    n_pairs: int,
    steps: int = 20,
    out_dir: Path | None = None,
    plain: bool = False,
) -> str:
    pipe = load_plain_pipeline(model) if plain else load_pipeline(model)
    checker = Checker()
    singles, pairs = single_cases(n_single), pair_cases(n_pairs)
    single_rows: dict[float, list[dict[str, bool]]] = {}
    pair_rows: dict[float, list[dict[str, bool]]] = {}
    for cfg in cfgs:
        for cases, rows, scorer, name in (
            (singles, single_rows, score_single, "single"),
            (pairs, pair_rows, score_pair, "pairs"),
        ):
            if not cases:
                continue
            seeds = [EVAL_SEED + i for i in range(len(cases))]
            images = generate(pipe, [c.prompt for c in cases], seeds, cfg, steps)
            rows[cfg] = [scorer(c, checker.read(im)) for c, im in zip(cases, images, strict=True)]
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                _sheet(images, out_dir / f"{name}_cfg{cfg:g}.png")
    parts = []
    if single_rows:
        parts.append(_table("Single object", SINGLE_ATTRIBUTES, single_rows))
    if pair_rows:
        parts.append(_table("Two objects", PAIR_ATTRIBUTES, pair_rows))
    return "\n\n".join(parts)


def vae_ceiling(model: Path, n_single: int) -> str:
    """Score the checker on the VAE's own round trip of the ground-truth scenes.

    No UNet can beat what its VAE can draw: this is the ceiling of the single-object table.
    """
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    vae = AutoencoderKL.from_pretrained(str(model), subfolder="vae", local_files_only=True)
    vae.eval()
    checker = Checker()
    scores = []
    for case in single_cases(n_single):
        truth = world.render(case.layout).image
        x = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            y = vae.decode(vae.encode(x).latent_dist.mean).sample[0].clamp(-1, 1)
        pixels = ((y.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        scores.append(score_single(case, checker.read(Image.fromarray(pixels))))
    return _table("Single object, VAE round trip", SINGLE_ATTRIBUTES, {"no UNet": scores})


def speed(model: Path, n: int, steps: int = 20, cfg: float = 7.0) -> str:
    pipe = load_pipeline(model)
    generate(pipe, ["a red circle"], [0], cfg, steps, batch=1)  # warm-up
    t0 = time.perf_counter()
    generate(pipe, ["a large red circle on the left, on a blue background"] * n,
             list(range(n)), cfg, steps, batch=1)  # fmt: skip
    per = (time.perf_counter() - t0) / n
    import torch

    return (
        f"{per:.2f} s per image ({steps} steps, DPM++ 2M Karras, CFG {cfg:g}, 128x128, "
        f"batch 1, {torch.get_num_threads()} torch threads)"
    )


def main(argv: list[str] | None = None) -> None:
    from studio.paths import DEMO_MODEL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=DEMO_MODEL)
    p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 7.0])
    p.add_argument("--single", type=int, default=100, help="single-object captions")
    p.add_argument("--pairs", type=int, default=50, help="two-object captions")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=None, help="save contact sheets here")
    p.add_argument("--speed", type=int, default=0, help="only time N images")
    p.add_argument("--vae-ceiling", action="store_true", help="only score VAE round trips")
    p.add_argument(
        "--plain-diffusers",
        action="store_true",
        help="score DiffusionPipeline.from_pretrained(MODEL) with the scheduler the model ships,\n"
        "not the app's sampler (the same captions and seeds)",
    )
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.speed:
        print(speed(a.model, a.speed, a.steps))
        return
    if a.vae_ceiling:
        print(vae_ceiling(a.model, a.single))
        return
    print(evaluate(a.model, a.cfg, a.single, a.pairs, a.steps, a.out_dir, a.plain_diffusers))


if __name__ == "__main__":
    main()
