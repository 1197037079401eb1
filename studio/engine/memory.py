"""Memory: how a model is placed (whole on the GPU, offloaded model by model, or layer by layer),
and what an out-of-memory error becomes.

- `choose_plan(...)`: a pure function from the policy the user chose, the device and the free
  memory to a `MemoryPlan`; "auto" picks the lightest placement that fits.
- `apply_plan(pipe, plan, device)`: puts one pipeline's modules where the plan says. Offload hooks
  belong to a pipeline object, not to its modules' weights: a pipeline built with `from_pipe`
  starts without them, so each pipeline gets the plan applied before it runs.
- `call_freeing_memory(fn, ...)`: runs `fn`; an out-of-memory error frees what the failed call
  held (outside the `except` block, where its traceback no longer pins the tensors) and becomes an
  `OutOfMemory` with a message saying what to try.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

GiB = 2**30
POLICIES = ("auto", "none", "model_offload", "sequential_offload")
POLICY_LABELS = {
    "auto": "Automatic",
    "none": "Whole model on the GPU",
    "model_offload": "Model CPU offload",
    "sequential_offload": "Sequential CPU offload (slowest, least memory)",
}
# working memory beside the weights (activations of one image at the model's native size in
# fp16 with SDPA, the CUDA context, the allocator's slack): about half the UNet's weights, at
# least 1 GiB (SD 1.5: 1.6 GiB UNet -> 1 GiB; SDXL: 4.8 GiB UNet -> 2.4 GiB)
MIN_HEADROOM = 1 * GiB


def headroom(largest_module_bytes: int) -> int:
    return max(MIN_HEADROOM, largest_module_bytes // 2)


# MPS shares the machine's memory; below this diffusers recommends attention slicing
MPS_SLICING_BELOW = 64 * GiB

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryPlan:
    offload: str = "none"  # "none" | "model" | "sequential"
    vae_tiling: bool = False  # decode (and encode) large images in tiles
    vae_slicing: bool = False  # one image of a batch at a time through the VAE
    attention_slicing: bool = False

    @property
    def label(self) -> str:
        parts = {"none": [], "model": ["model CPU offload"], "sequential": ["sequential offload"]}
        shown = list(parts[self.offload])
        shown += ["VAE tiling"] * self.vae_tiling + ["attention slicing"] * self.attention_slicing
        return ", ".join(shown) or "whole model on the device"


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"Unknown memory policy {policy!r}: use one of {', '.join(POLICIES)}.")
    return policy


def choose_plan(
    policy: str,
    device_kind: str,
    free_bytes: int | None,
    model_bytes: int,
    largest_module_bytes: int,
    vae_tiling: bool = False,
) -> MemoryPlan:
    """`free_bytes`: free GPU memory (CUDA), the machine's memory (MPS), None when unknown.

    `model_bytes`: all weights at their load dtype; `largest_module_bytes`: the UNet's, which
    model offload keeps on the GPU alone while it denoises.
    """
    check_policy(policy)
    if device_kind != "cuda":
        # offload moves weights between the CPU and a GPU: nothing to gain on a CPU or on MPS's
        # unified memory, where only slicing lowers the peak
        slicing = device_kind == "mps" and (free_bytes is None or free_bytes < MPS_SLICING_BELOW)
        return MemoryPlan(vae_tiling=vae_tiling, attention_slicing=slicing)
    if policy == "none":
        return MemoryPlan(vae_tiling=vae_tiling)
    if policy == "model_offload":
        return MemoryPlan("model", vae_tiling=vae_tiling, vae_slicing=True)
    if policy == "sequential_offload":
        return MemoryPlan("sequential", vae_tiling=True, vae_slicing=True)
    spare = headroom(largest_module_bytes)
    if free_bytes is None or free_bytes >= model_bytes + spare:
        return MemoryPlan(vae_tiling=vae_tiling)
    if free_bytes >= largest_module_bytes + spare:
        return MemoryPlan("model", vae_tiling=True, vae_slicing=True)
    return MemoryPlan("sequential", vae_tiling=True, vae_slicing=True, attention_slicing=True)


def free_device_memory(device: str) -> int | None:
    """Free bytes on a CUDA device; the machine's memory for MPS; None when unknown (CPU)."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        index = torch.device(device).index
        free, _total = torch.cuda.mem_get_info(index if index is not None else 0)
        return int(free)
    if kind == "mps":
        try:
            import os

            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def module_sizes(pipe: Any) -> tuple[int, int]:
    """(all weights, the largest module's weights) of a pipeline, in bytes."""
    import torch

    sizes = [
        sum(p.numel() * p.element_size() for p in module.parameters())
        for module in pipe.components.values()
        if isinstance(module, torch.nn.Module)
    ]
    return sum(sizes), max(sizes, default=0)


def apply_plan(pipe: Any, plan: MemoryPlan, device: str) -> None:
    """Place `pipe`'s modules as `plan` says; safe to call again on the same or a sibling pipeline."""
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    vae = pipe.vae
    vae.enable_tiling() if plan.vae_tiling else vae.disable_tiling()
    vae.enable_slicing() if plan.vae_slicing else vae.disable_slicing()
    if plan.attention_slicing:
        pipe.enable_attention_slicing()


def weights_device(plan: MemoryPlan, device: str) -> str:
    """Where weights loaded later (ControlNets) live: offloaded pipelines keep them on the CPU."""
    return device if plan.offload == "none" else "cpu"


# ---- out of memory ---------------------------------------------------------------------------
class OutOfMemory(ValueError):
    """A user-readable out-of-memory error (a ValueError: the UI shows it as written)."""


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    # MPS ("MPS backend out of memory") and CPU allocators raise a plain RuntimeError
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def out_of_memory_message(detail: str) -> str:
    first = detail.strip().splitlines()[0] if detail.strip() else ""
    cause = f" ({first[:160]})" if first else ""
    return (
        f"Out of memory{cause}. The model is still loaded: try a smaller image size or batch, "
        "or choose model CPU offload (or sequential offload) under Settings > Memory."
    )


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def call_freeing_memory(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`; an out-of-memory error frees memory and raises `OutOfMemory`."""
    detail: str | None = None
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        detail = str(exc)
        # whoever else keeps the error (a log record, a caller's list) must not keep its frames
        exc.__traceback__ = None
        log.info(
            "out of memory: %s", detail.splitlines()[0] if detail else ""
        )  # the message says it
    # here the exception and its traceback, whose frames hold the failed call's tensors, are gone
    free_memory()
    raise OutOfMemory(out_of_memory_message(detail or ""))
