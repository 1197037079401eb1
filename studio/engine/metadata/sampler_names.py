"""Our sampler names (with or without a " Karras" suffix) to and from A1111's sampler and
schedule names. Other tools' names: comfyui_names, and each reader's own table."""

from __future__ import annotations

from studio.engine.samplers import SAMPLER_SPECS, SAMPLERS  # torch-free

# A1111 >= 1.9: what "Schedule type: Automatic" (or no Schedule type at all) means per sampler
# (modules/sd_samplers_kdiffusion.py, each sampler's 'scheduler' option; k-diffusion's own
# discrete sigmas, "Uniform", where none is given)
A1111_DEFAULT_SCHEDULE: dict[str, str] = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2S a": "Karras",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
    "Restart": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 3M SDE": "Exponential",
    "Euler": "Uniform",
    "Euler a": "Uniform",
    "LMS": "Uniform",
    "Heun": "Uniform",
    "DPM fast": "Uniform",
    "DPM adaptive": "Uniform",
    "LCM": "Uniform",
}
# samplers A1111 runs on their own timesteps: it ignores Schedule type for them
A1111_NO_SCHEDULE = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC"})
# our samplers that are not A1111's k-diffusion samplers and have one schedule of their own
_OURS_WITHOUT_SCHEDULE = frozenset({"DDIM", "DDPM", "LCM", "UniPC"})
# the A1111 schedule labels our engine can run (ScheduleOptions.karras)
_KARRAS_OF_LABEL = {"Karras": True, "Uniform": False}


def _split_karras(name: str) -> tuple[str, bool]:
    if name.endswith(" Karras"):
        return name[: -len(" Karras")], True
    return name, False


def effective_karras(sampler: str, karras: bool | None) -> bool:
    """Whether Karras sigmas are used: the explicit option, else what the sampler's name says."""
    spec = SAMPLER_SPECS.get(sampler)
    if spec is not None and not spec.supports_karras:
        return False
    return karras if karras is not None else _split_karras(sampler)[1]


def a1111_sampler(sampler: str, karras: bool | None) -> tuple[str, str | None]:
    """Our (sampler, karras option) as A1111 >= 1.9 writes them: (Sampler, Schedule type), the
    schedule explicit (never "Automatic", whose meaning depends on the sampler) and None for
    samplers A1111 runs without one."""
    base = _split_karras(sampler)[0]
    if base in _OURS_WITHOUT_SCHEDULE:
        return base, None
    return base, "Karras" if effective_karras(sampler, karras) else "Uniform"


def a1111_schedule_label(base: str, label: str | None) -> tuple[str | None, bool]:
    """The schedule an A1111 sampler ran with: (label, was it "Automatic"). None where A1111
    ignores the schedule or does not know the sampler."""
    if base in A1111_NO_SCHEDULE:
        return None, False
    if label is None or label == "Automatic":
        return A1111_DEFAULT_SCHEDULE.get(base), True
    return label, False


def karras_of_label(label: str) -> bool | None:
    """True/False for the schedules we run; None for the ones we cannot (Exponential, ...)."""
    return _KARRAS_OF_LABEL.get(label)


def _resolve_sampler(base: str, karras: bool | None) -> tuple[str, bool | None] | None:
    """A base name (no Karras suffix) and wanted Karras use -> our (sampler, karras option):
    the option stays None when the sampler's name already says what is wanted."""
    with_k = f"{base} Karras"
    plain_ok, k_ok = base in SAMPLERS, with_k in SAMPLERS
    if karras is None:
        return (base, None) if plain_ok else (with_k, None) if k_ok else None
    named = with_k if karras else base
    if named in SAMPLERS:
        return named, None
    other = base if karras else with_k
    if other not in SAMPLERS:
        return None
    if not SAMPLER_SPECS[other].supports_karras:
        return (other, None) if not karras else None
    return other, karras
