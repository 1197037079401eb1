"""Faults at the destination: a bad output folder or file is refused before any work, and an
image whose save fails after the work is kept in the temp folder, named in the message.

The tests run as root on the CI machine, and root writes into a chmod'ed read-only folder
anyway: the unusable folders here are a regular file, a path under /proc, a symlink loop and a
folder replaced by a file while the job runs, which stop root as well.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest
from PIL import Image

import studio.engine.generate as engine_generate
from studio.cli import main
from studio.engine.metadata import read_settings


def _gen(model: Path, *extra: str) -> list[str]:
    return ["generate", "-m", str(model), "-p", "a cat", "--steps", "2", "--seed", "3", "-q",
            *extra]  # fmt: skip


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


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


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Path:
    """tempfile.gettempdir() answers this folder, so fallback files land in tmp_path."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# ---- --out: an existing file is never replaced ------------------------------------------------
def test_out_refuses_an_existing_file_before_any_work(tiny_model, tmp_path, capsys, runs):
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"my own picture")
    code = main(_gen(tiny_model, "-o", str(existing)))
    err = _one_line(capsys.readouterr().err)
    assert code == 1
    assert err == f"studio: {existing} already exists; pick another name or remove it.\n"
    assert existing.read_bytes() == b"my own picture" and runs == []


def test_regenerate_refuses_an_existing_out_file(tiny_model, tmp_path, capsys, runs):
    source = tmp_path / "source.png"
    assert main(_gen(tiny_model, "-o", str(source))) == 0
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"mine")
    runs.clear()
    capsys.readouterr()
    assert main(["regenerate", str(source), "-o", str(existing), "-q"]) == 1
    assert "already exists; pick another name or remove it" in _one_line(capsys.readouterr().err)
    assert existing.read_bytes() == b"mine" and runs == []


# ---- unusable folders, found before the model loads --------------------------------------------
def _file_as_folder(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-folder"
    path.write_text("a file where the output folder should be")
    return path


def _under_a_file(tmp_path: Path) -> Path:
    return _file_as_folder(tmp_path) / "images"


def _in_proc(tmp_path: Path) -> Path:
    return Path("/proc") / f"studio-test-{secrets.token_hex(4)}"  # nobody can create it


def _symlink_loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return loop


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("make", [_file_as_folder, _under_a_file, _in_proc, _symlink_loop])
def test_an_unusable_output_folder_is_refused_before_any_work(
    make, tiny_model, tmp_path, capsys, runs
):
    folder = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(_gen(tiny_model, "--outdir", str(folder)))
    err = _one_line(capsys.readouterr().err)
    assert code == 1
    assert err.startswith("studio: ") and str(folder) in err and "choose another folder" in err
    assert runs == []  # refused before any denoising
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_out_in_an_unusable_folder_is_refused_before_any_work(tiny_model, tmp_path, capsys, runs):
    out = _file_as_folder(tmp_path) / "a.png"
    assert main(_gen(tiny_model, "-o", str(out))) == 1
    assert "is not a folder; choose another folder" in _one_line(capsys.readouterr().err)
    assert runs == []


# ---- the format follows the file name -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("x.jpg", ["--format", "png"], "x.jpg is named .jpg but the format asked for is png; "
                                       "name the file x.png or leave the format out."),
        ("x.gif", [], "x.gif needs the extension .png, .jpg or .webp"),
        ("x", [], "x needs the extension .png, .jpg or .webp"),
    ],
)  # fmt: skip
def test_a_file_name_that_does_not_fit_the_format_is_refused(
    name, extra, message, tiny_model, tmp_path, capsys, runs
):
    out = tmp_path / "out" / name
    assert main(_gen(tiny_model, "-o", str(out), *extra)) == 1
    assert message in _one_line(capsys.readouterr().err)
    assert runs == [] and not out.parent.exists()


def test_the_suffix_decides_the_bytes_written(tiny_model, tmp_path, capsys):
    jpg, webp = tmp_path / "x.jpg", tmp_path / "x.webp"
    assert main(_gen(tiny_model, "-o", str(jpg), "--format", "jpg")) == 0
    assert main(_gen(tiny_model, "-o", str(webp))) == 0
    assert Image.open(jpg).format == "JPEG" and Image.open(webp).format == "WEBP"
    assert read_settings(jpg).request.prompt == "a cat"


# ---- saving fails after the work: the image is kept --------------------------------------------
def _breaking_after_generation(monkeypatch, breaking) -> None:
    real = engine_generate.generate

    def generate_then_break(*args, **kwargs):
        result = real(*args, **kwargs)
        breaking()
        return result

    monkeypatch.setattr(engine_generate, "generate", generate_then_break)


def _kept_file(err: str, temp_dir: Path) -> Path:
    assert "; it was kept as " in err, err
    kept = Path(err.split("; it was kept as ", 1)[1].split(": copy it from there.")[0])
    assert kept.is_file() and kept.parent.parent == temp_dir
    return kept


def test_an_outdir_replaced_by_a_file_meanwhile_keeps_the_image_in_temp(
    tiny_model, tmp_path, temp_dir, capsys, monkeypatch
):
    outdir = tmp_path / "images"

    def replace_by_a_file() -> None:
        os.rmdir(outdir)  # empty: the check made it and removed its probe
        outdir.write_text("someone put a file here")

    _breaking_after_generation(monkeypatch, replace_by_a_file)
    code = main(_gen(tiny_model, "--outdir", str(outdir)))
    err = _one_line(capsys.readouterr().err)
    assert code == 1 and err.startswith("studio: the image could not be saved (")
    kept = _kept_file(err, temp_dir)
    found = read_settings(kept)
    assert (found.request.prompt, found.request.seed) == ("a cat", 3)
    assert Image.open(kept).size == (64, 64)
    assert outdir.read_text() == "someone put a file here"


def test_an_out_file_taken_meanwhile_is_not_replaced_and_the_image_is_kept(
    tiny_model, tmp_path, temp_dir, capsys, monkeypatch
):
    out = tmp_path / "x.png"
    _breaking_after_generation(monkeypatch, lambda: out.write_bytes(b"another writer"))
    assert main(_gen(tiny_model, "-o", str(out))) == 1
    err = _one_line(capsys.readouterr().err)
    assert "is never replaced" in err
    assert read_settings(_kept_file(err, temp_dir)).request.prompt == "a cat"
    assert out.read_bytes() == b"another writer"
