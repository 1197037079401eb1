"""check_request: every field of a request checked before any work, with a message a user acts on.

Torch-free, so the GUI can check a request on click and the CLI before the model loads.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from studio.engine.request import (
    FOLDER_FIELDS,
    MAX_CLIP_SKIP,
    MODES,
    PREDICTION_TYPES,
    PREPROCESSORS,
    RNG_SOURCES,
    TIMESTEP_SPACINGS,
    GenerationRequest,
)
from studio.engine.samplers import SAMPLER_SPECS, SAMPLERS
from studio.engine.seeds import MAX_SEED

if TYPE_CHECKING:
    from PIL import Image

    from studio.engine.models import ModelInfo

MAX_STEPS = 1000  # SD schedules have 1000 training timesteps: more steps cannot exist
MAX_CFG = 50.0
MAX_BATCH = 16
MAX_INPUT_SIDE = 8192  # a larger init image is refused rather than resized into memory trouble
MIN_SIDE = 64
MAX_SIDE = 4096  # without model info; a known model may allow less (ModelInfo.max_size)


def check_request(request: GenerationRequest, info: ModelInfo | None = None) -> None:
    """Raise ValueError with a message a user understands for the first invalid field."""
    r = request
    if r.mode not in MODES:
        raise ValueError(f"Unknown mode {r.mode!r}; use one of {', '.join(MODES)}.")
    _check_text("The prompt", r.prompt)
    _check_text("The negative prompt", r.negative_prompt)
    if r.sampler not in SAMPLER_SPECS:
        raise ValueError(f"Unknown sampler {r.sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    _check_int("Steps", r.steps, 1, MAX_STEPS)
    if not isinstance(r.cfg_scale, int | float) or not math.isfinite(r.cfg_scale):
        raise ValueError("CFG scale must be a number.")
    if not 0 <= r.cfg_scale <= MAX_CFG:
        raise ValueError(f"CFG scale must be between 0 and {MAX_CFG:g} (it is {r.cfg_scale:g}).")
    _check_int("Batch size", r.batch_size, 1, MAX_BATCH)
    _check_seed(r.seed, r.batch_size)
    _check_int("Clip skip", r.clip_skip, 1, MAX_CLIP_SKIP)
    if r.rng not in RNG_SOURCES:
        raise ValueError(f"Unknown RNG {r.rng!r}; use one of {', '.join(RNG_SOURCES)}.")
    _check_int("ENSD", r.ensd, 0, MAX_SEED)
    max_side = info.max_size if info else MAX_SIDE
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
        # an empty mask would run the whole job and hand back the input unchanged
        if r.mask.convert("L").point(lambda v: 255 if v >= 128 else 0).getbbox() is None:
            raise ValueError("The mask is empty: paint the area to repaint first.")
    for i, c in enumerate(r.controls, start=1):
        if c.preprocessor not in PREPROCESSORS:
            raise ValueError(f"ControlNet {i}: unknown preprocessor {c.preprocessor!r}.")
        if not 0 <= c.weight <= 2:
            raise ValueError(f"ControlNet {i}: weight must be between 0 and 2.")
        if not 0 <= c.guidance_start < c.guidance_end <= 1:
            raise ValueError(f"ControlNet {i}: need 0 <= start < end <= 1.")
        if c.enabled and c.image is None:
            raise ValueError(f"ControlNet {i}: no control image.")
    check_addons(r)


def check_addons(request: GenerationRequest) -> None:
    """The add-on folders, every `<lora:...>` tag (found, and a LoRA type we load) and the VAE."""
    from studio.engine.addons.lora import find_lora, inspect_lora
    from studio.engine.addons.tags import lora_tags
    from studio.engine.addons.vae import find_vae

    for name in FOLDER_FIELDS:
        folders = getattr(request, name)
        if not isinstance(folders, tuple) or not all(isinstance(f, str) for f in folders):
            raise ValueError(f"{name} must be a list of folder paths.")
    if not isinstance(request.vae, str):
        raise ValueError("The VAE must be a file or folder path, or a name.")
    for tag in lora_tags(request.prompt, request.negative_prompt):
        inspect_lora(find_lora(tag.name, request.lora_dirs), tag.name)
    if request.vae:
        find_vae(request.vae, request.vae_dirs)


def _check_text(name: str, text: object) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text, not {type(text).__name__}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        # a byte that is not UTF-8 arrives from argv or a file as a lone surrogate (\udcXX)
        bad = text[e.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else "a character"
        raise ValueError(
            f"{name} is not valid UTF-8 text ({byte} at position {e.start}); "
            "save or type it as UTF-8."
        ) from None


def _check_seed(seed: object, batch_size: int) -> None:
    # image k of a batch uses seed + k, and every one of them must fit in an int64
    highest = MAX_SEED - (batch_size - 1)
    if isinstance(seed, int) and not isinstance(seed, bool) and highest < seed <= MAX_SEED:
        raise ValueError(
            f"Seed must be between 0 and {highest} for a batch of {batch_size}: image k uses "
            f"seed + k, and the largest seed is {MAX_SEED} (it is {seed})."
        )
    _check_int("Seed", seed, 0, MAX_SEED)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (it is {value}).")


def _check_image_size(what: str, image: Image.Image) -> None:
    if max(image.size) > MAX_INPUT_SIDE:
        raise ValueError(
            f"{what} is {image.width}x{image.height}; the largest accepted side is "
            f"{MAX_INPUT_SIDE} px."
        )
