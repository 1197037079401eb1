"""Sampler names users know (A1111's) <-> diffusers schedulers, and the schedule options on top.

Changing the sampler builds a new scheduler from the facts in the model's scheduler config (its
noise schedule and prediction type); weights never reload.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.engine.request import GenerationRequest, ScheduleOptions


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)
    karras_default: bool = False  # the name itself says "Karras"
    supports_karras: bool = True


SAMPLER_SPECS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec("EulerDiscreteScheduler"),
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", supports_karras=False),
    "DDIM": SamplerSpec("DDIMScheduler", supports_karras=False),
    "DDPM": SamplerSpec("DDPMScheduler", supports_karras=False),
    "DPM++ 2M": SamplerSpec("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "DPM++ 2M Karras": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, karras_default=True
    ),
    "DPM++ 2M SDE Karras": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, karras_default=True
    ),
    "DPM++ SDE Karras": SamplerSpec("DPMSolverSDEScheduler", karras_default=True),
    "UniPC": SamplerSpec("UniPCMultistepScheduler"),
    "LMS": SamplerSpec("LMSDiscreteScheduler"),
    "Heun": SamplerSpec("HeunDiscreteScheduler"),
    "LCM": SamplerSpec("LCMScheduler", supports_karras=False),
}
SAMPLERS: tuple[str, ...] = tuple(SAMPLER_SPECS)

# "Schedule type" as A1111 shows it; Automatic keeps what the sampler name implies.
SCHEDULE_TYPES: tuple[str, ...] = ("Automatic", "Karras", "Uniform")

# What a model's scheduler config says about the model, so every sampler takes it over: the
# training noise schedule, what the UNet predicts, how sampling timesteps sit on the training ones
# (SD's leading spacing, steps_offset, DDIM's final alpha), the range of x0, and an LCM's
# distillation. The rest (Karras sigmas, solver order and algorithm, final sigma type...) is the
# shipped default sampler's own choice and would change every other sampler if carried over.
MODEL_SCHEDULE_KEYS = (
    "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
    "rescale_betas_zero_snr", "prediction_type", "timestep_spacing", "steps_offset",
    "set_alpha_to_one", "clip_sample", "clip_sample_range", "thresholding",
    "dynamic_thresholding_ratio", "sample_max_value", "original_inference_steps",
    "timestep_scaling",
)  # fmt: skip


def schedule_type_of(options: ScheduleOptions) -> str:
    return {None: "Automatic", True: "Karras", False: "Uniform"}[options.karras]


def karras_of(schedule_type: str) -> bool | None:
    return {"Automatic": None, "Karras": True, "Uniform": False}[schedule_type]


def uses_karras(sampler: str, options: ScheduleOptions) -> bool:
    spec = SAMPLER_SPECS[sampler]
    if not spec.supports_karras:
        return False
    return spec.karras_default if options.karras is None else options.karras


def scheduler_overrides(sampler: str, options: ScheduleOptions) -> dict[str, Any]:
    """The config changes that turn a model's scheduler config into this sampler's."""
    if sampler not in SAMPLER_SPECS:
        raise ValueError(f"Unknown sampler {sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    spec = SAMPLER_SPECS[sampler]
    overrides: dict[str, Any] = dict(spec.options)
    if spec.supports_karras:
        overrides["use_karras_sigmas"] = uses_karras(sampler, options)
    if options.timestep_spacing:
        overrides["timestep_spacing"] = options.timestep_spacing
    if options.zero_snr:
        overrides["rescale_betas_zero_snr"] = True
        # SNR(T)=0 needs the last timestep sampled: trailing spacing (Lin et al. 2023)
        overrides.setdefault("timestep_spacing", "trailing")
    if options.prediction_type:
        overrides["prediction_type"] = options.prediction_type
    return overrides


def make_scheduler(
    model_config: dict[str, Any], sampler: str, options: ScheduleOptions, seed: int | None = None
) -> Any:
    """A fresh scheduler for `sampler`, built from the model's scheduler config."""
    import diffusers

    overrides = scheduler_overrides(sampler, options)
    cls = getattr(diffusers, SAMPLER_SPECS[sampler].scheduler)
    config = {k: v for k, v in dict(model_config).items() if k in MODEL_SCHEDULE_KEYS}
    accepted = inspect.signature(cls.__init__).parameters
    if "noise_sampler_seed" in accepted and seed is not None:
        # the SDE solver's Brownian tree has its own RNG; without a seed it is never the same twice
        overrides["noise_sampler_seed"] = seed
    if overrides.get("rescale_betas_zero_snr") and "rescale_betas_zero_snr" not in accepted:
        raise ValueError(f"The {sampler} sampler does not support zero-terminal SNR in diffusers.")
    return cls.from_config(config, **overrides)


# ---- the schedule at a glance (for the log-SNR plot) ---------------------------------------
@dataclass(frozen=True)
class ScheduleCurve:
    train_timesteps: np.ndarray  # 0..T-1
    log_snr: np.ndarray  # log(alpha_bar / (1 - alpha_bar)) at each training timestep
    sampling_timesteps: np.ndarray  # the timesteps this sampler visits, in order


def schedule_curve(model_config: dict[str, Any], request: GenerationRequest) -> ScheduleCurve:
    scheduler = make_scheduler(model_config, request.sampler, request.schedule)
    scheduler.set_timesteps(request.steps)
    alphas_cumprod = scheduler.alphas_cumprod.double().numpy()
    # zero-terminal SNR makes the last alpha_bar 0: clip so the plot stays finite
    alphas_cumprod = np.clip(alphas_cumprod, 1e-12, 1 - 1e-12)
    log_snr = np.log(alphas_cumprod / (1.0 - alphas_cumprod))
    timesteps = np.asarray(scheduler.timesteps, dtype=np.float64)
    return ScheduleCurve(np.arange(len(log_snr)), log_snr, timesteps)
