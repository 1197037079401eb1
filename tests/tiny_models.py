"""Tiny random Stable-Diffusion-shaped pipelines, built from configs and saved locally.

Like diffusers' own `get_dummy_components`: real components, random weights, seconds on a CPU,
never a hub download. The VAE has four blocks so its 8x compression matches real SD models.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TINY_NATIVE_SIZE = 64  # unet sample_size 8 x vae factor 8


def tiny_tokenizer(folder: Path) -> CLIPTokenizer:
    """A character-level CLIP BPE tokenizer: every letter is a token, there are no merges."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols:
        vocab[s] = len(vocab)
        vocab[s + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    # transformers 5 takes the vocabulary itself (vocab=, merges=), not file paths
    return CLIPTokenizer(
        vocab=vocab,
        merges=[],
        unk_token="<|endoftext|>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def tiny_components(seed: int = 0, unet_in_channels: int = 4, tmp: Path | None = None) -> dict:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=TINY_NATIVE_SIZE // 8,
        in_channels=unet_in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=16,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=TINY_NATIVE_SIZE,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    text_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=80,
        max_position_embeddings=77,
    )
    text_encoder = CLIPTextModel(text_config)
    tokenizer = tiny_tokenizer((tmp or Path("/tmp")) / f"tiny-tokenizer-{seed}")
    return {
        "unet": unet,
        "vae": vae,
        "scheduler": scheduler,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }


def save_tiny_pipeline(folder: Path, seed: int = 0, unet_in_channels: int = 4) -> Path:
    """Save a tiny SD pipeline as a diffusers folder (safetensors) and return its path."""
    parts = tiny_components(seed, unet_in_channels, tmp=folder.parent)
    pipe = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_controlnet(
    base: Path, folder: Path, seed: int = 0, cross_attention_dim: int | None = None
) -> Path:
    """A ControlNet for the tiny pipeline at `base` whose control map really steers the output.

    `cross_attention_dim` other than the base's makes one for another model family.
    """
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    if cross_attention_dim is not None:
        unet = UNet2DConditionModel.from_config(
            {**unet.config, "cross_attention_dim": cross_attention_dim}
        )
    controlnet = ControlNetModel.from_unet(unet)
    torch.manual_seed(seed)
    with torch.no_grad():
        # freshly made, the map embedding's output is ~99 % its biases (two maps differ by 1 %):
        # He-initialised convs without bias make it depend on the map, as a trained one does
        for conv in controlnet.controlnet_cond_embedding.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.normal_(0, (2 / conv.weight[0].numel()) ** 0.5)
                conv.bias.zero_()
        # and the zero convolutions must not be zero, or no map would change anything
        zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for module in [*zero_convs, controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.5)
    controlnet.save_pretrained(folder, safe_serialization=True)
    return folder
