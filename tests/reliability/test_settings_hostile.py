"""Hostile settings files (issue 11, defect 4): the window opens with safe values, says what was
wrong once, and the original file is kept aside byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.settings import MAX_FILE_BYTES, Settings, save
from tests.ui.conftest import isolated_home, modest_torch_threads, no_qthread_left  # noqa: F401

DEFAULTS = {"steps": 20, "width": 128, "height": 128, "cfg_scale": 7.0, "preview_every": 1}


def settings_text(**last: object) -> str:
    data = Settings().to_dict()
    data["last"] = last
    return json.dumps(data)


def write(config: Path, content: str | bytes) -> bytes:
    config.mkdir(parents=True, exist_ok=True)
    raw = content.encode("utf-8") if isinstance(content, str) else content
    (config / "settings.json").write_bytes(raw)
    return raw


def open_session(tmp_path: Path):  # noqa: ANN201
    from studio.ui.session import Session

    return Session(config_dir=tmp_path / "config", output_dir=tmp_path / "out", device="cpu")


def open_window(qtbot, tmp_path: Path):  # noqa: ANN001, ANN201
    from studio.ui.main_window import MainWindow

    window = MainWindow(
        config_dir=tmp_path / "config", output_dir=tmp_path / "out", start_worker=False
    )
    qtbot.addWidget(window)
    window.show()
    return window


def set_aside(config: Path) -> list[Path]:
    return sorted(config.glob("settings.json.corrupt-*"))


def assert_kept_aside(config: Path, original: bytes, message: str) -> None:
    copies = set_aside(config)
    assert len(copies) == 1, copies
    assert copies[0].read_bytes() == original  # nothing the user wrote is lost
    assert copies[0].name in message  # and the message says where it is


def test_huge_integers_fall_back_per_value_and_the_window_opens(qtbot, tmp_path: Path) -> None:
    config = tmp_path / "config"
    text = settings_text(
        steps=2**31, width=2**40, preview_every=2**40, batch_size=10**30, prompt="kept", seed=7
    )
    original = write(config, text)
    window = open_window(qtbot, tmp_path)  # used to raise OverflowError in a 32-bit spin box
    state, message = window.session.state, window.session.error
    assert (state.steps, state.width, state.preview_every, state.batch_size) == (20, 128, 1, 1)
    assert (window.params.steps.value(), window.params.width_box.value()) == (20, 128)
    assert (state.prompt, state.seed) == ("kept", 7)  # the good values survive
    for name in ("steps", "width", "preview_every", "batch_size"):
        assert name in message
    assert "2147483648" in message and "a 100-bit number" in message
    assert window.banner.text() == message
    assert_kept_aside(config, original, message)
    window.close()
    # the file now holds the good values only: the next start is clean and says nothing
    again = open_session(tmp_path)
    assert again.error == "" and again.state.prompt == "kept" and again.state.steps == 20
    assert len(set_aside(config)) == 1
    again.shutdown()


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('"cfg_scale": Infinity', "cfg_scale"),
        ('"cfg_scale": -Infinity', "cfg_scale"),
        ('"cfg_scale": NaN', "cfg_scale"),
        ('"strength": NaN', "strength"),
        ('"cfg_scale": 1e400', "cfg_scale"),  # Python's json reads it as inf
    ],
)
def test_infinity_and_nan_fall_back(qtbot, tmp_path: Path, raw: str, name: str) -> None:
    config = tmp_path / "config"
    text = settings_text(prompt="kept").replace('"prompt": "kept"', f'"prompt": "kept", {raw}')
    original = write(config, text)
    window = open_window(qtbot, tmp_path)
    state = window.session.state
    assert (state.cfg_scale, state.strength, state.prompt) == (7.0, 0.75, "kept")
    assert window.params.cfg.value() == 7.0
    assert name in window.session.error
    assert_kept_aside(config, original, window.session.error)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"last": {"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"known_models": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
    ],
    ids=["list", "inside-last", "inside-known-models"],
)
def test_deeply_nested_json_is_set_aside(qtbot, tmp_path: Path, text: str) -> None:
    config = tmp_path / "config"
    original = write(config, text)
    session = open_session(tmp_path)  # used to raise RecursionError
    assert session.settings == Settings(output_dir=str(tmp_path / "out"))
    assert session.state.steps == 20 and session.settings.known_models == []
    assert "nested too deeply" in session.error
    assert_kept_aside(config, original, session.error)
    assert not (config / "settings.json").exists()
    session.shutdown()


def test_unknown_choices_fall_back_and_jobs_can_run(qtbot, tmp_path: Path) -> None:
    from studio.engine.checks import check_request

    config = tmp_path / "config"
    data = json.loads(
        settings_text(
            preview_source="bogus", sampler="Bogus++ 9M", mode="hack", schedule_type="Quantum"
        )
    )
    data["image_format"] = "exe"
    data["output_dir"] = "/tmp/a\u0000b"  # a NUL byte: no file system takes it
    data["known_models"] = ["/ok", 3]
    original = write(config, json.dumps(data))
    window = open_window(qtbot, tmp_path)
    session = window.session
    state = session.state
    assert session.settings.image_format == "png"
    assert session.settings.known_models == []
    assert session.output_dir() == tmp_path / "out"  # --output-dir still wins
    assert (state.preview_source, state.sampler, state.mode, state.schedule_type) == (
        "x0",
        "DPM++ 2M Karras",
        "txt2img",
        "Automatic",
    )
    # used to be kept, so that every job failed: now a request is valid
    check_request(state.request(seed=1))
    message = session.error
    assert "image_format 'exe'" in message and "sampler 'Bogus++ 9M'" in message
    assert "and 2 more" in message  # mode and preview_source: five are told in full
    assert_kept_aside(config, original, message)


def test_a_one_megabyte_prompt_is_refused_with_a_message(qtbot, tmp_path: Path) -> None:
    from studio.ui.state import MAX_PROMPT_CHARS

    config = tmp_path / "config"
    original = write(config, settings_text(prompt="x" * 2**20, negative_prompt="ok", steps=9))
    window = open_window(qtbot, tmp_path)  # used to take 56 s to lay the text out
    state = window.session.state
    assert state.prompt == "" and window.prompts.prompt.edit.toPlainText() == ""
    assert (state.negative_prompt, state.steps) == ("ok", 9)
    assert f"prompt is 1,048,576 characters long, more than the {MAX_PROMPT_CHARS:,}" in (
        window.session.error
    )
    assert_kept_aside(config, original, window.session.error)


def test_a_pasted_prompt_beyond_the_limit_is_cut_with_a_note(qtbot, tmp_path: Path) -> None:
    from studio.ui.state import MAX_PROMPT_CHARS

    window = open_window(qtbot, tmp_path)
    edit = window.prompts.prompt
    edit.edit.setPlainText("🙂" + "x" * (MAX_PROMPT_CHARS + 500))  # an emoji: 2 units in Qt
    state = window.session.state
    assert len(state.prompt) == MAX_PROMPT_CHARS and state.prompt.startswith("🙂x")
    assert edit.edit.toPlainText() == state.prompt  # the box shows what Generate will use
    assert f"Cut to {MAX_PROMPT_CHARS:,} characters" in edit.counter.text()
    edit.edit.setPlainText("a cat")
    edit.update_count()
    assert "Cut" not in edit.counter.text() and state.prompt == "a cat"


@pytest.mark.parametrize("text", ["[1, 2]", "42", "null", '"settings"', "", "   "])
def test_json_that_is_not_an_object_is_set_aside(qtbot, tmp_path: Path, text: str) -> None:
    config = tmp_path / "config"
    original = write(config, text)
    session = open_session(tmp_path)
    assert session.settings == Settings(output_dir=str(tmp_path / "out"))
    assert session.error.startswith("The settings file could not be read")
    assert_kept_aside(config, original, session.error)
    session.shutdown()


def test_binary_garbage_is_set_aside(qtbot, tmp_path: Path) -> None:
    config = tmp_path / "config"
    original = write(config, b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 1000)
    session = open_session(tmp_path)
    assert session.state.steps == 20
    assert "UnicodeDecodeError" in session.error
    assert_kept_aside(config, original, session.error)
    session.shutdown()


def test_a_settings_path_that_is_a_folder_is_set_aside(qtbot, tmp_path: Path) -> None:
    config = tmp_path / "config"
    folder = config / "settings.json"
    folder.mkdir(parents=True)
    (folder / "inside.txt").write_text("mine")
    window = open_window(qtbot, tmp_path)
    session = window.session
    assert session.state.steps == 20
    assert "IsADirectoryError" in session.error
    copies = set_aside(config)
    assert len(copies) == 1 and (copies[0] / "inside.txt").read_text() == "mine"
    window.close()  # and the next save writes a real file
    assert json.loads(folder.read_text())["last"]["steps"] == 20


def test_a_huge_file_is_not_read(qtbot, tmp_path: Path) -> None:
    config = tmp_path / "config"
    original = write(config, settings_text() + " " * MAX_FILE_BYTES)
    session = open_session(tmp_path)
    assert session.state.steps == 20 and "far beyond settings" in session.error
    assert_kept_aside(config, original, session.error)
    session.shutdown()


def test_good_settings_are_not_touched(qtbot, tmp_path: Path) -> None:
    config = tmp_path / "config"
    settings = Settings(image_format="webp")
    settings.last = {"steps": 1000, "width": 4096, "cfg_scale": 50.0, "sampler": "Euler"}
    save(settings, config / "settings.json")
    original = (config / "settings.json").read_bytes()
    window = open_window(qtbot, tmp_path)
    state = window.session.state
    assert window.session.error == "" and set_aside(config) == []
    assert (state.steps, state.width, state.cfg_scale) == (1000, 4096, 50.0)
    # the widgets can show every value the state may hold
    assert window.params.steps.value() == 1000 and window.params.cfg.value() == 50.0
    assert (config / "settings.json").read_bytes() == original
