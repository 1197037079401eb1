"""read_settings: find the metadata in an image and hand it to the reader for its source."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from studio.engine.metadata.a1111 import read_a1111_text
from studio.engine.metadata.comfyui import _read_comfyui
from studio.engine.metadata.containers import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    _Found,
    _from_pil_info,
    _scan_file,
)
from studio.engine.metadata.exif import _exif_texts
from studio.engine.metadata.invokeai import _read_invokeai
from studio.engine.metadata.recipe import _read_recipe
from studio.engine.metadata.result import ReadResult


def read_settings(path_or_image: str | os.PathLike[str] | Image.Image) -> ReadResult:
    """Settings stored in an image: our recipe first, then A1111 text, ComfyUI, InvokeAI."""
    if isinstance(path_or_image, Image.Image):
        found = _Found()
        _from_pil_info(path_or_image.info, found)
    else:
        found = _scan_file(Path(path_or_image))

    texts = dict(found.texts)
    if found.exif is not None:
        for key, value in _exif_texts(found.exif, found).items():
            texts.setdefault(key, value)
    warnings = list(found.warnings)
    raw = texts.get(PNG_PARAMETERS_KEY)

    attempts: list[tuple[str, Callable[[], ReadResult]]] = []
    if PNG_RECIPE_KEY in texts:
        attempts.append(("recipe", lambda: _read_recipe(texts[PNG_RECIPE_KEY])))
    if raw is not None:
        attempts.append(("A1111 parameters", lambda: read_a1111_text(raw)))
    if "prompt" in texts or "workflow" in texts:
        attempts.append(
            ("ComfyUI graph", lambda: _read_comfyui(texts.get("prompt"), texts.get("workflow")))
        )
    if "invokeai_metadata" in texts:
        attempts.append(("InvokeAI metadata", lambda: _read_invokeai(texts["invokeai_metadata"])))
    if "sd-metadata" in texts or "Dream" in texts:
        warnings.append("InvokeAI 2.x metadata was found; it is not supported.")

    for label, attempt in attempts:
        try:
            result = attempt()
        except Exception as e:  # untrusted metadata: a parser bug must not crash the reader
            warnings.append(f"The {label} could not be read ({type(e).__name__}: {e}).")
            continue
        if result.request is None:
            warnings.extend(result.warnings)
            continue
        result.warnings[:0] = warnings
        result.raw_parameters = raw
        return result
    return ReadResult(request=None, source="none", warnings=warnings, raw_parameters=raw)
