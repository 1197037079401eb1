"""tests/ldm_layout.py writes real original-layout (LDM/SGM) single files: diffusers is the judge.

Each tiny model is written twice, as a diffusers folder and as an A1111-style single file; loading
the file with diffusers' own converter (``from_single_file`` with the tiny config folder, offline,
tokenizers passed as keywords as the studio's loader does) must give back every weight bit for bit
and the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders.single_file_utils import infer_diffusers_model_type
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.ldm_layout import FAMILIES, TinySingleFile, ddpm_buffers, write_tiny_single_file

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
Writer = Callable[[str, bool], TinySingleFile]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Writer:
    """Writes each (family, fp16) once per module."""
    cache: dict[tuple[str, bool], TinySingleFile] = {}

    def get(family: str, fp16: bool = False) -> TinySingleFile:
        if (family, fp16) not in cache:
            folder = tmp_path_factory.mktemp(f"{family}-{'fp16' if fp16 else 'fp32'}")
            cache[family, fp16] = write_tiny_single_file(family, folder, fp16=fp16)
        return cache[family, fp16]

    return get


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _from_single_file(tiny: TinySingleFile, path: Path | None = None) -> DiffusionPipeline:
    return tiny.pipeline_class.from_single_file(str(path or tiny.path), **tiny.single_file_kwargs())


def _mismatches(expected: DiffusionPipeline, loaded: DiffusionPipeline, fp16: bool) -> list[str]:
    """Names of weights that differ (missing, extra, wrong shape or value, still on meta)."""
    bad: list[str] = []
    for name in COMPONENTS:
        if not hasattr(expected, name):
            continue
        want = getattr(expected, name).state_dict()
        got = getattr(loaded, name).state_dict()
        bad += [f"{name}: extra {k}" for k in got.keys() - want.keys()]
        for key, value in want.items():
            if key not in got:
                bad.append(f"{name}: missing {key}")
                continue
            other = got[key]
            if other.is_meta or other.shape != value.shape:
                bad.append(f"{name}: {key} {tuple(other.shape)} meta={other.is_meta}")
                continue
            if fp16 and value.is_floating_point():
                value = value.half()  # what the file holds
            if not torch.equal(other.to(value.dtype), value):
                bad.append(f"{name}: {key} differs")
    return bad


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_weight_comes_back(tiny_file: Writer, family: str, fp16: bool) -> None:
    tiny = tiny_file(family, fp16)
    expected = tiny.pipeline_class.from_pretrained(tiny.diffusers)
    loaded = _from_single_file(tiny)
    assert type(loaded) is tiny.pipeline_class
    assert _mismatches(expected, loaded, fp16) == []


def _generate(pipe: DiffusionPipeline, family: str) -> np.ndarray:
    extra: dict[str, object] = {}
    if family == "sd1-inpaint":
        gradient = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        extra = {"image": Image.fromarray(gradient), "mask_image": Image.fromarray(mask)}
    return pipe(
        "a photo of a cat",
        negative_prompt="blurry",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
        **extra,
    ).images


def _fresh_memory(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """Copy every weight into freshly allocated memory.

    ``from_pretrained`` maps safetensors files zero-copy, so a weight may start at an address not
    64-byte aligned, and BLAS then takes another (last-bit different) path: equal weights would
    give pixels differing by ~1e-6 (seen with bigG's text_projection).
    """
    for name in COMPONENTS:
        module = getattr(pipe, name, None)
        if module is not None:
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor.data = tensor.data.clone()
    return pipe


@pytest.mark.parametrize("family", FAMILIES)
def test_same_pixels(tiny_file: Writer, family: str) -> None:
    tiny = tiny_file(family, False)
    expected = _generate(_fresh_memory(tiny.pipeline_class.from_pretrained(tiny.diffusers)), family)
    got = _generate(_fresh_memory(_from_single_file(tiny)), family)
    assert expected.shape == (1, 64, 64, 3)
    assert expected.std() > 0.01  # a real picture, not a flat one that any weights would give
    np.testing.assert_array_equal(got, expected)


def test_the_check_catches_a_wrong_mapping(tiny_file: Writer, tmp_path: Path) -> None:
    """Swapping two same-shaped tensors of the file (VAE attention q and k) must be noticed."""
    tiny = tiny_file("sd1", False)
    sd = load_file(tiny.path)
    q, k = (
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "first_stage_model.encoder.mid.attn_1.k.weight",
    )
    sd[q], sd[k] = sd[k], sd[q]
    broken = tmp_path / "broken.safetensors"
    save_file(sd, broken)
    loaded = _from_single_file(tiny, broken)
    expected = tiny.pipeline_class.from_pretrained(tiny.diffusers)
    assert sorted(_mismatches(expected, loaded, False)) == [
        "vae: encoder.mid_block.attentions.0.to_k.weight differs",
        "vae: encoder.mid_block.attentions.0.to_q.weight differs",
    ]


# what diffusers' own detection makes of each tiny file; SD 2 is told by a 1024-wide
# cross-attention, which no tiny model has, so a loader must be told SD 2 (or look at the
# OpenCLIP keys, as tiny files have them)
DETECTED = {"sd1": "v1", "sd1-inpaint": "inpainting", "sd2": "v1", "sdxl": "xl_base"}


@pytest.mark.parametrize("family", FAMILIES)
def test_file_carries_what_real_files_carry(tiny_file: Writer, family: str) -> None:
    tiny = tiny_file(family, True)
    sd = load_file(tiny.path)
    assert infer_diffusers_model_type(sd) == DETECTED[family]
    unet_in = sd["model.diffusion_model.input_blocks.0.0.weight"]
    assert unet_in.dtype == torch.float16
    assert unet_in.shape[1] == (9 if family == "sd1-inpaint" else 4)
    # ldm's AttnBlock: q/k/v/proj_out are 1x1 convs
    assert sd["first_stage_model.decoder.mid.attn_1.proj_out.weight"].ndim == 4
    assert "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight" in sd
    assert "first_stage_model.post_quant_conv.weight" in sd
    assert (
        "model.diffusion_model.out.2.weight" in sd
        and "model.diffusion_model.time_embed.2.bias" in sd
    )

    if family == "sdxl":
        assert "model.diffusion_model.label_emb.0.0.weight" in sd
        assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in sd
        position_ids = sd["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"]
        assert torch.equal(position_ids, torch.arange(77)[None])
        bigg = "conditioner.embedders.1.model."
        assert sd[bigg + "ln_final.weight"].shape == (64,)
        # OpenCLIP multiplies x @ text_projection: (width, embed), diffusers' Linear is (embed, width)
        assert sd[bigg + "text_projection"].shape == (64, 48)
        assert sd[bigg + "transformer.resblocks.9.attn.in_proj_weight"].shape == (3 * 64, 64)
        # SGM files have no DDPM buffers and no EMA
        assert "alphas_cumprod" not in sd and not any(k.startswith("model_ema.") for k in sd)
        return

    assert not any(k.startswith("conditioner.") for k in sd)
    buffers = ddpm_buffers()
    for name, value in buffers.items():
        assert sd[name].dtype == torch.float32 and torch.equal(sd[name], value), name
    scheduler = tiny.pipeline_class.from_pretrained(tiny.diffusers).scheduler
    torch.testing.assert_close(sd["alphas_cumprod"], scheduler.alphas_cumprod, rtol=1e-5, atol=1e-7)
    assert sd["model_ema.decay"].dtype == torch.float32
    assert sd["model_ema.num_updates"].dtype == torch.int32
    assert torch.equal(
        sd["model_ema.diffusion_modelinput_blocks00weight"],
        sd["model.diffusion_model.input_blocks.0.0.weight"],
    )
    if family == "sd2":
        assert not any(k.startswith("cond_stage_model.transformer.") for k in sd)
        text = "cond_stage_model.model."
        assert sd[text + "positional_embedding"].shape == (77, 32)
        assert sd[text + "text_projection"].shape == (32, 24)
        # 3 layers in diffusers' CLIPTextModel, 4 OpenCLIP blocks in the file (real: 23 and 24)
        blocks = {k.split(".")[4] for k in sd if k.startswith(text + "transformer.resblocks.")}
        assert blocks == {"0", "1", "2", "3"}
        assert sd[text + "transformer.resblocks.3.mlp.c_fc.weight"].shape == (128, 32)
    else:
        position_ids = sd["cond_stage_model.transformer.text_model.embeddings.position_ids"]
        assert torch.equal(position_ids, torch.arange(77)[None])  # int64, 1x77
