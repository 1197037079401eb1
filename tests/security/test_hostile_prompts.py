"""Prompts (and model names) as the source of output file names: always a safe name inside the
output folder, never a path out of it, never a reserved device name; the prompt itself survives
whole in the metadata.

End to end through `studio generate` (the default pattern) and through the engine's
`save_result` with patterns that put the prompt or the model into folder names.
tests/engine/test_output.py checks `slug`/`safe_component` and the default pattern with a fake
result; these cases run a real model and the CLI.
"""

from __future__ import annotations

import os
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.engine.metadata import read_settings
from studio.engine.output import PATH_MAX, OutputFolder, save_result
from studio.engine.request import GenerationRequest, GenerationResult

NOW = datetime(2024, 5, 1, 13, 45, 9)
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
RESERVED |= {f"{port}{i}" for port in ("COM", "LPT") for i in "0123456789¹²³"}

HOSTILE_PROMPTS = {
    "unix-traversal": "../../etc/passwd",
    "deep-traversal": "../" * 40 + "tmp/evil",
    "absolute": "/etc/passwd",
    "windows-traversal": "..\\..\\Windows\\System32\\config",
    "windows-absolute": "C:\\Windows\\evil",
    "unc": "\\\\server\\share\\evil",
    "home": "~/evil",
    "dots-only": "...",
    "dot-dot": "..",
    "con": "CON",
    "nul": "NUL",
    "com1": "COM1",
    "lpt9-with-ext": "lpt9.txt",
    "aux-trailing-dot": "aux.",
    "trailing-dots": "name. . .",
    "trailing-spaces": "name   ",
    "only-spaces": "     ",
    "nul-bytes": "a\x00b\x00../c",
    "only-nul": "\x00\x00",
    "control-chars": "bell\x07esc\x1b[31mred\r\nnewline\ttab",
    "bidi-override": "cat\u202egnp.exe",
    "shell": "$(touch PWNED) `touch PWNED`; touch PWNED",
    "percent-encoded": "%2e%2e%2f%2e%2e%2fetc",
    "10KB-ascii": "x" * 10_240,
    "10KB-words": "a cat in a hat " * 700,
    "10KB-traversal": "../" * 3500,
    "10KB-emoji": "🐈" * 2600,
    "10KB-combining": "e\u0301" * 3500,
}


def portable(name: str) -> bool:
    """A file or folder name every common OS accepts as an ordinary name."""
    stem = name.split(".")[0].rstrip(" ").upper()
    return (
        name not in ("", ".", "..")
        and name == name.strip(" ")
        and not name.endswith(".")
        and not set(name) & set('<>:"/\\|?*')
        and all(unicodedata.category(c) not in ("Cc", "Cf") for c in name)
        and stem not in RESERVED
        and len(name.encode("utf-8")) <= 255
    )


def assert_safe(path: Path, root: Path) -> None:
    """`path` is an ordinary file inside `root`, every component of its name portable."""
    assert path.is_file() and not path.is_symlink()
    real = Path(os.path.realpath(path))
    assert real.is_relative_to(root.resolve())
    rel = path.relative_to(root)
    assert all(portable(part) for part in rel.parts), rel.parts
    assert len(str(path)) <= PATH_MAX + 20


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if not p.is_dir())


@pytest.mark.parametrize("case", list(HOSTILE_PROMPTS))
def test_a_hostile_prompt_gives_a_safe_name_inside_the_output_folder(
    tiny_model, tmp_path, capsys, monkeypatch, case
):
    prompt = HOSTILE_PROMPTS[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # where a relative escape or a shell would write
    out = tmp_path / "deep" / "out"
    argv = ["generate", "-m", str(tiny_model), "-p", prompt, "--steps", "1", "--seed", "7"]
    code = main([*argv, "--outdir", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [printed] = captured.out.splitlines()
    path = Path(printed)
    assert_safe(path, out)
    assert files_under(tmp_path) == [path]  # nothing beside the root, in cwd or above it
    assert list(work.iterdir()) == []
    found = read_settings(path)
    assert found.request.prompt == prompt  # the name is lossy; the metadata is not
    assert found.image_seed == 7
    assert Image.open(path).size == (64, 64)


def _result(prompt: str, model_name: str = "tiny", model: str = "tiny") -> GenerationResult:
    request = GenerationRequest(model=model, prompt=prompt, seed=3, width=8, height=8)
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    return GenerationResult(request, images=[image], seeds=[3], model_name=model_name)


@pytest.mark.parametrize(
    "pattern", ["{prompt}/{seed}", "{prompt}/{prompt}/{counter:05}", "x{prompt}x/{prompt}"]
)
@pytest.mark.parametrize(
    "case",
    ["unix-traversal", "windows-traversal", "dot-dot", "dots-only", "con", "nul-bytes",
     "only-spaces", "10KB-traversal", "10KB-emoji"],
)  # fmt: skip
def test_a_hostile_prompt_as_a_folder_name_stays_inside(tmp_path, pattern, case):
    prompt = HOSTILE_PROMPTS[case]
    root = tmp_path / "out"
    folder = OutputFolder(root, pattern)
    first = save_result(_result(prompt), folder, now=NOW)
    second = save_result(_result(prompt), folder, now=NOW)
    for path in first + second:
        assert_safe(path, root)
    assert first != second
    assert files_under(tmp_path) == sorted(first + second)
    assert read_settings(first[0]).request.prompt == prompt


@pytest.mark.parametrize(
    ("model", "model_name"),
    [
        ("../../evil", "../../evil"),
        ("/models/..", ".."),
        ("C:\\models\\CON.safetensors", "CON"),
        ("models/NUL.ckpt", "NUL"),
        ("models/x" + "\x00" * 3, "x\x00\x00"),
        ("hub/" + "m" * 5000, "m" * 5000),
    ],
)
def test_a_hostile_model_name_as_a_folder_name_stays_inside(tmp_path, model, model_name):
    root = tmp_path / "out"
    folder = OutputFolder(root, "{model}/{model}-{prompt}")
    [path] = save_result(_result("../x", model_name, model), folder, now=NOW)
    assert_safe(path, root)
    assert files_under(tmp_path) == [path]
