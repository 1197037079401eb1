"""Property-based fuzzing of settings loading (issue 11): any file loads without raising, every
value loaded is one its declaration allows, and the window's state takes all of them."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.settings import LoadOutcome, Settings, load
from studio.ui.persistence import persistent_properties, restore
from studio.ui.state import StudioState  # importing it hands studio.settings its check

PERSISTED = persistent_properties(StudioState)
FIELDS = [f.name for f in fields(Settings)]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    # the autouse fixtures (temporary cache folder, Qt app) are not used per example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

edge_ints = st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**40, 2**63 - 1, 2**63, -(2**63), 10**30])
edge_texts = st.sampled_from(
    ["", "x0", "xt", "exe", "png", "JPG", "Euler", "txt2img", "inpaint", "\ud800", "a\x00b"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | edge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | edge_texts
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
last_dicts = st.dictionaries(
    st.sampled_from(sorted(PERSISTED)) | st.text(max_size=8), json_values, max_size=8
)
# any keys, old (v1/v2) ones included; or a current file's keys with a `last` worth checking
top_dicts = st.dictionaries(
    st.sampled_from(FIELDS)
    | st.sampled_from(["preview_every", "preview_steps", "prompt", "steps"]),
    json_values | st.integers(min_value=1, max_value=3),
    max_size=8,
) | st.builds(
    lambda top, last: {**top, "last": last},
    st.dictionaries(st.sampled_from([f for f in FIELDS if f != "schema_version"]), json_values),
    last_dicts,
)


@contextmanager
def loaded(raw: bytes) -> Iterator[tuple[LoadOutcome, Path]]:
    """Load `raw` as a settings file in a folder of its own, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fuzz-settings-") as folder:
        path = Path(folder) / "settings.json"
        path.write_bytes(raw)
        yield load(path), path


def assert_within_declarations(outcome: LoadOutcome) -> None:
    s = outcome.settings
    assert isinstance(s, Settings)
    assert isinstance(s.output_dir, str) and "\x00" not in s.output_dir
    assert s.image_format in ("png", "jpg", "jpeg", "webp")
    assert isinstance(s.allow_downloads, bool)
    for paths in (s.known_models, s.model_folders):
        assert isinstance(paths, list) and all(isinstance(p, str) for p in paths)
    assert isinstance(s.window_geometry, str) and isinstance(s.window_state, str)
    for name, value in s.last.items():
        prop = PERSISTED[name]  # only names the state declares
        assert prop.checked(value) == value or (isinstance(value, float) and math.isnan(value))
        if prop.limits is not None:
            assert prop.limits[0] <= value <= prop.limits[1]
        if prop.choices is not None:
            assert value in prop.choices


def assert_the_state_takes_them(outcome: LoadOutcome) -> None:
    state = StudioState()
    assert restore(state, outcome.settings.last) == []
    for name, prop in PERSISTED.items():
        value = getattr(state, name)
        assert isinstance(value, prop.kind) and not (isinstance(value, bool) and prop.kind is int)
        if prop.limits is not None:
            assert prop.limits[0] <= value <= prop.limits[1]


def assert_nothing_lost(outcome: LoadOutcome, path: Path, raw: bytes) -> None:
    if outcome.error:
        assert outcome.corrupt_copy is not None and outcome.corrupt_copy.read_bytes() == raw
        assert outcome.message  # what the banner shows
    else:
        assert outcome.corrupt_copy is None and path.read_bytes() == raw


@FUZZ
@given(data=top_dicts)
def test_any_json_object_loads_within_the_declarations(qapp: Any, data: dict[str, Any]) -> None:
    raw = json.dumps(data).encode(
        "utf-8"
    )  # Infinity, NaN and lone surrogates as Python writes them
    with loaded(raw) as (outcome, path):
        assert_within_declarations(outcome)
        assert_the_state_takes_them(outcome)
        assert_nothing_lost(outcome, path, raw)


@FUZZ
@given(last=last_dicts)
def test_any_last_values_load_within_the_declarations(qapp: Any, last: dict[str, Any]) -> None:
    data = Settings().to_dict()
    data["last"] = last
    raw = json.dumps(data).encode("utf-8")
    with loaded(raw) as (outcome, path):
        assert_within_declarations(outcome)
        assert_the_state_takes_them(outcome)
        assert_nothing_lost(outcome, path, raw)
        if outcome.error:  # a value was refused: the file now holds the good ones, and says nothing
            again = load(path)
            assert again.error == "" and again.settings == outcome.settings


@FUZZ
@given(value=json_values)
def test_any_json_value_at_the_top_level_loads(qapp: Any, value: Any) -> None:
    raw = json.dumps(value).encode("utf-8")
    with loaded(raw) as (outcome, path):
        assert_within_declarations(outcome)
        assert_nothing_lost(outcome, path, raw)
    if not isinstance(value, dict):
        assert outcome.settings == Settings() and "JSON object" in outcome.error


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_any_bytes_load(qapp: Any, raw: bytes) -> None:
    with loaded(raw) as (outcome, path):
        assert_within_declarations(outcome)
        assert_nothing_lost(outcome, path, raw)
