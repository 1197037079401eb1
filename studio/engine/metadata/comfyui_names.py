"""ComfyUI's KSampler sampler_name x scheduler -> our (sampler, karras option), or why not.

Only pairs our diffusers samplers really run are mapped: the same solver on the same sigmas.
ComfyUI's "normal" scheduler is k-diffusion's discrete schedule (A1111's "Uniform"), "karras" is
Karras et al.'s; the others (simple, sgm_uniform, exponential, ddim_uniform, beta, ...) space the
sigmas in ways our samplers have no option for, so they are reported, never approximated."""

from __future__ import annotations

from studio.engine.metadata.sampler_names import _resolve_sampler, effective_karras

# sampler_name -> our base name (without " Karras")
COMFY_SAMPLERS: dict[str, str] = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "lms": "LMS",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",  # same solver; Brownian noise made on the GPU
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc_bh2": "UniPC",  # diffusers' UniPC is the bh2 variant
    "lcm": "LCM",
}
# names ComfyUI has that we cannot run, with what they are
COMFY_UNAVAILABLE: dict[str, str] = {
    "uni_pc": "UniPC bh1 (ours is bh2)",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "heunpp2": "Heun++",
    "ipndm": "iPNDM",
    "ipndm_v": "iPNDM-v",
    "deis": "DEIS",
}
COMFY_SCHEDULERS: dict[str, bool] = {"karras": True, "normal": False}
# samplers whose diffusers scheduler has one timestep schedule of its own, and the ComfyUI
# scheduler that is that schedule (DDIM's evenly spaced training timesteps)
_OWN_SCHEDULE = {"DDIM": "ddim_uniform", "DDPM": None, "LCM": None}


def comfy_sampler(
    name: str, scheduler: str | None
) -> tuple[tuple[str, bool | None] | None, str | None]:
    """((our sampler, karras option) or None, why the scheduler is not mapped or None)."""
    base = COMFY_SAMPLERS.get(name)
    if base is None:
        unknown = scheduler is not None and scheduler not in COMFY_SCHEDULERS
        return None, f"no {scheduler!r} schedule here" if unknown else None
    plain = _resolve_sampler(base, None)
    assert plain is not None  # every base above is one of ours
    if scheduler is None:
        return plain, None
    if base in _OWN_SCHEDULE:
        if scheduler == _OWN_SCHEDULE[base]:
            return plain, None
        return plain, f"{base} runs on its own timesteps, not {scheduler!r}"
    karras = COMFY_SCHEDULERS.get(scheduler)
    if karras is None:
        return plain, f"no {scheduler!r} schedule here"
    resolved = _resolve_sampler(base, karras)
    if resolved is None or effective_karras(*resolved) != karras:
        return plain, f"{base} has no {scheduler!r} schedule here"
    return resolved, None


def describe_unavailable(name: str) -> str:
    known = COMFY_UNAVAILABLE.get(name)
    return f"{name} ({known}, not available)" if known else f"{name} (not available)"
