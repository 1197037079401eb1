"""PipelineCache: load a model's weights once, then hand out pipelines per mode that share them.

txt2img, img2img, inpaint (and their ControlNet variants) are built with `from_pipe`, which
reuses the loaded modules: switching mode or sampler never reloads or copies weights.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

# diffusers' first import costs seconds (it pulls in transformers, torch._dynamo, scipy and sympy):
# pay it when the engine is imported, which the GUI worker does at its start and the CLI before
# the load, not inside the first load() a user waits for
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    ControlNetModel,
)
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from studio.engine.models import (
    ControlNetInfo,
    ModelInfo,
    check_controlnet_fits,
    inspect_diffusers_folder,
    resolve_controlnet,
    resolve_model,
)
from studio.engine.preview import LatentPreviewer, VaePreviewer, previewer_for
from studio.engine.request import GenerationRequest
from studio.engine.single_file import load_single_file

log = logging.getLogger(__name__)

# Below this much UNet weight every tensor is too small for torch's intra-op threads to pay for
# their fork and join on each of the hundreds of per-tensor casts and copies of a load: such a
# model loads faster on one thread, several times faster on a busy CPU (SD-family UNets: >1.6 GB)
SMALL_MODEL_BYTES = 256 * 2**20


def _build_transformers_conversion_table() -> None:
    """transformers 5 compiles its table of checkpoint-key conversions (about a thousand regexes,
    0.2-0.3 s on a small CPU) the first time any of its models loads: build it with the engine."""
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("clip")
    except Exception:  # other transformers versions have no such table; never fatal
        log.debug("transformers' conversion table not built in advance", exc_info=True)


_build_transformers_conversion_table()


def pick_device() -> tuple[str, torch.dtype]:
    if torch.cuda.is_available():
        return "cuda", torch.float16
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", torch.float16
    return "cpu", torch.float32  # half precision is slow or unsupported on CPUs


class PipelineCache:
    def __init__(
        self,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        allow_downloads: bool = False,
    ):
        # hub models not yet in the Hugging Face cache are fetched only when the user allows it
        self.allow_downloads = allow_downloads
        auto_device, auto_dtype = pick_device()
        self.device = device or auto_device
        self.dtype = dtype or (auto_dtype if device is None else _dtype_for(self.device))
        self.info: ModelInfo | None = None
        self.previewer: LatentPreviewer | VaePreviewer | None = None
        self._base: Any = None  # the txt2img (or inpaint, for 9-channel models) pipeline as loaded
        self._scheduler_config: dict[str, Any] = {}
        self._pipes: dict[tuple, Any] = {}
        self._controlnets: dict[str, Any] = {}

    # ---- loading ---------------------------------------------------------------------
    def load(self, ref: str, on_status: Callable[[str], None] | None = None) -> ModelInfo:
        """Load `ref` unless it is already loaded; raise ValueError with a clear message."""
        info = resolve_model(ref)
        if self.info is not None and self.info.ref == info.ref and self._base is not None:
            return self.info
        if self._base is not None:
            self.unload()  # frees the old weights before the new ones arrive
        if info.kind == "hub" and info.path is None:
            info = self._download(info, on_status)
        if on_status:
            on_status(f"Loading {info.name}…")
        try:
            with _one_thread_if_small(info):
                base, info = _load_base(info, self.dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise ValueError(f"Could not load model {info.name!r}: {_first_line(e)}") from e
        base.to(self.device)
        base.set_progress_bar_config(disable=True)
        self._base = base
        self._scheduler_config = dict(base.scheduler.config)
        self.info = info
        self.previewer = previewer_for(info.family, base.vae)
        if on_status:
            on_status(f"{info.name} ready on {self.device}")
        return info

    def _download(self, info: ModelInfo, on_status: Callable[[str], None] | None) -> ModelInfo:
        if not self.allow_downloads:
            raise ValueError(
                f"{info.ref} is a Hugging Face hub model that is not downloaded yet; allow "
                "downloads (Settings, or --allow-download) to fetch it, or choose a local model."
            )
        from diffusers import DiffusionPipeline

        if on_status:
            on_status(f"Downloading {info.ref}…")
        try:
            folder = DiffusionPipeline.download(info.ref, use_safetensors=True)
        except Exception as e:  # offline, no such repo, no safetensors weights
            raise ValueError(f"Could not download {info.ref}: {_first_line(e)}") from e
        name = info.ref.split("/")[-1]
        return replace(inspect_diffusers_folder(Path(folder), ref=info.ref), name=name, kind="hub")

    def controlnet(self, ref: str) -> Any:
        """Load a ControlNet once; refuse one made for another model family before loading."""
        if self.info is None:
            raise RuntimeError("Load the base model before its ControlNets.")
        control = resolve_controlnet(ref)
        check_controlnet_fits(control, self.info)
        if control.ref not in self._controlnets:
            try:
                model = _load_controlnet(control, self.dtype)
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise ValueError(
                    f"Could not load ControlNet {control.name!r}: {_first_line(e)}"
                ) from e
            if model.config.cross_attention_dim != self.info.cross_attention_dim:  # hub ids
                check_controlnet_fits(
                    replace(control, cross_attention_dim=model.config.cross_attention_dim),
                    self.info,
                )
            self._controlnets[control.ref] = model.to(self.device)
        return self._controlnets[control.ref]

    def unload(self) -> None:
        self._base = None
        self._pipes.clear()
        self._controlnets.clear()
        self.info = None
        self.previewer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def scheduler_config(self) -> dict[str, Any]:
        return self._scheduler_config

    @property
    def tokenizer(self) -> Any:
        return None if self._base is None else self._base.tokenizer

    # ---- pipelines per mode ----------------------------------------------------------
    def pipeline(self, request: GenerationRequest, controlnets: list[Any] | None = None) -> Any:
        """The pipeline for the request's mode, sharing the loaded weights."""
        if self._base is None or self.info is None:
            raise RuntimeError("No model loaded: call load() first.")
        mode = pipeline_mode(request, self.info)
        key = (mode, tuple(id(c) for c in controlnets or ()))
        if key not in self._pipes:
            self._pipes[key] = self._from_pipe(mode, controlnets)
        return self._pipes[key]

    def _from_pipe(self, mode: str, controlnets: list[Any] | None) -> Any:
        auto = {
            "txt2img": AutoPipelineForText2Image,
            "img2img": AutoPipelineForImage2Image,
            "inpaint": AutoPipelineForInpainting,
        }[mode]
        extra: dict[str, Any] = {}
        if controlnets:
            extra["controlnet"] = controlnets[0] if len(controlnets) == 1 else controlnets
        pipe = auto.from_pipe(self._base, **extra)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def pipeline_mode(request: GenerationRequest, info: ModelInfo) -> str:
    # a 9-channel inpainting UNet cannot run the plain pipelines: it does every mode as inpaint
    return "inpaint" if info.inpaint_unet else request.mode


