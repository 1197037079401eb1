"""Configs of the demo model's components: Stable Diffusion's shapes, made small."""

from __future__ import annotations

from typing import Any

LATENT_CHANNELS = 4
LATENT_SIZE = 16  # 128 px / 8

VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[16, 32, 64, 64],
    layers_per_block=1,
    latent_channels=LATENT_CHANNELS,
    norm_num_groups=8,
    sample_size=128,
)

TEXT_HIDDEN = 128

UNET_CONFIG: dict[str, Any] = dict(
    sample_size=LATENT_SIZE,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    layers_per_block=1,
    block_out_channels=[64, 128, 128],
    # Attention only at 8x8 and 4x4 (and the mid block): at 16x16 it costs more than it
    # adds for five coarse positions.
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    cross_attention_dim=TEXT_HIDDEN,
    attention_head_dim=4,  # diffusers' name for the number of heads in SD-1 UNets
    norm_num_groups=32,
    # The attention-pooled prompt is added to the timestep embedding (as in Imagen), a direct
    # path for global attributes such as the background colour. It needs no extra inputs, so
    # the standard StableDiffusionPipeline runs it.
    addition_embed_type="text",
    addition_embed_type_num_heads=4,
)

# Stable Diffusion 1.x's noise schedule and timestep conventions, as SD's PNDM config has them
# (set_alpha_to_one is DDIM's final step, skip_prk_steps PNDM's); the app's samplers take these
# over (studio.engine.samplers.MODEL_SCHEDULE_KEYS).
SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    set_alpha_to_one=False,
    # DDIM and DDPM clip x0 to [-1, 1] by default, which is for pixel models: on latents it turns
    # the image into noisy texture (SD 1.5's own config says false as well)
    clip_sample=False,
    steps_offset=1,
    skip_prk_steps=True,
    timestep_spacing="leading",
)
# The scheduler the exported folder ships, what plain diffusers (DiffusionPipeline.from_pretrained)
# samples with: the app's default sampler, DPM++ 2M Karras, so it makes the app's images. SD's
# PNDM scored 74% colour, 42% shape on held-out captions at 20 steps (DPM++ 2M Karras 100%, 87%).
DEFAULT_SCHEDULER = "DPMSolverMultistepScheduler"
DEFAULT_SCHEDULER_CHOICES: dict[str, Any] = dict(
    algorithm_type="dpmsolver++",
    solver_order=2,
    solver_type="midpoint",
    lower_order_final=True,
    use_karras_sigmas=True,
    final_sigmas_type="zero",
)


def shipped_scheduler_config(**facts: Any) -> dict[str, Any]:
    """scheduler_config.json as shipped: SD's schedule facts (and `facts`), the default's choices.

    Only the keys that say something, and strict JSON: a saved DPMSolverMultistepScheduler would
    also write every default, lambda_min_clipped as -Infinity.
    """
    return {
        "_class_name": DEFAULT_SCHEDULER,
        **SCHEDULER_CONFIG,
        "trained_betas": None,
        **facts,
        **DEFAULT_SCHEDULER_CHOICES,
    }


# The training noise schedule: the same betas and prediction type.
TRAIN_SCHEDULE: dict[str, Any] = {
    k: SCHEDULER_CONFIG[k]
    for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type")
}


def text_config(vocab_size: int, bos_id: int, eos_id: int) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TEXT_HIDDEN,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_unet(pooled_text: bool = True):
    import torch
    from diffusers import UNet2DConditionModel

    config = dict(UNET_CONFIG)
    if not pooled_text:
        del config["addition_embed_type"], config["addition_embed_type_num_heads"]
    unet = UNet2DConditionModel(**config)
    if pooled_text:  # starts as a no-op, so it can also be added to a trained UNet
        torch.nn.init.zeros_(unet.add_embedding.norm2.weight)
        torch.nn.init.zeros_(unet.add_embedding.norm2.bias)
    return unet


def build_text_encoder(vocab_size: int, bos_id: int, eos_id: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**text_config(vocab_size, bos_id, eos_id)))
