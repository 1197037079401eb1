"""The engine at real model sizes, no download: SD 1.5 and SDXL built from the shipped configs
(resources/configs) with random weights, timed against bare diffusers calls on the same modules.

    python benchmarks/real_size.py                      # CPU: 512², 1 step; CUDA: 512² and 1024², 20 steps
    python benchmarks/real_size.py --models sd15 --repeats 5 --steps 2

Runs are interleaved (bare, engine, bare, engine, ...) so drift in machine load hits both alike;
ratios use medians. Per device:
- CPU: fp32, 512², the default attention (SDPA); peak RSS of the process after each model.
- CUDA: fp16 (bf16 where the GPU has it), 512² and 1024², variants SDPA (diffusers' default),
  classic attention (no SDPA), channels-last, torch.compile of the UNet; it/s and peak memory.
- MPS: fp16, 512², SDPA.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.engine.configs import config_dir, tokenizers_for  # noqa: E402
from studio.engine.generate import generate  # noqa: E402
from studio.engine.models import ModelInfo  # noqa: E402
from studio.engine.pipelines import PipelineCache  # noqa: E402
from studio.engine.request import GenerationRequest  # noqa: E402
from studio.engine.samplers import make_scheduler  # noqa: E402

MODELS = {
    # name: (config folder, family, native size, cross-attention width)
    "sd15": ("sd15", "sd1", 512, 768),
    "sdxl": ("sdxl-base", "sdxl", 1024, 2048),
}
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
NEGATIVE = "blurry"


# ---- building a random model from its shipped config ---------------------------------------
def build_random(name: str, dtype: torch.dtype) -> Any:
    """The pipeline of `name` with random weights, on the CPU, in `dtype` (a few GB: no copy kept)."""
    import diffusers
    import transformers

    folder = config_dir(MODELS[name][0])
    index = json.loads((folder / "model_index.json").read_text())
    torch.manual_seed(0)
    parts: dict[str, Any] = dict(tokenizers_for(MODELS[name][0]))
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        library, class_name = spec
        if component in parts:
            continue
        if library == "diffusers":
            cls = getattr(diffusers, class_name)
            config = cls.load_config(folder / component)
            parts[component] = cls.from_config(config)
        elif library == "transformers":
            cls = getattr(transformers, class_name)
            config = cls.config_class.from_pretrained(folder / component)
            parts[component] = cls(config)
    for component in ("safety_checker", "feature_extractor", "image_encoder"):
        if component in index:
            parts[component] = None
    pipeline_cls = getattr(diffusers, index["_class_name"])
    kwargs = {"requires_safety_checker": False} if "safety_checker" in index else {}
    pipe = pipeline_cls(**parts, **kwargs)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def model_info(name: str) -> ModelInfo:
    _, family, native, cross = MODELS[name]
    return ModelInfo(
        ref=f"random:{name}",
        name=f"{name} (random weights)",
        path=None,
        kind="diffusers",
        family=family,
        native_size=native,
        hashable=False,
        cross_attention_dim=cross,
    )


# ---- one timed call each way ----------------------------------------------------------------
class Timing:
    def __init__(self) -> None:
        self.steps: list[float] = []

    def step(self) -> None:
        self.steps.append(time.perf_counter())

    def it_per_s(self) -> float | None:
        # steady state: between the first and the last step's end (no encode, no decode)
        if len(self.steps) < 3:
            return None
        return (len(self.steps) - 1) / (self.steps[-1] - self.steps[0])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def bare_call(cache: PipelineCache, request: GenerationRequest) -> tuple[float, Timing]:
    pipe = cache._base  # the pipeline as built: no engine code between it and diffusers
    pipe.scheduler = make_scheduler(cache.scheduler_config, request.sampler, request.schedule)
    timing = Timing()

    def on_step(pipe: Any, i: int, t: Any, tensors: dict) -> dict:
        sync(cache.device)
        timing.step()
        return tensors

    generator = torch.Generator(cache.device).manual_seed(request.seed)
    sync(cache.device)
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            num_inference_steps=request.steps,
            guidance_scale=request.cfg_scale,
            width=request.width,
            height=request.height,
            generator=generator,
            callback_on_step_end=on_step,
            output_type="pil",
        )
    sync(cache.device)
    return time.perf_counter() - started, timing


def engine_call(cache: PipelineCache, request: GenerationRequest) -> tuple[float, Timing]:
    timing = Timing()

    def on_step(update: Any) -> None:
        sync(cache.device)
        timing.step()

    sync(cache.device)
    started = time.perf_counter()
    generate(request, cache, on_step=on_step, preview_every=0)
    sync(cache.device)
    return time.perf_counter() - started, timing


# ---- variants (CUDA) --------------------------------------------------------------------------
def variant(pipe: Any, name: str) -> Callable[[], None]:
    """Switch `pipe`'s modules to variant `name`; returns the function that undoes it."""
    unet, vae = pipe.unet, pipe.vae
    if name == "sdpa":
        return lambda: None
    if name == "classic-attn":
        from diffusers.models.attention_processor import AttnProcessor

        saved = unet.attn_processors
        unet.set_attn_processor(AttnProcessor())
        return lambda: unet.set_attn_processor(saved)
    if name == "channels-last":
        unet.to(memory_format=torch.channels_last)
        vae.to(memory_format=torch.channels_last)

        def undo() -> None:
            unet.to(memory_format=torch.contiguous_format)
            vae.to(memory_format=torch.contiguous_format)

        return undo
    if name == "compile":
        unet.compile()  # in place: every pipeline sharing this UNet runs the compiled one

        def uncompile() -> None:
            unet._compiled_call_impl = None

        return uncompile
    raise ValueError(f"unknown variant {name!r}")


