"""Soak: many mixed jobs in one process on the demo model; does memory stay flat? (a script)

    python benchmarks/soak.py [--jobs 300] [--steps 6] [--size 128] [--outdir FOLDER]

Each job goes through the engine as the GUI worker runs it: generate() on one PipelineCache,
then save_result() into an output folder (a temporary one unless --outdir). The jobs cycle
through txt2img, img2img, inpaint (plain and "only masked") and ControlNet (the shipped demo
canny, depth and pose units, alone and two together) with a different sampler each time.
Every 25 jobs it prints the process's resident memory (psutil if installed, else VmRSS from
/proc/self/status); at the end, a table per kind of job and the RSS curve, with the growth from
the first checkpoint (model, pipelines and ControlNets loaded by then) to the last.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a soak must never download anything
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw  # noqa: E402

from studio.engine.request import ControlSpec, GenerationRequest  # noqa: E402

REPORT_EVERY = 25
SAMPLERS = (
    "Euler",
    "Euler a",
    "DDIM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ 2M SDE Karras",
    "DPM++ SDE Karras",
    "UniPC",
    "LMS",
    "Heun",
)
PROMPTS = (
    "a red circle on the left, on a blue background",
    "a small green square at the top, on a yellow background",
    "a large white triangle, on a black background",
    "two blue circles, on a grey background",
)


def rss_mb() -> float:
    """Resident set size of this process, in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    return float("nan")


def rss_source() -> str:
    try:
        import psutil  # noqa: F401

        return "psutil"
    except ImportError:
        return "/proc/self/status VmRSS"


