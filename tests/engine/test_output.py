from __future__ import annotations

import os
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from studio.engine import metadata as md
from studio.engine.output import (
    PATH_MAX,
    PROMPT_SLUG_MAX,
    OutputFolder,
    atomic_save,
    atomic_write_bytes,
    check_destination,
    check_output_file,
    is_unsaved,
    keep_unsaved,
    safe_component,
    save_result,
    slug,
)
from studio.engine.request import GenerationRequest, GenerationResult
from studio.paths import default_output_dir

NOW = datetime(2024, 5, 1, 13, 45, 9)
IMG = Image.new("RGB", (8, 8), (10, 20, 30))
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10))}
RESERVED |= {f"LPT{i}" for i in range(1, 10)}


def request(**kw) -> GenerationRequest:
    kw.setdefault("prompt", "a cat in a hat")
    kw.setdefault("seed", 42)
    return GenerationRequest(**kw)


def result(n: int = 1, **kw) -> GenerationResult:
    req = request(batch_size=n, **kw)
    return GenerationResult(
        request=req,
        images=[IMG] * n,
        seeds=[req.seed + k for k in range(n)],
        model_name="demo",
        model_hash="0123456789",
    )


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def assert_portable(name: str) -> None:
    assert name == name.strip(" ") and not name.endswith(".")
    assert not set(name) & set('<>:"/\\|?*')
    assert all(unicodedata.category(c) != "Cc" for c in name)
    assert name.split(".")[0].upper() not in RESERVED
    assert len(name.encode("utf-8")) <= 255


# ---- names ------------------------------------------------------------------------------
def test_default_pattern_gives_date_folder_counter_seed_and_prompt(tmp_path):
    path = OutputFolder(tmp_path).path_for(request(), 42, 0, "png", now=NOW)
    assert path == tmp_path / "2024-05-01" / "00001-42-a_cat_in_a_hat.png"
    assert not path.parent.exists()  # path_for creates nothing


def test_every_token_is_filled(tmp_path):
    folder = OutputFolder(
        tmp_path, "{model}/{date}_{time}/{sampler}-{steps}-{width}x{height}-{index}-{seed:08}"
    )
    req = request(model="/models/My Model.safetensors", sampler="DPM++ 2M Karras", steps=9)
    path = folder.path_for(req, 7, 3, ".webp", now=NOW)
    assert path.relative_to(tmp_path).as_posix() == (
        "My_Model/2024-05-01_13-45-09/DPM_2M_Karras-9-512x512-3-00000007.webp"
    )
    named = folder.path_for(req, 7, 3, "png", now=NOW, model_name="sd15 [abc]")
    assert named.relative_to(tmp_path).parts[0] == "sd15_abc"


def test_counter_continues_after_the_highest_existing_number(tmp_path):
    day = tmp_path / "2024-05-01"
    day.mkdir()
    (day / "00007-1-old.png").write_bytes(b"x")
    (day / "notes.txt").write_bytes(b"x")
    path = OutputFolder(tmp_path).path_for(request(), 42, 0, "png", now=NOW)
    assert path.name == "00008-42-a_cat_in_a_hat.png"


def test_names_are_never_reused(tmp_path):
    folder = OutputFolder(tmp_path, "{seed}")
    first = folder.path_for(request(), 42, 0, "png")
    first.write_bytes(b"x")
    second = folder.path_for(request(), 42, 0, "png")
    second.write_bytes(b"y")
    third = folder.path_for(request(), 42, 0, "png")
    assert [first.name, second.name, third.name] == ["42.png", "42-2.png", "42-3.png"]
    assert first.read_bytes() == b"x"


def test_save_never_overwrites(tmp_path):
    folder = OutputFolder(tmp_path, "{seed}")
    paths = save_result(result(), folder) + save_result(result(), folder)
    assert [p.name for p in paths] == ["42.png", "42-2.png"]
    assert all_files(tmp_path) == sorted(paths)


@pytest.mark.parametrize(
    "pattern",
    [
        "../../etc/{seed}",
        "a/../../{seed}",
        "/etc/{seed}",
        "C:/Windows/{seed}",
        "~/x/{seed}",
        "a\\..\\{seed}",
        "./{seed}",
        "{seed.__class__}",
        "{seed[0]}",
        "{unknown}",
        "{seed!r}",
        "{seed:zz}",
        "{counter}/{seed}",
        "{seed",
        "",
        "///",
    ],
)
def test_unsafe_or_broken_patterns_are_refused(tmp_path, pattern):
    with pytest.raises(ValueError):
        OutputFolder(tmp_path, pattern)


