"""What a model reference means: a path never goes to the network, a hub id only when allowed,
and a file that is no checkpoint is named before any pipeline is built."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.cli import main
from studio.engine.models import looks_like_hub_id, resolve_model


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[object]:
    attempts: list[object] = []

    def blocked(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    return attempts


def test_path_like_references_are_never_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert looks_like_hub_id("stabilityai/stable-diffusion-2-1")
    assert not looks_like_hub_id("models/mine")  # models/ is a folder here: a mistyped path
    assert not looks_like_hub_id("./a/b") and not looks_like_hub_id("~/a")
    assert not looks_like_hub_id("someone/model.safetensors")
    with pytest.raises(ValueError, match="Model not found: 'models/mine'"):
        resolve_model("models/mine")


def test_an_uncached_hub_id_is_not_downloaded_unless_allowed(
    tiny_model, tmp_path, capsys, no_network
):
    code = main(
        ["generate", "-m", "someone/some-model", "-p", "x", "--outdir", str(tmp_path), "-q"]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "not downloaded yet" in err and "--allow-download" in err
    assert no_network == []  # not even a connection attempt
    assert list(tmp_path.iterdir()) == []


def test_a_lora_given_as_a_model_is_named_and_nothing_runs(tmp_path, capsys):
    lora = tmp_path / "detail-tweaker.safetensors"
    save_file(
        {"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": np.zeros((4, 8), np.float16)},
        str(lora),
    )
    code = main(["generate", "-m", str(lora), "-p", "x", "--outdir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "detail-tweaker.safetensors is a LoRA" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_bad_file_never_breaks_a_folder_scan(tmp_path, tiny_model):
    import os
    import shutil

    from studio.engine.models import find_models
    from tests.engine.test_checkpoints import FILES, _write

    _write(tmp_path / "good-sd15.safetensors", FILES["sd15"])
    _write(tmp_path / "good-xl.safetensors", FILES["sdxl-base"])
    shutil.copytree(tiny_model, tmp_path / "tiny-folder")
    (tmp_path / "truncated.safetensors").write_bytes(b"\x10\x00")
    _write(tmp_path / "a-lora.safetensors", {"x.lora_down.weight": (4, 8)})
    os.mkfifo(tmp_path / "pipe.safetensors")  # would block a naive open forever
    (tmp_path / "zero.safetensors").symlink_to("/dev/zero")
    found = {m.name: m.family for m in find_models([tmp_path])}
    assert found == {"good-sd15": "sd1", "good-xl": "sdxl", "tiny-folder": "small"}


@pytest.mark.parametrize("component", ["vae", "unet", "text_encoder"])
def test_a_malformed_config_in_a_folder_gives_a_message(tmp_path, tiny_model, capsys, component):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / component / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=f"{component}/config.json is corrupt"):
        resolve_model(str(folder))
    code = main(["generate", "-m", str(folder), "-p", "x", "--outdir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "is corrupt" in err and err.count("\n") == 1


def test_regenerate_names_the_hub_model_it_needs_and_stays_offline(tmp_path, capsys, no_network):
    from PIL import Image

    from studio.engine.metadata import write_image
    from studio.engine.request import GenerationRequest

    request = GenerationRequest(model="someone/sd-model", prompt="a castle", width=64, height=64)
    image = Image.new("RGB", (64, 64))
    path = write_image(tmp_path / "hub.png", image, request, model_name="sd-model", model_hash="")
    code = main(["regenerate", str(path), "-o", str(tmp_path / "again.png")])
    err = capsys.readouterr().err
    assert code == 1 and "someone/sd-model" in err and "not downloaded yet" in err
    assert no_network == [] and not (tmp_path / "again.png").exists()
