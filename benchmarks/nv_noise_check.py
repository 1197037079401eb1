"""NV noise against CUDA's own torch.randn, for the same seeds (needs an NVIDIA GPU).

A1111's "NV" random source emulates CUDA's generator on the CPU (studio.engine.philox) so that
images made on NVIDIA GPUs can be made again anywhere. This script draws latent-shaped noise
both ways and prints the largest difference per seed, and whether the draws after the first
(a sampler's per-step noise) agree as well. Usage: python benchmarks/nv_noise_check.py
"""

from __future__ import annotations

import sys

import torch

from studio.engine.noise import ImageNoise


def main() -> int:
    if not torch.cuda.is_available():
        print("No CUDA device: nothing to compare NV noise with.")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    shape = (1, 4, 64, 64)  # a 512x512 SD latent
    worst = 0.0
    for seed in (0, 1, 42, 123456789, 2**32 + 5, 2**63 - 1):
        nv = ImageNoise([seed], "NV", "cpu")
        cuda = torch.Generator(device="cuda").manual_seed(seed)
        diffs = []
        for _ in range(3):  # the initial noise, then two draws of step noise
            ours = nv.randn(shape)
            theirs = torch.randn(shape[1:], generator=cuda, device="cuda").cpu()[None]
            diffs.append(float((ours - theirs).abs().max()))
        worst = max(worst, *diffs)
        print(
            f"seed {seed:>20}: max |NV - CUDA| per draw = " + ", ".join(f"{d:.2e}" for d in diffs)
        )
    print(
        f"worst difference: {worst:.2e} ({'equal within float32 rounding' if worst < 1e-4 else 'DIFFERENT'})"
    )
    return 0 if worst < 1e-4 else 2


if __name__ == "__main__":
    sys.exit(main())
