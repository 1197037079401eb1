from __future__ import annotations

import json

import pytest
import torch

from studio.demo import world
from studio.demo.checker import Checker, segment
from studio.demo.evaluate import (
    generate,
    load_pipeline,
    pair_cases,
    score_pair,
    score_single,
    single_cases,
)
from studio.paths import DEMO_MODEL

STEPS = 20  # the app default; at 12 steps DPM++ 2M Karras drifts some colours


@pytest.fixture(scope="module")
def pipe():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load_pipeline(DEMO_MODEL)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker()


def _fraction(image, colour: str) -> float:
    return float((segment(image) == world.COLOURS.index(colour)).mean())


def test_shipped_folder_is_a_standard_diffusers_pipeline_without_safety_checker():
    index = json.loads((DEMO_MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    assert index["requires_safety_checker"] is False
    total = sum(p.stat().st_size for p in DEMO_MODEL.rglob("*") if p.is_file())
    assert total < 30 * 2**20
    assert not list(DEMO_MODEL.rglob("*.bin")) and not list(DEMO_MODEL.rglob("*.pt"))


def test_pipeline_loads_offline_and_generates_native_size(pipe):
    assert pipe.unet.config.sample_size * 8 == 128
    image = generate(pipe, ["a red circle on a blue background"], [0], 7.0, STEPS)[0]
    assert image.size == (128, 128)
    wide = pipe("a red circle", height=64, width=96, num_inference_steps=4).images[0]
    assert wide.size == (96, 64)


def test_colour_and_shape_prompts_pass_the_checker(pipe, checker):
    cases = single_cases(8, seed=4242)
    images = generate(pipe, [c.prompt for c in cases], list(range(8)), 7.0, STEPS)
    scores = [score_single(c, checker.read(im)) for c, im in zip(cases, images, strict=True)]
    for attr, need in (("colour", 7), ("background", 7), ("shape", 6), ("position", 7)):
        got = sum(s[attr] for s in scores)
        assert got >= need, (attr, got, [c.prompt for c in cases])


def test_guidance_scale_changes_adherence(pipe, checker):
    # The final demo model follows its captions well even unguided, so CFG 7 gains only a few
    # points (measured here: 393 vs 401 of 438 attribute checks at 20 steps); the test asks
    # for the direction on enough cases to see it, singles and pairs together.
    singles, pairs = single_cases(48, seed=777), pair_cases(30, seed=778)

    def adherence(cfg: float) -> int:
        right = 0
        for cases, scorer in ((singles, score_single), (pairs, score_pair)):
            seeds = list(range(len(cases)))
            images = generate(pipe, [c.prompt for c in cases], seeds, cfg, STEPS)
            for case, image in zip(cases, images, strict=True):
                right += sum(scorer(case, checker.read(image)).values())
        return right

    low, high = adherence(1.0), adherence(7.0)
    assert high > low, (low, high)


def test_negative_prompt_steers_away_from_red(pipe):
    prompts = ["a large circle in the centre, on a white background"] * 6
    seeds = list(range(6))
    plain = generate(pipe, prompts, seeds, 7.0, STEPS)
    steered = generate(pipe, prompts, seeds, 7.0, STEPS, negative=["red"] * 6)
    red_plain = sum(_fraction(im, "red") for im in plain)
    red_steered = sum(_fraction(im, "red") for im in steered)
    assert red_steered < 0.5 * red_plain, (red_plain, red_steered)


def test_vae_round_trip_keeps_colours_and_positions():
    from studio.demo.evaluate import vae_ceiling

    table = vae_ceiling(DEMO_MODEL, 10)
    row = next(line for line in table.splitlines() if line.startswith("| no UNet"))
    colour, _shape, _size, position, background, _count = row.strip("| ").split(" | ")[1:]
    assert (colour, position, background) == ("100%", "100%", "100%"), table
