from __future__ import annotations

import numpy as np
import pytest

from studio.demo import world
from studio.demo.checker import Checker
from studio.demo.evaluate import pair_cases, score_pair, score_single, single_cases


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker()


def test_checker_reads_ground_truth_single_objects(checker):
    for case in single_cases(30):
        image = world.render(case.layout).image
        scores = score_single(case, checker.read(image))
        assert all(scores.values()), (case.prompt, scores)


def test_checker_reads_ground_truth_pairs(checker):
    for case in pair_cases(20):
        scores = score_pair(case, checker.read(world.render(case.layout).image))
        assert all(scores.values()), (case.prompt, scores)


def test_checker_fails_a_wrong_image(checker):
    case = single_cases(1)[0]
    obj = case.layout.objects[0]
    other_shape = next(s for s in world.SHAPES if s != obj.kind)
    other_colour = next(c for c in world.COLOURS if c not in (obj.colour, case.layout.background))
    wrong = world.single_object_layout(
        other_shape, other_colour, case.layout.background, obj.size, obj.position
    )
    scores = score_single(case, checker.read(world.render(wrong).image))
    assert not scores["colour"] and not scores["shape"] and scores["background"]


def test_checker_survives_noise_and_blur(checker):
    from PIL import Image, ImageFilter

    layout = world.single_object_layout("star", "yellow", "purple", "large", "left")
    image = Image.fromarray(world.render(layout).image).filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image).astype(int) + np.random.default_rng(0).integers(
        -20, 21, (128, 128, 3)
    )
    found = checker.read(np.clip(noisy, 0, 255).astype(np.uint8))
    assert found.background == "purple"
    assert [(o.colour, o.kind, o.position, o.size) for o in found.objects] == [
        ("yellow", "star", "left", "large")
    ]


def test_checker_rejects_non_rgb_input(checker):
    with pytest.raises(ValueError, match="RGB"):
        checker.read(np.zeros((128, 128), dtype=np.uint8))


def test_eval_captions_come_from_unseen_seeds():
    from studio.demo.evaluate import EVAL_SEED
    from studio.demo.train import TRAIN_SEED_BASE

    # Training draws scenes from [TRAIN_SEED_BASE, TRAIN_SEED_BASE + 10**6).
    assert EVAL_SEED >= TRAIN_SEED_BASE + 10**6
    prompts = [c.prompt for c in single_cases(20)]
    assert len(set(prompts)) == 20
