"""Settings from NovelAI images: PNG texts `Software: NovelAI`, `Source` (the model),
`Description` (the prompt) and `Comment` (a JSON object of the request)."""

from __future__ import annotations

import json
from typing import Any

from studio.engine.metadata.foreign import Fields
from studio.engine.metadata.result import ReadResult

_SIMPLE = {
    "prompt": ("prompt", str),
    "uc": ("negative_prompt", str),
    "steps": ("steps", int),
    "scale": ("cfg_scale", float),
    "seed": ("seed", int),
    "width": ("width", int),
    "height": ("height", int),
    "n_samples": ("batch_size", int),
}
# NovelAI's noise_schedule in ComfyUI's words ("native": the model's discrete sigmas)
_SCHEDULES = {"native": "normal", "karras": "karras"}
# k-diffusion samplers NovelAI names with a k_ prefix; the rest (ddim_v3, nai_smea...) are its own
_IGNORED = {"signed_hash", "request_type", "version", "hide_debug_overlay", "noise_schedule"}


def looks_like_novelai(texts: dict[str, str]) -> bool:
    if "Comment" not in texts:
        return False
    if texts.get("Software", "").startswith("NovelAI"):
        return True
    try:
        data = json.loads(texts["Comment"])
    except ValueError:
        return False
    return isinstance(data, dict) and {"uc", "scale", "sampler"} <= set(data)


def read_novelai(texts: dict[str, str]) -> ReadResult:
    data: Any = json.loads(texts["Comment"])
    if not isinstance(data, dict):
        raise ValueError("the NovelAI Comment is not a JSON object")
    f = Fields("novelai")
    source = texts.get("Source", "").strip()
    if source:
        f.req["model"] = source
        f.warnings.append(f"NovelAI's model ({source}) is not available outside NovelAI.")
    for key, value in data.items():
        if key in _SIMPLE:
            name, want = _SIMPLE[key]
            f.take(name, key, value, want)
        elif key == "sampler":
            schedule = data.get("noise_schedule", "native")
            comfy = value.removeprefix("k_") if isinstance(value, str) else value
            f.sampler(key, comfy, _SCHEDULES.get(schedule, schedule))
            if key in f.unmapped:
                f.unmapped[key] = f"{value} ({f.unmapped[key]})"
        elif key == "cfg_rescale" and isinstance(value, (int, float)):
            f.schedule["cfg_rescale"] = float(value)
        elif key in _IGNORED or value in (False, 0, None, "", [], {}):
            continue
        else:
            f.keep(key, value)
    if "prompt" not in data and "Description" in texts:
        f.req["prompt"] = texts["Description"]
    if any(c in f.req.get("prompt", "") + f.req.get("negative_prompt", "") for c in "{}[]"):
        f.warnings.append(
            "NovelAI's {emphasis} and [de-emphasis] are 1.05x per bracket, not A1111's syntax; "
            "the prompt is kept as written."
        )
    return f.result()
