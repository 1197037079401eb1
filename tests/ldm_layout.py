"""Tiny random SD 1.x / SD 2.x / SDXL models written as ORIGINAL single files (LDM/SGM layout).

A1111 and ComfyUI checkpoints are one ``.safetensors`` in the layout of the training code
(CompVis ``ldm`` for SD 1/2, Stability's ``sgm`` for SDXL), not diffusers folders. Tests of an
offline single-file loader need such files without downloading gigabytes, so this module builds a
tiny random diffusers pipeline and writes its weights back into that layout.

The mapping below is written from the original layout's own structure (``openaimodel.UNetModel``'s
``input_blocks``/``middle_block``/``output_blocks``, ``ldm``'s ``Encoder``/``Decoder``, HF CLIP for
CLIP-L and OpenCLIP's ``TextTransformer``), NOT derived from diffusers' conversion tables: diffusers'
own single-file converter is then an independent judge (``tests/engine/test_ldm_layout.py``).

``write_tiny_single_file(family, folder)`` writes, for ``family`` in :data:`FAMILIES`:

- ``folder/diffusers/``: the tiny pipeline as a diffusers folder, with weights and tokenizers;
- ``folder/config/``: the same configs without weights or tokenizer folders, shaped like
  ``resources/configs/<name>`` (what ``from_single_file(config=...)`` needs);
- ``folder/<family>.safetensors``: the single file in the original layout.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.engine.configs import config_dir, tokenizers_for

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

FAMILIES: tuple[str, ...] = ("sd1", "sd1-inpaint", "sd2", "sdxl")

# the shipped config folder each family's file would be loaded with (tokenizers, scheduler)
CONFIG_NAMES: dict[str, str] = {
    "sd1": "sd15",
    "sd1-inpaint": "sd15-inpainting",
    "sd2": "sd21-v",
    "sdxl": "sdxl-base",
}

PIPELINES: dict[str, type[DiffusionPipeline]] = {
    "sd1": StableDiffusionPipeline,
    "sd1-inpaint": StableDiffusionInpaintPipeline,
    "sd2": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
}

TINY_SIZE = 64  # UNet sample_size 8 x VAE factor 8
CLIP_VOCAB = 49408  # the shipped CLIP tokenizer's ids go up to 49407
CLIP_POSITIONS = 77
# LDM's DDPM schedule of SD 1.x/2.x (``linear_start``/``linear_end`` of v1-inference.yaml)
LINEAR_START, LINEAR_END, TIMESTEPS = 0.00085, 0.012, 1000
OPENCLIP_LOGIT_SCALE = math.log(1 / 0.07)  # OpenCLIP's initial logit_scale, kept in the files


@dataclass(frozen=True)
class TinySingleFile:
    """What :func:`write_tiny_single_file` wrote."""

    family: str  # "sd1", "sd1-inpaint", "sd2" or "sdxl"
    path: Path  # the single file in the original layout
    diffusers: Path  # the same model as a diffusers folder (weights + tokenizers)
    config: Path  # configs only, shaped like resources/configs/<config_name>
    config_name: str  # the shipped config folder for tokenizers (sd15, sd21-v, sdxl-base, ...)
    pipeline_class: type[DiffusionPipeline]
    fp16: bool

    def tokenizers(self) -> dict[str, object]:
        """Fresh ``tokenizer=`` (and ``tokenizer_2=``) objects, as the loader passes them."""
        return dict(tokenizers_for(self.config_name))

    def single_file_kwargs(self) -> dict[str, object]:
        """``from_single_file`` keywords for this tiny model: its own config folder, offline."""
        return {"config": str(self.config), "local_files_only": True, **self.tokenizers()}


# --------------------------------------------------------------------------------------------
# UNet: diffusers UNet2DConditionModel -> openaimodel.UNetModel (``model.diffusion_model.``)
# --------------------------------------------------------------------------------------------

# ResBlock inside the original: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, Linear],
# out_layers = [GroupNorm, SiLU, Dropout, conv]; the Sequential indices are what the files carry
_UNET_RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _unet_prefixes(config: dict) -> list[tuple[str, str, bool]]:
    """(diffusers prefix, original prefix, is a ResBlock) for every module of the UNet.

    The original UNet is flat: ``input_blocks`` holds conv_in, then per level ``layers_per_block``
    [ResBlock, SpatialTransformer?] pairs and (all levels but the last) one Downsample; the
    ``output_blocks`` hold ``layers_per_block + 1`` [ResBlock, SpatialTransformer?, Upsample?]
    per level, deepest level first (the same order as diffusers' ``up_blocks``).
    """
    n = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    out: list[tuple[str, str, bool]] = [
        ("conv_in.", "input_blocks.0.0.", False),
        ("time_embedding.linear_1.", "time_embed.0.", False),  # Sequential(Linear, SiLU, Linear)
        ("time_embedding.linear_2.", "time_embed.2.", False),
        # SDXL's adm: label_emb = Sequential(Sequential(Linear, SiLU, Linear))
        ("add_embedding.linear_1.", "label_emb.0.0.", False),
        ("add_embedding.linear_2.", "label_emb.0.2.", False),
        ("conv_norm_out.", "out.0.", False),  # out = Sequential(GroupNorm, SiLU, conv)
        ("conv_out.", "out.2.", False),
        ("mid_block.resnets.0.", "middle_block.0.", True),
        ("mid_block.attentions.0.", "middle_block.1.", False),
        ("mid_block.resnets.1.", "middle_block.2.", True),
    ]
    index = 1
    for level in range(levels):
        for j in range(n):
            out.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{index}.0.", True))
            out.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{index}.1.", False))
            index += 1
        if level < levels - 1:  # Downsample(conv) is alone in its TimestepEmbedSequential
            out.append(
                (f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{index}.0.op.", False)
            )
            index += 1
    index = 0
    for level, block_type in enumerate(config["up_block_types"]):
        has_attention = block_type.startswith("CrossAttn")
        for j in range(n + 1):
            out.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{index}.0.", True))
            out.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{index}.1.", False))
            if j == n and level < levels - 1:
                # the Upsample follows the ResBlock (and the transformer, if any) of the last layer
                slot = 2 if has_attention else 1
                out.append(
                    (
                        f"up_blocks.{level}.upsamplers.0.conv.",
                        f"output_blocks.{index}.{slot}.conv.",
                        False,
                    )
                )
            index += 1
    return out


def unet_to_ldm(state_dict: StateDict, config: dict) -> StateDict:
    """diffusers UNet weights -> openaimodel keys (without the ``model.diffusion_model.`` prefix).

    The transformers (``proj_in``, ``transformer_blocks.N.attn1.to_q``, ``ff.net.0.proj``, ...) have
    the same names and shapes in both (1x1 conv ``proj_in``/``proj_out`` unless
    ``use_linear_projection``, as ``use_linear_in_transformer`` in the original).
    """
    prefixes = sorted(_unet_prefixes(config), key=lambda p: -len(p[0]))
    out: StateDict = {}
    for key, value in state_dict.items():
        for new, old, is_resnet in prefixes:
            if key.startswith(new):
                rest = key[len(new) :]
                if is_resnet:
                    module, _, leaf = rest.partition(".")
                    rest = f"{_UNET_RESNET_NAMES[module]}.{leaf}"
                out[old + rest] = value
                break
        else:
            raise KeyError(f"no original name for UNet weight {key}")
    return out


# --------------------------------------------------------------------------------------------
# VAE: diffusers AutoencoderKL -> ldm AutoencoderKL (``first_stage_model.``)
# --------------------------------------------------------------------------------------------

_VAE_ATTENTION_NAMES = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _vae_prefixes(config: dict) -> list[tuple[str, str, str]]:
    """(diffusers prefix, original prefix, kind) for every VAE module; kind: resnet/attn/other.

    The original decoder's ``up`` list is indexed from the highest resolution (``up.0`` is the
    last to run), diffusers' ``up_blocks`` in running order: up_blocks.i == up.(levels-1-i).
    """
    levels = len(config["block_out_channels"])
    n = config["layers_per_block"]
    out: list[tuple[str, str, str]] = []
    for part in ("encoder", "decoder"):
        out += [
            (f"{part}.conv_in.", f"{part}.conv_in.", "other"),
            (f"{part}.conv_norm_out.", f"{part}.norm_out.", "other"),
            (f"{part}.conv_out.", f"{part}.conv_out.", "other"),
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", "resnet"),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", "resnet"),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", "attn"),
        ]
    for i in range(levels):
        for j in range(n):
            out.append(
                (f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", "resnet")
            )
        out.append(
            (
                f"encoder.down_blocks.{i}.downsamplers.0.conv.",
                f"encoder.down.{i}.downsample.conv.",
                "other",
            )
        )
        up = levels - 1 - i
        for j in range(n + 1):
            out.append(
                (f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}.", "resnet")
            )
        out.append(
            (
                f"decoder.up_blocks.{i}.upsamplers.0.conv.",
                f"decoder.up.{up}.upsample.conv.",
                "other",
            )
        )
    out += [
        ("quant_conv.", "quant_conv.", "other"),
        ("post_quant_conv.", "post_quant_conv.", "other"),
    ]
    return out


def vae_to_ldm(state_dict: StateDict, config: dict) -> StateDict:
    """diffusers VAE weights -> ldm keys (without ``first_stage_model.``).

    The original mid-block attention (``AttnBlock``) uses 1x1 convs for q/k/v/proj_out: 4-D
    weights where diffusers has Linear layers.
    """
    prefixes = sorted(_vae_prefixes(config), key=lambda p: -len(p[0]))
    out: StateDict = {}
    for key, value in state_dict.items():
        for new, old, kind in prefixes:
            if key.startswith(new):
                rest = key[len(new) :]
                if kind == "resnet":
                    rest = rest.replace("conv_shortcut.", "nin_shortcut.")
                elif kind == "attn":
                    module, leaf = rest.rsplit(".", 1)
                    rest = f"{_VAE_ATTENTION_NAMES[module]}.{leaf}"
                    if value.ndim == 2:
                        value = value[:, :, None, None]
                out[old + rest] = value
                break
        else:
            raise KeyError(f"no original name for VAE weight {key}")
    return out


# --------------------------------------------------------------------------------------------
# Text encoders
# --------------------------------------------------------------------------------------------


def _text_model_keys(state_dict: StateDict) -> StateDict:
    """Keys as ``text_model.…`` (transformers >= 5.6 flattened CLIPTextModel's state dict)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith(("text_model.", "text_projection.")):
            out[key] = value
        else:
            out["text_model." + key] = value
    return out


def clip_to_hf_layout(state_dict: StateDict) -> StateDict:
    """CLIP-L as the files carry it: transformers' CLIPTextModel keys (``text_model.…``) plus the
    ``embeddings.position_ids`` buffer that transformers of 2022 saved (int64, 1x77)."""
    out = _text_model_keys(state_dict)
    out["text_model.embeddings.position_ids"] = torch.arange(CLIP_POSITIONS)[None]
    return out


# OpenCLIP ResidualAttentionBlock: ln_1, attn (nn.MultiheadAttention), ln_2, mlp (c_fc, gelu, c_proj)
_OPENCLIP_LAYER_NAMES = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def clip_to_openclip(
    state_dict: StateDict,
    *,
    extra_blocks: Sequence[StateDict] = (),
    text_projection: Tensor | None = None,
) -> StateDict:
    """A transformers CLIP text model -> OpenCLIP ``TextTransformer`` keys (without the prefix).

    q/k/v become ``nn.MultiheadAttention``'s packed ``in_proj_weight``/``in_proj_bias`` (q, k, v
    stacked on dim 0). ``text_projection`` is a bare (width, embed_dim) parameter used as
    ``x @ text_projection``: the transpose of a Linear weight. A model with projection
    (SDXL's bigG) gives its own; otherwise ``text_projection`` is written as given (SD 2 files
    carry ViT-H's, which diffusers drops). ``extra_blocks`` (already in OpenCLIP names, without
    the ``transformer.resblocks.N.`` prefix) are appended after the model's own layers: SD 2 files
    have all 24 ViT-H blocks while diffusers keeps 23.
    """
    sd = _text_model_keys(state_dict)
    out: StateDict = {
        "token_embedding.weight": sd.pop("text_model.embeddings.token_embedding.weight"),
        "positional_embedding": sd.pop("text_model.embeddings.position_embedding.weight"),
        "ln_final.weight": sd.pop("text_model.final_layer_norm.weight"),
        "ln_final.bias": sd.pop("text_model.final_layer_norm.bias"),
        "logit_scale": torch.tensor(OPENCLIP_LOGIT_SCALE),
    }
    if "text_projection.weight" in sd:
        out["text_projection"] = sd.pop("text_projection.weight").T.contiguous()
    elif text_projection is not None:
        out["text_projection"] = text_projection
    layers = sorted(
        {int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")}
    )
    for i in layers:
        src = f"text_model.encoder.layers.{i}."
        dst = f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [sd.pop(f"{src}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv, dim=0)
        for new, old in _OPENCLIP_LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{old}.{kind}"] = sd.pop(f"{src}{new}.{kind}")
    for offset, block in enumerate(extra_blocks):
        for key, value in block.items():
            out[f"transformer.resblocks.{len(layers) + offset}.{key}"] = value
    if sd:
        raise KeyError(f"no OpenCLIP name for {sorted(sd)}")
    return out


def random_openclip_block(width: int, mlp: int, generator: torch.Generator) -> StateDict:
    """One OpenCLIP block with random weights (SD 2's 24th, which no diffusers model holds)."""

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator) * 0.02

    return {
        "ln_1.weight": torch.ones(width) + randn(width),
        "ln_1.bias": randn(width),
        "attn.in_proj_weight": randn(3 * width, width),
        "attn.in_proj_bias": randn(3 * width),
        "attn.out_proj.weight": randn(width, width),
        "attn.out_proj.bias": randn(width),
        "ln_2.weight": torch.ones(width) + randn(width),
        "ln_2.bias": randn(width),
        "mlp.c_fc.weight": randn(mlp, width),
        "mlp.c_fc.bias": randn(mlp),
        "mlp.c_proj.weight": randn(width, mlp),
        "mlp.c_proj.bias": randn(width),
    }


# --------------------------------------------------------------------------------------------
# Whole files
# --------------------------------------------------------------------------------------------


def ddpm_buffers() -> StateDict:
    """The schedule buffers ``ldm.models.diffusion.ddpm.DDPM.register_schedule`` saves (fp32).

    "linear" in ldm is diffusers' scaled_linear: sqrt-spaced, squared; computed in float64.
    """
    betas = torch.linspace(LINEAR_START**0.5, LINEAR_END**0.5, TIMESTEPS, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = (
        betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    )  # v_posterior 0
    buffers = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / alphas_cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev)
        * alphas.sqrt()
        / (1.0 - alphas_cumprod),
    }
    return {k: v.to(torch.float32) for k, v in buffers.items()}


def ema_copies(unet_ldm: StateDict) -> StateDict:
    """LitEma's shadow parameters: ``model_ema.`` + the name under ``model.`` with dots removed
    (``model_ema.diffusion_modelinput_blocks00weight``), plus ``decay`` and ``num_updates``."""
    out = {"model_ema." + ("diffusion_model." + k).replace(".", ""): v for k, v in unet_ldm.items()}
    out["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
    out["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
    return out


def to_original_layout(
    family: str,
    pipe: DiffusionPipeline,
    *,
    fp16: bool = False,
    ema: bool = True,
    seed: int = 0,
) -> StateDict:
    """The whole pipeline's weights as one original-layout state dict.

    SD 1/2 (ldm ``LatentDiffusion``): ``model.diffusion_model.``, ``first_stage_model.``,
    ``cond_stage_model.`` plus the DDPM buffers and (``ema``) ``model_ema.*``. SDXL (sgm
    ``DiffusionEngine``): ``model.diffusion_model.``, ``first_stage_model.``,
    ``conditioner.embedders.0.transformer.`` (CLIP-L) and ``conditioner.embedders.1.model.``
    (bigG); the released SDXL files carry neither schedule buffers nor EMA.
    ``fp16`` halves every floating tensor but the schedule buffers and EMA bookkeeping.
    """
    unet = unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config))
    out: StateDict = {"model.diffusion_model." + k: v for k, v in unet.items()}
    out |= {
        "first_stage_model." + k: v
        for k, v in vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)).items()
    }
    keep_fp32 = set()
    if family == "sdxl":
        clip_l = clip_to_hf_layout(pipe.text_encoder.state_dict())
        out |= {"conditioner.embedders.0.transformer." + k: v for k, v in clip_l.items()}
        big_g = clip_to_openclip(pipe.text_encoder_2.state_dict())
        out |= {"conditioner.embedders.1.model." + k: v for k, v in big_g.items()}
    else:
        if family == "sd2":
            config = pipe.text_encoder.config
            generator = torch.Generator().manual_seed(seed + 1000)
            extra = random_openclip_block(config.hidden_size, config.intermediate_size, generator)
            # ViT-H's projection (1024x1024 in the real files); a non-square one here, so a
            # loader reading the wrong axis fails loudly
            projection = torch.randn(config.hidden_size, config.projection_dim, generator=generator)
            text = clip_to_openclip(
                pipe.text_encoder.state_dict(), extra_blocks=[extra], text_projection=projection
            )
            out |= {"cond_stage_model.model." + k: v for k, v in text.items()}
        else:
            text = clip_to_hf_layout(pipe.text_encoder.state_dict())
            out |= {"cond_stage_model.transformer." + k: v for k, v in text.items()}
        buffers = ddpm_buffers()
        out |= buffers
        keep_fp32 |= set(buffers)
        if ema:
            copies = ema_copies(unet)
            out |= copies
            keep_fp32 |= {"model_ema.decay", "model_ema.num_updates"}
    out = {k: v.detach().clone().contiguous() for k, v in out.items()}
    if fp16:
        out = {
            k: v.half() if v.is_floating_point() and k not in keep_fp32 else v
            for k, v in out.items()
        }
    return out


