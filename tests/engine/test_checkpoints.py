"""Recognising single files from their header: every SD family, the files that are not
checkpoints, and hostile files (malformed headers, devices, pipes) that must not hang or crash."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.engine.checkpoints import FIRST_CONV, read_header, recognise

TE1 = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
# the real key names and the shapes that tell families apart; other tensors are left out
FILES: dict[str, dict[str, tuple[int, ...]]] = {
    "sd15": {FIRST_CONV: (320, 4, 3, 3), TE1: (77, 768)},
    "sd15-inpainting": {FIRST_CONV: (320, 9, 3, 3), TE1: (77, 768)},
    "sd21": {
        FIRST_CONV: (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (
            320,
            1024,
        ),
        "cond_stage_model.model.ln_final.weight": (1024,),
    },
    "sd2-inpainting": {
        FIRST_CONV: (320, 9, 3, 3),
        "cond_stage_model.model.ln_final.weight": (1024,),
    },
    "sdxl-base": {
        FIRST_CONV: (320, 4, 3, 3),
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
        "conditioner.embedders.1.model.ln_final.weight": (1280,),
    },
    "sdxl-inpainting": {
        FIRST_CONV: (320, 9, 3, 3),
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
        "conditioner.embedders.1.model.ln_final.weight": (1280,),
    },
    "sdxl-refiner": {
        FIRST_CONV: (384, 4, 3, 3),
        "conditioner.embedders.0.model.ln_final.weight": (1280,),
    },
}


def _write(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


def _recognise(tmp_path: Path, shapes: dict[str, tuple[int, ...]]):
    path = _write(tmp_path / "model.safetensors", shapes)
    return recognise(read_header(path), path.name)


@pytest.mark.parametrize(
    ("name", "family", "config", "inpaint", "prediction", "native"),
    [
        ("sd15", "sd1", "sd15", False, "epsilon", 512),
        ("sd15-inpainting", "sd1", "sd15-inpainting", True, "epsilon", 512),
        ("sd21", "sd2", "sd21-v", False, None, 768),  # None: the UNet probe decides
        ("sd2-inpainting", "sd2", "sd2-inpainting", True, "epsilon", 512),
        ("sdxl-base", "sdxl", "sdxl-base", False, "epsilon", 1024),
        ("sdxl-inpainting", "sdxl", "sdxl-inpainting", True, "epsilon", 1024),
        ("sdxl-refiner", "sdxl", "sdxl-refiner", False, "epsilon", 1024),
    ],
)
def test_every_family_is_recognised_from_its_keys(
    tmp_path, name, family, config, inpaint, prediction, native
):
    found = _recognise(tmp_path, FILES[name])
    assert (found.family, found.config, found.inpaint) == (family, config, inpaint)
    assert (found.prediction_type, found.native_size) == (prediction, native)
    assert found.refiner == (name == "sdxl-refiner")


def test_v_prediction_and_zero_snr_keys_of_community_files(tmp_path):
    found = _recognise(tmp_path, {**FILES["sdxl-base"], "v_pred": (), "ztsnr": ()})
    assert (found.prediction_type, found.zero_snr) == ("v_prediction", True)
    found = _recognise(tmp_path, {**FILES["sd21"], "v_pred": ()})
    assert found.prediction_type == "v_prediction"  # no probe needed


@pytest.mark.parametrize(
    ("shapes", "what"),
    [
        (
            {
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320),
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (320, 4),
                "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": (),
            },
            "a LoRA",
        ),
        ({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": (4, 320)}, "a LoRA"),
        ({"lora_unet_mid_block_attentions_0_proj_in.hada_w1_a": (320, 4)}, "a LoRA"),
        (
            {
                "encoder.conv_in.weight": (128, 3, 3, 3),
                "quant_conv.weight": (8, 8, 1, 1),
                "decoder.conv_out.weight": (3, 128, 3, 3),
            },
            "a VAE",
        ),
        ({"emb_params": (2, 768)}, "a textual-inversion embedding"),
        ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "a textual-inversion embedding"),
        (
            {
                "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
                "control_model.time_embed.0.weight": (1280, 320),
            },
            "a ControlNet",
        ),
        (
            {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": (9,)},
            "an SD 3 model",
        ),
        ({"double_blocks.0.img_attn.norm.key_norm.scale": (128,)}, "a Flux model"),
        ({"clip_txt_mapper.weight": (4, 4)}, "a Stable Cascade model"),
        ({**FILES["sdxl-base"], "edm_mean": (1, 4, 1, 1)}, "a Playground v2.5 model"),
    ],
)
def test_files_that_are_no_checkpoint_are_named(tmp_path, shapes, what):
    with pytest.raises(ValueError, match=f"is {what}, not a Stable Diffusion checkpoint"):
        _recognise(tmp_path, shapes)


def test_other_unets_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="InstructPix2Pix"):
        _recognise(tmp_path, {FIRST_CONV: (320, 8, 3, 3), TE1: (77, 768)})
    with pytest.raises(ValueError, match="no text encoder"):
        _recognise(tmp_path, {FIRST_CONV: (320, 4, 3, 3)})
    with pytest.raises(ValueError, match="no UNet"):
        _recognise(tmp_path, {"some.tensor": (3,)})


def _raw(path: Path, header: object, declared: int | None = None, body: bytes = b"") -> Path:
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data) if declared is None else declared) + data + body)
    return path


@pytest.mark.parametrize(
    ("header", "declared"),
    [
        ([1, 2, 3], None),  # a JSON list, not a table
        ({"w": {"dtype": "F16", "shape": "3", "data_offsets": [0, 2]}}, None),  # no list
        ({"w": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}, None),  # negative
        ({"w": "not an entry"}, None),
        ({"w": {"dtype": "F16", "shape": [1]}}, 10**12),  # claims more than the file holds
    ],
)
def test_malformed_headers_give_a_message(tmp_path, header, declared):
    path = _raw(tmp_path / "bad.safetensors", header, declared)
    with pytest.raises(ValueError, match="bad.safetensors is not a valid .safetensors file"):
        read_header(path)


def test_short_and_empty_files_give_a_message(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="too short"):
        read_header(empty)
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 20)
    with pytest.raises(ValueError, match="not a valid"):
        read_header(tmp_path / "garbage.safetensors")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_a_pipe_or_a_link_to_a_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_header(fifo)  # opening a FIFO with no writer would block forever
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="not a regular file"):
        read_header(link)  # /dev/zero would feed an endless header
    with pytest.raises(ValueError, match="Cannot read"):
        read_header(tmp_path / "missing.safetensors")