def peak_bytes(device: str) -> int:
    """CUDA: peak allocated since the last reset; MPS: the driver's now; CPU: the process's peak RSS."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    if device == "mps":
        return torch.mps.driver_allocated_memory()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


PEAK_KIND = {"cuda": "allocated", "mps": "driver", "cpu": "process RSS"}


def run_case(cache: PipelineCache, request: GenerationRequest, repeats: int) -> dict[str, Any]:
    engine_call(cache, request)  # warm-up: first-call allocations, compilation, caches
    bare_call(cache, request)
    times: dict[str, list[float]] = {"bare": [], "engine": []}
    rates: dict[str, list[float]] = {"bare": [], "engine": []}
    peaks = {"bare": 0, "engine": 0}
    for _ in range(repeats):
        for name, call in (("bare", bare_call), ("engine", engine_call)):
            reset_peak(cache.device)
            elapsed, timing = call(cache, request)
            peaks[name] = max(peaks[name], peak_bytes(cache.device))
            times[name].append(elapsed)
            if timing.it_per_s() is not None:
                rates[name].append(timing.it_per_s())
    bare, engine = statistics.median(times["bare"]), statistics.median(times["engine"])
    return {
        "bare_s": bare,
        "engine_s": engine,
        "ratio": engine / bare,
        "bare_it_s": statistics.median(rates["bare"]) if rates["bare"] else None,
        "engine_it_s": statistics.median(rates["engine"]) if rates["engine"] else None,
        "bare_peak_gib": peaks["bare"] / 2**30,
        "engine_peak_gib": peaks["engine"] / 2**30,
    }


def defaults(device: str) -> dict[str, Any]:
    if device.startswith("cuda"):
        return {
            "sizes": [512, 1024],
            "steps": 20,
            "repeats": 3,
            "variants": ["sdpa", "classic-attn", "channels-last", "compile"],
        }
    if device == "mps":
        return {"sizes": [512], "steps": 20, "repeats": 2, "variants": ["sdpa"]}
    return {"sizes": [512], "steps": 1, "repeats": 2, "variants": ["sdpa"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sd15,sdxl")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best)")
    parser.add_argument("--sizes", default=None, help="comma-separated sides, e.g. 512,1024")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--variants", default=None, help="sdpa,classic-attn,channels-last,compile")
    parser.add_argument("--sampler", default="Euler")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads")
    parser.add_argument(
        "--dtype", default=None, help="float16, bfloat16 or float32 (default: the engine's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # on a shared CPU, spinning threads thrash

    dtype = getattr(torch, args.dtype) if args.dtype else None
    cache = PipelineCache(args.device, dtype=dtype, memory_policy="none")
    plan = defaults(cache.device)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else plan["sizes"]
    steps = args.steps or plan["steps"]
    repeats = args.repeats or plan["repeats"]
    variants = args.variants.split(",") if args.variants else plan["variants"]
    print(
        f"device {cache.device}, {str(cache.dtype).replace('torch.', '')}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, "
        f"{steps} steps, {repeats} repeats, sampler {args.sampler}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        started = time.perf_counter()
        pipe = build_random(name, cache.dtype)
        cache.adopt(pipe, model_info(name))
        print(
            f"\n{name}: built in {time.perf_counter() - started:.0f} s, {cache.describe()}",
            flush=True,
        )
        for size in sizes:
            request = GenerationRequest(
                model=cache.info.ref,
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                sampler=args.sampler,
                steps=steps,
                seed=1,
                width=size,
                height=size,
            )
            for name_v in variants:
                undo = variant(pipe, name_v)
                try:
                    row = run_case(cache, request, repeats)
                except Exception as exc:  # report and go on: one variant must not end the run
                    print(f"  {size}² {name_v}: failed: {type(exc).__name__}: {exc}", flush=True)
                    continue
                finally:
                    undo()
                row.update(model=name, size=size, variant=name_v, device=cache.device)
                rows.append(row)
                rate = (
                    f"  it/s bare {row['bare_it_s']:.2f} engine {row['engine_it_s']:.2f}"
                    if row["bare_it_s"]
                    else ""
                )
                print(
                    f"  {size}² {name_v:13} bare {row['bare_s']:7.2f} s  engine "
                    f"{row['engine_s']:7.2f} s  ratio {row['ratio']:.3f}{rate}  peak "
                    f"{row['bare_peak_gib']:.2f} / {row['engine_peak_gib']:.2f} GiB "
                    f"({PEAK_KIND[cache.device.split(':')[0]]})",
                    flush=True,
                )
        cache.unload()
        del pipe
        gc.collect()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
