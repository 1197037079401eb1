"""Noise as A1111 draws it: CPU, GPU (NV without CUDA), NV (Philox), ENSD, per-image SDE trees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine.generate import generate
from studio.engine.noise import ImageNoise
from studio.engine.philox import PhiloxGenerator, box_muller, philox4x32
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest


def philox(counter: list[int], key: list[int]) -> list[int]:
    c = np.array(counter, dtype=np.uint32).reshape(4, 1)
    k = np.array(key, dtype=np.uint32).reshape(2, 1)
    return [int(v) for v in philox4x32(c, k)[:, 0]]


# Known-answer vectors for philox4x32-10 published with Random123 (kat_vectors,
# Salmon et al., SC'11): counter, key -> output
@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ],
)
def test_philox_core_matches_random123_known_answers(counter, key, expected):
    assert philox(counter, key) == expected


def test_nv_noise_is_standard_normal_and_each_draw_new():
    generator = PhiloxGenerator(1234)
    first, second = generator.randn((4, 64, 64)), generator.randn((4, 64, 64))
    assert first.dtype == np.float32 and abs(first.mean()) < 0.02 and abs(first.std() - 1) < 0.02
    assert not np.array_equal(first, second)
    assert np.array_equal(PhiloxGenerator(1234).randn((4, 64, 64)), first)


def test_box_muller_uses_the_first_word_for_the_radius_and_the_second_for_the_angle():
    x = np.array([2**31], dtype=np.uint32)  # u just above 0.5
    y = np.array([2**30], dtype=np.uint32)  # a quarter turn: sin = 1
    value = float(box_muller(x, y)[0])
    assert value == pytest.approx(np.sqrt(-2 * np.log(0.5)), rel=1e-5)


def test_cpu_noise_equals_torch_randn_on_a_cpu_generator_per_image():
    noise = ImageNoise([7, 8], "CPU", "cpu")
    drawn = noise.randn((2, 4, 8, 8))
    for k, seed in enumerate((7, 8)):
        expected = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(drawn[k], expected)


def test_gpu_noise_without_cuda_is_nvs_emulation():
    noise = ImageNoise([5], "GPU", "cpu")
    assert noise.source == "NV"
    assert np.array_equal(noise.randn((1, 4, 8, 8))[0].numpy(), PhiloxGenerator(5).randn((4, 8, 8)))


def test_ensd_reseeds_after_the_initial_noise():
    plain, shifted = ImageNoise([3], "CPU", "cpu"), ImageNoise([3], "CPU", "cpu", ensd=31337)
    assert torch.equal(plain.randn((1, 4)), shifted.randn((1, 4)))  # initial noise: the same
    expected = torch.randn((4,), generator=torch.Generator().manual_seed(3 + 31337))
    assert torch.equal(shifted.randn((1, 4))[0], expected)


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


def image(cache, request) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0]).astype(np.int16)


def test_rng_source_and_ensd_change_ancestral_images_as_a1111(tiny_model, cache):
    request = GenerationRequest(
        model=str(tiny_model),
        prompt="red",
        width=64,
        height=64,
        steps=4,
        seed=9,
        sampler="Euler a",
    )
    cpu = image(cache, request)
    nv = image(cache, request.with_(rng="NV"))
    assert not np.array_equal(cpu, nv)
    assert np.array_equal(image(cache, request.with_(rng="GPU")), nv)  # no CUDA here
    assert not np.array_equal(image(cache, request.with_(ensd=31337)), cpu)
    # a sampler without per-step noise ignores ENSD
    ddim = request.with_(sampler="DDIM")
    assert np.array_equal(image(cache, ddim.with_(ensd=31337)), image(cache, ddim))


@pytest.mark.parametrize("sampler", ["DPM++ SDE Karras", "DPM++ 2M SDE Karras", "Euler a"])
@pytest.mark.parametrize("rng", ["CPU", "NV"])
def test_batch_image_k_regenerates_alone(tiny_model, cache, sampler, rng):
    request = GenerationRequest(
        model=str(tiny_model),
        prompt="red",
        width=64,
        height=64,
        steps=4,
        seed=20,
        sampler=sampler,
        rng=rng,
        batch_size=3,
    )
    batch = generate(request, cache).images
    alone = generate(request.with_(batch_size=1, seed=22), cache).images[0]
    # the same noise, Brownian tree included: equal up to a batched vs single UNet call's floats
    diff = np.abs(np.asarray(batch[2]).astype(int) - np.asarray(alone).astype(int))
    assert diff.max() <= 2


def test_cli_takes_rng_ensd_and_clip_skip_and_refuses_bad_values(tmp_path, capsys):
    from studio.cli import main

    out = tmp_path / "nv.png"
    args = ["generate", "-p", "a red circle", "--seed", "4", "--steps", "3", "-o", str(out)]
    assert main([*args, "--rng", "NV", "--ensd", "5", "--clip-skip", "2"]) == 0
    assert out.exists()
    assert main([*args[:-1], str(tmp_path / "x.png"), "--clip-skip", "0"]) == 1
    assert "Clip skip" in capsys.readouterr().err
