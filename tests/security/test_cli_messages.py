"""Careless or hostile command lines get one line on stderr and exit code 1, never a traceback,
and nothing is written: unknown or missing devices, bytes that are not UTF-8 in a prompt, sizes
of 0, negative seeds other than -1. `studio info` says what regenerate would load and why a
recipe could not be read."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import studio.engine.generate as engine_generate
from studio.cli import main
from studio.engine.metadata import PNG_RECIPE_KEY, read_settings


@pytest.fixture
def runs(monkeypatch) -> list[object]:
    """Every call of the engine's generate(): empty means no denoising happened."""
    calls: list[object] = []
    real = engine_generate.generate

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_generate, "generate", counting)
    return calls


def _refused(argv: list[str], capsys, out) -> str:
    """Run argv; assert exit 1, one line on stderr, nothing written to `out`; return the line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("studio: "), err
    assert not out.exists()
    return err


def _gen(model, out, *extra: str) -> list[str]:
    return ["generate", "-m", str(model), "-p", "x", "--steps", "2", "-q", "--outdir", str(out),
            *extra]  # fmt: skip


@pytest.mark.parametrize("device", ["foo", "cuda:x", "gpu", "cpu; rm -rf /"])
def test_an_unknown_device_is_named_with_the_choices(device, tiny_model, tmp_path, capsys, runs):
    out = tmp_path / "out"
    err = _refused(_gen(tiny_model, out, "--device", device), capsys, out)
    assert f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps" in err
    assert runs == []


def test_cuda_without_a_gpu_says_to_use_the_cpu(tiny_model, tmp_path, capsys, runs, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    out = tmp_path / "out"
    err = _refused(_gen(tiny_model, out, "--device", "cuda"), capsys, out)
    assert "No CUDA GPU can be used on this machine" in err and "use cpu" in err
    assert runs == []


def test_a_non_utf8_byte_in_an_argv_prompt_is_named(tiny_model, tmp_path, capsys, runs):
    # Python hands a byte that is not UTF-8 in argv over as a lone surrogate (surrogateescape)
    prompt = os.fsdecode(b"a cat \xff")
    out = tmp_path / "out"
    err = _refused(_gen(tiny_model, out, "-p", prompt), capsys, out)
    assert "The prompt is not valid UTF-8 text (byte 0xff at position 6)" in err
    err = _refused(_gen(tiny_model, out, "-n", os.fsdecode(b"\xe9t\xe9")), capsys, out)
    assert "The negative prompt is not valid UTF-8 text (byte 0xe9 at position 0)" in err
    assert runs == []


def test_a_non_utf8_prompt_in_an_image_file_is_named(tiny_model, tmp_path, capsys, runs):
    source = tmp_path / "source.png"
    assert main(["generate", "-m", str(tiny_model), "-p", "x", "--steps", "2", "-q",
                 "-o", str(source)]) == 0  # fmt: skip
    recipe = json.loads(Image.open(source).text[PNG_RECIPE_KEY])
    recipe["prompt"] = "x \udcff"  # JSON may carry a lone surrogate: "\udcff"
    info = PngInfo()
    info.add_text(PNG_RECIPE_KEY, json.dumps(recipe))
    hostile = tmp_path / "hostile.png"
    Image.open(source).save(hostile, pnginfo=info)
    runs.clear()
    capsys.readouterr()
    out = tmp_path / "again.png"
    err = _refused(["regenerate", str(hostile), "-o", str(out), "-q"], capsys, out)
    assert "The prompt is not valid UTF-8 text (byte 0xff at position 2)" in err
    assert runs == []


@pytest.mark.parametrize(("flag", "name"), [("-W", "-W/--width"), ("-H", "-H/--height")])
def test_a_size_of_zero_is_refused_not_made_native(flag, name, tiny_model, tmp_path, capsys, runs):
    out = tmp_path / "out"
    err = _refused(_gen(tiny_model, out, flag, "0"), capsys, out)
    assert f"{name} 0 is not a size" in err and f"leave {name} out" in err
    assert runs == []


@pytest.mark.parametrize("seed", ["-5", "-2", str(-(2**63))])
def test_a_negative_seed_other_than_minus_one_is_refused(seed, tiny_model, tmp_path, capsys, runs):
    out = tmp_path / "out"
    err = _refused(_gen(tiny_model, out, "--seed", seed), capsys, out)
    assert f"Seed must be -1 (a random seed) or between 0 and {2**63 - 1}, not {seed}." in err
    assert runs == []


def test_minus_one_still_draws_a_seed(tiny_model, tmp_path, capsys):
    assert main(_gen(tiny_model, tmp_path / "out", "--seed", "-1")) == 0
    path = capsys.readouterr().out.strip()
    assert 0 <= read_settings(path).request.seed <= 2**32 - 1


def test_info_shows_the_model_regenerate_loads_and_the_recorded_name(tiny_model, tmp_path, capsys):
    out = tmp_path / "a.png"
    assert main(["generate", "-m", str(tiny_model), "-p", "x", "--steps", "2", "-q",
                 "-o", str(out)]) == 0  # fmt: skip
    found = read_settings(out)
    assert found.model_name and found.model_name != str(tiny_model)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"model:           {tiny_model}\n" in text  # the ref regenerate loads
    assert f"recorded model:  {found.model_name}" in text


@pytest.mark.parametrize(
    ("recipe", "reason"),
    [
        ('{"version": 1, "request": 5', "JSONDecodeError"),
        ('{"prompt": "x"}', "the recipe was not written by Diffusion Studio"),
    ],
)
def test_a_malformed_recipe_says_why(recipe, reason, tmp_path, capsys):
    info = PngInfo()
    info.add_text(PNG_RECIPE_KEY, recipe)
    image = tmp_path / "bad.png"
    Image.new("RGB", (8, 8)).save(image, pnginfo=info)
    for command in (["info", str(image)], ["regenerate", str(image), "-q"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"studio: {image} holds no generation settings: The recipe could")
        assert reason in err
