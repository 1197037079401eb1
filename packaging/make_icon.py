"""Draw the app icon (resources/icons/studio.png): a noise-to-image gradient disc. No assets needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 256


def icon() -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    # left half: noise, fading into a clean sunset gradient on the right (denoising, at a glance)
    clean = np.stack([0.95 - 0.3 * y, 0.35 + 0.35 * y, 0.55 + 0.4 * y], axis=-1)
    noise = rng.random((SIZE, SIZE, 3))
    blend = np.clip((x - 0.2) / 0.6, 0, 1)[..., None]
    rgb = (blend * clean + (1 - blend) * noise) * 255
    image = Image.fromarray(rgb.astype(np.uint8), "RGB").convert("RGBA")
    mask = Image.new("L", (SIZE * 4, SIZE * 4), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (16, 16, SIZE * 4 - 16, SIZE * 4 - 16), radius=SIZE // 1, fill=255
    )
    image.putalpha(mask.resize((SIZE, SIZE), Image.Resampling.LANCZOS).filter(ImageFilter.SMOOTH))
    return image


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "resources" / "icons" / "studio.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    icon().save(out)
    print(out)
