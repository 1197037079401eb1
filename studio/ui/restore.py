"""Put an image's stored settings into the state, and say what could not be restored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.ui.control_state import ControlList
from studio.ui.state import StudioState

if TYPE_CHECKING:
    from studio.engine.metadata import ReadResult

_LABELS = {
    "negative_prompt": "negative prompt",
    "cfg_scale": "CFG",
    "schedule_type": "schedule",
    "mask_blur": "mask blur",
    "inpaint_only_masked": "inpaint only masked",
    "inpaint_padding": "inpaint padding",
}


def read_for_restore(path: Path, addon_folders: tuple[str, ...] = ()) -> ReadResult:
    """Read an image's settings and name every add-on it uses that the user lacks (run it off
    the UI thread: comparing hashes reads the user's add-on files once, then they are cached)."""
    from studio.engine.addons.refs import missing_addons
    from studio.engine.metadata import read_settings

    found = read_settings(path)
    if found.request is not None:
        for missing in missing_addons(found, addon_folders, addon_folders, addon_folders):
            found.warnings.append(missing.message())
    return found


@dataclass(frozen=True)
class RestoreOutcome:
    path: Path
    applied: tuple[str, ...]  # names of the state properties (and "ControlNet units") restored
    text: str  # for the banner
    ok: bool  # False: nothing was restored (the text is an error)


def apply_read_result(
    path: Path,
    found: ReadResult,
    state: StudioState,
    controls: ControlList,
    model_names: tuple[str, ...],
) -> RestoreOutcome:
    """Apply `found` (read from `path`); `model_names` are the names the current model goes by."""
    request = found.single_image_request()
    if request is None:
        note = " ".join(found.warnings)
        text = f"{path.name} carries no generation settings. {note}".strip()
        return RestoreOutcome(path, (), text, ok=False)
    missing = [f"{k} ({v})" for k, v in found.unmapped.items()]
    applied = state.apply_request(request)
    if request.controls:
        controls.set_specs(request.controls)
        applied.append("ControlNet units")
        missing += [
            f"control image {i + 1}" for i, c in enumerate(request.controls) if c.image is None
        ]
    if "sampler" not in applied and "sampler" not in found.substituted:
        missing.append(f"sampler ({request.sampler})")
    # fields that hold our default because the image's own value could not be used
    missing += [f"{name} (kept as {getattr(request, name)!s})" for name in found.substituted]
    labels = ", ".join(_LABELS.get(n, n) for n in applied)
    text = f"Restored from {path.name} ({found.source}): {labels}."
    model = found.model_name or request.model
    if model and model not in model_names:
        missing.append(f"model ({model}; choose it in the model picker)")
    if missing:
        text += " Could not restore: " + "; ".join(missing) + "."
    if found.warnings:
        text += " " + " ".join(found.warnings)
    return RestoreOutcome(path, tuple(applied), text, ok=True)
