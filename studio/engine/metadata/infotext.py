"""A1111's infotext: written from a request, and split back into prompt, negative prompt and a
{key: value} settings line, with A1111's quoting."""

from __future__ import annotations

import json
import re
from typing import Any

from studio.engine.addons.refs import AddonRef, addon_refs
from studio.engine.metadata.sampler_names import a1111_sampler
from studio.engine.request import ControlSpec, GenerationRequest

_PREPROCESSOR_TO_A1111 = {"pose": "openpose"}


def _num(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _quote(text: str) -> str:
    # A1111's quote() quotes on , \n and :; we also quote on '"' so a value that starts and
    # ends with a quote can never be mistaken for a quoted one (A1111 unquotes it the same way)
    if any(c in text for c in ',\n:"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _controlnet_text(spec: ControlSpec) -> str:
    parts = {
        "Module": _PREPROCESSOR_TO_A1111.get(spec.preprocessor, spec.preprocessor),
        "Model": spec.model,
        "Weight": _num(spec.weight),
        "Guidance Start": _num(spec.guidance_start),
        "Guidance End": _num(spec.guidance_end),
    }
    for name, value in spec.params:
        parts[name] = _num(float(value))
    return ", ".join(f"{k}: {_quote(v)}" for k, v in parts.items())


def _hash_list(refs: list[AddonRef]) -> str | None:
    # A1111 drops ":" and "," from names so the list parses back
    names = [(r.name.replace(":", "").replace(",", ""), r.hash) for r in refs if r.hash]
    return ", ".join(f"{name}: {h}" for name, h in names) or None


def addon_params(refs: list[AddonRef]) -> dict[str, str | None]:
    """`VAE hash`, `VAE`, `Lora hashes`, `TI hashes` as A1111 writes them."""
    vae = next((r for r in refs if r.kind == "vae"), None)
    return {
        "VAE hash": vae.hash or None if vae else None,
        "VAE": vae.name if vae else None,
        "Lora hashes": _hash_list([r for r in refs if r.kind == "lora"]),
        "TI hashes": _hash_list([r for r in refs if r.kind == "embedding"]),
    }


def a1111_parameters(
    request: GenerationRequest,
    *,
    model_name: str,
    model_hash: str,
    seed: int | None = None,
    index: int = 0,
) -> str:
    """A1111 infotext: prompt, `Negative prompt:` line, then one `Key: value, ...` line."""
    seed = request.seed + index if seed is None else seed
    sampler, schedule_type = a1111_sampler(request.sampler, request.schedule.karras)
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": sampler,
        "Schedule type": schedule_type,
        "CFG scale": request.cfg_scale,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model_hash or None,
        "Model": model_name or None,
        "VAE hash": None,  # filled below with the other add-ons, in A1111's order
        "VAE": None,
        # A1111 writes these only away from its defaults; its default RNG is GPU, ours CPU
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "RNG": request.rng if request.rng != "GPU" else None,
        "ENSD": request.ensd or None,
    }
    if request.mode in ("img2img", "inpaint"):
        params["Denoising strength"] = request.strength
    if request.mode == "inpaint":
        params["Mask blur"] = request.mask_blur
        if request.inpaint_only_masked:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = request.inpaint_padding
    if request.batch_size > 1:
        params["Batch size"] = request.batch_size
        params["Batch pos"] = index
    schedule = request.schedule
    if schedule.cfg_rescale:
        params["CFG Rescale phi"] = schedule.cfg_rescale
    if schedule.zero_snr:
        params["Noise Schedule"] = "Zero Terminal SNR"
    params["Timestep spacing"] = schedule.timestep_spacing
    params["Prediction type"] = schedule.prediction_type
    for i, spec in enumerate(c for c in request.controls if c.enabled):
        params[f"ControlNet {i}"] = _controlnet_text(spec)
    params.update(addon_params(addon_refs(request)))

    line = ", ".join(
        f"{key}: {_quote(_num(v) if isinstance(v, (int, float)) else str(v))}"
        for key, v in params.items()
        if v is not None
    )
    negative = f"\nNegative prompt: {request.negative_prompt}" if request.negative_prompt else ""
    return f"{request.prompt}{negative}\n{line}".strip()


# A1111's infotext_utils.re_param is r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'.
# Its findall backtracks over every colon-less run of key characters from each start: quadratic
# (1 MB of plain text takes minutes). _RE_KEY finds the same keys in linear time: it starts only
# where a run of key characters starts (the lookbehind), and the runs never overlap.
_RE_KEY = re.compile(r"(?<![\w \-/])[ \-/]*(\w[\w \-/]+):")
_RE_SPACE = re.compile(r"\s*")
_RE_QUOTED = re.compile(r'"(?:\\.|[^\\"])+"')


def _ends_value(text: str, end: int) -> bool:
    # the (?:,|$) after a value; $ also matches before a final newline
    return end == len(text) or text[end] == "," or (end == len(text) - 1 and text[end] == "\n")


def _value(text: str, start: int) -> tuple[str, int]:
    """The value after a key's colon and where the next key may start."""
    start = _RE_SPACE.match(text, start).end()  # type: ignore[union-attr]
    quoted = _RE_QUOTED.match(text, start)
    if quoted and _ends_value(text, quoted.end()):
        end = quoted.end()
    else:
        comma = text.find(",", start)
        end = len(text) if comma < 0 else comma
    return text[start:end], end + 1 if end < len(text) and text[end] == "," else end


def find_params(text: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs exactly as A1111's re_param.findall gives them, in linear time."""
    pairs: list[tuple[str, str]] = []
    if ":" not in text:  # the common case of a caption, found at memchr speed
        return pairs
    pos = 0
    while (key := _RE_KEY.search(text, pos)) is not None:
        value, pos = _value(text, key.end())
        pairs.append((key.group(1), value))
    return pairs


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def split_a1111_text(text: str) -> tuple[str, str, dict[str, str] | None]:
    """(prompt, negative prompt, {key: value}) as A1111 splits it; None when no settings line."""
    *lines, last = text.strip().split("\n")
    params: dict[str, str] | None = None
    pairs = find_params(last)
    if len(pairs) >= 3:
        params = {k: _unquote(v.strip()) for k, v in pairs}
    else:
        lines.append(last)
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    return "\n".join(prompt), "\n".join(negative), params
