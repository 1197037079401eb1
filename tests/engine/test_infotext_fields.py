"""A1111's Clip skip, RNG, ENSD and Schedule type fields, checked with A1111's own semantics:
each key written only away from A1111's default (absent: Clip skip 1, RNG GPU, ENSD 0,
Schedule type Automatic = the sampler's own default), read back by an independent parser."""

from __future__ import annotations

import json
import re

import pytest

from studio.engine import metadata as md
from studio.engine.request import GenerationRequest, ScheduleOptions

# A1111's infotext_utils.re_param, applied as A1111 applies it to the last line
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_settings(text: str) -> dict[str, str]:
    last = text.strip().split("\n")[-1]
    pairs = A1111_PARAM.findall(last)
    assert len(pairs) >= 3, "A1111 would not see a settings line"
    return {k: json.loads(v) if v[:1] == '"' == v[-1:] else v for k, v in pairs}


def write(request: GenerationRequest) -> str:
    return md.a1111_parameters(request, model_name=request.model, model_hash="h")


# ---- Clip skip, RNG, ENSD ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"clip_skip": 1}, {}),
        ({"clip_skip": 2}, {"Clip skip": "2"}),
        ({"rng": "GPU"}, {}),  # A1111's default: never written
        ({"rng": "CPU"}, {"RNG": "CPU"}),  # our default, not A1111's: always written
        ({"rng": "NV"}, {"RNG": "NV"}),
        ({"ensd": 0}, {}),
        ({"ensd": 31337}, {"ENSD": "31337"}),
    ],
)
def test_noise_and_clip_fields_are_written_only_away_from_a1111_defaults(fields, expected):
    base = {"rng": "GPU"}  # so each case shows only its own field
    settings = a1111_settings(write(GenerationRequest(prompt="p", **{**base, **fields})))
    written = {k: settings[k] for k in ("Clip skip", "RNG", "ENSD") if k in settings}
    assert written == expected


@pytest.mark.parametrize("rng", ["CPU", "GPU", "NV"])
@pytest.mark.parametrize(("clip_skip", "ensd"), [(1, 0), (2, 31337), (3, 1)])
def test_noise_and_clip_fields_round_trip(rng, clip_skip, ensd):
    request = GenerationRequest(prompt="p", rng=rng, clip_skip=clip_skip, ensd=ensd)
    text = write(request)
    assert md.read_a1111_text(text).request == request
    settings = a1111_settings(text)
    # what A1111 itself would take from the text, its defaults filling the gaps
    assert settings.get("RNG", "GPU") == rng
    assert int(settings.get("Clip skip", "1")) == clip_skip
    assert int(settings.get("ENSD", "0")) == ensd


def test_a1111_text_without_the_keys_means_a1111_defaults():
    r = md.read_a1111_text("p\nSteps: 5, Sampler: Euler, Seed: 1, Size: 64x64").request
    assert (r.rng, r.clip_skip, r.ensd) == ("GPU", 1, 0)


def test_a1111_text_with_the_keys_is_read():
    text = "p\nSteps: 5, Sampler: Euler a, Seed: 1, Clip skip: 2, RNG: NV, ENSD: 31337"
    result = md.read_a1111_text(text)
    assert (result.request.rng, result.request.clip_skip, result.request.ensd) == ("NV", 2, 31337)
    assert not {"Clip skip", "RNG", "ENSD"} & set(result.unmapped)


def test_unknown_rng_and_bad_clip_skip_are_reported_not_guessed():
    text = "p\nSteps: 5, Sampler: Euler, Seed: 1, RNG: TPU, Clip skip: 0, ENSD: lots"
    result = md.read_a1111_text(text)
    assert result.unmapped == {"RNG": "TPU", "Clip skip": "0", "ENSD": "lots"}
    assert result.request.rng == "GPU"  # the key A1111 could not use either: its default


# ---- Schedule type -------------------------------------------------------------------------
# (our sampler, karras option) -> (A1111 Sampler, Schedule type or None for "not written")
WRITE_TABLE = [
    ("Euler", None, "Euler", "Uniform"),
    ("Euler", True, "Euler", "Karras"),
    ("Euler a", None, "Euler a", "Uniform"),
    ("LMS", None, "LMS", "Uniform"),
    ("LMS", True, "LMS", "Karras"),
    ("Heun", None, "Heun", "Uniform"),
    ("Heun", True, "Heun", "Karras"),
    ("DPM++ 2M", None, "DPM++ 2M", "Uniform"),  # was "Automatic", which A1111 runs as Karras
    ("DPM++ 2M", False, "DPM++ 2M", "Uniform"),
    ("DPM++ 2M", True, "DPM++ 2M", "Karras"),
    ("DPM++ 2M Karras", None, "DPM++ 2M", "Karras"),
    ("DPM++ 2M Karras", False, "DPM++ 2M", "Uniform"),
    ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE", "Karras"),
    ("DPM++ 2M SDE Karras", False, "DPM++ 2M SDE", "Uniform"),
    ("DPM++ SDE Karras", None, "DPM++ SDE", "Karras"),
    ("DPM++ SDE Karras", False, "DPM++ SDE", "Uniform"),
    ("DDIM", None, "DDIM", None),  # A1111 ignores the schedule for DDIM, PLMS, UniPC
    ("UniPC", None, "UniPC", None),
    ("DDPM", None, "DDPM", None),
    ("LCM", None, "LCM", None),
]


