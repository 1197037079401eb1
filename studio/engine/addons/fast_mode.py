"""Fast mode with an LCM-LoRA, and hints for distilled models (Turbo, Lightning, LCM, Hyper).

Pure functions on requests, torch-free: the UI calls `fast_mode_settings` when fast mode is
switched on and `normal_mode_settings` with the request it had before when it is switched off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.engine.addons.tags import LoraTag, lora_tags, set_lora_tag
from studio.engine.request import GenerationRequest

LCM_SAMPLER = "LCM"
FAST_STEPS = (4, 8)  # LCM-LoRA's useful range; 4 by default
FAST_CFG = (1.0, 2.0)
DEFAULT_FAST_STEPS = 4
DEFAULT_FAST_CFG = 1.5


def is_lcm_name(name: str) -> bool:
    """LCM-LoRAs are published as lcm-lora-sdv1-5, lcm-lora-sdxl, ... (also see inspect_lora)."""
    return re.search(r"lcm", name, re.IGNORECASE) is not None


def fast_mode_settings(request: GenerationRequest, lcm_lora: str) -> GenerationRequest:
    """The request in fast mode: the LCM-LoRA `lcm_lora` at weight 1, the LCM sampler,
    4-8 steps (4 unless already in range) and CFG 1-2 (1.5 unless already in range)."""
    low, high = FAST_STEPS
    steps = request.steps if low <= request.steps <= high else DEFAULT_FAST_STEPS
    cfg_low, cfg_high = FAST_CFG
    cfg = request.cfg_scale if cfg_low <= request.cfg_scale <= cfg_high else DEFAULT_FAST_CFG
    return request.with_(
        prompt=set_lora_tag(request.prompt, LoraTag(lcm_lora), lcm_lora),
        sampler=LCM_SAMPLER,
        steps=steps,
        cfg_scale=cfg,
    )


def normal_mode_settings(
    request: GenerationRequest, before: GenerationRequest
) -> GenerationRequest:
    """Fast mode off: sampler, schedule, steps and CFG as `before`; LCM-LoRA tags removed
    (the rest of the prompt, as edited meanwhile, is kept)."""
    prompt = request.prompt
    before_names = {t.name for t in lora_tags(before.prompt)}
    for tag in lora_tags(prompt):
        if is_lcm_name(tag.name) and tag.name not in before_names:
            prompt = set_lora_tag(prompt, None, tag.name)
    return request.with_(
        prompt=prompt,
        sampler=before.sampler,
        schedule=before.schedule,
        steps=before.steps,
        cfg_scale=before.cfg_scale,
    )


def in_fast_mode(request: GenerationRequest) -> bool:
    return request.sampler == LCM_SAMPLER and any(
        is_lcm_name(t.name) for t in lora_tags(request.prompt)
    )


@dataclass(frozen=True)
class Hint:
    setting: str  # "sampler", "steps", "cfg_scale", "timestep_spacing"
    value: object  # what the model wants
    why: str


_DISTILLED = (
    ("turbo", "Turbo"),
    ("lightning", "Lightning"),
    ("hyper", "Hyper-SD"),
    ("lcm", "LCM"),
)


def distilled_kind(names: list[str]) -> str | None:
    """Turbo/Lightning/Hyper-SD/LCM, from the model's or a LoRA's name."""
    for name in names:
        for word, kind in _DISTILLED:
            if word in name.lower():
                return kind
    return None


def sampling_hints(request: GenerationRequest, model_name: str) -> list[Hint]:
    """What a few-step distilled model (by its name or a LoRA's) wants and the request lacks:
    trailing timestep spacing, CFG <= 1 (Turbo, Lightning), few steps, the LCM sampler."""
    kind = distilled_kind([model_name, *(t.name for t in lora_tags(request.prompt))])
    if kind is None:
        return []
    hints: list[Hint] = []
    spacing = request.schedule.timestep_spacing
    if kind in ("Turbo", "Lightning", "Hyper-SD") and spacing != "trailing":
        hints.append(
            Hint("timestep_spacing", "trailing", f"{kind} models are trained on trailing timesteps")
        )
    if kind in ("Turbo", "Lightning") and request.cfg_scale > 1:
        hints.append(
            Hint("cfg_scale", 1.0, f"{kind} models are distilled without CFG: use CFG 1 or less")
        )
    if kind == "LCM":
        if request.sampler != LCM_SAMPLER:
            hints.append(Hint("sampler", LCM_SAMPLER, "LCM models need the LCM sampler"))
        if request.cfg_scale > FAST_CFG[1]:
            hints.append(Hint("cfg_scale", DEFAULT_FAST_CFG, "LCM works with CFG 1-2"))
    if request.steps > FAST_STEPS[1]:
        hints.append(Hint("steps", DEFAULT_FAST_STEPS, f"{kind} models need only 1-8 steps"))
    return hints
