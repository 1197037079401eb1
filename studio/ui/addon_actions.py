"""What choosing a LoRA, embedding or VAE in the model library does to the window's settings.

A LoRA is a `<lora:name:1>` tag in the prompt (A1111's syntax, so the prompt is the recipe);
choosing it again removes it. An LCM-LoRA switches fast mode on (the LCM sampler, 4-8 steps,
CFG 1-2) and, chosen again, back to the settings from before. An embedding is triggered by its
name in the prompt. A VAE replaces the model's own until chosen again.
"""

from __future__ import annotations

import re

from studio.engine.addons.fast_mode import fast_mode_settings, is_lcm_name, normal_mode_settings
from studio.engine.addons.tags import LoraTag, lora_tags, set_lora_tag
from studio.engine.library import LibraryEntry
from studio.engine.request import GenerationRequest
from studio.ui.state import StudioState


class AddonActions:
    def __init__(self, state: StudioState):
        self.state = state
        self.before_fast: GenerationRequest | None = None  # the settings fast mode replaced

    def is_in_use(self, entry: LibraryEntry) -> bool:
        if entry.kind == "lora":
            return any(t.name == entry.name for t in lora_tags(self.state.prompt))
        if entry.kind == "embedding":
            return _word(entry.name).search(self.state.prompt) is not None
        if entry.kind == "vae":
            return bool(self.state.vae) and self.state.vae == entry.path
        return False

    def use(self, entry: LibraryEntry) -> str:
        """Apply or remove the add-on; returns what happened, for the status bar."""
        state = self.state
        if entry.kind == "lora" and is_lcm_name(entry.name):
            return self._toggle_fast_mode(entry.name)
        if entry.kind == "lora":
            on = not self.is_in_use(entry)
            state.prompt = set_lora_tag(
                state.prompt, LoraTag(entry.name) if on else None, entry.name
            )
            return f"LoRA {entry.name} {'added to' if on else 'removed from'} the prompt."
        if entry.kind == "embedding":
            if self.is_in_use(entry):
                state.prompt = _word(entry.name).sub("", state.prompt).strip(" ,")
                return f"Embedding {entry.name} removed from the prompt."
            state.prompt = f"{state.prompt}, {entry.name}" if state.prompt else entry.name
            return f"Embedding {entry.name} added to the prompt."
        if entry.kind == "vae":
            on = not self.is_in_use(entry)
            state.vae = entry.path if on else ""
            return f"VAE: {entry.name}." if on else "VAE: the model's own."
        return ""

    def _toggle_fast_mode(self, name: str) -> str:
        state = self.state
        now = state.request(seed=0)
        if self.before_fast is None or not any(t.name == name for t in lora_tags(state.prompt)):
            self.before_fast = now
            _show(state, fast_mode_settings(now, name))
            return (
                f"Fast mode with {name}: LCM sampler, {state.steps} steps, CFG {state.cfg_scale:g}."
                " Choose it again to switch back."
            )
        _show(state, normal_mode_settings(now, self.before_fast))
        self.before_fast = None
        return "Fast mode off: sampler, steps and CFG as before."


def _show(state: StudioState, request: GenerationRequest) -> None:
    from studio.engine.samplers import schedule_type_of

    state.prompt = request.prompt
    state.sampler = request.sampler
    state.schedule_type = schedule_type_of(request.schedule)
    state.steps = request.steps
    state.cfg_scale = request.cfg_scale


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
