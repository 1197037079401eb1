"""Saving an image with both kinds of metadata: PNG text chunks, or one EXIF block for JPEG and
WebP."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.engine.metadata.containers import PNG_PARAMETERS_KEY, PNG_RECIPE_KEY
from studio.engine.metadata.exif import EXIF_LIMIT, RECIPE_MAGIC, _build_exif
from studio.engine.metadata.infotext import a1111_parameters
from studio.engine.metadata.recipe import recipe_json
from studio.engine.metadata.result import ImageMeta
from studio.engine.output import atomic_save
from studio.engine.request import GenerationRequest

JPEG_QUALITY = 95
WEBP_QUALITY = 95

_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
# base64 of the input images embedded in a PNG recipe, all together. Pillow (and our reader)
# refuse a PNG whose text passes 64 MB, so images beyond this are named by hash only.
PNG_IMAGE_BUDGET = 16 * 1024 * 1024


def _has_images(request: GenerationRequest) -> bool:
    return (
        request.init_image is not None
        or request.mask is not None
        or any(c.image is not None for c in request.controls)
    )


def _exif_for(params: str, request: GenerationRequest, meta: ImageMeta) -> bytes:
    comment = b"UNICODE\0" + params.encode("utf-16-be")
    for embed in (True, False) if _has_images(request) else (False,):
        recipe = recipe_json(request, meta, embed_images=embed).encode("ascii")
        exif = _build_exif(comment, RECIPE_MAGIC + recipe)
        if len(exif) <= EXIF_LIMIT:
            return exif
    exif = _build_exif(comment, None)  # the A1111 text alone still says most of it
    if len(exif) <= EXIF_LIMIT:
        return exif
    raise ValueError(
        f"The settings text is too long for JPEG/WebP metadata ({len(exif)} bytes, the limit is "
        f"{EXIF_LIMIT}). Save this image as PNG instead."
    )


def image_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Pillow's format name for an explicit format or the path's extension: PNG, JPEG or WEBP."""
    name = (format or Path(path).suffix.lstrip(".")).lower()
    if name not in _FORMATS:
        raise ValueError(
            f"Cannot save images as {name or 'a file without extension'!r}: "
            "use png, jpg/jpeg or webp."
        )
    return _FORMATS[name]


def write_image(
    path: str | os.PathLike[str],
    image: Image.Image,
    request: GenerationRequest,
    *,
    model_name: str,
    model_hash: str,
    index: int = 0,
    seed: int | None = None,
    format: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Save `image` atomically with both kinds of metadata. overwrite=False raises
    FileExistsError instead of replacing an existing file."""
    path = Path(path)
    fmt = image_format(path, format)
    seed = request.seed + index if seed is None else seed
    meta = ImageMeta(model_name, model_hash, index, seed)
    params = a1111_parameters(
        request, model_name=model_name, model_hash=model_hash, seed=seed, index=index
    )

    save: Callable[[IO[bytes]], None]
    if fmt == "PNG":
        info = PngInfo()
        info.add_text(PNG_PARAMETERS_KEY, params)  # tEXt, or iTXt beyond Latin-1
        recipe = recipe_json(request, meta, embed_images=True, image_budget=PNG_IMAGE_BUDGET)
        info.add_text(PNG_RECIPE_KEY, recipe)

        def save(f: IO[bytes]) -> None:
            image.save(f, format="PNG", pnginfo=info)

    else:
        exif = _exif_for(params, request, meta)
        out = image
        if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
            out = image.convert("RGB")  # JPEG has no alpha
        elif fmt == "WEBP" and image.mode not in ("RGB", "RGBA"):
            out = image.convert("RGBA" if "A" in image.mode else "RGB")
        quality = JPEG_QUALITY if fmt == "JPEG" else WEBP_QUALITY

        def save(f: IO[bytes]) -> None:
            out.save(f, format=fmt, exif=exif, quality=quality)

    return atomic_save(path, save, overwrite=overwrite)
