"""One job's add-ons: found in the request's folders, checked against the model, applied to
the pipeline for the job (LoRAs, VAE) or handed to the prompt encoder (embeddings)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from studio.engine.addons.embeddings import Embedding, load_embedding, triggered_embeddings
from studio.engine.addons.lora import (
    LoraFile,
    apply_loras,
    check_lora_fits,
    find_lora,
    inspect_lora,
)
from studio.engine.addons.tags import LoraTag, lora_tags, strip_lora_tags
from studio.engine.addons.vae import find_vae, load_vae, vae_override
from studio.engine.request import GenerationRequest


@dataclass
class JobAddons:
    prompt: str  # the texts the encoder reads: LoRA tags cut out
    negative_prompt: str
    loras: list[tuple[LoraFile, LoraTag]] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)


def resolve_addons(request: GenerationRequest) -> JobAddons:
    """Find and check every add-on the request names; ValueError, by name, for any problem."""
    loras = []
    for tag in lora_tags(request.prompt, request.negative_prompt):
        loras.append((inspect_lora(find_lora(tag.name, request.lora_dirs), tag.name), tag))
    prompt = strip_lora_tags(request.prompt)
    negative = strip_lora_tags(request.negative_prompt)
    found = triggered_embeddings([prompt, negative], request.embedding_dirs)
    embeddings = [load_embedding(name, path) for name, path in found.items()]
    return JobAddons(prompt, negative, loras, embeddings)


@contextlib.contextmanager
def addons_applied(pipe: Any, request: GenerationRequest) -> Iterator[JobAddons]:
    """While entered, `pipe` has exactly the request's LoRAs and VAE (call outside
    inference_mode: LoRA layers made there could never take part in autograd)."""
    import torch

    addons = resolve_addons(request)
    for lora, _ in addons.loras:
        check_lora_fits(lora, pipe)
    vae = load_vae(find_vae(request.vae, request.vae_dirs), pipe.vae) if request.vae else None
    with torch.no_grad():
        apply_loras(pipe, addons.loras)
    with vae_override(pipe, vae):
        yield addons
