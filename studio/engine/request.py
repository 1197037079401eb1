"""The messages of the engine: one request in, step updates while it runs, one result out.

Plain frozen dataclasses, no torch and no Qt, so the UI, the CLI, the metadata writer and
the tests can all build and read them. A request serialises to JSON and back exactly;
images travel as base64 PNG (lossless) or, when left out, as a hash that says what is missing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
from PIL import Image

MODES = ("txt2img", "img2img", "inpaint")
PREPROCESSORS = ("canny", "lineart", "depth", "pose", "none")
TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
RNG_SOURCES = ("CPU", "GPU", "NV")  # where noise comes from (studio.engine.noise)
MAX_CLIP_SKIP = 12  # SD 1.x's text encoder has 12 layers
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
DEMO_MODEL_REF = "demo"

REQUEST_SCHEMA = 1
FOLDER_FIELDS = ("lora_dirs", "embedding_dirs", "vae_dirs")  # tuples of paths; lists in JSON


@dataclass(frozen=True)
class ScheduleOptions:
    """Schedule knobs on top of the sampler; None keeps the sampler's or the model's own value."""

    karras: bool | None = None
    timestep_spacing: str | None = None
    zero_snr: bool = False  # rescale betas so SNR(T) = 0 (for models trained for it)
    prediction_type: str | None = None  # override a model whose config is wrong
    cfg_rescale: float = 0.0  # guidance_rescale, ~0.7 with zero-terminal SNR


@dataclass(frozen=True)
class ControlSpec:
    """One ControlNet unit: its weights, its control image and how strongly it steers."""

    model: str
    image: Image.Image | None = field(default=None, compare=False)
    preprocessor: str = "none"
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    enabled: bool = True
    # preprocessor parameters, e.g. (("low_threshold", 100.0), ("high_threshold", 200.0))
    params: tuple[tuple[str, float], ...] = ()

    def param(self, name: str, default: float) -> float:
        return dict(self.params).get(name, default)


@dataclass(frozen=True)
class GenerationRequest:
    mode: str = "txt2img"
    model: str = DEMO_MODEL_REF  # "demo", a local folder or file, or a hub id
    prompt: str = ""
    negative_prompt: str = ""
    sampler: str = "DPM++ 2M Karras"
    schedule: ScheduleOptions = ScheduleOptions()
    steps: int = 20
    cfg_scale: float = 7.0
    clip_skip: int = 1  # A1111's numbering: 1 reads the last layer, 2 the one before (SD 1.x)
    seed: int = 0
    rng: str = "CPU"  # where noise comes from: "CPU", "GPU" or "NV" (studio.engine.noise)
    ensd: int = 0  # A1111's eta noise seed delta: sampler noise from seed + ensd
    width: int = 512
    height: int = 512
    batch_size: int = 1
    strength: float = 0.75  # img2img / inpaint denoising strength
    init_image: Image.Image | None = field(default=None, compare=False)
    mask: Image.Image | None = field(default=None, compare=False)  # L, 255 = repaint
    mask_blur: int = 4  # feather radius in pixels
    inpaint_only_masked: bool = False
    inpaint_padding: int = 32  # pixels of context around the mask when only-masked
    controls: tuple[ControlSpec, ...] = ()
    # add-ons (studio.engine.addons): LoRAs are named by `<lora:name:weight>` tags in the prompt
    # and embeddings by their file name; both are looked up in these folders
    lora_dirs: tuple[str, ...] = ()
    embedding_dirs: tuple[str, ...] = ()
    vae: str = ""  # "": the model's own VAE; else a file or folder path, or a name in vae_dirs
    vae_dirs: tuple[str, ...] = ()

    def with_(self, **changes: Any) -> GenerationRequest:
        return replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        # images are compared by content, which dataclass equality cannot do for PIL
        if not isinstance(other, GenerationRequest):
            return NotImplemented
        return self.to_dict(embed_images=False) == other.to_dict(embed_images=False)

    def __hash__(self) -> int:
        return hash(self.to_json(embed_images=False))

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self, embed_images: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": REQUEST_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schedule":
                out[f.name] = asdict(value)
            elif f.name == "controls":
                out[f.name] = [_control_to_dict(c, embed_images) for c in value]
            elif isinstance(value, Image.Image) or f.name in ("init_image", "mask"):
                out[f.name] = encode_image(value, embed_images)
            elif f.name in FOLDER_FIELDS:
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out

    def to_json(self, embed_images: bool = True) -> str:
        return json.dumps(self.to_dict(embed_images), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Build a request from `to_dict` output; unknown keys are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "schedule":
                kwargs[key] = ScheduleOptions(**_known(ScheduleOptions, value))
            elif key == "controls":
                kwargs[key] = tuple(_control_from_dict(c) for c in value)
            elif key in ("init_image", "mask"):
                kwargs[key] = decode_image(value)
            elif key in FOLDER_FIELDS:
                kwargs[key] = tuple(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        return cls.from_dict(json.loads(text))

    def missing_images(self) -> list[str]:
        """Names of the images this request needs but does not carry (e.g. read from a JPEG)."""
        missing = []
        if self.mode in ("img2img", "inpaint") and self.init_image is None:
            missing.append("init image")
        if self.mode == "inpaint" and self.mask is None:
            missing.append("mask")
        for i, c in enumerate(self.controls):
            if c.enabled and c.image is None:
                missing.append(f"control image {i + 1}")
        return missing


@dataclass(frozen=True)
class StepUpdate:
    """Sent every N steps while a job runs. preview is HxWx3 uint8 on the CPU, or None."""

    step: int  # 1-based step just finished
    total: int
    preview: np.ndarray | None = None
    timestep: float | None = None  # the scheduler's t at this step, for the schedule plot


@dataclass(frozen=True)
class GenerationResult:
    request: GenerationRequest
    images: list[Image.Image] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # seed of each image: request.seed + k
    elapsed_s: float = 0.0
    cancelled: bool = False
    model_name: str = ""
    model_hash: str = ""  # A1111-style short hash of the weights file(s)
    control_maps: list[Image.Image] = field(default_factory=list)  # preprocessed, per enabled unit
    notes: tuple[str, ...] = ()  # what the engine changed to finish (e.g. the fp32 VAE retry)


# ---- image encoding ------------------------------------------------------------------
def image_sha256(image: Image.Image) -> str:
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def encode_image(image: Image.Image | None, embed: bool = True) -> dict[str, Any] | None:
    if image is None:
        return None
    ref: dict[str, Any] = {"sha256": image_sha256(image), "size": [image.width, image.height]}
    if embed:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        ref["png_base64"] = base64.b64encode(buf.getvalue()).decode("ascii")
    return ref


def decode_image(ref: dict[str, Any] | None) -> Image.Image | None:
    """The embedded image, or None when the reference only names it by hash."""
    if not ref or "png_base64" not in ref:
        return None
    # only PNG: a recipe is untrusted input and must not reach other (riskier) decoders
    image = Image.open(io.BytesIO(base64.b64decode(ref["png_base64"])), formats=["PNG"])
    image.load()
    return image


def _control_to_dict(spec: ControlSpec, embed: bool) -> dict[str, Any]:
    out = {f.name: getattr(spec, f.name) for f in fields(spec)}
    out["image"] = encode_image(spec.image, embed)
    out["params"] = [list(p) for p in spec.params]
    return out


def _control_from_dict(data: dict[str, Any]) -> ControlSpec:
    kwargs = _known(ControlSpec, data)
    kwargs["image"] = decode_image(data.get("image"))
    kwargs["params"] = tuple((str(k), float(v)) for k, v in data.get("params", ()))
    return ControlSpec(**kwargs)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
