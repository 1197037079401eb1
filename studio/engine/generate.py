"""generate(request) -> images: the one function the CLI, the GUI worker and the tests call."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from studio.engine.addons.job import addons_applied
from studio.engine.checks import check_request
from studio.engine.control import preprocess_control
from studio.engine.masks import Box, crop_to_bounds, mask_bounds, paste_back, prepare_mask
from studio.engine.models import ModelInfo
from studio.engine.noise import ImageNoise, per_image_brownian_trees
from studio.engine.pipelines import PipelineCache, pipeline_mode
from studio.engine.precision import decode_guard
from studio.engine.prompts.inputs import RequestPrompts
from studio.engine.request import ControlSpec, GenerationRequest, GenerationResult, StepUpdate
from studio.engine.samplers import make_scheduler

# previews may cost at most this share of a run: a VAE-decoded preview of a small model on a
# CPU costs about half a UNet step, so on slow machines previews thin out instead of slowing it
PREVIEW_BUDGET = 0.05

StepCallback = Callable[[StepUpdate], None]


class _Cancelled(Exception):
    pass


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

    # 3. Inputs for the mode, and the control maps (cropped like the image for "only masked")
    inpaint = _Inpaint.of(request)
    call_kwargs = _mode_inputs(request, info, inpaint)
    control_maps = [preprocess_control(c, (request.width, request.height)) for c in controls]
    if controls:
        maps = [inpaint.zoom(m) for m in control_maps] if inpaint is not None else control_maps
        call_kwargs.update(_control_inputs(controls, maps, "image" in call_kwargs))
    accepted = inspect.signature(pipe.__call__).parameters
    if request.schedule.cfg_rescale > 0:
        if "guidance_rescale" not in accepted:
            raise ValueError("CFG rescale is only available for txt2img without ControlNet.")
        call_kwargs["guidance_rescale"] = request.schedule.cfg_rescale

    # 4. One generator per image, so any image of a batch can be made again alone
    seeds = [request.seed + k for k in range(request.batch_size)]
    noise = ImageNoise(seeds, request.rng, cache.device, request.ensd)
    generators = noise.torch_generators()
    per_image_brownian_trees(pipe.scheduler, seeds)

    # 5. Denoise, with the request's LoRAs, embeddings and VAE (studio.engine.addons)
    try:
        with addons_applied(pipe, request) as addons, torch.inference_mode():
            # A1111's prompt language: weights, chunks, editing, AND (studio.engine.prompts)
            prompts = RequestPrompts(
                pipe,
                addons.prompt,
                addons.negative_prompt,
                request.steps,
                request.batch_size,
                info.family,
                request.clip_skip,
                addons.embeddings,
            )
            # a NaN half-precision decode is redone in fp32 (studio.engine.precision)
            with prompts.applied(), noise.patched(pipe), decode_guard(pipe) as vae_check:
                output = pipe(
                    **prompts.pipeline_inputs,
                    num_inference_steps=request.steps,
                    guidance_scale=request.cfg_scale,
                    num_images_per_prompt=request.batch_size,
                    generator=generators,
                    callback_on_step_end=prompts.callback(tracker),
                    callback_on_step_end_tensor_inputs=prompts.tensor_inputs(pipe, ["latents"]),
                    output_type="pil",
                    **call_kwargs,
                )
    except _Cancelled:
        return GenerationResult(request, cancelled=True, model_name=info.name)

    # 6. Keep the user's pixels outside the mask exactly as they were
    images = list(output.images)
    if inpaint is not None:
        images = [inpaint.paste_back(image) for image in images]
    return GenerationResult(
        request=request,
        images=images,
        seeds=seeds,
        elapsed_s=time.perf_counter() - started,
        model_name=info.name,
        model_hash=info.model_hash,
        control_maps=control_maps,
        notes=tuple(dict.fromkeys(vae_check.notes)),
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


def _mode_inputs(
    request: GenerationRequest, info: ModelInfo, inpaint: _Inpaint | None
) -> dict[str, Any]:
    size = (request.width, request.height)
    mode = pipeline_mode(request, info)
    if mode == "txt2img":
        return {"width": request.width, "height": request.height}
    if mode == "img2img":
        return {"image": _fit(request.init_image, size), "strength": request.strength}
    if inpaint is not None:
        image, mask = inpaint.model_inputs()
        kwargs = {"image": image, "mask_image": mask, "strength": request.strength}
    else:  # txt2img or img2img on a 9-channel inpainting UNet: a full mask repaints everything
        kwargs = {
            "image": _fit(request.init_image, size) if request.init_image else _grey(size),
            "mask_image": Image.new("L", size, 255),
            "strength": request.strength if request.mode == "img2img" else 1.0,
        }
    return {**kwargs, "width": request.width, "height": request.height}


@dataclass(frozen=True)
class _Inpaint:
    """An inpaint job's image and feathered mask at the output size, and the part the model repaints.

    With "inpaint only masked" (A1111's "Inpaint area: Only masked") the model repaints only `box`
    around the mask, scaled up to the output size: small areas get the model's full resolution.
    """

    image: Image.Image
    mask: Image.Image  # feathered: the blend weight when the result goes back over `image`
    box: Box | None  # None: the whole image

    @classmethod
    def of(cls, request: GenerationRequest) -> _Inpaint | None:
        if request.mode != "inpaint":
            return None
        size = (request.width, request.height)
        mask = prepare_mask(request.mask, size, request.mask_blur)
        box = None
        if request.inpaint_only_masked:
            # bounds of the feathered mask, so the blur's soft edge is repainted too
            box = mask_bounds(mask, request.inpaint_padding, size, multiple=8, target_size=size)
        return cls(_fit(request.init_image, size), mask, box)

    def model_inputs(self) -> tuple[Image.Image, Image.Image]:
        return self.zoom(self.image, Image.Resampling.LANCZOS), self.zoom(self.mask)

    def zoom(
        self, image: Image.Image, resample: Image.Resampling = Image.Resampling.BILINEAR
    ) -> Image.Image:
        """A full-size image cut to the repainted box and scaled to the output size."""
        if self.box is None:
            return image
        return crop_to_bounds(image, self.box).resize(self.image.size, resample)

    def paste_back(self, generated: Image.Image) -> Image.Image:
        # keeps every pixel outside the mask exactly as it was; a crop is scaled back into its box
        return paste_back(self.image, generated, self.mask, box=self.box)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _grey(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, (127, 127, 127))


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
