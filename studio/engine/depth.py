"""Monocular depth maps for ControlNet: a transformers depth-estimation model from a local folder.

Where the model is looked for, first match wins:
  1. the folder passed in (`model=`),
  2. the folder in the environment variable STUDIO_DEPTH_MODEL,
  3. <user data dir>/DiffusionStudio/models/depth-anything-v2-small (see default_depth_folder()),
  4. the standard Hugging Face cache, if it already holds DEPTH_HUB_ID (read locally, no network),
  5. only with allow_download=True: a download of DEPTH_HUB_ID into that cache (tqdm progress).
Any folder in the Depth Anything V2 layout works (config.json, model.safetensors,
preprocessor_config.json); other transformers depth models in that layout load the same way.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

DEPTH_HUB_ID = "depth-anything/Depth-Anything-V2-Small-hf"
DEPTH_ENV = "STUDIO_DEPTH_MODEL"
_lock = threading.Lock()


def default_depth_folder() -> Path:
    from platformdirs import user_data_path

    from studio.paths import APP_NAME

    return user_data_path(APP_NAME) / "models" / "depth-anything-v2-small"


def resolve_depth_model(model: str | Path | None = None, allow_download: bool = False) -> Path:
    """The folder of the depth model to use; ValueError saying where to put it when there is none."""
    if model:
        return _checked(Path(model).expanduser(), f"The depth model folder {model}")
    env = os.environ.get(DEPTH_ENV, "").strip()
    if env:
        return _checked(Path(env).expanduser(), f"The depth model folder in {DEPTH_ENV} ({env})")
    folder = default_depth_folder()
    if _problem(folder) is None:
        return folder
    cached = _from_hf_cache()
    if cached is not None:
        return cached
    if allow_download:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(DEPTH_HUB_ID))
    raise ValueError(
        "Depth needs a depth-estimation model, and none is on this computer. Put the files of "
        f"{DEPTH_HUB_ID} (config.json, model.safetensors, preprocessor_config.json) in {folder}, "
        f"or set {DEPTH_ENV} to their folder. With a network: "
        f"hf download {DEPTH_HUB_ID} --local-dir {folder}"
    )


def depth_map(
    image: Image.Image,
    size: tuple[int, int],
    model: str | Path | None = None,
    allow_download: bool = False,
    resolution: int = 0,
) -> Image.Image:
    """RGB depth map at size = (width, height), near = white (the MiDaS / ControlNet convention).

    resolution: the side the network sees (multiple of 14); 0 picks the model's own (518 for
    Depth Anything), or less for small outputs, where 518 would cost ~3x the time for nothing.
    """
    import torch

    processor, network = _load(str(resolve_depth_model(model, allow_download)))
    side = resolution or _auto_resolution(processor, size)
    with _lock, torch.inference_mode():
        inputs = processor(
            images=image.convert("RGB"), return_tensors="pt", size={"height": side, "width": side}
        )
        predicted = network(**inputs).predicted_depth
    # Depth Anything predicts relative inverse depth (disparity), so large already means near
    depth = predicted.squeeze().float().cpu().numpy()
    depth = cv2.resize(depth, size, interpolation=cv2.INTER_CUBIC)
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(depth)
    return Image.fromarray(scaled.clip(0, 255).astype(np.uint8)).convert("RGB")


def _auto_resolution(processor: Any, size: tuple[int, int]) -> int:
    own = processor.size.get("height") or processor.size.get("shortest_edge") or 518
    # twice the output's longer side keeps edges crisp after the resize; ViT patches are 14 px
    wanted = max(140, -(-2 * max(size) // 14) * 14)
    return int(min(own, wanted))


def release() -> None:
    """Free the loaded depth model(s); the next depth map loads again."""
    _load.cache_clear()


def _problem(folder: Path) -> str | None:
    if not folder.is_dir():
        return "does not exist"
    if not (folder / "config.json").is_file():
        return "has no config.json"
    if not any(folder.glob("*.safetensors")):
        return "has no .safetensors weights"
    if not (folder / "preprocessor_config.json").is_file():
        return "has no preprocessor_config.json"
    return None


def _checked(folder: Path, what: str) -> Path:
    problem = _problem(folder)
    if problem is not None:
        raise ValueError(
            f"{what} {problem}. It needs config.json, model.safetensors and "
            f"preprocessor_config.json, as in {DEPTH_HUB_ID}."
        )
    return folder


def _from_hf_cache() -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(DEPTH_HUB_ID, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if _problem(path) is None else None


@lru_cache(maxsize=2)
def _load(folder: str) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    # a local folder and safetensors only: nothing is fetched and nothing is unpickled
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    network = AutoModelForDepthEstimation.from_pretrained(
        folder, local_files_only=True, use_safetensors=True
    )
    return processor, network.eval()
