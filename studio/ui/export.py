""" "Save as…": copy an image into PNG, JPEG or WebP and carry its generation settings along."""

from __future__ import annotations

from pathlib import Path

from studio.engine.images import open_image

SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def export_image(source: Path, target: Path) -> Path:
    """Write `source` to `target` (format from the suffix, .png added when there is none)."""
    from studio.engine.metadata import read_settings, write_image

    if target.suffix.lower() not in SUFFIX_FORMATS:
        target = target.with_name(target.name + ".png")
    fmt = SUFFIX_FORMATS[target.suffix.lower()]
    image = open_image(source)  # the allowed formats only, size checked before decoding
    found = read_settings(source)
    if found.request is None:
        # nothing to carry: a plain copy in the new format
        image.save(target, format=fmt.upper())
        return target
    return write_image(
        target,
        image,
        found.request,
        model_name=found.model_name or "",
        model_hash=found.model_hash or "",
        index=found.image_index,
        seed=found.image_seed,
        format=fmt,
    )
