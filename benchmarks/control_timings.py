"""Time each ControlNet preprocessor on this machine's CPU (a script, not a test).

    python benchmarks/control_timings.py [--repeats 5] [--threads 2] [--depth-model FOLDER]

Input: scikit-image's astronaut photograph resized to the output size (512x512 and 128x128).
"first" is the first call (imports and model loading included); "median" is the steady state.
Depth uses --depth-model, else the usual search (studio.engine.depth); when no real model is
found, a randomly initialised network with Depth Anything V2 Small's exact architecture is built
in a temporary folder: its outputs are noise, but its cost is that of the real model.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timings must never download anything
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from studio.engine.control import preprocess  # noqa: E402

SIZES = (512, 128)
PREPROCESSORS = ("none", "canny", "lineart", "pose", "depth")


def random_depth_anything_v2_small(folder: Path) -> Path:
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    # the configuration of depth-anything/Depth-Anything-V2-Small-hf (24.8 M parameters)
    backbone = Dinov2Config(
        hidden_size=384,
        num_attention_heads=6,
        num_hidden_layers=12,
        patch_size=14,
        image_size=518,
        out_indices=[9, 10, 11, 12],
        reshape_hidden_states=False,
        layerscale_value=1.0,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=384,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
        head_hidden_size=32,
        patch_size=14,
        depth_estimation_type="relative",
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config)
    print(
        f"(depth: random Depth Anything V2 Small, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)"
    )
    model.save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def depth_folder(explicit: str | None, scratch: Path) -> Path:
    from studio.engine.depth import resolve_depth_model

    try:
        folder = resolve_depth_model(explicit)
        print(f"(depth: {folder})")
        return folder
    except ValueError:
        if explicit:
            raise
        return random_depth_anything_v2_small(scratch / "depth-anything-v2-small-random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (depth)")
    parser.add_argument("--depth-model", default=None)
    args = parser.parse_args()

    import torch
    from skimage import data

    torch.set_num_threads(args.threads)
    photo = Image.fromarray(data.astronaut())
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        depth = depth_folder(args.depth_model, Path(scratch))
        print(f"{'preprocessor':<10} {'size':>9} {'first s':>9} {'median s':>9}")
        for name in PREPROCESSORS:
            for side in SIZES:
                image = photo.resize((side, side), Image.Resampling.LANCZOS)
                kwargs = {"depth_model": depth} if name == "depth" else {}
                times = []
                for _ in range(args.repeats + 1):
                    start = time.perf_counter()
                    preprocess(image, name, (side, side), **kwargs)
                    times.append(time.perf_counter() - start)
                first, rest = times[0], times[1:]
                print(
                    f"{name:<10} {side:>4}x{side:<4} {first:>9.3f} {statistics.median(rest):>9.3f}"
                )


if __name__ == "__main__":
    main()
