"""Every add-on a job uses is carried in the saved image (PNG, JPEG, WebP; our recipe and
A1111's text) with its A1111 hash, read back from A1111 text and ComfyUI graphs, and an
imported image says which add-ons the user lacks."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image

from studio.engine import metadata as md
from studio.engine.addons.refs import AddonRef, missing_addons
from studio.engine.request import GenerationRequest
from tests.engine import addon_files

# A1111's infotext_utils.re_param, used here as an independent parser
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_fields(text: str) -> dict[str, str]:
    last = text.strip().split("\n")[-1]
    return {k: json.loads(v) if v.startswith('"') else v for k, v in RE_PARAM.findall(last)}


def addnet(path: Path) -> str:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n :]).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def addons(tmp_path):
    lora_dir, emb_dir, vae_dir = tmp_path / "loras", tmp_path / "emb", tmp_path / "vae"
    w = {"lora_unet_x_attn2_to_k.lora_down.weight": torch.ones(2, 32)}
    files = {
        "inky": addon_files.save(w, lora_dir / "inky.safetensors"),
        "signed": addon_files.save(
            {"lora_unet_y.lora_down.weight": torch.zeros(2, 32)},
            lora_dir / "signed.safetensors",
            {"sshs_model_hash": "abcdef0123456789" * 4},
        ),
        "zqx": addon_files.save(addon_files.embedding(32, 2, 1), emb_dir / "zqx.safetensors"),
        "vae": addon_files.save(
            {"encoder.conv_in.weight": torch.ones(1)}, vae_dir / "v.safetensors"
        ),
    }
    request = GenerationRequest(
        prompt="a zqx circle <lora:inky:0.8> <lora:signed:0.5:0.25>",
        negative_prompt="blurry",
        seed=42,
        steps=6,
        lora_dirs=(str(lora_dir),),
        embedding_dirs=(str(emb_dir),),
        vae="v",
        vae_dirs=(str(vae_dir),),
    )
    expected = [
        AddonRef("lora", "inky", addnet(files["inky"])[:12]),
        AddonRef("lora", "signed", "abcdef012345"),
        AddonRef("embedding", "zqx", sha256(files["zqx"])[:12]),
        AddonRef("vae", "v.safetensors", sha256(files["vae"])[:10]),
    ]
    return request, expected, (lora_dir, emb_dir, vae_dir)


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_every_addon_round_trips_through_the_image(tmp_path, addons, fmt):
    request, expected, _ = addons
    path = md.write_image(
        tmp_path / f"out.{fmt}", Image.new("RGB", (64, 64)), request, model_name="m", model_hash=""
    )
    result = md.read_settings(path)
    assert result.source == "studio"
    assert result.request == request  # tags in the prompt, folders and VAE as they were
    assert result.addons == expected

    # the A1111 text inside the file, read by A1111's own regex
    fields = a1111_fields(result.raw_parameters)
    assert fields["Lora hashes"] == f"inky: {expected[0].hash}, signed: abcdef012345"
    assert fields["TI hashes"] == f"zqx: {expected[2].hash}"
    assert (fields["VAE"], fields["VAE hash"]) == ("v.safetensors", expected[3].hash)
    assert result.raw_parameters.startswith(request.prompt)

    # and our A1111 reader gets the same add-ons from that text alone
    from_text = md.read_a1111_text(result.raw_parameters)
    assert from_text.addons == expected
    assert from_text.request.prompt == request.prompt
    assert from_text.request.vae == "v.safetensors"
    assert "Lora hashes" not in from_text.unmapped


def test_an_imported_image_lists_every_addon_the_user_lacks(tmp_path, addons):
    request, expected, (lora_dir, emb_dir, vae_dir) = addons
    text = md.a1111_parameters(request, model_name="m", model_hash="")
    result = md.read_a1111_text(text)
    assert missing_addons(result, [lora_dir], [emb_dir], [vae_dir]) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    missing = missing_addons(result, [empty], [empty], [empty])
    assert [(m.kind, m.name, m.hash) for m in missing] == [
        (r.kind, r.name, r.hash) for r in expected
    ]
    assert missing[0].message() == f"LoRA 'inky' ({expected[0].hash}) is not in your LoRA folders."

    # another file under the same name is another version
    other = tmp_path / "other"
    addon_files.save(
        {"lora_unet_x.lora_down.weight": torch.zeros(2, 3)}, other / "inky.safetensors"
    )
    (changed,) = [m for m in missing_addons(result, [other, lora_dir]) if m.kind == "lora"]
    assert changed.name == "inky" and changed.yours and changed.yours != changed.hash


# ComfyUI API graph: checkpoint -> LoraLoader (style) -> LoraLoaderModelOnly (detail) -> KSampler
COMFY_TWO_LORAS = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "2": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "styles\\style.safetensors",
            "strength_model": 0.8,
            "strength_clip": 0.6,
            "model": ["1", 0],
            "clip": ["1", 1],
        },
    },
    "3": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "detail.safetensors",
            "strength_model": 0.5,
            "strength_clip": 0.5,
            "model": ["2", 0],
            "clip": ["2", 1],
        },
    },
    "4": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a castle, embedding:zqx.pt", "clip": ["3", 1]},
    },
    "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["3", 1]}},
    "6": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 512, "batch_size": 1},
    },
    "7": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 5,
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["3", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "latent_image": ["6", 0],
        },
    },
    "8": {"class_type": "VAELoader", "inputs": {"vae_name": "ft-mse.safetensors"}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["8", 0]}},
}


def test_a_comfyui_graph_with_two_lora_loaders_maps_with_nothing_unmapped(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", json.dumps(COMFY_TWO_LORAS))
    path = tmp_path / "comfy.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    result = md.read_settings(path)
    assert result.source == "comfyui"
    assert result.unmapped == {}
    r = result.request
    assert r.prompt == "a castle, zqx <lora:style:0.6:0.8> <lora:detail:0.5>"
    assert r.vae == "ft-mse.safetensors"
    assert result.addons == [
        AddonRef("lora", "style"),
        AddonRef("lora", "detail"),
        AddonRef("embedding", "zqx"),
        AddonRef("vae", "ft-mse.safetensors"),
    ]


def test_a_request_with_addon_folders_round_trips_through_json(addons):
    request, _, _ = addons
    again = GenerationRequest.from_json(request.to_json())
    assert again == request
    assert isinstance(again.lora_dirs, tuple) and hash(again) == hash(request)
