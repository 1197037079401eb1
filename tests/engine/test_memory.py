from __future__ import annotations

import weakref

import pytest
import torch

from studio.engine import memory, pipelines
from studio.engine.generate import generate
from studio.engine.memory import (
    MemoryPlan,
    OutOfMemory,
    call_freeing_memory,
    choose_plan,
    is_out_of_memory,
)
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest

GiB = 2**30
# fp16 weights: (all modules, the UNet)
SD15 = (2.0 * GiB, 1.6 * GiB)
SDXL = (6.9 * GiB, 4.8 * GiB)

NONE = MemoryPlan()
MODEL = MemoryPlan("model", vae_tiling=True, vae_slicing=True)
SEQUENTIAL = MemoryPlan("sequential", vae_tiling=True, vae_slicing=True, attention_slicing=True)


@pytest.mark.parametrize(
    ("free_gib", "model", "expected"),
    [
        (80, SDXL, NONE),  # a data-centre GPU
        (24, SDXL, NONE),
        (10, SDXL, NONE),  # 6.9 + 2.4 headroom fits
        (8, SDXL, MODEL),  # the UNet alone fits: one module at a time
        (7.3, SDXL, MODEL),
        (6, SDXL, SEQUENTIAL),  # not even the UNet: layer by layer
        (4, SDXL, SEQUENTIAL),
        (8, SD15, NONE),
        (4, SD15, NONE),  # 2.0 + 1 GiB
        (2.8, SD15, MODEL),
        (2, SD15, SEQUENTIAL),
        (None, SDXL, NONE),  # free memory unknown: as before
    ],
)
def test_automatic_policy_from_free_vram_and_model_size(free_gib, model, expected):
    free = None if free_gib is None else int(free_gib * GiB)
    total, largest = int(model[0]), int(model[1])
    assert choose_plan("auto", "cuda", free, total, largest) == expected


@pytest.mark.parametrize(
    ("policy", "offload"),
    [("none", "none"), ("model_offload", "model"), ("sequential_offload", "sequential")],
)
def test_a_manual_policy_overrides_the_free_memory(policy, offload):
    total, largest = int(SDXL[0]), int(SDXL[1])
    assert choose_plan(policy, "cuda", 80 * GiB, total, largest).offload == offload
    assert choose_plan(policy, "cuda", 1 * GiB, total, largest).offload == offload


def test_vae_tiling_is_kept_when_asked_and_turned_on_by_offloading():
    total, largest = int(SDXL[0]), int(SDXL[1])
    assert choose_plan("auto", "cuda", 80 * GiB, total, largest, vae_tiling=True).vae_tiling
    assert not choose_plan("auto", "cuda", 80 * GiB, total, largest).vae_tiling
    assert choose_plan("auto", "cuda", 8 * GiB, total, largest).vae_tiling


def test_cpu_and_mps_never_offload():
    total, largest = int(SDXL[0]), int(SDXL[1])
    for policy in ("auto", "model_offload", "sequential_offload"):
        assert choose_plan(policy, "cpu", None, total, largest) == NONE
        assert choose_plan(policy, "mps", 96 * GiB, total, largest) == NONE
    # a Mac with 16 GB shares it with the system: attention slicing lowers the peak
    assert choose_plan("auto", "mps", 16 * GiB, total, largest).attention_slicing


def test_an_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, none, model_offload, sequential_offload"):
        choose_plan("lowvram", "cuda", None, 1, 1)
    with pytest.raises(ValueError, match="Unknown memory policy"):
        PipelineCache("cpu", memory_policy="lowvram")


# ---- placement in the cache -------------------------------------------------------------------
@pytest.fixture
def request_(tiny_model) -> GenerationRequest:
    return GenerationRequest(
        model=str(tiny_model), prompt="a red circle", width=64, height=64, steps=2, seed=3
    )


def test_offload_hooks_are_applied_again_to_each_pipeline_from_pipe(request_, monkeypatch):
    placed: list[object] = []
    monkeypatch.setattr(pipelines, "apply_plan", lambda pipe, plan, device: placed.append(pipe))
    # the plan a small GPU would get, on this CPU: placement is what is checked, not CUDA
    monkeypatch.setattr(pipelines, "choose_plan", lambda *a: MODEL)
    cache = PipelineCache("cpu")
    cache.load(request_.model)
    assert placed == [cache._base]
    txt2img = cache.pipeline(request_)
    img2img = cache.pipeline(request_.with_(mode="img2img"))
    assert img2img is not txt2img and placed[1:] == [txt2img, img2img]
    cache.pipeline(request_.with_(mode="img2img"))  # hooks already in place: nothing to do
    assert len(placed) == 3
    assert cache.pipeline(request_) is txt2img  # back to txt2img: its hooks were replaced
    assert placed[-1] is txt2img


def test_vae_tiling_setting_reaches_the_loaded_model_and_generation_still_runs(request_):
    cache = PipelineCache("cpu")
    cache.load(request_.model)
    vae = cache.pipeline(request_).vae
    assert not vae.use_tiling
    cache.set_memory("auto", vae_tiling=True)
    assert vae.use_tiling and cache.memory.vae_tiling
    assert "VAE tiling" in cache.describe()
    assert generate(request_, cache).images[0].size == (64, 64)
    cache.set_memory("none", vae_tiling=False)
    assert not vae.use_tiling


# ---- out of memory ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 8.1 GB)"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: out of memory"),
    ],
)
def test_out_of_memory_becomes_a_message_after_the_failed_call_is_freed(error, monkeypatch):
    alive_when_freed: list[bool] = []
    held: list[weakref.ref] = []

    def failing_call() -> None:
        activations = torch.zeros(1024)  # what a failed step leaves in its frame
        held.append(weakref.ref(activations))
        raise error

    def free() -> None:
        alive_when_freed.append(held[0]() is not None)

    monkeypatch.setattr(memory, "free_memory", free)
    with pytest.raises(OutOfMemory) as caught:
        call_freeing_memory(failing_call)
    # freed outside the except block: the traceback no longer held the failed call's tensors
    assert alive_when_freed == [False]
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    text = str(caught.value)
    assert text.startswith("Out of memory")
    assert "smaller image size" in text and "offload" in text and "still loaded" in text
    assert isinstance(caught.value, ValueError)  # the UI shows ValueErrors as written


def test_other_errors_pass_through_unchanged():
    def failing() -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        call_freeing_memory(failing)
    assert not is_out_of_memory(ValueError("out of memory"))  # only runtime allocator errors
    assert call_freeing_memory(lambda x: x + 1, 1) == 2
