from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.demo import evaluate_controlnet as ev
from studio.demo.train_controlnet import CONDITIONING_CHANNELS, KINDS
from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache

STEPS = 10
N_CASES = 3


@pytest.fixture(scope="module")
def cache():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    cache = PipelineCache()
    cache.load("demo")
    yield cache
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_controlnet_loads_through_the_pipeline_cache(cache, kind):
    model = cache.controlnet(f"demo-{kind}")
    assert model.config.cross_attention_dim == cache.info.cross_attention_dim
    assert tuple(model.config.conditioning_embedding_out_channels) == CONDITIONING_CHANNELS
    assert next(model.parameters()).dtype == torch.float32  # shipped fp16, run fp32 on CPU
    assert cache.controlnet(f"demo-{kind}") is model  # loaded once


# metric key, and how much better (in the metric's own units) the controlled images must be
MARGINS = {"edge_f1": 0.1, "region_iou": 0.1, "keypoint_px": 2.0, "figure_iou": 0.1}


@pytest.mark.parametrize("kind", KINDS)
def test_controlnet_follows_its_map_better_than_no_control(cache, kind):
    led_scores, free_scores = [], []
    for case in ev.cases(kind, N_CASES):
        led, free = ev.generate_pair(cache, case, "demo", f"demo-{kind}", steps=STEPS)
        led_scores.append(ev.score(kind, case, led))
        free_scores.append(ev.score(kind, case, free))
    for key, _, higher in ev.METRICS[kind]:
        led_mean = np.mean([s[key] for s in led_scores])
        free_mean = np.mean([s[key] for s in free_scores])
        gain = led_mean - free_mean if higher else free_mean - led_mean
        assert gain > MARGINS[key], f"{kind} {key}: {led_mean:.3f} with vs {free_mean:.3f} without"


def test_canny_and_pose_together_run_on_the_demo_model(cache):
    case = ev.cases("pose", 1)[0]
    canny = ev.cases("canny", 1, base=case.scene.seed)[0]  # the same scene's edges
    assert canny.scene.seed == case.scene.seed
    units = (
        ev.control_spec("demo-canny", canny),
        ev.control_spec("demo-pose", case),
    )
    result = generate(ev.request_for(case, "demo", units, STEPS), cache)
    free = generate(ev.request_for(case, "demo", (), STEPS), cache)
    assert result.images[0].size == (ev.SIZE, ev.SIZE)
    assert len(result.control_maps) == 2
    both = ev.pose_scores(case.scene, result.images[0])
    none = ev.pose_scores(case.scene, free.images[0])
    assert both["figure_iou"] > none["figure_iou"]
