from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.request import ControlSpec, GenerationRequest
from tests.tiny_models import save_tiny_controlnet


@pytest.fixture(scope="module")
def controlnets(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("controlnets")
    return {
        "a": save_tiny_controlnet(tiny_model, root / "a", 1),
        "b": save_tiny_controlnet(tiny_model, root / "b", 2),
        "sdxl": save_tiny_controlnet(tiny_model, root / "sdxl", 3, cross_attention_dim=2048),
    }


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


def _square(offset: int) -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((offset, offset, offset + 24, offset + 24), fill="black")
    return image


def _run(cache, request) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0]).astype(np.int16)


def test_control_image_steers_txt2img_img2img_and_inpaint(tiny_model, controlnets, cache):
    base = GenerationRequest(model=str(tiny_model), prompt="a square", width=64, height=64, steps=3)
    spec = ControlSpec(model=str(controlnets["a"]), image=_square(8), preprocessor="canny")
    moved = ControlSpec(model=str(controlnets["a"]), image=_square(32), preprocessor="canny")
    init = Image.new("RGB", (64, 64), (90, 140, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 56, 56))
    for request in (
        base,
        base.with_(mode="img2img", init_image=init, strength=0.8),
        base.with_(mode="inpaint", init_image=init, mask=mask, strength=1.0),
    ):
        plain = _run(cache, request)
        first = _run(cache, request.with_(controls=(spec,)))
        second = _run(cache, request.with_(controls=(moved,)))
        assert not np.array_equal(first, second)
        assert not np.array_equal(first, plain)
        off = _run(
            cache, request.with_(controls=(spec.__class__(**{**spec.__dict__, "enabled": False}),))
        )
        assert np.array_equal(off, plain)  # a disabled unit is no unit
    unet = cache.pipeline(base).unet
    assert all(
        p.unet is unet for p in cache._pipes.values()
    )  # ControlNet pipes share the base weights


def test_result_carries_the_preprocessed_control_map(tiny_model, controlnets, cache):
    spec = ControlSpec(model=str(controlnets["a"]), image=_square(8), preprocessor="canny")
    request = GenerationRequest(
        model=str(tiny_model), width=64, height=64, steps=2, controls=(spec,)
    )
    maps = generate(request, cache).control_maps
    edges = np.asarray(maps[0].convert("L"))
    assert maps[0].size == (64, 64)
    assert edges[8, 8:33].max() == 255 and edges[20, 20] == 0  # the border, not the interior


def test_multi_controlnet_with_weights_and_guidance_windows(tiny_model, controlnets, cache):
    a = ControlSpec(model=str(controlnets["a"]), image=_square(8), preprocessor="canny", weight=0.8)
    b = ControlSpec(
        model=str(controlnets["b"]),
        image=_square(30),
        preprocessor="none",
        guidance_start=0.0,
        guidance_end=0.5,
    )
    request = GenerationRequest(
        model=str(tiny_model), width=64, height=64, steps=4, controls=(a, b)
    )
    both = _run(cache, request)
    only_a = _run(cache, request.with_(controls=(a,)))
    assert not np.array_equal(both, only_a)
    assert (
        type(
            cache.pipeline(
                request, [cache.controlnet(a.model), cache.controlnet(b.model)]
            ).controlnet
        ).__name__
        == "MultiControlNetModel"
    )


def test_controlnet_for_another_family_is_refused_before_running(tiny_model, controlnets, cache):
    spec = ControlSpec(model=str(controlnets["sdxl"]), image=_square(8), preprocessor="canny")
    request = GenerationRequest(
        model=str(tiny_model), width=64, height=64, steps=2, controls=(spec,)
    )
    steps: list = []
    with pytest.raises(ValueError, match="made for SDXL models"):
        generate(request, cache, on_step=steps.append)
    assert steps == []