def test_symlinked_folder_leading_outside_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "out", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "2024-05-01").symlink_to(outside, target_is_directory=True)
    folder = OutputFolder(root)
    with pytest.raises(ValueError, match="outside the output folder"):
        folder.path_for(request(), 42, 0, "png", now=NOW)
    with pytest.raises(ValueError, match="outside the output folder"):
        save_result(result(), folder, now=NOW)
    assert list(outside.iterdir()) == []


def test_symlinked_file_name_is_skipped_not_written_through(tmp_path):
    root, target = tmp_path / "out", tmp_path / "victim.txt"
    root.mkdir()
    target.write_text("keep me")
    (root / "42.png").symlink_to(target)
    (root / "42-2.png").symlink_to(tmp_path / "dangling")
    [path] = save_result(result(), OutputFolder(root, "{seed}"))
    assert path.name == "42-3.png"
    assert target.read_text() == "keep me"
    assert not (tmp_path / "dangling").exists()


def test_symlinked_root_itself_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    [path] = save_result(result(), OutputFolder(tmp_path / "link"), now=NOW)
    assert (real / path.relative_to(tmp_path / "link")).is_file()


ODD_PROMPTS = [
    "../../etc/passwd",
    "/absolute/path",
    'a/b\\c:d*e?f"g<h>i|j',
    "CON",
    "nul.txt",
    "Lpt1",
    "trailing dots...",
    "  spaces  ",
    "tab\tnew\nline\x00nul\x1besc\u202eRTL",
    "🐈🐈🐈",
    "",
    "e\u0301te\u0301 café 猫の絵 Ünïcödé",
    "word " * 200,
    "x" * 1000,
]


@pytest.mark.parametrize("prompt", ODD_PROMPTS)
def test_odd_prompts_give_safe_names_inside_the_root(tmp_path, prompt):
    [path] = save_result(result(prompt=prompt), OutputFolder(tmp_path), now=NOW)
    assert path.is_file()
    rel = path.relative_to(tmp_path)
    assert ".." not in rel.parts
    for part in rel.parts:
        assert_portable(part)
    stem_slug = rel.name.split("-", 2)[2].rsplit(".", 1)[0]
    assert 0 < len(stem_slug) <= PROMPT_SLUG_MAX
    assert all_files(tmp_path) == [path]
    assert md.read_settings(path).request.prompt == prompt  # the name is lossy, the data not


def test_slug_keeps_letters_of_any_script_and_cuts_at_a_word():
    assert slug("Ünïcödé 猫の絵, oil-painting!") == "Ünïcödé_猫の絵_oil-painting"
    long = slug("alpha beta gamma " * 10, 30)
    assert len(long) <= 30 and long.endswith(("alpha", "beta", "gamma"))


@pytest.mark.parametrize("name", ["CON", "con.png", "AUX .txt", "COM1", "a:b", "x. . .", "..", ""])
def test_safe_component_handles_windows_rules(name):
    assert_portable(safe_component(name))
    assert safe_component(name) not in ("", ".", "..")


def test_long_output_root_shortens_the_prompt_to_keep_paths_reasonable(tmp_path):
    root = tmp_path / ("deep_folder_name_" * 8)
    [path] = save_result(result(prompt="a very long prompt " * 20), OutputFolder(root), now=NOW)
    assert len(str(path)) <= PATH_MAX
    assert path.is_file()


def test_hopelessly_long_root_is_a_clear_error(tmp_path):
    root = tmp_path / ("x" * 120) / ("y" * 120)
    with pytest.raises(ValueError, match="too long"):
        OutputFolder(root).path_for(request(), 42, 0, "png", now=NOW)


def test_default_root_is_the_users_output_folder():
    assert OutputFolder().root == default_output_dir().expanduser().absolute()


# ---- atomic writes ----------------------------------------------------------------------
def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"hello")
    assert path.read_bytes() == b"hello"
    atomic_write_bytes(path, b"again")
    assert path.read_bytes() == b"again"
    assert all_files(tmp_path) == [path]


def test_failed_write_leaves_nothing_behind_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_save(path, broken)
    assert path.read_bytes() == b"old"
    assert all_files(tmp_path) == [path]


