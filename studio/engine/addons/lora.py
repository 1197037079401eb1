"""LoRAs named in the prompt, loaded into the pipeline's modules through diffusers (peft).

Files are checked from their header before any weight loads: LyCORIS types diffusers cannot
load (LoHa, LoKr, ...) and LoRAs made for another model family are refused by name. Loaded
adapters stay on the shared UNet and text encoders between jobs, so the same LoRAs cost
nothing the next time; a job without LoRAs removes every adapter layer, which leaves the
base modules exactly as loaded (peft never changes the base weights unless fused, and we
never fuse).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.engine.addons.files import find_addon
from studio.engine.addons.hashes import safetensors_metadata
from studio.engine.addons.tags import LoraTag
from studio.engine.checkpoints import read_header

KIND = "LoRA"
# key fragments of the LyCORIS types diffusers' loaders do not read
_UNSUPPORTED_TYPES = (
    ("hada_w1", "LoHa"),
    ("lokr_w1", "LoKr"),
    ("oft_blocks", "OFT"),
    ("oft_diag", "OFT"),
    (".on_input", "IA3"),
    ("glora", "GLoRA"),
    (".diff", "full-difference (diff)"),
)
_LORA_KEYS = ("lora_down", "lora_up", "lora_A", "lora_B", "lora.down", "lora.up")
_WIDTH_NAMES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


@dataclass(frozen=True)
class LoraFile:
    name: str
    path: Path
    context_width: int | None  # the cross-attention input width it was trained for
    sdxl: bool  # has weights for SDXL's second text encoder
    lcm: bool  # an LCM-LoRA (for fast mode)


def find_lora(name: str, folders: Iterable[str | os.PathLike[str]]) -> Path:
    """The LoRA file called `name` in the folders; ValueError with what to do if none."""
    return find_addon(name, folders, KIND)


def inspect_lora(path: Path, name: str | None = None) -> LoraFile:
    """What the file's header says; ValueError for files diffusers cannot load as a LoRA."""
    name = name or path.stem
    try:
        keys = read_header(path)
    except ValueError as e:
        raise ValueError(f"LoRA {name!r}: {e}") from None
    for fragment, kind in _UNSUPPORTED_TYPES:
        if any(fragment in k for k in keys):
            raise ValueError(
                f"LoRA {name!r} is a {kind} (LyCORIS) file; this app loads LoRA and LoCon files "
                "only. Use a LoRA version of it, or convert it to a plain LoRA."
            )
    if not any(fragment in k for k in keys for fragment in _LORA_KEYS):
        raise ValueError(f"{name!r} holds no LoRA weights (no lora_down/lora_up or lora_A/lora_B).")
    return LoraFile(
        name=name,
        path=path,
        context_width=_context_width(keys),
        sdxl=any(k.startswith(("lora_te2_", "text_encoder_2.", "te2.")) for k in keys),
        lcm=_looks_like_lcm(path, keys),
    )


def _context_width(keys: dict[str, dict]) -> int | None:
    # the down (A) matrix of a cross-attention key projection reads the text embedding
    for key, entry in keys.items():
        down = key.endswith(("lora_down.weight", "lora_A.weight", "lora.down.weight"))
        if down and "attn2" in key and "to_k" in key and len(entry["shape"]) >= 2:
            return entry["shape"][1]
    return None


def _looks_like_lcm(path: Path, keys: dict[str, dict]) -> bool:
    meta = safetensors_metadata(path)
    words = [path.stem, meta.get("ss_output_name", ""), meta.get("modelspec.title", "")]
    return any("lcm" in w.lower() for w in words)


def width_name(width: int) -> str:
    return _WIDTH_NAMES.get(width, f"a model with {width}-wide cross-attention")


def check_lora_fits(lora: LoraFile, pipe: Any) -> None:
    """Refuse, by name, a LoRA made for another model family."""
    model_width = pipe.unet.config.cross_attention_dim
    model_sdxl = getattr(pipe, "text_encoder_2", None) is not None
    made_for = None
    if lora.context_width is not None and lora.context_width != model_width:
        made_for = width_name(lora.context_width)
    elif lora.sdxl and not model_sdxl:
        made_for = "SDXL"
    if made_for is not None:
        raise ValueError(
            f"LoRA {lora.name!r} is made for {made_for} models, but the loaded model is "
            f"{'SDXL' if model_sdxl else width_name(model_width)}; remove its tag or choose "
            "a LoRA made for this model."
        )


# ---- applying ------------------------------------------------------------------------------
# adapter name -> file version, per UNet (the UNet and text encoders are shared by every
# pipeline of one loaded model, so the UNet stands for all of them)
_loaded: weakref.WeakKeyDictionary[Any, dict[str, tuple]] = weakref.WeakKeyDictionary()


def _adapter_name(path: Path) -> str:
    stat = path.stat()
    version = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return "lora_" + hashlib.sha1(version.encode()).hexdigest()[:16]


def apply_loras(pipe: Any, loras: list[tuple[LoraFile, LoraTag]]) -> None:
    """Make exactly these LoRAs active on `pipe`'s modules, with their weights."""
    loaded = _loaded.setdefault(pipe.unet, {})
    if not loras:
        remove_loras(pipe)
        return
    wanted = {_adapter_name(lora.path): (lora, tag) for lora, tag in loras}
    stale = [name for name in loaded if name not in wanted]
    if stale:
        pipe.delete_adapters(stale)
        for name in stale:
            del loaded[name]
    for adapter, (lora, _) in wanted.items():
        if adapter not in loaded:
            _load(pipe, lora, adapter)
            loaded[adapter] = (lora.path,)
    # a LoRA may hold weights for the UNet only or the text encoder only: name what was loaded
    present = {a for names in pipe.get_list_adapters().values() for a in names}
    names = [a for a in wanted if a in present]
    weights = [
        {"unet": tag.unet_weight, "text_encoder": tag.te_weight, "text_encoder_2": tag.te_weight}
        for a, (_, tag) in wanted.items()
        if a in present
    ]
    pipe.set_adapters(names, weights)


def remove_loras(pipe: Any) -> None:
    """Remove every LoRA layer: the modules are the base model's again, bit for bit."""
    loaded = _loaded.get(pipe.unet)
    if loaded or getattr(pipe.unet, "peft_config", None):
        pipe.unload_lora_weights()
    if loaded:
        loaded.clear()


def _load(pipe: Any, lora: LoraFile, adapter: str) -> None:
    from safetensors.torch import load_file

    state_dict = load_file(str(lora.path))
    try:
        pipe.load_lora_weights(state_dict, adapter_name=adapter)
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        remove_loras(pipe)  # a half-loaded adapter must not stay behind
        first = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise ValueError(f"LoRA {lora.name!r} could not be loaded into this model: {first}") from e
