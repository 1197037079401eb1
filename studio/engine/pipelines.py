"""PipelineCache: load a model's weights once, then hand out pipelines per mode that share them.

txt2img, img2img, inpaint (and their ControlNet variants) are built with `from_pipe`, which
reuses the loaded modules: switching mode or sampler never reloads or copies weights.
Precision comes from the device (studio.engine.precision) and placement from the memory plan
(studio.engine.memory); offload hooks belong to one pipeline object, so the plan is applied again
whenever another pipeline of the same weights is handed out.
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

from studio.engine.memory import (
    MemoryPlan,
    apply_plan,
    check_policy,
    choose_plan,
    free_device_memory,
    module_sizes,
    weights_device,
)
from studio.engine.models import (
    ControlNetInfo,
    ModelInfo,
    check_controlnet_fits,
    inspect_diffusers_folder,
    resolve_controlnet,
    resolve_model,
)
from studio.engine.precision import (
    Precision,
    choose_precision,
    device_facts,
    install_vae_guard,
    vae_dtype_for,
    vae_force_upcast,
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
        device = "cuda"
    else:
        mps = getattr(torch.backends, "mps", None)
        device = "mps" if mps is not None and mps.is_available() else "cpu"
    return device, choose_precision(device_facts(device)).dtype


class PipelineCache:
    def __init__(
        self,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        allow_downloads: bool = False,
        memory_policy: str = "auto",
        vae_tiling: bool = False,
    ):
        # hub models not yet in the Hugging Face cache are fetched only when the user allows it
        self.allow_downloads = allow_downloads
        auto_device, auto_dtype = pick_device()
        self.device = device or auto_device
        self.dtype = dtype or (auto_dtype if device is None else _dtype_for(self.device))
        self.memory_policy = check_policy(memory_policy)
        self.vae_tiling = vae_tiling
        self.precision = Precision(self.dtype, self.dtype)  # the VAE's is chosen per model
        self.memory = MemoryPlan()
        self._placed: Any = None  # the pipeline whose offload hooks are in place
        self.info: ModelInfo | None = None
        self.previewer: LatentPreviewer | VaePreviewer | None = None
        self._base: Any = None  # the txt2img (or inpaint, for 9-channel models) pipeline as loaded
        self._scheduler_config: dict[str, Any] = {}
        self._pipes: dict[tuple, Any] = {}
        self._controlnets: dict[str, Any] = {}

    # ---- loading ---------------------------------------------------------------------
    def load(self, ref: str, on_status: Callable[[str], None] | None = None) -> ModelInfo:
        """Load `ref` unless it is already loaded; raise ValueError with a clear message."""
        if self._base is not None and self.info is not None and ref == self.info.ref:
            return self.info  # also a pipeline given with adopt(), which no path resolves to
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
        self.adopt(base, info)
        if on_status:
            on_status(f"{info.name} ready on {self.device} ({self.describe()})")
        return info

    def adopt(self, base: Any, info: ModelInfo) -> None:
        """Take `base` (a txt2img or inpaint pipeline, loaded or built) as the model `info` names.

        Its VAE gets its precision and NaN guard, and the memory plan places its weights.
        """
        if self._base is not None and self._base is not base:
            self.unload()
        upcast = vae_force_upcast(info.family, base.vae.config)
        self.precision = Precision(self.dtype, vae_dtype_for(self.dtype, upcast))
        if base.vae.dtype != self.precision.vae_dtype:
            base.vae.to(self.precision.vae_dtype)
        install_vae_guard(base.vae)
        base.set_progress_bar_config(disable=True)
        self._base = base
        self._scheduler_config = dict(base.scheduler.config)
        self.info = info
        self.previewer = previewer_for(info.family, base.vae)
        self._plan_memory()

    def describe(self) -> str:
        """Precision and placement, for the status line ("float16, VAE float32; model CPU offload")."""
        return f"{self.precision.label}; {self.memory.label}"

    # ---- memory ----------------------------------------------------------------------
    def set_memory(self, policy: str, vae_tiling: bool = False) -> None:
        """Change the memory policy; a loaded model is placed again at once."""
        check_policy(policy)
        if (policy, vae_tiling) == (self.memory_policy, self.vae_tiling):
            return
        self.memory_policy, self.vae_tiling = policy, vae_tiling
        if self._base is not None:
            self._plan_memory()

    def _plan_memory(self) -> None:
        base = self._base
        total, largest = module_sizes(base)
        if self._placed is not None:
            # weights held by offload hooks come back before another placement
            self._placed.remove_all_hooks()
        self.memory = choose_plan(
            self.memory_policy,
            self.device.split(":")[0],
            self._free_memory() if self.memory_policy == "auto" else None,
            total,
            largest,
            self.vae_tiling,
        )
        self._placed = None
        self._place(base)
        for controlnet in self._controlnets.values():
            controlnet.to(weights_device(self.memory, self.device))
        log.info("%s: %s", self.info.name if self.info else "model", self.describe())

    def _free_memory(self) -> int | None:
        """Free device memory as if this model's weights were not on the device."""
        free = free_device_memory(self.device)
        if free is None or self.device == "cpu":
            return free
        on_device = sum(
            p.numel() * p.element_size()
            for module in self._base.components.values()
            if isinstance(module, torch.nn.Module)
            for p in module.parameters()
            if p.device.type not in ("cpu", "meta")
        )
        return free + on_device

    def _place(self, pipe: Any) -> None:
        if pipe is self._placed:
            return
        apply_plan(pipe, self.memory, self.device)
        self._placed = pipe

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
            self._controlnets[control.ref] = model.to(weights_device(self.memory, self.device))
        return self._controlnets[control.ref]

    def unload(self) -> None:
        if self._placed is not None:
            self._placed.remove_all_hooks()  # accelerate's hooks hold the offloaded weights
        self._placed = None
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
        pipe = self._pipes[key]
        # model offload moves one module at a time, run by run, through this pipeline's hooks
        if self.memory.offload != "none":
            self._place(pipe)
        return pipe

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
        if self.memory.attention_slicing:
            pipe.enable_attention_slicing()
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
    return choose_precision(device_facts(device)).dtype


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