# --------------------------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------------------------


def _clip_config(hidden: int, layers: int, act: str, projection: int) -> CLIPTextConfig:
    # the published ids (bos 0, eos 2, pad 1) as in resources/configs; vocab = the real CLIP one
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=CLIP_POSITIONS,
        hidden_act=act,
        projection_dim=projection,
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def _scheduler(config_name: str):
    """The family's published scheduler (from the shipped config folder)."""
    import diffusers

    path = config_dir(config_name) / "scheduler" / "scheduler_config.json"
    cfg = json.loads(path.read_text())
    return getattr(diffusers, cfg["_class_name"]).from_config(cfg)


def _vae(scaling_factor: float, force_upcast: bool) -> AutoencoderKL:
    # four levels for SD's 8x compression; widening channels so the resnets have nin_shortcuts
    return AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=TINY_SIZE,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    )


def tiny_pipeline(family: str, seed: int = 0) -> DiffusionPipeline:
    """A tiny random pipeline of ``family`` with the shipped tokenizers (not saved)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    config_name = CONFIG_NAMES[family]
    torch.manual_seed(seed)
    common = {
        "block_out_channels": (32, 64),
        "norm_num_groups": 16,
        "sample_size": TINY_SIZE // 8,
        "out_channels": 4,
    }
    parts: dict[str, object] = {"scheduler": _scheduler(config_name), **tokenizers_for(config_name)}
    if family == "sdxl":
        clip_l = _clip_config(32, 3, "quick_gelu", 32)
        # bigG must differ in width from CLIP-L (loaders tell them apart by it) and have >= 10
        # blocks: diffusers detects SDXL by `...embedders.1.model.transformer.resblocks.9...`
        big_g = _clip_config(64, 10, "gelu", 48)
        time_dim = 8
        parts["unet"] = UNet2DConditionModel(
            **common,
            in_channels=4,
            layers_per_block=2,  # 2 as SDXL itself: the block index arithmetic gets exercised
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2),
            attention_head_dim=(2, 4),
            cross_attention_dim=clip_l.hidden_size + big_g.hidden_size,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_dim,
            # 6 micro-conditioning numbers (size, crop, target size) + bigG's pooled projection
            projection_class_embeddings_input_dim=6 * time_dim + big_g.projection_dim,
        )
        parts["vae"] = _vae(0.13025, force_upcast=True)
        parts["text_encoder"] = CLIPTextModel(clip_l)
        parts["text_encoder_2"] = CLIPTextModelWithProjection(big_g)
        return StableDiffusionXLPipeline(**parts, force_zeros_for_empty_prompt=True)

    sd2 = family == "sd2"
    text = _clip_config(32, 3, "gelu" if sd2 else "quick_gelu", 24 if sd2 else 32)
    parts["unet"] = UNet2DConditionModel(
        **common,
        in_channels=9 if family == "sd1-inpaint" else 4,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),  # SD 1/2: attention on top
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4) if sd2 else 8,
        cross_attention_dim=text.hidden_size,
        use_linear_projection=sd2,
        upcast_attention=sd2,  # as sd21-v
    )
    parts["vae"] = _vae(0.18215, force_upcast=False)
    parts["text_encoder"] = CLIPTextModel(text)
    return PIPELINES[family](
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def _write_config_folder(diffusers_dir: Path, config: Path) -> None:
    """Configs only (model_index.json + one config per component), like resources/configs."""
    if config.exists():
        shutil.rmtree(config)
    config.mkdir(parents=True)
    shutil.copy(diffusers_dir / "model_index.json", config / "model_index.json")
    for sub in sorted(diffusers_dir.iterdir()):
        if not sub.is_dir() or sub.name.startswith("tokenizer"):
            continue
        for name in ("config.json", "scheduler_config.json"):
            if (sub / name).exists():
                data = json.loads((sub / name).read_text())
                for key in ("_name_or_path", "torch_dtype", "dtype"):
                    data.pop(key, None)
                (config / sub.name).mkdir()
                (config / sub.name / name).write_text(json.dumps(data, indent=2, sort_keys=True))


def write_tiny_single_file(
    family: str, folder: Path, fp16: bool = False, *, seed: int = 0, ema: bool = True
) -> TinySingleFile:
    """Build a tiny random ``family`` model and write it three ways under ``folder``.

    ``folder/diffusers`` (pipeline with weights, always fp32), ``folder/config`` (configs only) and
    ``folder/<family>.safetensors`` (original layout; fp16 tensors with ``fp16``). The same
    ``seed`` gives the same weights.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe = tiny_pipeline(family, seed)
    diffusers_dir = folder / "diffusers"
    pipe.save_pretrained(diffusers_dir, safe_serialization=True)
    config = folder / "config"
    _write_config_folder(diffusers_dir, config)
    path = folder / f"{family}.safetensors"
    save_file(
        to_original_layout(family, pipe, fp16=fp16, ema=ema, seed=seed), path, {"format": "pt"}
    )
    return TinySingleFile(
        family=family,
        path=path,
        diffusers=diffusers_dir,
        config=config,
        config_name=CONFIG_NAMES[family],
        pipeline_class=PIPELINES[family],
        fp16=fp16,
    )
