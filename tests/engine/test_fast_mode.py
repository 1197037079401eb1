"""Fast mode: an LCM-LoRA with the LCM sampler at 4-8 steps and CFG 1-2, and back; hints for
Turbo/Lightning models."""

from __future__ import annotations

import pytest

from studio.engine.addons.fast_mode import (
    fast_mode_settings,
    in_fast_mode,
    normal_mode_settings,
    sampling_hints,
)
from studio.engine.addons.lora import inspect_lora
from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest, ScheduleOptions
from tests.engine import addon_files


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, cache):
    folder = tmp_path_factory.mktemp("loras")
    cache.load("demo")
    pipe = cache.pipeline(GenerationRequest(model="demo"))
    weights = addon_files.kohya_lora(pipe, seed=3, scale=0.05)
    addon_files.save(weights, folder / "lcm-lora-demo.safetensors")
    addon_files.save(weights, folder / "speedy.safetensors", {"ss_output_name": "LCM-LoRA demo"})
    addon_files.save(weights, folder / "style.safetensors")
    return folder


@pytest.fixture()
def normal(lora_dir) -> GenerationRequest:
    return GenerationRequest(
        model="demo",
        prompt="a red circle <lora:style:0.5>",
        sampler="DPM++ 2M",
        schedule=ScheduleOptions(karras=True),
        steps=20,
        cfg_scale=7.0,
        seed=1,
        lora_dirs=(str(lora_dir),),
    )


def test_fast_mode_runs_the_demo_model_at_4_lcm_steps_and_returns(cache, normal):
    fast = fast_mode_settings(normal, "lcm-lora-demo")
    assert (fast.sampler, fast.steps, fast.cfg_scale) == ("LCM", 4, 1.5)
    assert fast.prompt == "a red circle <lora:style:0.5> <lora:lcm-lora-demo:1>"
    assert in_fast_mode(fast) and not in_fast_mode(normal)

    updates = []
    result = generate(fast, cache, on_step=updates.append)
    assert len(result.images) == 1
    assert [u.step for u in updates] == [1, 2, 3, 4]
    assert [round(u.timestep) for u in updates] == [999, 759, 499, 259]  # LCM's 4-step schedule

    assert normal_mode_settings(fast, before=normal) == normal


def test_settings_already_in_the_fast_range_are_kept(normal):
    fast = fast_mode_settings(normal.with_(steps=6, cfg_scale=1.0), "lcm-lora-demo")
    assert (fast.steps, fast.cfg_scale) == (6, 1.0)
    again = fast_mode_settings(fast, "lcm-lora-demo")
    assert again.prompt.count("lcm-lora-demo") == 1


def test_lcm_loras_are_recognised_by_name_or_metadata(lora_dir):
    assert inspect_lora(lora_dir / "lcm-lora-demo.safetensors").lcm
    assert inspect_lora(lora_dir / "speedy.safetensors").lcm
    assert not inspect_lora(lora_dir / "style.safetensors").lcm


def test_turbo_and_lightning_models_get_hints(normal):
    hints = {h.setting: h.value for h in sampling_hints(normal, "sdxl-turbo")}
    assert hints == {"timestep_spacing": "trailing", "cfg_scale": 1.0, "steps": 4}
    ready = normal.with_(
        steps=4, cfg_scale=1.0, schedule=ScheduleOptions(timestep_spacing="trailing")
    )
    assert sampling_hints(ready, "juggernaut-lightning-4step") == []
    assert sampling_hints(normal, "dreamshaper_8") == []
