from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from studio.engine.checks import check_request
from studio.engine.generate import generate
from studio.engine.masks import prepare_mask
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest, StepUpdate
from studio.engine.samplers import SAMPLERS


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture()
def request_(tiny_model) -> GenerationRequest:
    return GenerationRequest(
        model=str(tiny_model), prompt="a red circle", width=64, height=64, steps=4, seed=7
    )


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_same_request_twice_gives_identical_pixels(cache, request_):
    a = generate(request_, cache).images[0]
    b = generate(request_, cache).images[0]
    assert np.array_equal(pixels(a), pixels(b))
    c = generate(request_.with_(seed=8), cache).images[0]
    assert not np.array_equal(pixels(a), pixels(c))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_reproducibly_on_shared_weights(cache, request_, sampler):
    request = request_.with_(sampler=sampler)
    updates: list[StepUpdate] = []
    first = generate(request, cache, on_step=updates.append).images[0]
    unet = cache.pipeline(request).unet
    second = generate(request, cache).images[0]  # without previews: same pixels
    assert first.size == (64, 64)
    assert np.array_equal(pixels(first), pixels(second))
    assert updates and updates[-1].step == updates[-1].total
    assert cache.pipeline(request).unet is unet


def test_switching_mode_and_sampler_reuses_the_loaded_unet(cache, request_, tmp_path):
    base = generate(request_, cache).images[0]
    unet = cache.pipeline(request_).unet
    img2img = request_.with_(mode="img2img", init_image=base, strength=0.6, sampler="Euler a")
    mask = Image.new("L", base.size, 0)
    inpaint = img2img.with_(mode="inpaint", mask=mask.copy())
    generate(img2img, cache)
    generate(inpaint.with_(mask=_square_mask(base.size)), cache)
    pipes = [cache.pipeline(r) for r in (request_, img2img, inpaint)]
    assert len({type(p).__name__ for p in pipes}) == 3
    assert all(p.unet is unet and p.vae is pipes[0].vae for p in pipes)


def test_batch_image_k_uses_seed_plus_k(cache, request_):
    batch = generate(request_.with_(batch_size=3), cache)
    assert batch.seeds == [7, 8, 9]
    alone = generate(request_.with_(seed=9), cache).images[0]
    # the same noise: equal up to float differences of a batched vs single UNet call
    assert np.abs(pixels(batch.images[2]) - pixels(alone)).max() <= 2


def test_previews_every_n_steps_show_x0_or_xt(cache, request_):
    request = request_.with_(steps=6)
    x0: list[StepUpdate] = []
    xt: list[StepUpdate] = []
    generate(request, cache, x0.append, preview_every=2, preview_source="x0", preview_budget=None)
    generate(request, cache, xt.append, preview_every=2, preview_source="xt", preview_budget=None)
    assert [u.step for u in x0] == [1, 2, 3, 4, 5, 6]
    assert [u.step for u in x0 if u.preview is not None] == [2, 4, 6]
    assert x0[1].preview.shape == (64, 64, 3) and x0[1].preview.dtype == np.uint8
    assert not np.array_equal(x0[1].preview, xt[1].preview)


def test_cancel_stops_within_one_step_and_returns_no_image(cache, request_):
    cancel = threading.Event()
    seen: list[int] = []

    def on_step(update: StepUpdate) -> None:
        seen.append(update.step)
        if update.step == 2:
            cancel.set()

    result = generate(request_.with_(steps=10), cache, on_step=on_step, cancel=cancel)
    assert result.cancelled and result.images == []
    assert seen == [1, 2]  # the callback after step 3 saw the flag and stopped


def test_inpaint_changes_only_masked_pixels(cache, request_):
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = _square_mask(init.size)
    request = request_.with_(mode="inpaint", init_image=init, mask=mask, strength=1.0, mask_blur=2)
    for only_masked in (False, True):
        out = generate(request.with_(inpaint_only_masked=only_masked, inpaint_padding=8), cache)
        result, original = pixels(out.images[0]), pixels(init)
        feathered = np.asarray(prepare_mask(mask, init.size, 2))
        assert np.array_equal(result[feathered == 0], original[feathered == 0])
        assert np.abs(result[feathered == 255] - original[feathered == 255]).mean() > 10


