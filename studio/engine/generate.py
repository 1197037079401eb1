"""generate(request) -> images: the one function the CLI, the GUI worker and the tests call."""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from studio.engine.control import preprocess_control
from studio.engine.masks import paste_back, prepare_mask
from studio.engine.models import ModelInfo
from studio.engine.pipelines import PipelineCache, pipeline_mode
from studio.engine.request import (
    MODES,
    PREDICTION_TYPES,
    PREPROCESSORS,
    TIMESTEP_SPACINGS,
    ControlSpec,
    GenerationRequest,
    GenerationResult,
    StepUpdate,
)
from studio.engine.samplers import SAMPLER_SPECS, SAMPLERS, make_scheduler

MAX_STEPS = 1000  # SD schedules have 1000 training timesteps: more steps cannot exist
MAX_CFG = 50.0
MAX_BATCH = 16
MAX_INPUT_SIDE = 8192  # a larger init image is refused rather than resized into memory trouble
MIN_SIDE = 64
# previews may cost at most this share of a run: a VAE-decoded preview of a small model on a
# CPU costs about half a UNet step, so on slow machines previews thin out instead of slowing it
PREVIEW_BUDGET = 0.05

StepCallback = Callable[[StepUpdate], None]


class _Cancelled(Exception):
    pass


