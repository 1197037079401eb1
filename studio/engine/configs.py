"""Offline diffusers config folders for single-file (A1111-style) checkpoints.

``resources/configs/<name>/`` is a diffusers repo without weights (``model_index.json`` plus one
config per component) for each architecture the studio loads from a ``.safetensors``/``.ckpt``
file. Hand it to diffusers as ``Pipeline.from_single_file(path, **single_file_kwargs(name))``,
which is ``config=str(config_dir(name)), local_files_only=True, **tokenizers_for(name)``: always a
local folder, never a hub id (with a hub id and nothing cached, diffusers silently retries online).

The folders carry no tokenizer: one CLIP BPE vocabulary (``resources/configs/clip-tokenizer``) is
shared by every family, and :func:`tokenizers_for` gives the ``tokenizer=``/``tokenizer_2=``
objects to pass (a component passed as a keyword is never looked for in the folder). SD 1.x and
SDXL's ``tokenizer`` pad with ``<|endoftext|>`` (49407); SD 2.x and SDXL's ``tokenizer_2`` (the
OpenCLIP encoders) pad with ``"!"`` (id 0). Always pass them: under transformers 5 a missing
tokenizer folder does not raise, ``CLIPTokenizer.from_pretrained`` quietly builds a 2-token
tokenizer and the pipeline loads with it. See ``resources/configs/README.md``.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from studio.paths import CONFIGS

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

CONFIGS_DIR: Path = CONFIGS
CLIP_TOKENIZER_DIR: Path = CONFIGS_DIR / "clip-tokenizer"

CONFIG_NAMES: tuple[str, ...] = (
    "sd15",  # stable-diffusion-v1-5/stable-diffusion-v1-5
    "sd15-inpainting",  # stable-diffusion-v1-5/stable-diffusion-inpainting
    "sd21-v",  # stabilityai/stable-diffusion-2-1 (768, v-prediction)
    "sd21-base",  # stabilityai/stable-diffusion-2-1-base (512, epsilon)
    "sd2-inpainting",  # stabilityai/stable-diffusion-2-inpainting
    "sdxl-base",  # stabilityai/stable-diffusion-xl-base-1.0
    "sdxl-refiner",  # stabilityai/stable-diffusion-xl-refiner-1.0
    "sdxl-inpainting",  # diffusers/stable-diffusion-xl-1.0-inpainting-0.1
)

# the tokenizer slots of each family's pipeline -> whether that slot pads with "!" (id 0)
_TOKENIZER_SLOTS: dict[str, dict[str, bool]] = {
    "sd15": {"tokenizer": False},
    "sd15-inpainting": {"tokenizer": False},
    "sd21-v": {"tokenizer": True},
    "sd21-base": {"tokenizer": True},
    "sd2-inpainting": {"tokenizer": True},
    "sdxl-base": {"tokenizer": False, "tokenizer_2": True},
    "sdxl-refiner": {"tokenizer_2": True},  # the refiner has only OpenCLIP bigG
    "sdxl-inpainting": {"tokenizer": False, "tokenizer_2": True},
}

# diffusers' `single_file_utils.infer_diffusers_model_type` -> the folder matching its default
# config repo. "v2" means any SD 2.x file: diffusers assumes 2.1 768-v, but 2.x-base files are
# epsilon at 512 ("sd21-base"); telling them apart needs a probe (A1111 runs the UNet once).
DIFFUSERS_MODEL_TYPES: dict[str, str] = {
    "v1": "sd15",
    "inpainting": "sd15-inpainting",
    "v2": "sd21-v",
    "inpainting_v2": "sd2-inpainting",
    "xl_base": "sdxl-base",
    "xl_refiner": "sdxl-refiner",
    "xl_inpaint": "sdxl-inpainting",
}


def config_dir(name: str) -> Path:
    """The config folder for ``name`` (one of :data:`CONFIG_NAMES`)."""
    if name not in CONFIG_NAMES:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(CONFIG_NAMES)}")
    return CONFIGS_DIR / name


def load_clip_tokenizer(pad_with_exclamation: bool) -> CLIPTokenizer:
    """A fresh CLIP tokenizer from the shared vocabulary (77 tokens, lower-cased BPE).

    ``pad_with_exclamation`` pads with ``"!"`` (id 0) as the OpenCLIP encoders were trained (SD 2.x,
    SDXL ``tokenizer_2``); otherwise it pads with ``<|endoftext|>`` (49407) as OpenAI CLIP-L (SD 1.x,
    SDXL ``tokenizer``). Every call returns a new object: textual inversion adds tokens to the
    tokenizer it is given, so two models must not share one.
    """
    from transformers import CLIPTokenizer

    # under transformers 5, CLIPTokenizer(vocab_file=..., merges_file=...) ignores the files;
    # from_pretrained reads them (and special tokens passed here override tokenizer_config.json)
    extra = {"pad_token": "!"} if pad_with_exclamation else {}
    return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), local_files_only=True, **extra)


def tokenizers_for(name: str) -> dict[str, CLIPTokenizer]:
    """The tokenizer keyword arguments for ``from_single_file(..., config=config_dir(name))``."""
    config_dir(name)  # validates the name
    return {slot: load_clip_tokenizer(pad) for slot, pad in _TOKENIZER_SLOTS[name].items()}


def single_file_kwargs(name: str) -> dict[str, object]:
    """Everything ``from_single_file`` needs to build ``name`` offline, besides dtype and weights.

    ``config`` (this folder, as a string), ``local_files_only=True`` and the tokenizers; use as
    ``StableDiffusionXLPipeline.from_single_file(path, torch_dtype=..., **single_file_kwargs(n))``.
    """
    return {"config": str(config_dir(name)), "local_files_only": True, **tokenizers_for(name)}