# ---- inputs -----------------------------------------------------------------------------------
def scene(size: int, k: int) -> Image.Image:
    """A simple picture that changes with k: init images and the canny unit's source."""
    image = Image.new("RGB", (size, size), ((40 * k) % 256, 90, 160))
    draw = ImageDraw.Draw(image)
    r = size // 5 + k % 7
    cx, cy = size // 3 + k % 11, size // 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(220, 40, 40))
    draw.rectangle((size * 2 // 3, size // 6, size * 5 // 6, size // 3), fill=(240, 240, 60))
    return image


def mask(size: int, k: int) -> Image.Image:
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).rectangle(
        (size // 4 + k % 5, size // 4, size * 3 // 4, size * 3 // 4 - k % 5), fill=255
    )
    return image


def depth_map(size: int, k: int) -> Image.Image:
    """Near at the bottom, far at the top, with a nearer disc: the depth unit's map."""
    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    draw = ImageDraw.Draw(image)
    r = size // 6
    cx = size // 2 + (k % 9) - 4
    draw.ellipse((cx - r, size // 2 - r, cx + r, size // 2 + r), fill=(250, 250, 250))
    return image


def pose_map(size: int, k: int) -> Image.Image:
    """A stick figure on black, roughly as the pose preprocessor draws one."""
    image = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    x = size // 2 + (k % 9) - 4
    head, hip = size // 5, size * 3 // 5
    width = max(2, size // 40)
    draw.line((x, head, x, hip), fill=(255, 0, 0), width=width)
    draw.line(
        (x - size // 6, size * 2 // 5, x + size // 6, size * 2 // 5), fill=(0, 255, 0), width=width
    )
    draw.line((x, hip, x - size // 8, size * 9 // 10), fill=(0, 0, 255), width=width)
    draw.line((x, hip, x + size // 8, size * 9 // 10), fill=(255, 255, 0), width=width)
    return image


def canny_unit(size: int, k: int) -> ControlSpec:
    return ControlSpec(model="demo-canny", image=scene(size, k + 3), preprocessor="canny")


def depth_unit(size: int, k: int) -> ControlSpec:
    return ControlSpec(model="demo-depth", image=depth_map(size, k), preprocessor="none")


def pose_unit(size: int, k: int) -> ControlSpec:
    return ControlSpec(model="demo-pose", image=pose_map(size, k), preprocessor="none", weight=0.8)


# ---- the job plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    kind: str
    request: GenerationRequest


def job(k: int, size: int, steps: int) -> Job:
    """Job k of the mix: the kinds rotate, the sampler and prompt rotate out of step with them."""
    base = GenerationRequest(
        model="demo",
        prompt=PROMPTS[k % len(PROMPTS)],
        negative_prompt="blurry" if k % 3 == 0 else "",
        sampler=SAMPLERS[k % len(SAMPLERS)],
        steps=steps,
        cfg_scale=5.0 + k % 4,
        seed=1000 + k,
        width=size,
        height=size,
    )
    kinds = (
        ("txt2img", {}),
        ("img2img", {"mode": "img2img", "init_image": scene(size, k), "strength": 0.6}),
        ("inpaint", {"mode": "inpaint", "init_image": scene(size, k), "mask": mask(size, k)}),
        ("txt2img + canny", {"controls": (canny_unit(size, k),)}),
        (
            "inpaint only masked",
            {
                "mode": "inpaint",
                "init_image": scene(size, k),
                "mask": mask(size, k),
                "inpaint_only_masked": True,
                "inpaint_padding": 8,
            },
        ),
        ("txt2img + depth", {"controls": (depth_unit(size, k),)}),
        (
            "img2img + pose",
            {
                "mode": "img2img",
                "init_image": scene(size, k),
                "strength": 0.8,
                "controls": (pose_unit(size, k),),
            },
        ),
        ("txt2img + canny + pose", {"controls": (canny_unit(size, k), pose_unit(size, k))}),
        ("txt2img batch 2", {"batch_size": 2}),
    )
    kind, changes = kinds[k % len(kinds)]
    return Job(kind, base.with_(**changes))


# ---- run ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=128, help="pixels a side (demo: 128)")
    parser.add_argument("--outdir", type=Path, help="default: a temporary folder, removed after")
    args = parser.parse_args()

    import torch

    from studio.engine.generate import generate
    from studio.engine.output import OutputFolder, save_result
    from studio.engine.pipelines import PipelineCache

    print(
        f"soak: {args.jobs} jobs, {args.steps} steps, {args.size}x{args.size}, demo model; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; RSS from {rss_source()}",
        flush=True,
    )
    rss_start = rss_mb()
    with tempfile.TemporaryDirectory(prefix="studio-soak-") as tmp:
        folder = OutputFolder(args.outdir or tmp)
        cache = PipelineCache()
        started = time.perf_counter()
        cache.load("demo")
        load_s = time.perf_counter() - started
        print(f"RSS {rss_start:.0f} MiB at start, {rss_mb():.0f} MiB with the demo model loaded "
              f"({load_s:.1f} s)", flush=True)  # fmt: skip
        print(f"{'jobs':>5} {'RSS MiB':>8} {'vs first':>9} {'s/job':>6} {'files':>6}", flush=True)

        times: dict[str, list[float]] = defaultdict(list)
        curve: list[tuple[int, float]] = []
        saved = 0
        errors: list[str] = []
        window_started = time.perf_counter()
        for k in range(args.jobs):
            planned = job(k, args.size, args.steps)
            t0 = time.perf_counter()
            try:
                result = generate(planned.request, cache, preview_every=0)
                saved += len(save_result(result, folder))
            except Exception as e:  # a soak reports failures instead of stopping at the first
                errors.append(f"job {k + 1} ({planned.kind}, {planned.request.sampler}): {e}")
            times[planned.kind].append(time.perf_counter() - t0)
            done = k + 1
            if done % REPORT_EVERY == 0 or done == args.jobs:
                rss = rss_mb()
                curve.append((done, rss))
                per_job = (time.perf_counter() - window_started) / (
                    REPORT_EVERY if done % REPORT_EVERY == 0 else done % REPORT_EVERY
                )
                window_started = time.perf_counter()
                print(
                    f"{done:>5} {rss:>8.0f} {rss - curve[0][1]:>+9.0f} {per_job:>6.2f} {saved:>6}",
                    flush=True,
                )
        files = sum(1 for p in Path(folder.root).rglob("*") if p.is_file())
        unreadable = 0
        for path in Path(folder.root).rglob("*.png"):
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception:
                unreadable += 1

    total_s = sum(sum(v) for v in times.values())
    print()
    print(f"{'kind':<24} {'jobs':>5} {'mean s':>7} {'max s':>7}")
    for kind, values in times.items():
        print(f"{kind:<24} {len(values):>5} {statistics.mean(values):>7.2f} {max(values):>7.2f}")
    print(f"{'all':<24} {sum(len(v) for v in times.values()):>5} "
          f"{total_s / max(args.jobs, 1):>7.2f}")  # fmt: skip
    print()
    first, last = curve[0], curve[-1]
    peak = max(rss for _, rss in curve)
    tail = curve[len(curve) // 2 :]
    print(f"RSS curve (jobs: MiB): {', '.join(f'{n}: {rss:.0f}' for n, rss in curve)}")
    print(f"RSS after job {first[0]}: {first[1]:.0f} MiB; after job {last[0]}: {last[1]:.0f} MiB; "
          f"peak {peak:.0f} MiB; growth {last[1] - first[1]:+.0f} MiB over "
          f"{last[0] - first[0]} jobs")  # fmt: skip
    if len(tail) >= 2:
        slope = (tail[-1][1] - tail[0][1]) / max(tail[-1][0] - tail[0][0], 1) * 100
        print(f"second half: {slope:+.1f} MiB per 100 jobs")
    print(f"images saved: {saved} ({files} files, {unreadable} unreadable); errors: {len(errors)}")
    for line in errors[:20]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