@pytest.mark.parametrize(("ours", "karras", "sampler", "schedule"), WRITE_TABLE)
def test_schedule_type_is_written_explicitly(ours, karras, sampler, schedule):
    request = GenerationRequest(prompt="p", sampler=ours, schedule=ScheduleOptions(karras))
    settings = a1111_settings(write(request))
    assert settings["Sampler"] == sampler
    assert settings.get("Schedule type") == schedule
    # read back, the same sigmas: Karras exactly when the text says Karras
    got = md.read_a1111_text(write(request)).request
    assert md.effective_karras(got.sampler, got.schedule.karras) == (schedule == "Karras")
    assert got.sampler.removesuffix(" Karras") == sampler


# A1111 text (Sampler, Schedule type or None when absent) -> ours, or the schedule unmapped
READ_TABLE = [
    ("DPM++ 2M", "Automatic", "DPM++ 2M Karras", True),
    ("DPM++ 2M", None, "DPM++ 2M Karras", True),
    ("DPM++ 2M", "Uniform", "DPM++ 2M", False),
    ("DPM++ 2M", "Karras", "DPM++ 2M Karras", True),
    ("DPM++ SDE", "Automatic", "DPM++ SDE Karras", True),
    ("DPM++ SDE", "Uniform", "DPM++ SDE Karras", False),
    ("DPM++ 2M SDE", "Karras", "DPM++ 2M SDE Karras", True),
    ("DPM++ 2M SDE", "Uniform", "DPM++ 2M SDE Karras", False),
    ("Euler", "Automatic", "Euler", False),
    ("Euler", None, "Euler", False),
    ("Euler", "Karras", "Euler", True),
    ("Euler a", "Automatic", "Euler a", False),
    ("LMS", None, "LMS", False),
    ("Heun", "Automatic", "Heun", False),
    ("DDIM", "Karras", "DDIM", False),  # ignored by A1111, so by us
    ("UniPC", "Karras", "UniPC", False),
    ("UniPC", "Automatic", "UniPC", False),
]


@pytest.mark.parametrize(("sampler", "schedule", "ours", "karras"), READ_TABLE)
def test_schedule_type_is_read_with_a1111_defaults(sampler, schedule, ours, karras):
    tail = f", Schedule type: {schedule}" if schedule else ""
    result = md.read_a1111_text(f"p\nSteps: 5, Sampler: {sampler}{tail}, Seed: 1")
    r = result.request
    assert r.sampler == ours
    assert md.effective_karras(r.sampler, r.schedule.karras) is karras
    assert "Schedule type" not in result.unmapped and "Sampler" not in result.unmapped


@pytest.mark.parametrize(
    ("sampler", "schedule", "reported"),
    [
        ("DPM++ 2M SDE", "Automatic", "Exponential (Automatic for DPM++ 2M SDE)"),
        ("DPM++ 2M SDE", None, "Exponential (Automatic for DPM++ 2M SDE)"),
        ("DPM++ 2M SDE", "Exponential", "Exponential"),
        ("Euler", "SGM Uniform", "SGM Uniform"),
        ("Euler a", "Karras", "Karras"),  # our Euler a has one schedule only
        ("DPM++ 2M", "Align Your Steps", "Align Your Steps"),
    ],
)
def test_schedules_we_cannot_run_are_reported_not_pretended(sampler, schedule, reported):
    tail = f", Schedule type: {schedule}" if schedule else ""
    result = md.read_a1111_text(f"p\nSteps: 5, Sampler: {sampler}{tail}, Seed: 1")
    assert result.unmapped["Schedule type"] == reported
    assert "Sampler" not in result.unmapped  # the sampler itself is ours
    assert any(reported in w for w in result.warnings)


def test_schedule_round_trips_through_the_independent_parser():
    for ours, karras, _, _ in WRITE_TABLE:
        request = GenerationRequest(prompt="p", sampler=ours, schedule=ScheduleOptions(karras))
        settings = a1111_settings(write(request))
        # rebuild the text from what the independent parser saw, in another key order
        line = ", ".join(f"{k}: {v}" for k, v in reversed(list(settings.items())) if "," not in v)
        got = md.read_a1111_text(f"p\n{line}").request
        want = md.effective_karras(ours, karras)
        if settings.get("Schedule type") is None and ours in ("UniPC",):
            want = False  # A1111 runs UniPC without our Karras option
        assert md.effective_karras(got.sampler, got.schedule.karras) == want, ours
        assert got.sampler.removesuffix(" Karras") == ours.removesuffix(" Karras")