def test_no_overwrite_mode_refuses_existing_files(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(path, b"new", overwrite=False)
    assert path.read_bytes() == b"old"
    assert all_files(tmp_path) == [path]
    fresh = atomic_write_bytes(tmp_path / "b.bin", b"new", overwrite=False)
    assert fresh.read_bytes() == b"new"


def test_written_files_get_ordinary_permissions(tmp_path):
    path = atomic_write_bytes(tmp_path / "a.bin", b"x")
    old = os.umask(0o022)
    os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~old


# ---- saving results ---------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "ext"), [("png", ".png"), ("jpeg", ".jpg"), ("webp", ".webp")])
def test_save_result_writes_each_image_with_its_seed(tmp_path, fmt, ext):
    res = result(3)
    paths = save_result(res, OutputFolder(tmp_path), fmt, now=NOW)
    assert [p.name for p in paths] == [
        f"0000{k + 1}-{42 + k}-a_cat_in_a_hat{ext}" for k in range(3)
    ]
    for k, path in enumerate(paths):
        read = md.read_settings(path)
        assert read.request == res.request
        assert (read.image_index, read.image_seed) == (k, 42 + k)
        assert (read.model_name, read.model_hash) == ("demo", "0123456789")
    assert all_files(tmp_path) == paths


def test_cancelled_or_empty_results_write_nothing(tmp_path):
    cancelled = GenerationResult(request=request(), images=[IMG], seeds=[42], cancelled=True)
    empty = GenerationResult(request=request())
    assert save_result(cancelled, OutputFolder(tmp_path)) == []
    assert save_result(empty, OutputFolder(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []


def test_save_result_accepts_a_plain_folder_path(tmp_path):
    [path] = save_result(result(), tmp_path, now=NOW)
    assert path.parent == tmp_path / "2024-05-01"


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="png, jpg/jpeg or webp"):
        save_result(result(), OutputFolder(tmp_path), "tiff")
    assert list(tmp_path.iterdir()) == []


# ---- destinations checked before any work ---------------------------------------------------
def test_check_destination_creates_the_folder_and_leaves_no_probe(tmp_path):
    folder = tmp_path / "a" / "b"
    assert check_destination(folder, "webp") == folder
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_check_destination_refuses_what_cannot_hold_images(tmp_path):
    # as root a chmod'ed folder stays writable, so the cases here stop root too
    file = tmp_path / "file"
    file.write_text("x")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for folder, reason in (
        (file, "exists but is not a folder"),
        (file / "sub", "cannot be created"),
        (loop, "a link that leads nowhere"),
        (loop / "sub", "cannot be created"),
    ):
        with pytest.raises(ValueError, match=reason):
            check_destination(folder)
    with pytest.raises(ValueError, match="Cannot save images as 'exe'"):
        check_destination(tmp_path / "new", "exe")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "loop"]
    assert file.read_text() == "x"


def test_check_destination_reports_a_failed_write_in_the_folder(tmp_path, monkeypatch):
    import errno

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ValueError, match="cannot be written into the output folder .*Read-only"):
        check_destination(tmp_path)


def test_check_output_file_lets_the_suffix_decide_and_never_replaces(tmp_path):
    assert check_output_file(tmp_path / "new" / "a.JPEG") == "JPEG"
    assert check_output_file(tmp_path / "a.jpg", "jpeg") == "JPEG"
    assert check_output_file(tmp_path / "a.webp", "webp") == "WEBP"
    with pytest.raises(ValueError, match="named .jpg but the format asked for is png"):
        check_output_file(tmp_path / "a.jpg", "png")
    with pytest.raises(ValueError, match="needs the extension .png, .jpg or .webp"):
        check_output_file(tmp_path / "a.bmp")
    (tmp_path / "taken.png").write_bytes(b"mine")
    with pytest.raises(ValueError, match="already exists; pick another name or remove it"):
        check_output_file(tmp_path / "taken.png")
    assert (tmp_path / "taken.png").read_bytes() == b"mine"


def test_keep_unsaved_writes_pngs_with_metadata_into_a_private_temp_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kept = keep_unsaved(result(2))
    assert len(kept) == 2 and all(is_unsaved(p) for p in kept)
    assert kept[0].parent.parent == tmp_path and oct(kept[0].parent.stat().st_mode)[-3:] == "700"
    assert [md.read_settings(p).image_seed for p in kept] == [42, 43]
    assert Image.open(kept[0]).format == "PNG"
    saved = save_result(result(), tmp_path / "out", now=NOW)
    assert not is_unsaved(saved[0])
