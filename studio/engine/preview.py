"""Live previews: latents -> RGB image, cheap enough to run every step.

SD 1.x/2.x and SDXL use a fixed linear map with published coefficients (a 4x3 matmul, free).
Smaller SD-shaped models (the demo model, the tiny test models) have no such coefficients, but
their VAE is small enough that a real decode costs a few milliseconds, and it is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SD_LATENT_RGB = torch.tensor(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)
SDXL_LATENT_RGB = torch.tensor(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ]
)
SDXL_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


class LatentPreviewer:
    def __init__(self, weights: torch.Tensor, bias: torch.Tensor, upscale: int = 8):
        self.weights = weights.float()
        self.bias = bias.float()
        self.upscale = upscale  # latents are 8x smaller than the image

    def __call__(self, latents: torch.Tensor, index: int = 0) -> np.ndarray:
        """HxWx3 uint8 preview of one image of a latent batch (B, 4, h, w)."""
        latent = latents[index].detach().float().cpu()
        rgb = torch.einsum("chw,cr->hwr", latent, self.weights) + self.bias
        rgb = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        if self.upscale > 1:
            rgb = rgb.repeat(self.upscale, axis=0).repeat(self.upscale, axis=1)
        return rgb


class VaePreviewer:
    """Decode one latent with the model's own VAE (for small models only: it is exact but slower)."""

    def __init__(self, vae: Any):
        self.vae = vae

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor, index: int = 0) -> np.ndarray:
        latent = latents[index : index + 1].to(self.vae.dtype) / self.vae.config.scaling_factor
        image = self.vae.decode(latent).sample[0].float().clamp(-1, 1)
        return ((image + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def previewer_for(family: str, vae: Any) -> LatentPreviewer | VaePreviewer:
    if family in ("sd1", "sd2"):
        return LatentPreviewer(SD_LATENT_RGB, torch.zeros(3))
    if family == "sdxl":
        return LatentPreviewer(SDXL_LATENT_RGB, SDXL_BIAS)
    return VaePreviewer(vae)
