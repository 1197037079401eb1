"""How the prompt language steers the demo model, counted by the image checker (a script, slow).

For 32 seeds at 8 steps: how often the checker finds the red object of a three-object prompt,
and how much of it, with "red", "(red:1.5)" and "(red:0.6)"; and how often both objects of a
two-object prompt appear with AND versus the two phrases written one after the other.
Usage: python benchmarks/prompt_effects.py [--seeds 32] [--steps 8]
"""

from __future__ import annotations

import argparse
import time

from studio.demo.checker import Checker
from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest

WEIGHTED = "a green star and a {} triangle and a blue ring"
COMPOSED = ("a red circle AND a blue square", "a red circle a blue square")


def readings(cache: PipelineCache, checker: Checker, prompt: str, seeds: int, steps: int):
    out = []
    for start in range(0, seeds, 16):
        batch = min(16, seeds - start)
        request = GenerationRequest(prompt=prompt, steps=steps, seed=1000 + start, batch_size=batch)
        out += [checker.read(image) for image in generate(request, cache).images]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    cache, checker = PipelineCache(), Checker()
    started = time.perf_counter()
    print(f"{'prompt':58} {'red found':>9} {'red area':>9} {'both':>5}")
    prompts = [WEIGHTED.format(w) for w in ("red", "(red:1.5)", "(red:0.6)")] + list(COMPOSED)
    for prompt in prompts:
        found = readings(cache, checker, prompt, args.seeds, args.steps)
        red = [r.by_colour("red") for r in found]
        both = sum(
            o is not None and r.by_colour("blue") is not None
            for o, r in zip(red, found, strict=True)
        )
        area = sum(o.area for o in red if o is not None)
        print(f"{prompt:58} {sum(o is not None for o in red):>9} {area:>9} {both:>5}", flush=True)
    print(f"{args.seeds} seeds, {args.steps} steps, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
