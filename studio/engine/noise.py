"""Where a job's random noise comes from, as A1111 draws it (`modules/rng.py`).

Every image of a batch has its own generator seeded `seed + k`, so image k can be made again
alone. Its first draw is the initial noise; later draws are the sampler's per-step noise (Euler
a, DDPM, SDE samplers), from a generator re-seeded with `seed + ENSD` when ENSD is set.

- CPU: torch's CPU generator (the same numbers on every machine).
- GPU: torch's generator on the CUDA device, A1111's default; on a machine without CUDA it is
  emulated by NV, which makes the same numbers on the CPU.
- NV: A1111's Philox emulation of CUDA's generator (studio.engine.philox).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch

from studio.engine.philox import PhiloxGenerator
from studio.engine.request import RNG_SOURCES


def _generator(source: str, seed: int, device: str) -> Any:
    if source == "NV":
        return PhiloxGenerator(seed)
    return torch.Generator(device=device).manual_seed(seed)


class ImageNoise:
    def __init__(self, seeds: list[int], source: str, device: str, ensd: int = 0):
        if source not in RNG_SOURCES:
            raise ValueError(
                f"Unknown RNG source {source!r}; choose one of {', '.join(RNG_SOURCES)}."
            )
        if source == "GPU" and not device.startswith("cuda"):
            source = "NV"  # CUDA's numbers without CUDA
        self.source = source
        self.device = device if source == "GPU" else "cpu"
        self.seeds = seeds
        self.ensd = ensd
        self.generators = [_generator(source, s, self.device) for s in seeds]
        self.first = True

    @property
    def needs_patch(self) -> bool:
        """False when diffusers' own draws from per-image CPU generators are already right."""
        return self.source != "CPU" or self.ensd != 0

    def torch_generators(self) -> list[torch.Generator]:
        """Generators for the pipeline's `generator=` (VAE sampling, and the noise unless patched)."""
        device = "cuda" if self.source == "GPU" else "cpu"
        return [torch.Generator(device=device).manual_seed(s) for s in self.seeds]

    def randn(self, shape: tuple[int, ...], dtype: Any = None, device: Any = None) -> torch.Tensor:
        """One draw per image: `shape[0]` rows, one per seed."""
        rows = int(shape[0])
        if rows != len(self.generators):
            raise RuntimeError(f"Noise for {rows} rows asked of {len(self.generators)} images.")
        one = tuple(int(s) for s in shape[1:])
        if self.source == "NV":
            draws = [torch.from_numpy(g.randn(one)) for g in self.generators]
        else:
            draws = [
                torch.randn(one, generator=g, device=self.device, dtype=torch.float32)
                for g in self.generators
            ]
        if self.first:
            self.first = False
            if self.ensd:  # A1111 re-seeds after the initial noise
                self.generators = [
                    _generator(self.source, s + self.ensd, self.device) for s in self.seeds
                ]
        return torch.stack(draws).to(device=device, dtype=dtype or torch.float32)

    @contextlib.contextmanager
    def patched(self, pipe: Any) -> Iterator[None]:
        """While the pipeline runs, its and its scheduler's `randn_tensor` draw from here."""
        if not self.needs_patch:
            yield
            return
        modules = {type(pipe).__module__, type(pipe.scheduler).__module__}
        saved = {}

        def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
            return self.randn(tuple(shape), dtype=dtype, device=device)

        for name in modules:
            module = sys.modules[name]
            if hasattr(module, "randn_tensor"):
                saved[name] = module.randn_tensor
                module.randn_tensor = randn_tensor
        try:
            yield
        finally:
            for name, original in saved.items():
                sys.modules[name].randn_tensor = original


def per_image_brownian_trees(scheduler: Any, seeds: list[int]) -> None:
    """The SDE sampler's Brownian tree per image (k-diffusion's batched tree), as A1111 seeds it."""
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = list(seeds)
        scheduler.noise_sampler = None
