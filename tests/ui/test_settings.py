"""Settings persistence without Qt: round trip, migration, and damaged files."""

from __future__ import annotations

import json
from pathlib import Path

from studio.settings import SCHEMA_VERSION, Settings, load, save, settings_path


def test_settings_round_trip(tmp_path: Path) -> None:
    path = settings_path(tmp_path / "config")
    settings = Settings(output_dir=str(tmp_path / "out"), image_format="webp")
    settings.known_models = ["/models/a", "/models/b.safetensors"]
    settings.last = {"prompt": "a cat", "steps": 12, "cfg_scale": 4.5, "seed": 2**40}
    save(settings, path)

    outcome = load(path)
    assert outcome.corrupt_copy is None and outcome.error == ""
    assert outcome.settings == settings
    assert outcome.settings.output_path() == tmp_path / "out"
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp file left


def test_a_missing_file_gives_defaults(tmp_path: Path) -> None:
    outcome = load(tmp_path / "settings.json")
    assert outcome.settings == Settings() and outcome.corrupt_copy is None


def test_a_corrupt_file_gives_defaults_and_is_kept_aside(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    path.write_bytes(b"\x00\xff{not json")
    outcome = load(path)
    assert outcome.settings == Settings()
    assert outcome.corrupt_copy is not None and outcome.corrupt_copy.name.startswith(
        "settings.json.corrupt-"
    )
    assert outcome.corrupt_copy.read_bytes() == b"\x00\xff{not json"
    assert not path.exists()
    assert outcome.error


def test_a_json_list_or_a_future_schema_counts_as_corrupt(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    path.write_text("[1, 2]")
    assert load(path).corrupt_copy is not None
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    outcome = load(path)
    assert outcome.corrupt_copy is not None and "schema_version" in outcome.error


def test_wrong_types_fall_back_one_key_at_a_time(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    data = Settings().to_dict()
    data["image_format"] = 3  # wrong type: default
    data["known_models"] = ["/ok", 3]  # a bad element: default
    data["last"] = {"steps": 33, "prompt": [1], "nested": {"a": 1}}  # no containers in `last`
    data["unknown_key"] = 1
    path.write_text(json.dumps(data))
    s = load(path).settings
    assert s.image_format == Settings().image_format
    assert s.known_models == []
    # the state checks each value's type when it takes them (tests/ui/test_state.py)
    assert s.last == {"steps": 33}


def test_version_1_files_are_migrated(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "prompt": "old prompt",
                "steps": 9,
                "preview_steps": 4,
                "output_dir": "/x",
            }
        )
    )
    outcome = load(path)
    assert outcome.corrupt_copy is None
    s = outcome.settings
    assert s.last == {"prompt": "old prompt", "steps": 9, "preview_every": 4}
    assert s.output_dir == "/x"
    save(s, path)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_version_2_preview_choices_move_into_the_last_values(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    v2 = {"schema_version": 2, "preview_every": 3, "preview_source": "xt", "last": {"steps": 8}}
    path.write_text(json.dumps(v2))
    s = load(path).settings
    assert s.last == {"steps": 8, "preview_every": 3, "preview_source": "xt"}


def test_refused_values_fall_back_and_the_file_is_rewritten_once(tmp_path: Path) -> None:
    import studio.ui.state  # noqa: F401  (hands studio.settings the state's check)

    path = settings_path(tmp_path)
    data = Settings(image_format="webp").to_dict()
    data["image_format"] = "exe"
    data["last"] = {"steps": 2**31, "prompt": "kept"}
    original = json.dumps(data)
    path.write_text(original)
    outcome = load(path)
    assert outcome.partial and outcome.settings.image_format == "png"
    assert outcome.settings.last == {"prompt": "kept"}
    assert "image_format 'exe'" in outcome.error and "steps" in outcome.error
    assert outcome.message.startswith("Some saved settings were unusable and were reset")
    assert str(outcome.corrupt_copy) in outcome.message
    assert outcome.corrupt_copy is not None and outcome.corrupt_copy.read_text() == original
    again = load(path)  # the good values were written back: said once
    assert again.error == "" and again.settings == outcome.settings


def test_a_second_bad_file_in_the_same_second_keeps_the_first_copy(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    copies = []
    for text in ("first {", "second {", "third {"):
        path.write_text(text)
        copies.append(load(path).corrupt_copy)
    assert [c.read_text() for c in copies] == ["first {", "second {", "third {"]


def test_odd_schema_versions_count_as_corrupt(tmp_path: Path) -> None:
    path = settings_path(tmp_path)
    for version in (True, 0, -3, "3", 2.0):
        path.write_text(json.dumps({"schema_version": version}))
        outcome = load(path)
        assert outcome.corrupt_copy is not None and "schema_version" in outcome.error
