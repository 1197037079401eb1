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

_INVOKE_IGNORED = {"app_version", "generation_mode", "rand_device_note"}


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
        elif key == "model" and isinstance(value, dict) and isinstance(value.get("name"), str):
            req["model"] = value["name"]
        elif key == "model" and isinstance(value, str):
            req["model"] = value
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
    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="invokeai",
        unmapped=unmapped,
        warnings=warnings,
        image_seed=request.seed,
        model_name=req.get("model"),
    )