@contextmanager
def _one_thread_if_small(info: ModelInfo) -> Iterator[None]:
    """torch's intra-op threads are per process: restored as soon as the load is done."""
    size = info.weights_version[0] if info.weights_version else None
    if size is None or size >= SMALL_MODEL_BYTES:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _load_base(info: ModelInfo, dtype: torch.dtype) -> tuple[Any, ModelInfo]:
    """The pipeline, and the model's info as loading completed it (an SD 2.x file's probe)."""
    # progress is reported through on_status; tqdm bars would only clutter stderr
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    if info.kind == "single_file" and info.checkpoint is not None:
        pipe, checkpoint = load_single_file(info.path, info.checkpoint, dtype)
        return pipe, replace(info, checkpoint=checkpoint, native_size=checkpoint.native_size)
    auto = AutoPipelineForInpainting if info.inpaint_unet else AutoPipelineForText2Image
    kwargs: dict[str, Any] = {"dtype": dtype}
    if info.family in ("sd1", "sd2", "small"):
        # the app shows every image to the person who asked for it; no NSFW filter model is loaded
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    # hub ids arrive here as the local folder they were downloaded to (models.resolve_model)
    folder = info.path if info.path is not None else info.ref
    return auto.from_pretrained(folder, local_files_only=True, use_safetensors=True, **kwargs), info


def _load_controlnet(control: ControlNetInfo, dtype: torch.dtype) -> Any:
    if control.kind == "diffusers":
        return ControlNetModel.from_pretrained(
            control.path, local_files_only=True, use_safetensors=True, dtype=dtype
        )
    if control.kind == "single_file":
        return ControlNetModel.from_single_file(str(control.path), dtype=dtype)
    return ControlNetModel.from_pretrained(control.ref, dtype=dtype)


def _dtype_for(device: str) -> torch.dtype:
    return torch.float32 if device == "cpu" else torch.float16


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
