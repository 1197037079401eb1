from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache, pick_device
from studio.engine.precision import (
    VAE_RETRY_NOTE,
    DeviceFacts,
    NonFiniteLatents,
    Precision,
    choose_precision,
    decode_guard,
    device_facts,
    vae_force_upcast,
)
from studio.engine.request import GenerationRequest

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16


@pytest.mark.parametrize(
    ("facts", "upcast", "expected"),
    [
        (DeviceFacts("cpu"), False, Precision(F32, F32)),
        (DeviceFacts("cpu"), True, Precision(F32, F32)),
        (DeviceFacts("cuda", bf16=False), False, Precision(F16, F16)),
        # SDXL's VAE overflows in fp16: kept in fp32 beside an fp16 UNet
        (DeviceFacts("cuda", bf16=False), True, Precision(F16, F32)),
        # bf16 has fp32's range: nothing to upcast
        (DeviceFacts("cuda", bf16=True), False, Precision(BF16, BF16)),
        (DeviceFacts("cuda", bf16=True), True, Precision(BF16, BF16)),
        (DeviceFacts("mps"), False, Precision(F16, F16)),
        (DeviceFacts("mps"), True, Precision(F16, F32)),
    ],
)
def test_precision_is_chosen_per_device(facts, upcast, expected):
    assert choose_precision(facts, vae_force_upcast=upcast) == expected


def test_this_cpu_machine_runs_in_full_precision():
    assert device_facts("cpu") == DeviceFacts("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert pick_device() == ("cpu", F32)
    assert PipelineCache("cpu").dtype == F32


def test_only_sdxl_vaes_are_upcast_where_their_config_says():
    class Config:
        force_upcast = True

    assert vae_force_upcast("sdxl", Config())
    assert not vae_force_upcast("sd1", Config())  # SD 1.x inherits the default, decodes fine
    Config.force_upcast = False
    assert not vae_force_upcast("sdxl", Config())


def test_precision_label_names_the_vae_only_when_it_differs():
    assert Precision(F16, F32).label == "float16, VAE float32"
    assert Precision(F32, F32).label == "float32"


# ---- the VAE guard, on a tiny pipeline with a NaN injected into the half-precision VAE --------
def _nan_in_half(module, inputs, output):
    # what SDXL's VAE does in fp16 at real sizes: an activation overflows and the image is NaN
    if output.dtype in (F16, BF16):
        return output * float("nan")
    return None


@pytest.fixture
def request_(tiny_model) -> GenerationRequest:
    return GenerationRequest(
        model=str(tiny_model), prompt="a red circle", width=64, height=64, steps=2, seed=3
    )


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_a_nan_half_precision_decode_is_retried_in_fp32_with_a_note(request_):
    # the reference VAE went through bf16 and back, like the retried one: same weights in fp32
    fp32_cache = PipelineCache("cpu")
    fp32_cache.load(request_.model)
    fp32_cache.pipeline(request_).vae.to(BF16).to(F32)
    reference = generate(request_, fp32_cache).images[0]

    cache = PipelineCache("cpu")
    cache.load(request_.model)
    vae = cache.pipeline(request_).vae
    vae.to(BF16)  # bf16 stands in for fp16: CPUs run it, and the guard treats both as half
    hook = vae.decoder.register_forward_hook(_nan_in_half)
    try:
        pipe = cache.pipeline(request_)
        with decode_guard(pipe) as report:
            retried = generate(request_, cache).images[0]
        assert report.note == VAE_RETRY_NOTE
        assert vae.dtype == F32  # stays in fp32: the next image is not decoded twice
        # the same latents decoded in fp32: exactly the image of a model that never was in fp16
        assert np.array_equal(_pixels(retried), _pixels(reference))
        assert _pixels(retried).std() > 0  # not black

        with decode_guard(pipe) as again:
            generate(request_, cache)
        assert again.note == ""
    finally:
        hook.remove()


def test_a_full_precision_vae_is_not_retried(request_):
    cache = PipelineCache("cpu")
    cache.load(request_.model)
    pipe = cache.pipeline(request_)
    calls: list[int] = []
    hook = pipe.vae.decoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        with decode_guard(pipe) as report:
            generate(request_, cache)
    finally:
        hook.remove()
    assert report.note == ""
    assert len(calls) == 1  # one decode, no second one


def test_nan_latents_after_the_unet_give_a_clear_error_and_the_model_stays_usable(request_):
    cache = PipelineCache("cpu")
    cache.load(request_.model)
    unet = cache.pipeline(request_).unet
    hook = unet.register_forward_hook(lambda m, i, out: (out[0] * float("nan"),))
    try:
        with pytest.raises(NonFiniteLatents, match="invalid numbers"):
            generate(request_, cache)
    finally:
        hook.remove()
    assert isinstance(NonFiniteLatents("x"), ValueError)  # shown to users as written
    image = generate(request_, cache).images[0]
    assert _pixels(image).std() > 0


def test_img2img_encodes_with_a_vae_in_another_precision_than_the_unet(request_):
    cache = PipelineCache("cpu")
    base = generate(request_, cache).images[0]
    img2img = request_.with_(mode="img2img", init_image=base, strength=0.5)
    cache.pipeline(img2img).vae.to(BF16)  # as an fp32 VAE beside an fp16 UNet on a GPU
    image = generate(img2img, cache).images[0]
    assert image.size == (64, 64)
    assert _pixels(image).std() > 0
