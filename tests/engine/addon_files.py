"""Add-on files made in the tests: LoRAs (kohya and peft layouts, LoHa), embeddings, VAEs."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "q_proj", "k_proj", "v_proj", "out_proj")


def _linears(module: torch.nn.Module) -> list[tuple[str, torch.nn.Linear]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and name.endswith(_TARGETS)
    ]


def kohya_lora(pipe, seed: int, rank: int = 4, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """A1111/kohya layout: lora_unet_<module_path>.lora_down/lora_up.weight + .alpha."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for prefix, module in (("lora_unet_", pipe.unet), ("lora_te_", pipe.text_encoder)):
        for name, m in _linears(module):
            key = prefix + name.replace(".", "_")
            out[f"{key}.lora_down.weight"] = torch.randn(rank, m.in_features, generator=g) * scale
            out[f"{key}.lora_up.weight"] = torch.randn(m.out_features, rank, generator=g) * scale
            out[f"{key}.alpha"] = torch.tensor(float(rank))
    return out


def peft_lora(pipe, seed: int, rank: int = 4, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """diffusers/peft layout: unet.<module>.lora_A/lora_B.weight (as save_lora_weights writes)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for prefix, module in (("unet.", pipe.unet), ("text_encoder.", pipe.text_encoder)):
        for name, m in _linears(module):
            out[f"{prefix}{name}.lora_A.weight"] = (
                torch.randn(rank, m.in_features, generator=g) * scale
            )
            out[f"{prefix}{name}.lora_B.weight"] = (
                torch.randn(m.out_features, rank, generator=g) * scale
            )
    return out


def loha(pipe) -> dict[str, torch.Tensor]:
    """LyCORIS LoHa layout (hada_w1_a ...)."""
    name, m = _linears(pipe.unet)[0]
    key = "lora_unet_" + name.replace(".", "_")
    return {
        f"{key}.hada_w1_a": torch.zeros(m.out_features, 2),
        f"{key}.hada_w1_b": torch.zeros(2, m.in_features),
        f"{key}.hada_w2_a": torch.zeros(m.out_features, 2),
        f"{key}.hada_w2_b": torch.zeros(2, m.in_features),
        f"{key}.alpha": torch.tensor(2.0),
    }


def lokr(pipe) -> dict[str, torch.Tensor]:
    name, m = _linears(pipe.unet)[0]
    key = "lora_unet_" + name.replace(".", "_")
    return {f"{key}.lokr_w1": torch.zeros(2, 2), f"{key}.lokr_w2": torch.zeros(2, 2)}


def foreign_lora(width: int = 768) -> dict[str, torch.Tensor]:
    """A LoRA whose cross-attention reads `width`-wide text embeddings (768: SD 1.x)."""
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    return {
        f"{key}.lora_down.weight": torch.zeros(4, width),
        f"{key}.lora_up.weight": torch.zeros(320, 4),
        f"{key}.alpha": torch.tensor(4.0),
    }


def embedding(width: int, vectors: int, seed: int, layout: str = "emb_params") -> dict:
    g = torch.Generator().manual_seed(seed)
    if layout == "sdxl":
        return {
            "clip_l": torch.randn(vectors, width[0], generator=g),
            "clip_g": torch.randn(vectors, width[1], generator=g),
        }
    t = torch.randn(vectors, width, generator=g)
    return {"emb_params": t} if layout == "emb_params" else {"<token>": t}


def save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata)
    return path


def tiny_request(model, **changes):
    """A small, fast Euler request on a tiny model: the add-on tests change one thing at a time."""
    from studio.engine.request import GenerationRequest

    base = dict(model=str(model), prompt="a red circle", width=64, height=64, steps=3)
    return GenerationRequest(**{**base, "sampler": "Euler", **changes})