def check_request(request: GenerationRequest, info: ModelInfo | None = None) -> None:
    """Raise ValueError with a message a user understands for the first invalid field."""
    r = request
    if r.mode not in MODES:
        raise ValueError(f"Unknown mode {r.mode!r}; use one of {', '.join(MODES)}.")
    if r.sampler not in SAMPLER_SPECS:
        raise ValueError(f"Unknown sampler {r.sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    _check_int("Steps", r.steps, 1, MAX_STEPS)
    if not isinstance(r.cfg_scale, int | float) or not math.isfinite(r.cfg_scale):
        raise ValueError("CFG scale must be a number.")
    if not 0 <= r.cfg_scale <= MAX_CFG:
        raise ValueError(f"CFG scale must be between 0 and {MAX_CFG:g} (it is {r.cfg_scale:g}).")
    _check_int("Batch size", r.batch_size, 1, MAX_BATCH)
    _check_int("Seed", r.seed, 0, 2**63 - 1 - MAX_BATCH)
    max_side = info.max_size if info else 4096
    for name, side in (("Width", r.width), ("Height", r.height)):
        _check_int(name, side, MIN_SIDE, max_side)
        if side % 8:
            lower, upper = side // 8 * 8, side // 8 * 8 + 8
            raise ValueError(
                f"{name} must be a multiple of 8 (try {lower} or {upper}), not {side}."
            )
    s = r.schedule
    if s.timestep_spacing not in (None, *TIMESTEP_SPACINGS):
        raise ValueError(f"Timestep spacing must be one of {', '.join(TIMESTEP_SPACINGS)}.")
    if s.prediction_type not in (None, *PREDICTION_TYPES):
        raise ValueError(f"Prediction type must be one of {', '.join(PREDICTION_TYPES)}.")
    if not 0 <= s.cfg_rescale <= 1:
        raise ValueError("CFG rescale must be between 0 and 1.")
    if r.mode in ("img2img", "inpaint"):
        if not (isinstance(r.strength, int | float) and 0 < r.strength <= 1):
            raise ValueError(f"Denoising strength must be in (0, 1], not {r.strength}.")
        if r.init_image is None:
            raise ValueError(f"{r.mode} needs an input image.")
        _check_image_size("The input image", r.init_image)
    if r.mode == "inpaint":
        if r.mask is None:
            raise ValueError("Inpainting needs a mask: paint the area to repaint.")
        if r.mask.size != r.init_image.size:
            raise ValueError(
                f"The mask is {r.mask.width}x{r.mask.height} but the image is "
                f"{r.init_image.width}x{r.init_image.height}; they must match."
            )
        _check_int("Mask blur", r.mask_blur, 0, 256)
        _check_int("Inpaint padding", r.inpaint_padding, 0, 4096)
    for i, c in enumerate(r.controls, start=1):
        if c.preprocessor not in PREPROCESSORS:
            raise ValueError(f"ControlNet {i}: unknown preprocessor {c.preprocessor!r}.")
        if not 0 <= c.weight <= 2:
            raise ValueError(f"ControlNet {i}: weight must be between 0 and 2.")
        if not 0 <= c.guidance_start < c.guidance_end <= 1:
            raise ValueError(f"ControlNet {i}: need 0 <= start < end <= 1.")
        if c.enabled and c.image is None:
            raise ValueError(f"ControlNet {i}: no control image.")


def generate(
    request: GenerationRequest,
    cache: PipelineCache,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
    preview_every: int = 1,
    preview_source: str = "x0",
    preview_budget: float | None = PREVIEW_BUDGET,
) -> GenerationResult:
    """Run one request; image k of the batch uses seed + k. Never writes files.

    Previews come every `preview_every` steps, but a due preview is skipped while previews have
    taken more than `preview_budget` of the time so far (None: never skipped).
    """
    started = time.perf_counter()
    # 1. Load the model (once) and check the request against it
    info = cache.load(request.model)
    check_request(request, info)
    if cancel is not None and cancel.is_set():
        return GenerationResult(request, cancelled=True, model_name=info.name)

    # 2. The pipeline for this mode and ControlNets, with this request's sampler (weights shared)
    controls = [c for c in request.controls if c.enabled]
    controlnets = [cache.controlnet(c.model) for c in controls]
    pipe = cache.pipeline(request, controlnets)
    pipe.scheduler = make_scheduler(
        cache.scheduler_config, request.sampler, request.schedule, seed=request.seed
    )
    tracker = _StepTracker(cache, on_step, cancel, preview_every, preview_source, preview_budget)
    tracker.watch(pipe.scheduler)

    # 3. Inputs for the mode, and the control maps
    call_kwargs = _mode_inputs(request, info)
    control_maps = [preprocess_control(c, (request.width, request.height)) for c in controls]
    if controls:
        call_kwargs.update(_control_inputs(controls, control_maps, "image" in call_kwargs))
    accepted = inspect.signature(pipe.__call__).parameters
    if request.schedule.cfg_rescale > 0:
        if "guidance_rescale" not in accepted:
            raise ValueError("CFG rescale is only available for txt2img without ControlNet.")
        call_kwargs["guidance_rescale"] = request.schedule.cfg_rescale

    # 4. One generator per image, so any image of a batch can be made again alone
    seeds = [request.seed + k for k in range(request.batch_size)]
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]

    # 5. Denoise
    try:
        with torch.inference_mode():
            output = pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                num_inference_steps=request.steps,
                guidance_scale=request.cfg_scale,
                num_images_per_prompt=request.batch_size,
                generator=generators,
                callback_on_step_end=tracker,
                callback_on_step_end_tensor_inputs=["latents"],
                output_type="pil",
                **call_kwargs,
            )
    except _Cancelled:
        return GenerationResult(request, cancelled=True, model_name=info.name)

    # 6. Keep the user's pixels outside the mask exactly as they were
    images = list(output.images)
    if pipeline_mode(request, info) == "inpaint" and request.mode == "inpaint":
        images = [_paste_back(request, image) for image in images]
    return GenerationResult(
        request=request,
        images=images,
        seeds=seeds,
        elapsed_s=time.perf_counter() - started,
        model_name=info.name,
        model_hash=info.model_hash,
        control_maps=control_maps,
    )


def _control_inputs(
    controls: list[ControlSpec], maps: list[Image.Image], has_init_image: bool
) -> dict[str, Any]:
    def one_or_list(values: list) -> Any:
        # a single ControlNet takes scalars; MultiControlNet takes one value per unit
        return values[0] if len(values) == 1 else values

    # txt2img ControlNet pipelines call the control map `image`; the others `control_image`
    return {
        "control_image" if has_init_image else "image": one_or_list(maps),
        "controlnet_conditioning_scale": one_or_list([c.weight for c in controls]),
        "control_guidance_start": one_or_list([c.guidance_start for c in controls]),
        "control_guidance_end": one_or_list([c.guidance_end for c in controls]),
    }


