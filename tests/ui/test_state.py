"""StudioState: observable properties, two-way widget binding, requests out and in."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtWidgets import QComboBox, QLineEdit, QPlainTextEdit, QSpinBox

from studio.engine.request import GenerationRequest, ScheduleOptions
from studio.ui.persistence import persisted, restore
from studio.ui.properties import bind
from studio.ui.state import StudioState


def test_properties_emit_only_real_changes_and_check_types(qtbot) -> None:
    state = StudioState()
    seen: list[int] = []
    state.steps_changed.connect(seen.append)
    state.steps = 30
    state.steps = 30
    state.steps = 31
    assert seen == [30, 31]
    state.cfg_scale = 5  # an int is a fine float
    assert state.cfg_scale == 5.0 and isinstance(state.cfg_scale, float)
    with pytest.raises(TypeError):
        state.steps = "many"
    seeds: list[int] = []
    state.seed_changed.connect(seeds.append)
    state.seed = 5_000_000_000  # beyond a C int: the signal carries it intact
    state.seed = 2**63 - 1
    assert seeds == [5_000_000_000, 2**63 - 1]
    with pytest.raises(ValueError):
        state.seed = 2**63  # a signal could not carry it, nor torch's generator take it
    with pytest.raises(TypeError):
        state.steps = True  # a bool is not a step count


def test_bound_widgets_follow_the_state_and_edit_it(qtbot) -> None:
    state = StudioState()
    spin, combo, text, seed = QSpinBox(maximum=150), QComboBox(), QPlainTextEdit(), QLineEdit()
    combo.addItems(["Euler", "DDIM", "DPM++ 2M Karras"])
    bind(state, "steps", spin)
    bind(state, "sampler", combo)
    bind(state, "prompt", text)
    bind(state, "seed", seed, to_widget=str, from_widget=int)
    assert (spin.value(), combo.currentText(), seed.text()) == (20, "DPM++ 2M Karras", "-1")

    state.steps, state.sampler, state.prompt, state.seed = 42, "DDIM", "hello", 2**35
    assert (spin.value(), combo.currentText(), text.toPlainText(), seed.text()) == (
        42,
        "DDIM",
        "hello",
        str(2**35),
    )

    spin.setValue(7)
    combo.setCurrentText("Euler")
    text.setPlainText("typed")
    seed.setText("123")
    assert (state.steps, state.sampler, state.prompt, state.seed) == (7, "Euler", "typed", 123)
    seed.setText("-")  # half typed: the state keeps its last good value
    assert state.seed == 123


def test_request_carries_the_settings_and_images_only_where_the_mode_uses_them(qtbot) -> None:
    state = StudioState()
    state.prompt, state.batch_size, state.schedule_type = "p", 2, "Karras"
    state.mask_blur, state.inpaint_only_masked = 9, True
    image, mask = Image.new("RGB", (64, 64)), Image.new("L", (64, 64), 255)
    r = state.request(5_000_000_000, image, mask)
    assert (r.seed, r.prompt, r.batch_size) == (5_000_000_000, "p", 2)
    assert r.schedule == ScheduleOptions(karras=True)
    assert r.init_image is None and r.mask is None  # txt2img
    state.mode = "img2img"
    r = state.request(1, image, mask)
    assert r.init_image is image and r.mask is None
    state.mode = "inpaint"
    r = state.request(1, image, mask)
    assert r.init_image is image and r.mask is mask
    assert (r.mask_blur, r.inpaint_only_masked) == (9, True)


def test_apply_request_and_last_values_round_trip(qtbot) -> None:
    state = StudioState()
    request = GenerationRequest(
        prompt="a",
        negative_prompt="b",
        sampler="DDIM",
        steps=5,
        cfg_scale=2.5,
        seed=77,
        width=320,
        height=256,
    )
    applied = state.apply_request(request)
    assert set(applied) >= {
        "prompt",
        "negative_prompt",
        "sampler",
        "steps",
        "cfg_scale",
        "seed",
        "width",
        "height",
    }
    assert (state.prompt, state.sampler, state.steps, state.seed, state.width) == (
        "a",
        "DDIM",
        5,
        77,
        320,
    )

    assert "sampler" not in state.apply_request(request.with_(sampler="Made Up"))
    assert state.sampler == "DDIM"

    other = StudioState()
    saved = persisted(state)
    assert "init_image" not in saved and "last_seed" not in saved  # not remembered
    assert restore(other, saved) == []
    assert persisted(other) == saved
    # a damaged value leaves its property as it was, and only that one
    assert restore(other, {"steps": "x", "seed": 2**40}) == ["steps"]
    assert other.steps == 5 and other.seed == 2**40


def test_properties_refuse_values_no_widget_or_job_could_take(qtbot) -> None:
    from studio.ui.state import MAX_PROMPT_CHARS

    state = StudioState()
    refused = {
        "steps": [2**31, 0, 1001],
        "width": [2**40, 7, -8],
        "preview_every": [2**40, -1],
        "cfg_scale": [float("inf"), float("nan"), -0.5, 2**1100],  # 2**1100 is beyond any float
        "strength": [float("nan"), 1.5],
        "sampler": ["Bogus"],
        "mode": ["exe"],
        "preview_source": ["bogus"],
        "prompt": ["x" * (MAX_PROMPT_CHARS + 1), "\ud800"],  # a lone surrogate is not text
    }
    for name, values in refused.items():
        before = getattr(state, name)
        for value in values:
            with pytest.raises(ValueError, match=name):
                setattr(state, name, value)
        assert getattr(state, name) == before
    with pytest.raises(TypeError):
        state.steps = None  # only a property that starts empty may be emptied
    state.init_image = None
    state.prompt = "x" * MAX_PROMPT_CHARS  # the limit itself is fine
    assert len(state.prompt) == MAX_PROMPT_CHARS


def test_apply_request_skips_values_the_state_refuses(qtbot) -> None:
    state = StudioState()
    applied = state.apply_request(GenerationRequest(prompt="a" * 30_000, steps=12))
    assert "prompt" not in applied and "steps" in applied
    assert (state.prompt, state.steps) == ("", 12)


def test_check_persisted_names_each_refused_value(qtbot) -> None:
    from studio.ui.persistence import check_persisted

    kept, problems = check_persisted(
        StudioState, {"steps": 2**31, "cfg_scale": 3, "sampler": "Euler", "gone": 1}
    )
    assert kept == {"cfg_scale": 3.0, "sampler": "Euler"}  # an old name is dropped silently
    assert problems == ["steps must be between 1 and 1000, not 2147483648"]
    assert check_persisted(StudioState, [1]) == (
        {},
        ["the saved window state is list, not an object"],
    )


def test_rng_ensd_and_clip_skip_travel_between_state_widgets_and_requests(qtbot, session):
    from studio.ui.params_panel import ParamsPanel

    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    panel.rng.setCurrentText("NV")
    panel.ensd.setValue(31337)
    panel.clip_skip.setValue(2)
    request = session.state.request(seed=1)
    assert (request.rng, request.ensd, request.clip_skip) == ("NV", 31337, 2)
    applied = session.state.apply_request(request.with_(rng="GPU", ensd=0, clip_skip=1))
    assert {"rng", "ensd", "clip_skip"} <= set(applied)
    assert (panel.rng.currentText(), panel.ensd.value(), panel.clip_skip.value()) == ("GPU", 0, 1)


def test_restore_names_values_the_image_had_but_we_could_not_use(session):
    from pathlib import Path

    from studio.engine.metadata import ReadResult
    from studio.engine.request import GenerationRequest
    from studio.ui.restore import apply_read_result

    found = ReadResult(
        request=GenerationRequest(prompt="a red circle", steps=12),
        source="comfyui",
        unmapped={"sampler_name": "dpm_fast (normal)"},
        substituted=["sampler"],
    )
    outcome = apply_read_result(Path("x.png"), found, session.state, session.controls, ("demo",))
    assert outcome.ok and session.state.steps == 12
    assert "sampler (kept as DPM++ 2M Karras)" in outcome.text
    assert "sampler_name (dpm_fast (normal))" in outcome.text
    assert outcome.text.count("sampler (") == 1


def test_restoring_an_image_names_the_add_ons_the_user_lacks(qtbot, session, tmp_path):
    from PIL import Image, PngImagePlugin

    text = (
        "<lora:detail_tweaker:0.8> a red circle\n"
        "Steps: 12, Sampler: Euler a, CFG scale: 6, Seed: 3, Size: 128x128, "
        'Lora hashes: "detail_tweaker: 0123456789ab"'
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (128, 128)).save(path, pnginfo=info)
    session.settings.model_folders = [str(tmp_path / "models")]
    with qtbot.waitSignal(session.restored, timeout=30_000) as restored:
        session.restore_from_file(path)
    outcome = restored.args[0]
    assert outcome.ok and session.state.steps == 12
    assert "LoRA 'detail_tweaker' (0123456789ab) is not in your LoRA folders" in outcome.text
    # and jobs look for add-ons in the user's model folders
    request = session.state.request(1, addon_folders=tuple(session.settings.model_folders))
    assert request.lora_dirs == (str(tmp_path / "models"),)
