"""Settings from InvokeAI's `invokeai_metadata` JSON (3.x and later)."""

from __future__ import annotations

import json
from typing import Any

from studio.engine.metadata.recipe import _accepts, _typed
from studio.engine.metadata.result import ReadResult
from studio.engine.request import GenerationRequest, ScheduleOptions

# InvokeAI scheduler -> our (sampler, karras option)
_INVOKE_SCHEDULERS: dict[str, tuple[str, bool | None]] = {
    "euler": ("Euler", None),
    "euler_k": ("Euler", True),
    "euler_a": ("Euler a", None),
    "ddim": ("DDIM", None),
    "ddpm": ("DDPM", None),
    "lms": ("LMS", None),
    "lms_k": ("LMS", True),
    "heun": ("Heun", None),
    "heun_k": ("Heun", True),
    "dpmpp_2m": ("DPM++ 2M", None),
    "dpmpp_2m_k": ("DPM++ 2M Karras", None),
    "dpmpp_2m_sde": ("DPM++ 2M SDE Karras", False),
    "dpmpp_2m_sde_k": ("DPM++ 2M SDE Karras", None),
    "dpmpp_sde": ("DPM++ SDE Karras", False),
    "dpmpp_sde_k": ("DPM++ SDE Karras", None),
    "unipc": ("UniPC", None),
    "unipc_k": ("UniPC", True),
    "lcm": ("LCM", None),
}

_RAND_DEVICES = {"cpu": "CPU", "cuda": "GPU"}
_INVOKE_IGNORED = {"app_version", "generation_mode", "rand_device_note"}


def _model_name(value: Any) -> str | None:
    """A model named as a string (2.x/3.0) or an object: 3.x {"model_name", "base_model"},
    4.x {"key", "hash", "name", "base", "type"}."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("name", "model_name"):
            if isinstance(value.get(key), str) and value[key]:
                return value[key]
    return None


def _model_details(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    keys = ("base", "base_model", "type", "model_type", "hash", "key")
    return ", ".join(f"{k}: {value[k]}" for k in keys if isinstance(value.get(k), str))


def _read_invokeai(text: str) -> ReadResult:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the InvokeAI metadata is not a JSON object")
    req: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    unmapped: dict[str, str] = {}
    warnings: list[str] = []
    simple = {
        "positive_prompt": ("prompt", str),
        "negative_prompt": ("negative_prompt", str),
        "seed": ("seed", int),
        "steps": ("steps", int),
        "cfg_scale": ("cfg_scale", float),
        "width": ("width", int),
        "height": ("height", int),
        "strength": ("strength", float),
    }
    for key, value in data.items():
        if key in simple:
            name, want = simple[key]
            try:
                req[name] = _typed(value, want, key)
            except ValueError:
                unmapped[key] = json.dumps(value)[:200]
        elif key == "scheduler" and isinstance(value, str) and value in _INVOKE_SCHEDULERS:
            req["sampler"], schedule["karras"] = _INVOKE_SCHEDULERS[value]
        elif key == "cfg_rescale_multiplier" and _accepts(value, float):
            schedule["cfg_rescale"] = float(value)
        elif key == "model" and _model_name(value) is not None:
            req["model"] = _model_name(value)
            details = _model_details(value)
            if details:
                unmapped["model details"] = details
        elif key == "rand_device" and value in _RAND_DEVICES:
            req["rng"] = _RAND_DEVICES[value]  # torch.randn on that device, as ours
        elif key == "vae" and _model_name(value) is not None:
            unmapped["vae"] = _model_name(value) or ""
            warnings.append(f"The VAE {_model_name(value)!r} is not applied here.")
        elif key in _INVOKE_IGNORED or value in (None, "", [], {}, False):
            continue
        else:
            unmapped[key] = value if isinstance(value, str) else json.dumps(value)[:200]
            if key == "scheduler":
                warnings.append(f"InvokeAI scheduler {value!r} is not available.")
    mode = str(data.get("generation_mode", "txt2img")).removeprefix("sdxl_")
    if mode in ("img2img", "inpaint"):
        req["mode"] = mode
        warnings.append("The input image is not stored in InvokeAI metadata; supply it again.")
    elif mode != "txt2img":
        unmapped["generation_mode"] = mode
    if mode == "txt2img":
        req.pop("strength", None)
    substituted = [f for f in ("model", "width", "height") if f not in req]
    if "model" in substituted:
        warnings.append("The metadata names no model this reader understands; default used.")
    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="invokeai",
        unmapped=unmapped,
        warnings=warnings,
        image_seed=request.seed,
        model_name=req.get("model"),
        substituted=substituted,
    )
