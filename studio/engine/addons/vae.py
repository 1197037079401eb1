"""A VAE override: a single-file VAE (A1111/ComfyUI layout, e.g. an fp16-fix VAE) or a
diffusers VAE folder decodes instead of the model's own, for one job at a time.

A single file is read into the loaded model's own VAE architecture (its config, so nothing
is fetched and the model's latent scaling is kept, as A1111 does). The model's VAE object is
kept aside and put back after the job, so clearing the override restores it exactly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from studio.engine.addons.files import find_addon

KIND = "VAE"
_loaded: dict[tuple, Any] = {}  # the one override VAE kept loaded, by file version and device


def find_vae(ref: str, folders: Iterable[str | os.PathLike[str]]) -> Path:
    """A path as given (file or diffusers folder), else a name looked up in the VAE folders."""
    path = Path(ref).expanduser()
    if path.is_file() or (path / "config.json").is_file():
        return path
    name = path.stem if path.suffix.lower() == ".safetensors" else ref
    return find_addon(name, folders, KIND)


def vae_name(path: Path) -> str:
    """What A1111 writes as `VAE`: the file's name (a folder's name)."""
    return path.name


def load_vae(path: Path, base_vae: Any) -> Any:
    """The VAE at `path` on the base VAE's device and dtype; ValueError if it does not fit."""
    stat = (path / "config.json" if path.is_dir() else path).stat()
    key = (
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        str(base_vae.device),
        base_vae.dtype,
    )
    if key not in _loaded:
        _loaded.clear()  # one override at a time: a VAE is ~160 MB
        try:
            vae = _read_folder(path) if path.is_dir() else _read_file(path, base_vae.config)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            first = (str(e).strip() or type(e).__name__).splitlines()[0]
            raise ValueError(f"VAE {path.name!r} does not fit this model: {first}") from None
        if vae.config.latent_channels != base_vae.config.latent_channels:
            raise ValueError(
                f"VAE {path.name!r} has {vae.config.latent_channels} latent channels, this model "
                f"{base_vae.config.latent_channels}; choose a VAE made for this model."
            )
        _loaded[key] = vae.to(device=base_vae.device, dtype=base_vae.dtype).eval()
    return _loaded[key]


def _read_file(path: Path, config: Any) -> Any:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from safetensors.torch import load_file

    if path.suffix.lower() != ".safetensors":
        raise ValueError("only .safetensors VAE files are loaded (other formats can run code)")
    state = load_file(str(path))
    if not any("down_blocks" in k for k in state):  # the original (LDM) layout
        state = convert_ldm_vae_checkpoint(state, dict(config))
    vae = AutoencoderKL.from_config(dict(config))
    missing, unexpected = vae.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{len(missing)} of its weights are missing, e.g. {missing[0]}")
    return vae


def _read_folder(path: Path) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(path, local_files_only=True, use_safetensors=True)


@contextlib.contextmanager
def vae_override(pipe: Any, vae: Any | None) -> Iterator[None]:
    """While entered, `pipe` decodes with `vae` (None: its own)."""
    if vae is None:
        yield
        return
    own = pipe.vae
    pipe.vae = vae
    try:
        yield
    finally:
        pipe.vae = own