def test_nine_channel_inpainting_unet_runs_every_mode(tiny_inpaint_model, request_):
    cache = PipelineCache()
    request = request_.with_(model=str(tiny_inpaint_model))
    txt = generate(request, cache).images[0]
    init = Image.new("RGB", (64, 64), (20, 160, 40))
    mask = _square_mask(init.size)
    out = generate(
        request.with_(mode="inpaint", init_image=init, mask=mask, mask_blur=0, strength=1.0), cache
    ).images[0]
    assert txt.size == (64, 64)
    inside = np.asarray(mask) > 0
    assert np.array_equal(pixels(out)[~inside], pixels(init)[~inside])
    assert cache.info.inpaint_unet


def _square_mask(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "Steps must be between 1"),
        ({"steps": 5000}, "Steps must be between 1"),
        ({"cfg_scale": -1.0}, "CFG scale must be between 0"),
        ({"width": 100}, "multiple of 8 (try 96 or 104)"),
        ({"height": 8}, "Height must be between 64"),
        ({"sampler": "Euler b"}, "Unknown sampler 'Euler b'"),
        ({"mode": "img2img"}, "img2img needs an input image"),
        ({"mode": "img2img", "init_image": Image.new("RGB", (8, 8)), "strength": 0.0}, "strength"),
        ({"mode": "img2img", "init_image": Image.new("RGB", (8, 8)), "strength": 1.5}, "strength"),
        (
            {
                "mode": "inpaint",
                "init_image": Image.new("RGB", (64, 64)),
                "mask": Image.new("L", (32, 32)),
            },
            "The mask is 32x32 but the image is 64x64",
        ),
        ({"mode": "inpaint", "init_image": Image.new("RGB", (64, 64))}, "needs a mask"),
        (
            {
                "mode": "inpaint",
                "init_image": Image.new("RGB", (64, 64)),
                "mask": Image.new("L", (64, 64), 100),  # below the half-way threshold
            },
            "The mask is empty",
        ),
        ({"clip_skip": 0}, "Clip skip must be between 1"),
        ({"rng": "cuda"}, "Unknown RNG 'cuda'"),
        ({"ensd": -1}, "ENSD must be between 0"),
        ({"batch_size": 0}, "Batch size"),
        ({"seed": -3}, "Seed must be between 0"),
    ],
)
def test_check_request_explains_invalid_fields(changes, message):
    with pytest.raises(ValueError, match=_literal(message)):
        check_request(GenerationRequest(**changes))


def test_check_request_knows_the_models_size_limit(cache, request_):
    info = cache.load(request_.model)
    assert info.native_size == 64
    check_request(request_.with_(width=256), info)
    with pytest.raises(ValueError, match="Width must be between 64 and 256"):
        check_request(request_.with_(width=264), info)


def test_an_invalid_request_runs_nothing(cache, request_):
    calls: list[StepUpdate] = []
    with pytest.raises(ValueError):
        generate(request_.with_(steps=0), cache, on_step=calls.append)
    assert calls == []


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_last_x0_preview_of_a_small_model_is_the_final_image(cache, request_):
    updates: list[StepUpdate] = []
    final = generate(request_, cache, on_step=updates.append, preview_budget=None).images[0]
    # small models preview through their own VAE: at the last step x̂0 is the result
    difference = np.abs(updates[-1].preview.astype(np.int16) - pixels(final))
    assert difference.mean() < 2


def test_sd_family_previews_use_the_published_linear_map():
    import torch

    from studio.engine.preview import SD_LATENT_RGB, previewer_for

    latents = torch.zeros(1, 4, 2, 3)
    latents[0, 0] = 1.0  # channel 1 alone maps to its row of coefficients
    preview = previewer_for("sd1", vae=None)(latents)
    expected = np.round((SD_LATENT_RGB[0].numpy() + 1) * 127.5)
    assert preview.shape == (16, 24, 3)  # upscaled 8x to image size
    assert np.array_equal(preview[0, 0], expected.astype(np.uint8))


def test_previews_thin_out_when_they_exceed_their_time_budget(cache, request_):
    updates: list[StepUpdate] = []
    generate(request_.with_(steps=5), cache, on_step=updates.append, preview_budget=0.0)
    # the first preview is free of charge; with no budget left, later ones are skipped
    assert [u.step for u in updates] == [1, 2, 3, 4, 5]
    assert [u.step for u in updates if u.preview is not None] == [1]
