"""Our JSON recipe: the request plus who wrote it and which image this is; read back with every
value type-checked and embedded images verified before use."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from PIL import Image

import studio
from studio.engine.addons.refs import KINDS as ADDON_KINDS
from studio.engine.addons.refs import AddonRef, addon_refs
from studio.engine.metadata.result import ImageMeta, ReadResult
from studio.engine.request import FOLDER_FIELDS, REQUEST_SCHEMA, GenerationRequest

APP_ID = "diffusion-studio"

_MAX_EMBEDDED_PIXELS = 4096 * 4096  # an embedded image larger than this is not decoded


def _meta_dict(result_meta: ImageMeta | Mapping[str, Any]) -> ImageMeta:
    if isinstance(result_meta, ImageMeta):
        return result_meta
    seed = result_meta.get("seed", result_meta.get("image_seed"))
    return ImageMeta(
        model_name=str(result_meta.get("model_name", "") or ""),
        model_hash=str(result_meta.get("model_hash", "") or ""),
        image_index=int(result_meta.get("image_index", 0) or 0),
        seed=None if seed is None else int(seed),
    )


def _image_refs(data: dict[str, Any]) -> list[dict[str, Any]]:
    refs = [data.get("init_image"), data.get("mask")]
    refs += [c.get("image") for c in data.get("controls", [])]
    return [ref for ref in refs if ref]


def _embed_within(data: dict[str, Any], budget: int) -> None:
    """Keep each embedded image, in request order, while the base64 text fits in `budget`;
    the others keep only their hash (the reader then reports them as missing)."""
    for ref in _image_refs(data):
        size = len(ref.get("png_base64", ""))
        if size <= budget:
            budget -= size
        else:
            del ref["png_base64"]


def recipe_json(
    request: GenerationRequest,
    result_meta: ImageMeta | Mapping[str, Any],
    *,
    embed_images: bool = True,
    image_budget: int | None = None,
) -> str:
    """The complete recipe: request.to_dict() plus who wrote it and which image this is.

    Flat, so GenerationRequest.from_dict(recipe) works directly. The request's own "seed" is the
    batch's first seed; this image's seed is "image_seed" (a second "seed" key would clash).
    image_budget: at most this many characters of embedded images; the rest go by hash only.
    """
    meta = _meta_dict(result_meta)
    data = request.to_dict(embed_images=embed_images)
    if embed_images and image_budget is not None:
        _embed_within(data, image_budget)
    data.update(
        app=APP_ID,
        app_version=studio.__version__,
        model_name=meta.model_name,
        model_hash=meta.model_hash,
        image_index=meta.image_index,
        image_seed=request.seed + meta.image_index if meta.seed is None else meta.seed,
        addons=[asdict(ref) for ref in addon_refs(request)],
    )
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


_REQUEST_TYPES: dict[str, type] = {}
for _f in fields(GenerationRequest):
    if isinstance(_f.default, (bool, int, float, str)):
        _REQUEST_TYPES[_f.name] = type(_f.default)
_SCHEDULE_TYPES: dict[str, tuple[type, ...]] = {
    "karras": (bool, type(None)),
    "timestep_spacing": (str, type(None)),
    "zero_snr": (bool,),
    "prediction_type": (str, type(None)),
    "cfg_rescale": (float,),
}
_CONTROL_TYPES: dict[str, type] = {
    "model": str,
    "preprocessor": str,
    "weight": float,
    "guidance_start": float,
    "guidance_end": float,
    "enabled": bool,
}


def _typed(value: Any, want: type, where: str) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is type(None) and value is None:
        return None
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{where} should be {want.__name__}, not {type(value).__name__}")


def _checked_image(ref: Any, name: str, warnings: list[str], missing: dict[str, str]) -> Any:
    """An image reference with its PNG checked, or one without pixels (then it reads as None)."""
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise ValueError(f"{name} should be an image reference")
    ref = dict(ref)
    data = ref.get("png_base64")
    if "png_base64" in ref:
        try:
            if not isinstance(data, str):
                raise TypeError("not text")
            png = base64.b64decode(data, validate=True)
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ValueError("not a PNG")
            with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
                if im.width * im.height > _MAX_EMBEDDED_PIXELS:
                    raise ValueError("too large")
                im.load()
        except (ValueError, TypeError, binascii.Error, OSError, Image.DecompressionBombError):
            warnings.append(f"The embedded {name} is damaged and was left out.")
            ref.pop("png_base64")
    if "png_base64" not in ref:
        missing[name] = str(ref.get("sha256", ""))
    return ref


def _checked_recipe(data: Any, warnings: list[str], missing: dict[str, str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("the recipe is not a JSON object")
    out = dict(data)
    for name, want in _REQUEST_TYPES.items():
        if name in out:
            out[name] = _typed(out[name], want, name)
    schedule = out.get("schedule", {})
    if not isinstance(schedule, dict):
        raise ValueError("schedule should be an object")
    for name, wants in _SCHEDULE_TYPES.items():
        if name in schedule and not any(
            _accepts(schedule[name], w) for w in wants
        ):  # karras: true/false/null
            raise ValueError(f"schedule.{name} has the wrong type")
    if isinstance(schedule.get("cfg_rescale"), int):
        out["schedule"] = {**schedule, "cfg_rescale": float(schedule["cfg_rescale"])}
    for name in ("init_image", "mask"):
        label = "init image" if name == "init_image" else "mask"
        out[name] = _checked_image(out.get(name), label, warnings, missing)
    controls = out.get("controls", [])
    if not isinstance(controls, list):
        raise ValueError("controls should be a list")
    checked = []
    for i, c in enumerate(controls):
        if not isinstance(c, dict):
            raise ValueError(f"control {i + 1} should be an object")
        c = dict(c)
        if "model" not in c:
            raise ValueError(f"control {i + 1} names no model")
        for name, want in _CONTROL_TYPES.items():
            if name in c:
                c[name] = _typed(c[name], want, f"control {i + 1} {name}")
        params = c.get("params", [])
        if not isinstance(params, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _accepts(p[1], float)
            for p in params
        ):
            raise ValueError(f"control {i + 1} params should be [name, number] pairs")
        c["image"] = _checked_image(c.get("image"), f"control image {i + 1}", warnings, missing)
        checked.append(c)
    out["controls"] = checked
    for name in FOLDER_FIELDS:
        folders = out.get(name, [])
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise ValueError(f"{name} should be a list of paths")
    return out


def _checked_addons(data: Any) -> list[AddonRef]:
    if not isinstance(data, list):
        return []
    refs = []
    for item in data:
        if isinstance(item, dict) and item.get("kind") in ADDON_KINDS:
            name, digest = item.get("name"), item.get("hash", "")
            if isinstance(name, str) and isinstance(digest, str):
                refs.append(AddonRef(item["kind"], name, digest))
    return refs


def _accepts(value: Any, want: type) -> bool:
    try:
        _typed(value, want, "")
    except ValueError:
        return False
    return True


def _read_recipe(text: str) -> ReadResult:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("app") != APP_ID:
        raise ValueError("the recipe was not written by Diffusion Studio")
    warnings: list[str] = []
    schema = data.get("schema")
    if not isinstance(schema, int) or schema > REQUEST_SCHEMA:
        warnings.append(
            f"The recipe uses schema {schema!r}, newer than this version understands "
            f"({REQUEST_SCHEMA}); settings it added are ignored."
        )
    missing: dict[str, str] = {}
    request = GenerationRequest.from_dict(_checked_recipe(data, warnings, missing))
    for name in missing:
        warnings.append(f"The {name} is not stored in this file (only its hash); supply it again.")
    index = data.get("image_index", 0)
    seed = data.get("image_seed")
    return ReadResult(
        request=request,
        source="studio",
        warnings=warnings,
        image_index=index if isinstance(index, int) else 0,
        image_seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        model_name=str(data.get("model_name") or "") or None,
        model_hash=str(data.get("model_hash") or "") or None,
        app_version=str(data.get("app_version") or "") or None,
        missing_hashes=missing,
        addons=_checked_addons(data.get("addons")),
    )