def _mode_inputs(request: GenerationRequest, info: ModelInfo) -> dict[str, Any]:
    size = (request.width, request.height)
    mode = pipeline_mode(request, info)
    if mode == "txt2img":
        return {"width": request.width, "height": request.height}
    if mode == "img2img":
        return {"image": _fit(request.init_image, size), "strength": request.strength}
    if request.mode == "inpaint":
        kwargs = {
            "image": _fit(request.init_image, size),
            "mask_image": _feathered_mask(request),
            "strength": request.strength,
        }
        if request.inpaint_only_masked:
            kwargs["padding_mask_crop"] = request.inpaint_padding
    else:  # txt2img or img2img on a 9-channel inpainting UNet: a full mask repaints everything
        kwargs = {
            "image": _fit(request.init_image, size) if request.init_image else _grey(size),
            "mask_image": Image.new("L", size, 255),
            "strength": request.strength if request.mode == "img2img" else 1.0,
        }
    return {**kwargs, "width": request.width, "height": request.height}


def _feathered_mask(request: GenerationRequest) -> Image.Image:
    return prepare_mask(request.mask, (request.width, request.height), request.mask_blur)


def _paste_back(request: GenerationRequest, generated: Image.Image) -> Image.Image:
    original = _fit(request.init_image, generated.size)
    return paste_back(original, generated, _feathered_mask(request))


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _grey(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, (127, 127, 127))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (it is {value}).")


def _check_image_size(what: str, image: Image.Image) -> None:
    if max(image.size) > MAX_INPUT_SIDE:
        raise ValueError(
            f"{what} is {image.width}x{image.height}; the largest accepted side is {MAX_INPUT_SIDE} px."
        )


class _StepTracker:
    """The pipeline's step callback: cancel within one step, previews every N steps."""

    def __init__(
        self,
        cache: PipelineCache,
        on_step: StepCallback | None,
        cancel: threading.Event | None,
        preview_every: int,
        preview_source: str,
        preview_budget: float | None,
    ):
        if preview_source not in ("x0", "xt"):
            raise ValueError(
                "preview_source must be 'x0' (predicted clean image) or 'xt' (noisy latent)."
            )
        self.previewer = cache.previewer
        self.on_step = on_step
        self.cancel = cancel
        self.preview_every = preview_every
        self.preview_source = preview_source
        self.preview_budget = preview_budget
        self.started = time.perf_counter()
        self.preview_s = 0.0  # time spent making previews
        self.x0: torch.Tensor | None = None

    def watch(self, scheduler: Any) -> None:
        """Wrap this scheduler instance's step to keep its predicted clean latent, x̂0."""
        if not (self.on_step and self.preview_every and self.preview_source == "x0"):
            return
        step = scheduler.step

        @functools.wraps(step)  # keeps the signature: pipelines inspect it to pass `generator`
        def step_keeping_x0(*args: Any, **kwargs: Any) -> Any:
            out = step(*args, **kwargs)
            self.x0 = _predicted_x0(scheduler, out)
            return out

        scheduler.step = step_keeping_x0

    def _within_budget(self) -> bool:
        if self.preview_budget is None:
            return True
        return self.preview_s <= self.preview_budget * (time.perf_counter() - self.started)

    def __call__(self, pipe: Any, index: int, timestep: Any, tensors: dict) -> dict:
        if self.cancel is not None and self.cancel.is_set():
            # raising ends the loop now and skips decoding an image nobody will see
            pipe._interrupt = True
            raise _Cancelled
        if self.on_step is None:
            return tensors
        step, total = index + 1, pipe.num_timesteps
        preview = None
        due = self.preview_every and (step % self.preview_every == 0 or step == total)
        if due and self.previewer and self._within_budget():
            started = time.perf_counter()
            latents = self.x0 if self.x0 is not None else tensors["latents"]
            preview = self.previewer(latents)
            self.preview_s += time.perf_counter() - started
        self.on_step(StepUpdate(step, total, preview, float(timestep)))
        return tensors


def _predicted_x0(scheduler: Any, out: Any) -> torch.Tensor | None:
    # DDIM, DDPM, Euler, LMS, Heun, LCM return x̂0 beside the new sample...
    if isinstance(out, tuple):
        if len(out) > 1 and isinstance(out[1], torch.Tensor):
            return out[1]
    elif getattr(out, "pred_original_sample", None) is not None:
        return out.pred_original_sample
    # ...multistep solvers (DPM++, UniPC) keep it as their last converted model output
    outputs = getattr(scheduler, "model_outputs", None)
    if outputs and isinstance(outputs[-1], torch.Tensor):
        return outputs[-1]
    return None
