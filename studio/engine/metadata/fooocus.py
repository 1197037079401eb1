"""Settings from Fooocus's own metadata scheme: a JSON object in the PNG `parameters` text
(with `fooocus_scheme: fooocus` beside it). Its samplers and schedulers are ComfyUI's."""

from __future__ import annotations

import json
import re
from typing import Any

from studio.engine.metadata.foreign import Fields
from studio.engine.metadata.result import ReadResult

_RE_RESOLUTION = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")  # str((width, height))
_SIMPLE = {
    "prompt": ("prompt", str),
    "negative_prompt": ("negative_prompt", str),
    "steps": ("steps", int),
    "guidance_scale": ("cfg_scale", float),
    "seed": ("seed", int),
    "base_model": ("model", str),
    "clip_skip": ("clip_skip", int),
}
# Fooocus's own keys that say how the image was made but have no setting here
_IGNORED = {"version", "metadata_scheme"}


def looks_like_fooocus(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "guidance_scale" in data and "base_model" in data


def read_fooocus(text: str) -> ReadResult:
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the Fooocus parameters are not a JSON object")
    f = Fields("fooocus", req={"rng": "CPU"})  # ComfyUI's noise, made on the CPU
    for key, value in data.items():
        if key in _SIMPLE:
            name, want = _SIMPLE[key]
            f.take(name, key, value, want)
        elif key == "resolution" and isinstance(value, str) and _RE_RESOLUTION.match(value):
            m = _RE_RESOLUTION.match(value)
            assert m is not None
            f.req["width"], f.req["height"] = int(m.group(1)), int(m.group(2))
        elif key == "sampler":
            f.sampler(key, value, data.get("scheduler"))
        elif key == "base_model_hash" and isinstance(value, str):
            f.model_hash = value
        elif key == "scheduler" or key in _IGNORED:
            continue
        else:
            f.keep(key, value)
    if "full_prompt" in data or "styles" in data:
        f.warnings.append(
            "Fooocus encoded its styled, expanded prompt (full_prompt); the prompt as typed is "
            "shown and the styles are listed as not mapped."
        )
    return f.result()
