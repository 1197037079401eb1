"""What generate() costs over a bare diffusers call: same pipeline, settings and seed, one run.

    python benchmarks/engine_overhead.py [--model demo] [--steps 20] [--repeats 5]

Runs are interleaved (bare, engine, engine+previews, bare, ...) so drift in machine load hits
all three alike; the ratios use medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest
from studio.engine.samplers import make_scheduler


def bare_call(cache: PipelineCache, request: GenerationRequest) -> float:
    pipe = cache.pipeline(request)
    pipe.scheduler = make_scheduler(cache.scheduler_config, request.sampler, request.schedule)
    generators = [torch.Generator().manual_seed(request.seed)]
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps,
            guidance_scale=request.cfg_scale,
            width=request.width,
            height=request.height,
            generator=generators,
            output_type="pil",
        )
    return time.perf_counter() - started


def engine_call(cache: PipelineCache, request: GenerationRequest, previews: bool) -> float:
    started = time.perf_counter()
    generate(request, cache, on_step=lambda update: None, preview_every=1 if previews else 0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cache = PipelineCache()
    info = cache.load(args.model)
    request = GenerationRequest(
        model=args.model,
        prompt="a large red circle on the left, on a blue background",
        negative_prompt="green",
        steps=args.steps,
        seed=1,
        width=info.native_size,
        height=info.native_size,
    )
    engine_call(cache, request, previews=True)  # warm-up: first-call allocations and caches
    bare_call(cache, request)
    times: dict[str, list[float]] = {"bare": [], "engine": [], "engine+previews": []}
    for _ in range(args.repeats):
        times["bare"].append(bare_call(cache, request))
        times["engine"].append(engine_call(cache, request, previews=False))
        times["engine+previews"].append(engine_call(cache, request, previews=True))
    bare = statistics.median(times["bare"])
    print(
        f"model {info.name}, {info.native_size}px, {args.steps} steps, {cache.device}, "
        f"{args.repeats} repeats"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:16} median {median:7.3f} s   ratio {median / bare:5.3f}")


if __name__ == "__main__":
    main()
