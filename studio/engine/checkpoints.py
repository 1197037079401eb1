"""What a single-file .safetensors is, from its header alone: which Stable Diffusion checkpoint,
or which other kind of file (a LoRA, a VAE, an embedding, a ControlNet, another model family).

Nothing is loaded: the header lists tensor names and shapes, which is enough to tell them apart
(the keys are those of the original LDM/SGM layouts that A1111 and ComfyUI files use). Special
files (a FIFO, a link to a device) are refused before they are opened, so a scan never hangs.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

MAX_HEADER_BYTES = 100_000_000  # real headers are < 1 MB; a bigger one is a hostile file
UNET = "model.diffusion_model."
FIRST_CONV = UNET + "input_blocks.0.0.weight"
SD2_CROSS_ATTENTION = UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
Header = dict[str, dict]


@dataclass(frozen=True)
class Checkpoint:
    """A Stable Diffusion checkpoint recognised from its keys."""

    family: str  # "sd1" | "sd2" | "sdxl"
    config: str  # the shipped config folder (studio.engine.configs) it loads with
    inpaint: bool = False  # 9-channel UNet
    refiner: bool = False  # SDXL refiner: bigG text encoder only, aesthetic-score conditioning
    # "epsilon" | "v_prediction"; None: SD 2.x files say nothing, a probe of the UNet decides
    prediction_type: str | None = "epsilon"
    zero_snr: bool = False  # trained with zero terminal SNR (the `ztsnr` key of community files)

    @property
    def native_size(self) -> int:
        if self.family == "sdxl":
            return 1024
        return 768 if self.config == "sd21-v" else 512


def read_header(path: Path) -> Header:
    """Tensor names with their dtype and shape; ValueError for anything but a sound header."""
    _check_regular_file(path)
    try:
        with path.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ValueError("the file is too short to be a .safetensors file")
            (header_len,) = struct.unpack("<Q", raw_len)
            size = os.fstat(f.fileno()).st_size
            if header_len > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"its header claims {header_len:,} bytes, more than it holds")
            header = json.loads(f.read(header_len))
    except (OSError, UnicodeDecodeError, ValueError, struct.error) as e:
        raise ValueError(f"{path.name} is not a valid .safetensors file ({e}).") from e
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is not a valid .safetensors file (its header is no table).")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    for key, entry in tensors.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"{path.name} is not a valid .safetensors file (bad entry {key!r}).")
    return tensors


def _check_regular_file(path: Path) -> None:
    # stat follows links: a link to /dev/zero is a character device, a FIFO would block on open
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise ValueError(f"Cannot read {path}: {e.strerror or e}.") from e
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path.name} is not a regular file (a device, pipe or socket).")


def recognise(header: Header, name: str = "This file") -> Checkpoint:
    """The checkpoint `header` describes; ValueError naming what the file is otherwise."""
    keys = header.keys()
    other = _not_a_checkpoint(keys)
    if other:
        raise ValueError(f"{name} is {other}, not a Stable Diffusion checkpoint. {_ADVICE[other]}")
    if FIRST_CONV not in header:
        raise ValueError(f"{name} is not a Stable Diffusion checkpoint we recognise (no UNet).")
    shape = header[FIRST_CONV]["shape"]
    in_channels = shape[1] if len(shape) == 4 else 0
    if in_channels == 8:
        raise ValueError(f"{name} is an InstructPix2Pix checkpoint, which the studio cannot run.")
    if in_channels not in (4, 9):
        raise ValueError(f"{name} has a UNet with {in_channels} input channels; not an SD model.")
    inpaint = in_channels == 9
    v_pred, zero_snr = "v_pred" in header, "ztsnr" in header
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        config = "sdxl-inpainting" if inpaint else "sdxl-base"
        prediction = "v_prediction" if v_pred else "epsilon"
        return Checkpoint("sdxl", config, inpaint, False, prediction, zero_snr)
    if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        prediction = "v_prediction" if v_pred else "epsilon"
        return Checkpoint("sdxl", "sdxl-refiner", inpaint, True, prediction, zero_snr)
    if _is_sd2(header):
        if inpaint:
            return Checkpoint("sd2", "sd2-inpainting", True, zero_snr=zero_snr)
        prediction = "v_prediction" if v_pred else None
        return Checkpoint("sd2", "sd21-v", False, False, prediction, zero_snr)
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        prediction = "v_prediction" if v_pred else "epsilon"
        return Checkpoint(
            "sd1", "sd15-inpainting" if inpaint else "sd15", inpaint, False, prediction, zero_snr
        )
    raise ValueError(
        f"{name} holds a UNet but no text encoder the studio knows; use a full checkpoint."
    )


def _is_sd2(header: Header) -> bool:
    # OpenCLIP ViT-H keys, or (a file without a text encoder) 1024-wide cross attention
    if any(k.startswith("cond_stage_model.model.") for k in header):
        return True
    shape = header.get(SD2_CROSS_ATTENTION, {}).get("shape", [])
    return len(shape) == 2 and shape[1] == 1024


# kohya/A1111 (LoRA, LoCon), peft, old diffusers attention processors, LyCORIS LoHa and LoKr
_LORA_MARKS = (".lora_down.", ".lora_A.", "_lora.down.", ".hada_w1_a", ".lokr_w1")
_ADVICE = {
    "a LoRA": "Put it in your LoRA folder and add it to a prompt instead.",
    "a VAE": "Load it as a VAE override instead of as a model.",
    "a textual-inversion embedding": "Put it in your embeddings folder instead.",
    "a ControlNet": "Choose it in the ControlNet panel instead.",
    "an SD 3 model": "The studio runs SD 1.x, SD 2.x and SDXL checkpoints.",
    "a Flux model": "The studio runs SD 1.x, SD 2.x and SDXL checkpoints.",
    "a Stable Cascade model": "The studio runs SD 1.x, SD 2.x and SDXL checkpoints.",
    "a Playground v2.5 model": "The studio runs SD 1.x, SD 2.x and SDXL checkpoints.",
}


def _not_a_checkpoint(keys: object) -> str:
    """What kind of non-checkpoint these keys are, or "" for a (possible) checkpoint."""
    keys = list(keys)  # type: ignore[call-overload]
    has = lambda *parts: any(any(p in k for p in parts) for k in keys)  # noqa: E731
    starts = lambda *prefixes: any(k.startswith(prefixes) for k in keys)  # noqa: E731
    if has("joint_blocks."):
        return "an SD 3 model"
    if has("double_blocks.", "single_blocks."):
        return "a Flux model"
    if starts("clip_txt_mapper.", "effnet_mapper.") or has("channelwise."):
        return "a Stable Cascade model"
    if "edm_mean" in keys:
        return "a Playground v2.5 model"
    if starts("control_model.", "controlnet_cond_embedding.") or has("input_hint_block."):
        return "a ControlNet"
    if FIRST_CONV in keys:
        return ""
    if has(*_LORA_MARKS) or starts("lora_unet_", "lora_te"):
        return "a LoRA"
    if starts("emb_params", "string_to_param", "clip_l", "clip_g") and len(keys) <= 4:
        return "a textual-inversion embedding"
    if starts("encoder.", "decoder.", "first_stage_model.") and has("quant_conv"):
        return "a VAE"
    return ""
