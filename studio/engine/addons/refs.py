"""Which add-ons a request uses, by name and hash (for the metadata), and which of the add-ons
an imported image names the user does not have. Torch-free; never loads weights."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.engine.addons.embeddings import triggered_embeddings
from studio.engine.addons.files import find_addon, list_addon_files
from studio.engine.addons.hashes import embedding_hash, lora_hash, vae_hash
from studio.engine.addons.tags import lora_tags, strip_lora_tags
from studio.engine.request import GenerationRequest

if TYPE_CHECKING:
    from studio.engine.metadata.result import ReadResult

KINDS = ("lora", "embedding", "vae")
LABELS = {"lora": "LoRA", "embedding": "embedding", "vae": "VAE"}
Folders = Iterable[str | os.PathLike[str]]


@dataclass(frozen=True)
class AddonRef:
    kind: str  # one of KINDS
    name: str  # LoRA / embedding: as named in the prompt; VAE: its file name
    hash: str = ""  # A1111's short hash ("" when unknown)


def addon_refs(request: GenerationRequest) -> list[AddonRef]:
    """The add-ons `request` uses, with their hashes where their files are found."""
    refs = [
        AddonRef(
            "lora", t.name, _hash_or_empty(lambda n=t.name: lora_hash(_find(n, request.lora_dirs)))
        )
        for t in lora_tags(request.prompt, request.negative_prompt)
    ]
    texts = [strip_lora_tags(request.prompt), strip_lora_tags(request.negative_prompt)]
    for name, path in triggered_embeddings(texts, request.embedding_dirs).items():
        refs.append(AddonRef("embedding", name, _hash_or_empty(lambda p=path: embedding_hash(p))))
    if request.vae:
        from studio.engine.addons.vae import find_vae

        try:
            path = find_vae(request.vae, request.vae_dirs)
        except ValueError:
            refs.append(AddonRef("vae", Path(request.vae).name))
        else:
            refs.append(AddonRef("vae", path.name, _hash_or_empty(lambda: vae_hash(path))))
    return refs


def _find(name: str, folders: Folders) -> Path:
    return find_addon(name, folders, "LoRA")


def _hash_or_empty(compute: Callable[[], str]) -> str:
    # the metadata of an image must never fail because an add-on file went away meanwhile
    try:
        return compute()
    except (OSError, ValueError):
        return ""


@dataclass(frozen=True)
class MissingAddon:
    kind: str
    name: str
    hash: str  # as the image names it
    yours: str = ""  # the hash of the user's file of that name, when it differs

    def message(self) -> str:
        label = LABELS.get(self.kind, self.kind)
        named = f"{label} {self.name!r}" + (f" ({self.hash})" if self.hash else "")
        if self.yours:
            return f"{named}: yours is another version ({self.yours})."
        return f"{named} is not in your {label} folders."


def missing_addons(
    result: ReadResult,
    lora_dirs: Folders = (),
    embedding_dirs: Folders = (),
    vae_dirs: Folders = (),
) -> list[MissingAddon]:
    """Every add-on the imported image names that the user lacks (or has in another version)."""
    refs = list(result.addons)
    request = result.request
    if request is not None:
        named = {(r.kind, r.name) for r in refs}
        for tag in lora_tags(request.prompt, request.negative_prompt):
            if ("lora", tag.name) not in named:
                refs.append(AddonRef("lora", tag.name))
        if request.vae and not any(r.kind == "vae" for r in refs):
            refs.append(AddonRef("vae", Path(request.vae).name))
    folders = {"lora": list(lora_dirs), "embedding": list(embedding_dirs), "vae": list(vae_dirs)}
    files = {kind: list_addon_files(dirs) for kind, dirs in folders.items()}
    missing = []
    for ref in refs:
        if ref.kind not in files:
            continue
        path = _match(ref, files[ref.kind])
        if path is None:
            missing.append(MissingAddon(ref.kind, ref.name, ref.hash))
            continue
        yours = _hash_or_empty(lambda p=path, k=ref.kind: _HASHERS[k](p))
        if ref.hash and yours and not yours.startswith(ref.hash[: len(yours)]):
            missing.append(MissingAddon(ref.kind, ref.name, ref.hash, yours))
    return missing


_HASHERS = {"lora": lora_hash, "embedding": embedding_hash, "vae": vae_hash}


def _match(ref: AddonRef, files: dict[str, Path]) -> Path | None:
    name = Path(ref.name).stem if ref.kind == "vae" else ref.name
    if name in files:
        return files[name]
    lowered = {k.lower(): v for k, v in files.items()}
    return lowered.get(name.lower())
