"""Settings from InvokeAI 2.x: the `sd-metadata` JSON ({"model_weights", "model_hash", "image":
{"prompt", "steps", "cfg_scale", "sampler", ...}}), else its `Dream` command line
("prompt" -s 30 -S 42 -W 512 -H 512 -C 7.5 -A k_lms). Negative text is [bracketed] in the
prompt."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from studio.engine.metadata.foreign import Fields
from studio.engine.metadata.result import ReadResult

# InvokeAI 2.x sampler names -> ours (its k_ samplers ran k-diffusion's own sigmas)
_SAMPLERS = {
    "ddim": "DDIM",
    "k_lms": "LMS",
    "k_euler": "Euler",
    "k_euler_a": "Euler a",
    "k_heun": "Heun",
    "k_dpmpp_2": "DPM++ 2M",
}
_IMAGE_KEYS = {
    "steps": ("steps", int),
    "cfg_scale": ("cfg_scale", float),
    "seed": ("seed", int),
    "width": ("width", int),
    "height": ("height", int),
}
_DREAM_FLAGS = {
    "-s": "steps",
    "-S": "seed",
    "-W": "width",
    "-H": "height",
    "-C": "cfg_scale",
    "-A": "sampler",
}
_IMAGE_IGNORED = {"type", "postprocessing", "variations"}
_RE_NEGATIVE = re.compile(r"\[([^\[\]]*)\]")


def _split_negative(prompt: str) -> tuple[str, str]:
    negative = ", ".join(m.strip() for m in _RE_NEGATIVE.findall(prompt) if m.strip())
    positive = re.sub(r"\s+", " ", _RE_NEGATIVE.sub(" ", prompt)).strip()
    return positive, negative


def _prompt_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) for p in value):
        texts = [p.get("prompt") for p in value]
        if all(isinstance(t, str) for t in texts):
            return " ".join(texts)  # type: ignore[arg-type]
    return None


def _sampler(f: Fields, key: str, value: Any) -> None:
    ours = _SAMPLERS.get(value) if isinstance(value, str) else None
    if ours is None:
        f.keep(key, f"{value} (not available)")
    else:
        f.req["sampler"] = ours
        f.warnings.append("InvokeAI 2.x does not record its sigma schedule; ours is used.")


def read_sd_metadata(text: str) -> ReadResult:
    data: Any = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("image"), dict):
        raise ValueError("the sd-metadata has no image settings")
    f = Fields("invokeai")
    if isinstance(data.get("model_weights"), str):
        f.req["model"] = data["model_weights"]
    if isinstance(data.get("model_hash"), str):
        f.model_hash = data["model_hash"]
    for key, value in data["image"].items():
        if key == "prompt":
            prompt = _prompt_text(value)
            if prompt is None:
                f.keep(key, value)
            else:
                f.req["prompt"], f.req["negative_prompt"] = _split_negative(prompt)
                if isinstance(value, list) and len(value) > 1:
                    f.keep("prompt weights", value)
        elif key in _IMAGE_KEYS:
            name, want = _IMAGE_KEYS[key]
            f.take(name, key, value, want)
        elif key == "sampler":
            _sampler(f, key, value)
        elif key in _IMAGE_IGNORED and value in (None, "txt2img", []):
            continue
        elif value not in (None, False, 0, "", [], {}):
            f.keep(key, value)
    if data["image"].get("type") not in (None, "txt2img"):
        f.keep("type", data["image"]["type"])
    return f.result()


def read_dream(text: str) -> ReadResult:
    words = shlex.split(text)  # a tokenizer only: nothing is run
    if not words:
        raise ValueError("the Dream text is empty")
    f = Fields("invokeai")
    f.req["prompt"], f.req["negative_prompt"] = _split_negative(words[0])
    rest = words[1:]
    i = 0
    while i < len(rest):
        flag, value = rest[i], rest[i + 1] if i + 1 < len(rest) else None
        if value is not None and re.fullmatch(r"--?[A-Za-z][\w-]*", value):
            value = None  # a switch without a value: the next word is a flag
        i += 1 if value is None else 2
        name = _DREAM_FLAGS.get(flag)
        if name == "sampler":
            _sampler(f, flag, value)
        elif name is not None:
            want = float if name == "cfg_scale" else int
            f.take(name, flag, value, want)
        else:
            f.keep(flag, value if value is not None else "on")
    return f.result(named=("sampler", "width", "height"))
