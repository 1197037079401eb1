"""Inpainting mask maths: feather, crop-to-bounds and paste-back. PIL and numpy only, no Qt.

Masks are 8-bit, 255 = repaint, 0 = keep. A feathered mask is a soft version of that mask used
as the blend weight when the generated pixels go back over the original, so everything the user
did not paint stays bit-identical (the VAE round trip shifts colours everywhere otherwise).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive, as PIL)


def _as_array(mask: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(mask, Image.Image):
        return np.asarray(mask.convert("L"), dtype=np.uint8)
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(
            f"A mask must be a single-channel image; got an array of shape {arr.shape}."
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise ValueError(f"A mask array must be uint8 (0..255) or bool; got {arr.dtype}.")
    return arr


def binarize(mask: Image.Image | np.ndarray, threshold: int = 128) -> np.ndarray:
    return np.where(_as_array(mask) >= threshold, 255, 0).astype(np.uint8)


def feather(mask: Image.Image | np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of the mask (radius = standard deviation in pixels); 0 leaves it unchanged."""
    if radius < 0:
        raise ValueError(f"The mask blur must be 0 or more pixels; got {radius}.")
    arr = _as_array(mask)
    if radius == 0:
        return arr.copy()
    blurred = Image.fromarray(arr).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, dtype=np.uint8).copy()


def prepare_mask(mask: Image.Image, size: tuple[int, int], blur: int) -> Image.Image:
    """The mask at image `size` (width, height), binarised, then feathered by `blur`."""
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"The image size must be positive; got {size[0]}x{size[1]}.")
    if blur < 0:
        raise ValueError(f"The mask blur must be 0 or more pixels; got {blur}.")
    if not isinstance(mask, Image.Image):
        mask = Image.fromarray(_as_array(mask))
    mask = mask.convert("L")
    if mask.size != tuple(size):
        # a mask painted on a preview or an older image: scale it, then make it hard again
        mask = mask.resize(tuple(size), Image.Resampling.BILINEAR)
    return Image.fromarray(feather(binarize(mask), blur))


def mask_bounds(
    mask: Image.Image | np.ndarray,
    padding: int,
    image_size: tuple[int, int],
    multiple: int = 8,
    target_size: tuple[int, int] | None = None,
) -> Box:
    """The box around the painted area plus `padding`, clamped to the image, each side a multiple of
    `multiple` where the image allows (for "inpaint only masked": the crop the model repaints).

    With `target_size` (the size the crop is scaled to), the narrow side grows to its aspect ratio
    where the image allows, as A1111 does, so the crop is not stretched on the way.
    """
    arr = _as_array(mask)
    width, height = image_size
    if (arr.shape[1], arr.shape[0]) != (width, height):
        raise ValueError(
            f"The mask is {arr.shape[1]}x{arr.shape[0]} but the image is {width}x{height}; "
            "they must be the same size."
        )
    if padding < 0:
        raise ValueError(f"The mask padding must be 0 or more pixels; got {padding}.")
    if multiple < 1:
        raise ValueError(f"The size multiple must be 1 or more; got {multiple}.")
    if target_size is not None and min(target_size) <= 0:
        raise ValueError(
            f"The target size must be positive; got {target_size[0]}x{target_size[1]}."
        )
    ys, xs = np.nonzero(arr)
    if xs.size == 0:
        raise ValueError("The mask is empty: paint the area to repaint first.")
    left, right = max(0, int(xs.min()) - padding), min(width, int(xs.max()) + 1 + padding)
    top, bottom = max(0, int(ys.min()) - padding), min(height, int(ys.max()) + 1 + padding)
    box_w, box_h = right - left, bottom - top
    if target_size is not None:
        # ceil(box_h * target_w / target_h) in integers, so no float rounding can add a pixel
        target_w, target_h = target_size
        box_w, box_h = (
            max(box_w, -(-box_h * target_w // target_h)),
            max(box_h, -(-box_w * target_h // target_w)),
        )
    left, right = _span(left, right, box_w, width, multiple)
    top, bottom = _span(top, bottom, box_h, height, multiple)
    return left, top, right, bottom


def _span(lo: int, hi: int, length: int, limit: int, multiple: int) -> tuple[int, int]:
    """lo..hi grown about its centre to `length` rounded up to `multiple`, kept inside 0..limit."""
    length = min(-(-length // multiple) * multiple, limit)  # the image itself may be smaller
    lo -= (length - (hi - lo)) // 2
    lo = min(max(lo, 0), limit - length)  # slide back inside the image
    return lo, lo + length


def crop_to_bounds(image: Image.Image, box: Box) -> Image.Image:
    left, top, right, bottom = box
    if not (0 <= left < right <= image.width and 0 <= top < bottom <= image.height):
        raise ValueError(f"The crop box {box} is outside the {image.width}x{image.height} image.")
    return image.crop(box)


def paste_back(
    original: Image.Image,
    generated: Image.Image,
    feathered_mask: Image.Image,
    box: Box | None = None,
) -> Image.Image:
    """Blend `generated` over `original` through the mask; where the mask is 0 the result is exactly
    the original. With `box`, `generated` is the repainted crop and goes back into that box."""
    if feathered_mask.size != original.size:
        raise ValueError(
            f"The mask is {feathered_mask.width}x{feathered_mask.height} but the image is "
            f"{original.width}x{original.height}; they must be the same size."
        )
    mode = "RGBA" if original.mode == "RGBA" else ("L" if original.mode == "L" else "RGB")
    base = original.convert(mode)
    generated = generated.convert(mode)
    if box is not None:
        crop_size = (box[2] - box[0], box[3] - box[1])
        crop_to_bounds(base, box)  # validates the box
        if generated.size != crop_size:
            generated = generated.resize(crop_size, Image.Resampling.LANCZOS)
        full = base.copy()
        full.paste(generated, box[:2])
        generated = full
    elif generated.size != base.size:
        # the pipeline works in multiples of 8 and may return a slightly different size
        generated = generated.resize(base.size, Image.Resampling.LANCZOS)

    orig = np.asarray(base, dtype=np.uint16)
    gen = np.asarray(generated, dtype=np.uint16)
    weight = np.asarray(feathered_mask.convert("L"), dtype=np.uint16)
    if orig.ndim == 3:
        weight = weight[..., None]
    # integer blend: weight 0 gives the original and 255 the generated pixel, exactly
    out = (orig * (255 - weight) + gen * weight + 127) // 255
    return Image.fromarray(out.astype(np.uint8))
