"""The model library scan: every kind from its header, cached by path, size and mtime."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from studio.engine import library
from studio.engine.library import (
    ScanStats,
    add_hashes,
    format_table,
    scan,
    standard_folders,
    to_json,
)
from tests.engine.addon_files import embedding, foreign_lora, save


def write_library(folder: Path) -> dict[str, Path]:
    """One tiny model of each kind, derived from a tiny SD 1.x single file, plus two bad files."""
    from tests.ldm_layout import write_tiny_single_file

    tiny = write_tiny_single_file("sd1", folder / "build")
    with safe_open(str(tiny.path), "pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    ckpt = folder / "Stable-diffusion" / "tiny-sd1.safetensors"
    ckpt.parent.mkdir(parents=True)
    tiny.path.rename(ckpt)
    vae = {
        k.removeprefix("first_stage_model."): v for k, v in weights.items() if "first_stage" in k
    }
    unet = "model.diffusion_model."
    control = {"control_model." + k.removeprefix(unet): v for k, v in weights.items() if unet in k}
    control["control_model.input_hint_block.0.weight"] = torch.zeros(16, 3, 3, 3)
    half = {k: v.half() for k, v in control.items()}
    bad = folder / "Stable-diffusion" / "broken.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"not a header")
    pickle = folder / "Stable-diffusion" / "old.ckpt"
    pickle.write_bytes(b"PK\x03\x04")
    return {
        "checkpoint": ckpt,
        "lora": save(foreign_lora(768), folder / "Lora" / "tiny-lora.safetensors"),
        "embedding": save(embedding(768, 2, 0), folder / "embeddings" / "tiny-emb.safetensors"),
        "vae": save(vae, folder / "VAE" / "tiny-vae.safetensors"),
        "controlnet": save(half, folder / "ControlNet" / "tiny-control.safetensors"),
        "bad": bad,
        "pickle": pickle,
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("library")
    files = write_library(root / "models")
    return root / "models", files


def test_every_kind_is_listed_with_its_family_precision_and_size(models, tmp_path: Path) -> None:
    root, files = models
    folders = [root / d for d in ("Stable-diffusion", "Lora", "embeddings", "VAE", "ControlNet")]
    entries = {Path(e.path).name: e for e in scan(folders, tmp_path / "cache.json")}

    ckpt = entries["tiny-sd1.safetensors"]
    assert (ckpt.kind, ckpt.family, ckpt.prediction, ckpt.native_size) == (
        "checkpoint",
        "sd1",
        "epsilon",
        512,
    )
    assert ckpt.precision == "fp32"
    assert ckpt.size == files["checkpoint"].stat().st_size
    assert (entries["tiny-lora.safetensors"].kind, entries["tiny-lora.safetensors"].family) == (
        "lora",
        "sd1",
    )
    assert entries["tiny-emb.safetensors"].kind == "embedding"
    assert entries["tiny-emb.safetensors"].family == "sd1"
    assert entries["tiny-vae.safetensors"].kind == "vae"
    control = entries["tiny-control.safetensors"]
    # the tiny UNet's text width (32) is narrower than SD 1.x's
    assert (control.kind, control.family, control.precision) == ("controlnet", "small", "fp16")
    # the malformed file and the pickle are listed, unusable, with why; the rest loaded
    assert entries["broken.safetensors"].kind == "unusable"
    assert "not a valid .safetensors file" in entries["broken.safetensors"].error
    assert "pickle" in entries["old.ckpt"].error
    assert "build" not in {Path(e.path).parent.name for e in entries.values()}


def test_a_diffusers_folder_is_one_checkpoint_and_one_without_weights_is_unusable(
    models, tmp_path: Path
) -> None:
    root, _ = models
    entries = {Path(e.path).name: e for e in scan([root / "build"], tmp_path / "c.json")}
    assert entries["diffusers"].kind == "checkpoint"
    assert entries["diffusers"].precision == "fp32"
    assert entries["config"].kind == "unusable"
    assert "without UNet weights" in entries["config"].error
    assert not any(name.endswith(".json") for name in entries)


def test_short_hash_is_a1111s_and_is_remembered_by_the_next_scan(models, tmp_path: Path) -> None:
    import hashlib

    root, files = models
    cache = tmp_path / "cache.json"
    entries = scan([root / "Stable-diffusion"], cache)
    assert all(e.short_hash == "" for e in entries)
    hashed = add_hashes(entries, cache)
    expected = hashlib.sha256(files["checkpoint"].read_bytes()).hexdigest()[:10]
    assert [e.short_hash for e in hashed if e.kind == "checkpoint"] == [expected]
    again = scan([root / "Stable-diffusion"], cache)
    assert [e.short_hash for e in again if e.kind == "checkpoint"] == [expected]


def test_a_second_scan_of_200_unchanged_files_reads_no_header(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "many"
    for i in range(100):
        save(foreign_lora(768 if i % 2 else 1024), folder / f"lora-{i:03}.safetensors")
        save(embedding(768, 1, i), folder / "emb" / f"emb-{i:03}.safetensors")
    cache = tmp_path / "cache.json"
    first = ScanStats()
    listed = scan([folder], cache, first)
    assert (first.files, first.inspected) == (200, 200)

    headers: list[Path] = []
    opened: list[str] = []
    real_read_header, real_open = library.read_header, io.open
    monkeypatch.setattr(library, "read_header", lambda p: headers.append(p) or real_read_header(p))

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(str(folder)):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr("builtins.open", counting_open)
    second = ScanStats()
    again = scan([folder], cache, second)
    assert (second.files, second.cached, second.inspected) == (200, 200, 0)
    assert headers == [] and opened == []
    assert again == listed

    # a file replaced since (new size and mtime) is read again; the others are not
    target = folder / "lora-007.safetensors"
    save(embedding(1024, 3, 7), target)
    os.utime(target, ns=(1, 1))
    third = ScanStats()
    changed = {e.path: e for e in scan([folder], cache, third)}
    assert third.inspected == 1 and headers == [target]
    assert changed[str(target)].kind == "embedding"


def test_a_damaged_cache_is_ignored(models, tmp_path: Path) -> None:
    root, _ = models
    cache = tmp_path / "cache.json"
    cache.write_text('{"version": 1, "files": {"x": 3}')
    stats = ScanStats()
    assert len(scan([root / "Lora"], cache, stats)) == 1
    assert stats.inspected == 1
    assert json.loads(cache.read_text())["version"] == 1


def test_standard_folders_of_a1111_and_comfyui(tmp_path: Path) -> None:
    a1111 = tmp_path / "webui"
    for sub in ("models/Stable-diffusion", "models/Lora", "embeddings", "models/VAE"):
        (a1111 / sub).mkdir(parents=True)
    assert standard_folders(a1111) == [
        a1111 / "models/Stable-diffusion",
        a1111 / "models/Lora",
        a1111 / "embeddings",
        a1111 / "models/VAE",
    ]
    comfy = tmp_path / "ComfyUI"
    for sub in ("checkpoints", "loras", "embeddings", "vae", "controlnet", "upscale_models"):
        (comfy / "models" / sub).mkdir(parents=True)
    expected = [comfy / "models" / s for s in ("embeddings", "checkpoints", "loras")]
    expected += [comfy / "models" / s for s in ("vae", "controlnet")]
    assert sorted(standard_folders(comfy)) == sorted(expected)
    assert sorted(standard_folders(comfy / "models")) == sorted(expected)
    assert standard_folders(tmp_path / "nothing") == []


def test_table_and_json_for_the_cli(models, tmp_path: Path) -> None:
    root, files = models
    entries = scan([root / "Stable-diffusion", root / "Lora"], tmp_path / "c.json")
    table = format_table(entries).splitlines()
    assert table[0].split()[:4] == ["kind", "name", "family", "pred"]
    ckpt_line = next(line for line in table if "tiny-sd1" in line)
    assert "SD 1.x" in ckpt_line and "512" in ckpt_line and "fp32" in ckpt_line
    bad_line = next(line for line in table if "broken" in line)
    assert bad_line.startswith("unusable") and "not a valid .safetensors" in bad_line
    data = json.loads(to_json(entries))
    by_name = {d["name"]: d for d in data}
    assert by_name["tiny-sd1"]["family"] == "sd1" and by_name["tiny-sd1"]["usable"] is True
    assert by_name["tiny-lora"]["kind"] == "lora"
    assert by_name["broken"]["usable"] is False and by_name["broken"]["error"]


def test_last_images_index(tmp_path: Path) -> None:
    index = tmp_path / "thumbs.json"
    library.remember_image("/m/a.safetensors", tmp_path / "1.png", index)
    library.remember_image("/m/b.safetensors", tmp_path / "2.png", index)
    library.remember_image("/m/a.safetensors", tmp_path / "3.png", index)
    assert library.last_images(index) == {
        "/m/b.safetensors": str(tmp_path / "2.png"),
        "/m/a.safetensors": str(tmp_path / "3.png"),
    }


def test_deleted_files_leave_the_cache_and_other_folders_stay(tmp_path: Path) -> None:
    one, two, cache = tmp_path / "one", tmp_path / "two", tmp_path / "cache.json"
    gone = save(foreign_lora(768), one / "gone.safetensors")
    save(foreign_lora(768), one / "kept.safetensors")
    save(embedding(768, 1, 0), two / "emb.safetensors")
    scan([one], cache)
    scan([two], cache)
    gone.unlink()
    assert [e.name for e in scan([one], cache)] == ["kept"]
    files = json.loads(cache.read_text())["files"]
    assert sorted(Path(k).name for k in files) == ["emb.safetensors", "kept.safetensors"]
    assert all(Path(k).is_absolute() for k in files)
