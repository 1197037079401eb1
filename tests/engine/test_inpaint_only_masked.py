"""A1111's "Inpaint area: Only masked": the model repaints a crop around the mask at full size."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine.generate import generate
from studio.engine.masks import prepare_mask
from studio.engine.metadata.a1111 import read_a1111_text
from studio.engine.output import save_result
from studio.engine.pipelines import PipelineCache
from studio.engine.request import ControlSpec, GenerationRequest
from tests.tiny_models import save_tiny_controlnet

Calls = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture()
def record(monkeypatch) -> Callable[[PipelineCache], Calls]:
    """record(cache) -> the keyword arguments of every pipeline call made through that cache."""

    def start(cache: PipelineCache) -> Calls:
        calls: Calls = []
        get_pipeline = cache.pipeline
        wrapped: set[type] = set()

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = get_pipeline(*args, **kwargs)
            if type(pipe) in wrapped:
                return pipe
            wrapped.add(type(pipe))
            call = type(pipe).__call__

            @functools.wraps(call)  # generate() inspects the signature
            def recording(self: Any, *a: Any, **kw: Any) -> Any:
                calls.append(kw)
                return call(self, *a, **kw)

            monkeypatch.setattr(type(pipe), "__call__", recording)
            return pipe

        monkeypatch.setattr(cache, "pipeline", pipeline)
        return calls

    return start


def _picture(size: tuple[int, int]) -> Image.Image:
    # smooth gradients plus noise: every crop of it looks different
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([xs * 255 // size[0], ys * 255 // size[1], (xs + ys) % 256], axis=-1)
    rgb = rgb + rng.integers(-20, 21, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


@pytest.fixture()
def corner_job(tiny_model) -> GenerationRequest:
    # a 16x16 mask in the top-left corner of a 128x128 image
    size = (128, 128)
    return GenerationRequest(
        model=str(tiny_model),
        prompt="a red circle",
        mode="inpaint",
        width=size[0],
        height=size[1],
        steps=4,
        seed=7,
        init_image=_picture(size),
        mask=_mask(size, (8, 8, 24, 24)),
        mask_blur=0,
        strength=1.0,
        inpaint_only_masked=True,
        inpaint_padding=4,
    )


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def _scaled_crop(image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]):
    return pixels(image.crop(box).resize(size, Image.Resampling.LANCZOS))


def _white_share(mask: Image.Image) -> float:
    return float((np.asarray(mask.convert("L")) > 127).mean())


def test_the_pipeline_repaints_the_crop_around_the_mask_scaled_to_the_request_size(
    cache, record, corner_job
):
    calls = record(cache)
    generate(corner_job, cache)
    [call] = calls
    assert call["image"].size == call["mask_image"].size == (128, 128)
    assert (call["width"], call["height"]) == (128, 128)
    # the mask's bounds plus 4 px padding: (4, 4, 28, 28), already square and a multiple of 8
    expected = _scaled_crop(corner_job.init_image, (4, 4, 28, 28), (128, 128))
    assert np.array_equal(pixels(call["image"]), expected)
    # the 16 px square is 1.6% of the image but fills much of the crop the model sees
    assert _white_share(corner_job.mask) < 0.02
    assert _white_share(call["mask_image"]) > 0.3
    assert "padding_mask_crop" not in call  # our crop, not the pipeline's


def test_only_masked_changes_the_mask_and_keeps_every_other_pixel(cache, corner_job):
    job = corner_job.with_(mask_blur=2)
    out = generate(job, cache).images[0]
    full = generate(job.with_(inpaint_only_masked=False), cache).images[0]
    assert out.size == job.init_image.size
    feathered = np.asarray(prepare_mask(job.mask, out.size, 2))
    result, original = pixels(out), pixels(job.init_image)
    assert np.array_equal(result[feathered == 0], original[feathered == 0])
    inside = feathered > 200
    assert inside.sum() > 100
    assert np.abs(result[inside] - original[inside]).mean() > 10
    # the model saw another picture than when it repaints the whole image
    assert np.abs(result[inside] - pixels(full)[inside]).mean() > 10


def test_padding_changes_the_crop(cache, record, corner_job):
    calls = record(cache)
    generate(corner_job, cache)
    generate(corner_job.with_(inpaint_padding=36), cache)
    near, wide = calls
    # 36 px of padding: (0, 0, 60, 60) clamped to the image, rounded up to 64
    expected = _scaled_crop(corner_job.init_image, (0, 0, 64, 64), (128, 128))
    assert np.array_equal(pixels(wide["image"]), expected)
    assert not np.array_equal(pixels(near["image"]), pixels(wide["image"]))
    assert _white_share(wide["mask_image"]) < _white_share(near["mask_image"]) / 2


def test_the_crop_grows_to_the_request_aspect_ratio(cache, record, corner_job):
    size = (192, 96)
    job = corner_job.with_(
        width=size[0],
        height=size[1],
        init_image=_picture(size),
        mask=_mask(size, (168, 72, 184, 88)),
    )
    calls = record(cache)
    out = generate(job, cache).images[0]
    # padded bounds 24x24 (164..188, 68..92) widen to 48x24, then slide inside the right edge
    expected = _scaled_crop(job.init_image, (144, 68, 192, 92), size)
    assert np.array_equal(pixels(calls[0]["image"]), expected)
    assert out.size == size


def test_a_batch_repaints_each_image_inside_the_mask_only(cache, corner_job):
    result = generate(corner_job.with_(batch_size=2), cache)
    first, second = (pixels(image) for image in result.images)
    inside = np.asarray(corner_job.mask) > 0
    original = pixels(corner_job.init_image)
    for image in (first, second):
        assert image.shape == original.shape
        assert np.array_equal(image[~inside], original[~inside])
    assert not np.array_equal(first[inside], second[inside])  # seeds 7 and 8


def test_a_nine_channel_inpainting_unet_repaints_the_crop(tiny_inpaint_model, record, corner_job):
    cache = PipelineCache()
    calls = record(cache)
    job = corner_job.with_(model=str(tiny_inpaint_model))
    out = generate(job, cache).images[0]
    assert cache.info.inpaint_unet
    assert np.array_equal(
        pixels(calls[0]["image"]), _scaled_crop(job.init_image, (4, 4, 28, 28), (128, 128))
    )
    inside = np.asarray(job.mask) > 0
    assert out.size == job.init_image.size
    assert np.array_equal(pixels(out)[~inside], pixels(job.init_image)[~inside])
    assert np.abs(pixels(out)[inside] - pixels(job.init_image)[inside]).mean() > 10


def test_the_control_map_is_cropped_like_the_image(cache, record, corner_job, tiny_model, tmp_path):
    control = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(control).rectangle((8, 8, 23, 23), fill="black")  # where the mask is
    spec = ControlSpec(
        model=str(save_tiny_controlnet(tiny_model, tmp_path / "cn", 1)), image=control
    )
    calls = record(cache)
    result = generate(corner_job.with_(controls=(spec,)), cache)
    seen = np.asarray(calls[0]["control_image"].convert("L"))
    assert calls[0]["control_image"].size == (128, 128)
    assert (seen < 128).mean() > 0.3  # the square fills the crop as the mask does
    assert result.control_maps[0].size == (128, 128)  # the whole image's map is kept
    assert (np.asarray(result.control_maps[0].convert("L")) < 128).mean() < 0.02


def test_an_empty_mask_is_refused_with_a_message_before_denoising(cache, record, corner_job):
    calls = record(cache)
    with pytest.raises(ValueError, match="The mask is empty: paint the area to repaint"):
        generate(corner_job.with_(mask=Image.new("L", (128, 128), 0)), cache)
    assert calls == []


def test_the_saved_image_still_says_only_masked(cache, corner_job, tmp_path):
    result = generate(corner_job, cache)
    [path] = save_result(result, tmp_path)
    with Image.open(path) as image:
        text = image.info["parameters"]
    assert "Inpaint area: Only masked" in text and "Masked area padding: 4" in text
    read = read_a1111_text(text).request
    assert (read.inpaint_only_masked, read.inpaint_padding) == (True, 4)
