"""read_settings: find the metadata in an image and hand it to the reader for its source."""

from __future__ import annotations

import json
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
from studio.engine.metadata.fooocus import looks_like_fooocus, read_fooocus
from studio.engine.metadata.invokeai import _read_invokeai
from studio.engine.metadata.invokeai_legacy import read_dream, read_sd_metadata
from studio.engine.metadata.novelai import looks_like_novelai, read_novelai
from studio.engine.metadata.recipe import _read_recipe
from studio.engine.metadata.result import ReadResult
from studio.engine.metadata.stealth import stealth_text, stealth_text_of_file


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

    attempts = _attempts(texts)
    result = _first(attempts, warnings, raw)
    if result is not None:
        return result
    # no metadata in text chunks: the pixels may carry it (A1111's stealth PNG info)
    try:
        hidden = _hidden_text(path_or_image)
    except Exception as e:  # untrusted pixels: never crash the reader
        warnings.append(f"The pixels could not be checked for hidden metadata ({e}).")
        hidden = None
    if hidden is not None:
        warnings.append("Settings read from metadata hidden in the pixels (stealth PNG info).")
        result = _first(_stealth_attempts(hidden), warnings, hidden)
        if result is not None:
            return result
    return ReadResult(request=None, source="none", warnings=warnings, raw_parameters=raw)


def _hidden_text(path_or_image: str | os.PathLike[str] | Image.Image) -> str | None:
    if isinstance(path_or_image, Image.Image):
        return stealth_text(path_or_image)
    path = Path(path_or_image)
    with path.open("rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
    return stealth_text_of_file(path)


def _attempts(texts: dict[str, str]) -> list[tuple[str, Callable[[], ReadResult]]]:
    raw = texts.get(PNG_PARAMETERS_KEY)
    attempts: list[tuple[str, Callable[[], ReadResult]]] = []
    if PNG_RECIPE_KEY in texts:
        attempts.append(("recipe", lambda: _read_recipe(texts[PNG_RECIPE_KEY])))
    if raw is not None and looks_like_fooocus(raw):
        attempts.append(("Fooocus parameters", lambda: read_fooocus(raw)))
    elif raw is not None:
        attempts.append(("A1111 parameters", lambda: read_a1111_text(raw)))
    if "prompt" in texts or "workflow" in texts:
        attempts.append(
            ("ComfyUI graph", lambda: _read_comfyui(texts.get("prompt"), texts.get("workflow")))
        )
    if "invokeai_metadata" in texts:
        attempts.append(("InvokeAI metadata", lambda: _read_invokeai(texts["invokeai_metadata"])))
    if texts.get("sd-metadata"):
        attempts.append(
            ("InvokeAI 2.x sd-metadata", lambda: read_sd_metadata(texts["sd-metadata"]))
        )
    if texts.get("Dream"):
        attempts.append(("InvokeAI 2.x Dream text", lambda: read_dream(texts["Dream"])))
    if looks_like_novelai(texts):
        attempts.append(("NovelAI metadata", lambda: read_novelai(texts)))
    return attempts


def _stealth_attempts(hidden: str) -> list[tuple[str, Callable[[], ReadResult]]]:
    """NovelAI hides a JSON object of its PNG texts; A1111 hides its parameters text."""
    try:
        data = json.loads(hidden)
    except ValueError:
        data = None
    if isinstance(data, dict):
        texts = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return _attempts(texts)
    return _attempts({PNG_PARAMETERS_KEY: hidden})


def _first(
    attempts: list[tuple[str, Callable[[], ReadResult]]], warnings: list[str], raw: str | None
) -> ReadResult | None:
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
    return None
