"""ComfyUI's add-ons as ours: LoraLoader nodes become `<lora:name:clip:model>` tags in the
prompt, `embedding:name` becomes the embedding's name (A1111 triggers by name), a VAELoader
becomes the VAE override."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from studio.engine.addons.refs import AddonRef
from studio.engine.addons.tags import LoraTag

LORA_LOADERS = ("LoraLoader", "LoraLoaderModelOnly")
_EMBEDDING = re.compile(r"\bembedding:([^\s,()\[\]<>]+)", re.IGNORECASE)
_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def file_stem(name: str) -> str:
    """ "sub\\style.safetensors" -> "style": ComfyUI names files with folders and extension."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.stem if path.suffix.lower() in _EXTENSIONS else path.name


def lora_tag(kind: str, inputs: dict[str, Any], scalar: Any) -> LoraTag | None:
    """The tag for a LoRA loader node; None when its inputs are not plain values."""
    name = scalar(inputs.get("lora_name"))
    model = scalar(inputs.get("strength_model", 1.0))
    # LoraLoaderModelOnly leaves the text encoder alone
    clip = scalar(inputs.get("strength_clip", 1.0)) if kind == "LoraLoader" else 0.0
    numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in (model, clip))
    if not isinstance(name, str) or not name or not numbers:
        return None
    return LoraTag(file_stem(name), float(clip), float(model))


def with_lora_tags(prompt: str, tags: list[LoraTag]) -> str:
    return " ".join([prompt.rstrip(), *(t.text() for t in tags)]).strip()


def embeddings_by_name(text: str) -> tuple[str, list[str]]:
    """The text with `embedding:x.pt` written as `x`, and the names."""
    names: list[str] = []

    def name(match: re.Match[str]) -> str:
        names.append(file_stem(match.group(1)))
        return names[-1]

    return _EMBEDDING.sub(name, text), names


def vae_loader(graph: dict[str, dict[str, Any]], scalar: Any) -> str | None:
    for node in graph.values():
        if node["class_type"] == "VAELoader":
            name = scalar(node["inputs"].get("vae_name"))
            if isinstance(name, str) and name:
                return name
    return None


def addon_refs_of(tags: list[LoraTag], embeddings: list[str], vae: str | None) -> list[AddonRef]:
    refs = [AddonRef("lora", t.name) for t in tags]
    refs += [AddonRef("embedding", n) for n in dict.fromkeys(embeddings)]
    if vae:
        refs.append(AddonRef("vae", PurePosixPath(vae.replace("\\", "/")).name))
    return refs
