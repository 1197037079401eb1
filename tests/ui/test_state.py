"""StudioState: observable properties, two-way widget binding, requests out and in."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtWidgets import QComboBox, QLineEdit, QPlainTextEdit, QSpinBox

from studio.engine.request import GenerationRequest, ScheduleOptions
from studio.settings import LastValues
from studio.ui.state import MAX_SEED, StudioState, bind


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
    state.seed = 2**40  # beyond a C int: signals carry it intact
    assert state.seed == 2**40


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


def test_requests_one_per_batch_with_consecutive_seed_blocks(qtbot) -> None:
    state = StudioState()
    state.prompt, state.seed, state.batch_count, state.batch_size = "p", 10, 3, 2
    state.schedule_type = "Karras"
    requests = state.requests()
    assert [r.seed for r in requests] == [10, 12, 14]
    assert all(r.batch_size == 2 and r.prompt == "p" for r in requests)
    assert requests[0].schedule == ScheduleOptions(karras=True)

    state.seed, state.batch_count = -1, 2
    first, second = state.requests()
    assert 0 <= first.seed <= MAX_SEED and second.seed == (first.seed + 2) % (MAX_SEED + 1)
    assert state.seed == -1  # random stays random for the next Generate


def test_images_go_only_into_the_modes_that_use_them(qtbot) -> None:
    state = StudioState()
    image, mask = Image.new("RGB", (64, 64)), Image.new("L", (64, 64), 255)
    assert state.requests(image, mask)[0].init_image is None  # txt2img
    state.mode = "img2img"
    r = state.requests(image, mask)[0]
    assert r.init_image is image and r.mask is None
    state.mode = "inpaint"
    r = state.requests(image, mask)[0]
    assert r.init_image is image and r.mask is mask


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
    other.load_last(state.to_last())
    assert other.to_last() == state.to_last()
    bad = LastValues()
    bad.steps = "x"  # type: ignore[assignment]  # a damaged value leaves the property as it was
    other.load_last(bad)
    assert other.steps == 5
