"""StudioState: what the generation widgets show, as observable properties.

Each property `x` has a signal `x_changed`; widgets are bound to properties with `bind`, so the
session, the restore-from-image code and the settings all talk to the state, never to widgets.
`persist=True` marks what is remembered between sessions (studio.ui.persistence).
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.engine.checks import MAX_BATCH, MAX_CFG, MAX_SIDE, MAX_STEPS
from studio.engine.request import (
    DEMO_MODEL_REF,
    MAX_CLIP_SKIP,
    MODES,
    RNG_SOURCES,
    ControlSpec,
    GenerationRequest,
    ScheduleOptions,
)
from studio.engine.samplers import SAMPLERS, SCHEDULE_TYPES
from studio.engine.seeds import MAX_SEED
from studio.ui.persistence import declare_persisted
from studio.ui.properties import Property

# Every persistent value is declared with its type and the values it may take: a settings file
# holding anything else (2**40 for a width, NaN, a sampler that does not exist) is refused value by
# value on load, instead of crashing a 32-bit spin box or failing every job.
MIN_SIDE = 8  # the size boxes step by 8; the engine asks for 64 and says so on Generate
MAX_BATCH_COUNT = 100
MAX_MASK_BLUR = 256  # as the engine's check_request
MAX_INPAINT_PADDING = 4096
# Far beyond any useful prompt (CLIP reads 75 tokens per chunk), and small enough that the prompt
# box lays it out at once: a 1 MB prompt took Qt seconds to minutes to lay out at every start.
MAX_PROMPT_CHARS = 20_000
MAX_MODEL_REF_CHARS = 4096  # a path or hub id
PREVIEW_SOURCES = ("x0", "xt")  # x0: predicted image; xt: noisy latent


class StudioState(QObject):
    model_changed = Signal(str)
    prompt_changed = Signal(str)
    negative_prompt_changed = Signal(str)
    sampler_changed = Signal(str)
    schedule_type_changed = Signal(str)
    steps_changed = Signal(int)
    cfg_scale_changed = Signal(float)
    seed_changed = Signal("qlonglong")  # seeds are 64-bit: Signal(int) would truncate them
    last_seed_changed = Signal("qlonglong")
    rng_changed = Signal(str)
    ensd_changed = Signal(int)
    clip_skip_changed = Signal(int)
    vae_changed = Signal(str)
    width_changed = Signal(int)
    height_changed = Signal(int)
    batch_count_changed = Signal(int)
    batch_size_changed = Signal(int)
    strength_changed = Signal(float)
    mode_changed = Signal(str)
    mask_blur_changed = Signal(int)
    inpaint_only_masked_changed = Signal(bool)
    inpaint_padding_changed = Signal(int)
    preview_source_changed = Signal(str)
    preview_every_changed = Signal(int)
    init_image_changed = Signal(Image.Image)

    model = Property(DEMO_MODEL_REF, str, persist=True, max_length=MAX_MODEL_REF_CHARS)
    prompt = Property("", str, persist=True, max_length=MAX_PROMPT_CHARS)
    negative_prompt = Property("", str, persist=True, max_length=MAX_PROMPT_CHARS)
    sampler = Property("DPM++ 2M Karras", str, persist=True, choices=SAMPLERS)
    schedule_type = Property("Automatic", str, persist=True, choices=SCHEDULE_TYPES)
    steps = Property(20, int, persist=True, limits=(1, MAX_STEPS))
    cfg_scale = Property(7.0, float, persist=True, limits=(0.0, MAX_CFG))
    # -1: a new random seed for every Generate; int64 beyond, like torch's generator
    seed = Property(-1, int, persist=True, limits=(-1, MAX_SEED))
    last_seed = Property(-1, int, limits=(-1, MAX_SEED))
    rng = Property("CPU", str, persist=True, choices=RNG_SOURCES)  # where noise comes from
    ensd = Property(0, int, persist=True, limits=(0, 2**31 - 1))  # a spin box's range
    clip_skip = Property(1, int, persist=True, limits=(1, MAX_CLIP_SKIP))  # A1111 numbering
    vae = Property("", str, persist=True, max_length=MAX_MODEL_REF_CHARS)  # "": the model's own
    width = Property(128, int, persist=True, limits=(MIN_SIDE, MAX_SIDE))
    height = Property(128, int, persist=True, limits=(MIN_SIDE, MAX_SIDE))
    # jobs queued per Generate
    batch_count = Property(1, int, persist=True, limits=(1, MAX_BATCH_COUNT))
    batch_size = Property(1, int, persist=True, limits=(1, MAX_BATCH))  # images per job
    strength = Property(0.75, float, persist=True, limits=(0.0, 1.0))
    mode = Property("txt2img", str, persist=True, choices=MODES)
    # feather of the inpainting mask, pixels
    mask_blur = Property(4, int, persist=True, limits=(0, MAX_MASK_BLUR))
    inpaint_only_masked = Property(False, bool, persist=True)  # repaint a crop around the mask
    # context around that crop, pixels
    inpaint_padding = Property(32, int, persist=True, limits=(0, MAX_INPAINT_PADDING))
    preview_source = Property("x0", str, persist=True, choices=PREVIEW_SOURCES)
    # steps between previews; 0: none
    preview_every = Property(1, int, persist=True, limits=(0, MAX_STEPS))
    init_image = Property(None, Image.Image)  # the image sent to img2img / inpaint

    # ---- request <-> state ---------------------------------------------------------------
    def request(
        self,
        seed: int,
        init_image: Image.Image | None = None,
        mask: Image.Image | None = None,
        controls: tuple[ControlSpec, ...] = (),
        addon_folders: tuple[str, ...] = (),
    ) -> GenerationRequest:
        """The request these settings describe, with a resolved seed (the first of the batch)."""
        from studio.engine.samplers import karras_of

        return GenerationRequest(
            mode=self.mode,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            sampler=self.sampler,
            schedule=ScheduleOptions(karras=karras_of(self.schedule_type)),
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            seed=seed,
            rng=self.rng,
            ensd=self.ensd,
            clip_skip=self.clip_skip,
            vae=self.vae,
            width=self.width,
            height=self.height,
            batch_size=self.batch_size,
            strength=self.strength,
            init_image=init_image if self.mode != "txt2img" else None,
            mask=mask if self.mode == "inpaint" else None,
            controls=tuple(controls),
            mask_blur=self.mask_blur,
            inpaint_only_masked=self.inpaint_only_masked,
            inpaint_padding=self.inpaint_padding,
            lora_dirs=addon_folders,
            embedding_dirs=addon_folders,
            vae_dirs=addon_folders,
        )

    def apply_request(self, request: GenerationRequest) -> list[str]:
        """Show a request's settings; returns the names that were applied.

        A value the state may not take (a 30 000-character prompt, 2000 steps) leaves its
        property as it was and is missing from the list.
        """
        from studio.engine.samplers import schedule_type_of

        values: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "steps": request.steps,
            "cfg_scale": request.cfg_scale,
            "seed": request.seed,
            "rng": request.rng,
            "ensd": request.ensd,
            "clip_skip": request.clip_skip,
            "vae": request.vae,
            "width": request.width,
            "height": request.height,
        }
        if request.sampler in SAMPLERS:
            values["sampler"] = request.sampler
            values["schedule_type"] = schedule_type_of(request.schedule)
        if request.mode == "inpaint":
            values["mask_blur"] = request.mask_blur
            values["inpaint_only_masked"] = request.inpaint_only_masked
            values["inpaint_padding"] = request.inpaint_padding
        applied = []
        for name, value in values.items():
            try:
                setattr(self, name, value)
            except (TypeError, ValueError):
                continue
            applied.append(name)
        return applied


declare_persisted(StudioState)
