"""A request from A1111 infotext: each settings key mapped to ours, the rest kept as unmapped."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from studio.engine.addons.refs import AddonRef
from studio.engine.metadata.infotext import _unquote, find_params, split_a1111_text
from studio.engine.metadata.result import ReadResult
from studio.engine.metadata.sampler_names import (
    _resolve_sampler,
    _split_karras,
    a1111_schedule_label,
    effective_karras,
    karras_of_label,
)
from studio.engine.request import ControlSpec, GenerationRequest, ScheduleOptions

_RNG_SOURCES = ("CPU", "GPU", "NV")

_A1111_MODULE_PREFIXES = (
    ("canny", "canny"),
    ("lineart", "lineart"),
    ("depth", "depth"),
    ("openpose", "pose"),
    ("dw_openpose", "pose"),
    ("pose", "pose"),
    ("none", "none"),
)

_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_CONTROLNET = re.compile(r"^ControlNet \d+$")
# no leading \s*: sub() would rescan a long run of spaces from each of its positions
_RE_MODEL_HASH_SUFFIX = re.compile(r"\[[0-9a-fA-F]+\]$")
_CORE_KEYS = ("Steps", "Sampler", "CFG scale", "Seed", "Size")


def _sampler_from_a1111(
    name: str, schedule: str | None, unmapped: dict[str, str], warnings: list[str]
) -> tuple[str, bool | None] | None:
    base, old_karras = _split_karras(name)
    if base.endswith(" Exponential"):  # pre-1.9 names such as "DPM++ 2M SDE Exponential"
        base, schedule = base[: -len(" Exponential")], schedule or "Exponential"
    label, automatic = a1111_schedule_label(base, "Karras" if old_karras else schedule)
    karras = None if label is None else karras_of_label(label)
    resolved = _resolve_sampler(base, karras)
    if resolved is None:
        resolved = _resolve_sampler(base, None)
        if resolved is None:
            unmapped["Sampler"] = name
            if schedule is not None:
                unmapped["Schedule type"] = schedule
            warnings.append(f"Sampler {name!r} is not available; the default sampler is used.")
            return None
    if label is not None and (karras is None or effective_karras(*resolved) != karras):
        ran = f"{label} (Automatic for {base})" if automatic else label
        unmapped["Schedule type"] = ran
        warnings.append(
            f"Schedule type {ran} is not available for {resolved[0]}; its own schedule is used."
        )
    return resolved


def _positive(value: int | None, key: str, raw: str, unmapped: dict[str, str]) -> int | None:
    if value is not None and value < 1:
        unmapped[key] = raw
        return None
    return value


def _controlnet_from_a1111(
    key: str, text: str, unmapped: dict[str, str], warnings: list[str]
) -> ControlSpec | None:
    values = {k: _unquote(v.strip()) for k, v in find_params(text)}
    module = values.pop("Module", "none").strip()
    preprocessor = next(
        (ours for pre, ours in _A1111_MODULE_PREFIXES if module.startswith(pre)), None
    )
    model = _RE_MODEL_HASH_SUFFIX.sub("", values.pop("Model", "")).strip()
    if preprocessor is None or not model or model == "None":
        unmapped[key] = text
        warnings.append(f"{key} uses {module!r}, which cannot be mapped; it was left out.")
        return None
    kwargs: dict[str, Any] = {"model": model, "preprocessor": preprocessor}
    params: list[tuple[str, float]] = []
    left: dict[str, str] = {}
    names = {"Weight": "weight", "Guidance Start": "guidance_start", "Guidance End": "guidance_end"}
    thresholds = {"Threshold A": "low_threshold", "Threshold B": "high_threshold"}
    for k, v in values.items():
        try:
            if k in names:
                kwargs[names[k]] = float(v)
            elif k in thresholds and preprocessor == "canny":
                params.append((thresholds[k], float(v)))
            elif re.fullmatch(r"[a-z][a-z0-9_]*", k):
                params.append((k, float(v)))
            else:
                left[k] = v
        except ValueError:
            left[k] = v
    if left:
        unmapped[key] = ", ".join(f"{k}: {v}" for k, v in left.items())
    return ControlSpec(**kwargs, params=tuple(params))


def _hash_list(kind: str, text: str) -> list[AddonRef]:
    refs = []
    for item in text.split(","):
        name, colon, digest = item.rpartition(":")
        if colon and name.strip():
            refs.append(AddonRef(kind, name.strip(), digest.strip()))
    return refs


def addons_from_params(params: dict[str, str]) -> list[AddonRef]:
    """The LoRAs, embeddings and VAE an A1111 settings line names, with their hashes."""
    refs = _hash_list("lora", params.get("Lora hashes", ""))
    refs += _hash_list("embedding", params.get("TI hashes", ""))
    if params.get("VAE"):
        refs.append(AddonRef("vae", params["VAE"], params.get("VAE hash", "")))
    return refs


def read_a1111_text(text: str) -> ReadResult:
    """A request from A1111 infotext (also what the GUI's "paste settings" uses)."""
    prompt, negative, params = split_a1111_text(text)
    if params is None or not any(k in params for k in _CORE_KEYS):
        return ReadResult(
            request=None,
            source="none",
            raw_parameters=text,
            warnings=["The text has no generation settings line (Steps: ..., Sampler: ...)."],
        )
    unmapped: dict[str, str] = {}
    warnings: list[str] = []
    # A1111's defaults for the keys it leaves out (infotext_utils): these differ from ours
    req: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative, "rng": "GPU"}
    schedule: dict[str, Any] = {}
    controls: list[ControlSpec] = []
    image_seed: int | None = None
    batch_pos = 0
    hires = any(k.startswith("Hires ") or k == "First pass size" for k in params)

    def number(key: str, cast: Callable[[str], Any]) -> Any:
        try:
            value = cast(params[key])
        except (ValueError, OverflowError):
            unmapped[key] = params[key]
            warnings.append(f"{key} {params[key]!r} is not a number; the default is used.")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            unmapped[key] = params[key]
            return None
        return value

    for key, value in params.items():
        if key == "Steps":
            req["steps"] = number(key, int)
        elif key == "CFG scale":
            req["cfg_scale"] = number(key, float)
        elif key == "Seed":
            image_seed = number(key, int)
        elif key == "Size":
            m = _RE_SIZE.match(value)
            if m:
                req["width"], req["height"] = int(m.group(1)), int(m.group(2))
            else:
                unmapped[key] = value
        elif key == "Model":
            req["model"] = value
        elif key == "Denoising strength" and not hires:
            req["strength"] = number(key, float)
        elif key == "Mask blur":
            req["mask_blur"] = number(key, int)
        elif key == "Inpaint area":
            if value in ("Only masked", "Whole picture"):
                req["inpaint_only_masked"] = value == "Only masked"
            else:
                unmapped[key] = value
        elif key == "Masked area padding":
            req["inpaint_padding"] = number(key, int)
        elif key == "Clip skip":
            req["clip_skip"] = _positive(number(key, int), key, value, unmapped)
        elif key == "RNG":
            if value in _RNG_SOURCES:
                req["rng"] = value
            else:
                unmapped[key] = value
        elif key == "ENSD":
            req["ensd"] = number(key, int)
        elif key == "Batch size":
            req["batch_size"] = number(key, int)
        elif key == "Batch pos":
            batch_pos = number(key, int) or 0
        elif key in ("CFG Rescale phi", "CFG Rescale φ", "CFG Rescale"):
            schedule["cfg_rescale"] = number(key, float)
        elif key == "Noise Schedule" and value in ("Zero Terminal SNR", "Default"):
            schedule["zero_snr"] = value == "Zero Terminal SNR"
        elif key == "Timestep spacing" and value in ("leading", "linspace", "trailing"):
            schedule["timestep_spacing"] = value
        elif key == "Prediction type" and value in ("epsilon", "v_prediction", "sample"):
            schedule["prediction_type"] = value
        elif _RE_CONTROLNET.match(key):
            spec = _controlnet_from_a1111(key, value, unmapped, warnings)
            if spec is not None:
                controls.append(spec)
        elif key in ("Sampler", "Schedule type"):
            pass  # below, together
        elif key in ("Lora hashes", "TI hashes", "VAE hash"):
            pass  # below, with the add-ons
        elif key == "VAE":
            req["vae"] = value
        else:
            unmapped[key] = value

    if "Sampler" in params:
        resolved = _sampler_from_a1111(
            params["Sampler"], params.get("Schedule type"), unmapped, warnings
        )
        if resolved is not None:
            req["sampler"], schedule["karras"] = resolved
    elif "Schedule type" in params:
        unmapped["Schedule type"] = params["Schedule type"]

    if hires:
        warnings.append("Hires fix settings are not supported; only the first pass is used.")
    elif "Denoising strength" in params:
        masked = any(k in params for k in ("Mask blur", "Inpaint area", "Mask mode"))
        req["mode"] = "inpaint" if masked else "img2img"
        need = "the init image and mask" if masked else "the init image"
        warnings.append(f"A1111 text does not store {need}; supply it to regenerate.")
    if "Model" not in params:
        warnings.append("The text names no model; the default model is used.")
    if "Model hash" in params:
        warnings.append(
            f"Model hash {params['Model hash']} was not checked; the model is found by name."
        )
    missing = [k for k in _CORE_KEYS if k not in params]
    if missing:
        warnings.append("Not in the text, defaults used: " + ", ".join(missing) + ".")

    if image_seed is not None:
        req["seed"] = image_seed - batch_pos
    req = {k: v for k, v in req.items() if v is not None}
    schedule = {k: v for k, v in schedule.items() if v is not None}
    request = GenerationRequest(
        **req, schedule=ScheduleOptions(**schedule), controls=tuple(controls)
    )
    return ReadResult(
        request=request,
        source="a1111",
        addons=addons_from_params(params),
        unmapped=unmapped,
        warnings=warnings,
        raw_parameters=text,
        image_index=batch_pos,
        image_seed=image_seed,
        model_name=params.get("Model"),
        model_hash=params.get("Model hash"),
    )
