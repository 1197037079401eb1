"""Cheap live previews: latents -> small RGB image with a fixed linear map (a 4x3 matmul).

SD 1.x/2.x and SDXL use published coefficients. Any other SD-shaped model (the demo model,
the tiny test models) gets its own map, fitted once by least squares from the VAE's encoding of
plain colours: the map is only as good as a linear fit, which is all a preview needs.
"""

from __future__ import annotations

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

    @classmethod
    def for_family(cls, family: str, vae: object | None = None) -> LatentPreviewer:
        if family in ("sd1", "sd2"):
            return cls(SD_LATENT_RGB, torch.zeros(3))
        if family == "sdxl":
            return cls(SDXL_LATENT_RGB, SDXL_BIAS)
        if vae is None:
            raise ValueError(f"No latent preview coefficients for model family {family!r}.")
        return cls(*fit_latent_rgb(vae))

    def __call__(self, latents: torch.Tensor, index: int = 0) -> np.ndarray:
        """HxWx3 uint8 preview of one image of a latent batch (B, 4, h, w)."""
        latent = latents[index].detach().float().cpu()
        rgb = torch.einsum("chw,cr->hwr", latent, self.weights) + self.bias
        rgb = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        if self.upscale > 1:
            rgb = rgb.repeat(self.upscale, axis=0).repeat(self.upscale, axis=1)
        return rgb


@torch.no_grad()
def fit_latent_rgb(vae: object, patch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (4 -> 3) map plus bias from latents of plain colour patches."""
    levels = torch.tensor([-1.0, 0.0, 1.0])
    colours = torch.cartesian_prod(levels, levels, levels)  # 27 colours in [-1, 1]
    param = next(vae.parameters())
    images = colours[:, :, None, None].expand(-1, -1, patch, patch)
    images = images.to(device=param.device, dtype=param.dtype)
    latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    means = latents.float().mean(dim=(2, 3)).cpu()  # (27, 4)
    design = torch.cat([means, torch.ones(len(means), 1)], dim=1)
    solution = torch.linalg.lstsq(design, colours).solution  # (5, 3)
    return solution[:4], solution[4]
