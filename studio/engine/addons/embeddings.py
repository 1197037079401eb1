"""Textual-inversion embeddings: found by file name in the prompt, as A1111 does.

An embedding is a few learned token vectors. Where its name's tokens appear in a prompt, the
chunker puts placeholders, one per vector (an embedding never straddles two 75-token chunks),
and the encoder writes the vectors over the placeholders' token embeddings while that chunk
is encoded (studio.engine.prompts). The tokenizer and text encoder are never changed, so
nothing has to be unloaded after a job.

Layouts (.safetensors only): A1111's `emb_params` [n, width]; one tensor [n, width] or [width]
(diffusers' `learned_embeds`); SDXL's `clip_l` [n, 768] + `clip_g` [n, 1280].
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from studio.engine.addons.files import list_addon_files

KIND = "embedding"
MAX_VECTORS = 75  # one chunk


@dataclass(frozen=True)
class Embedding:
    name: str
    path: Path
    tensors: tuple[Any, ...] = field(repr=False)  # [n, width] each: one per text-encoder width

    @property
    def vectors(self) -> int:
        return int(self.tensors[0].shape[0])

    def for_width(self, width: int) -> Any | None:
        return next((t for t in self.tensors if t.shape[-1] == width), None)


def triggered_names(texts: Iterable[str], names: Iterable[str]) -> list[str]:
    """The embedding names that appear in the texts as words (CLIP reads text lower-cased)."""
    joined = "\n".join(texts)
    found = []
    for name in names:
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", joined, re.IGNORECASE):
            found.append(name)
    return found


def triggered_embeddings(
    texts: Iterable[str], folders: Iterable[str | os.PathLike[str]]
) -> dict[str, Path]:
    """{name: file} of the embeddings in the folders that the texts name."""
    files = list_addon_files(folders)
    texts = list(texts)
    return {name: files[name] for name in triggered_names(texts, files)}


def load_embedding(name: str, path: Path) -> Embedding:
    stat = path.stat()
    return _load(name, str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _load(name: str, path: str, size: int, mtime_ns: int) -> Embedding:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        data = load_file(path)
    except (OSError, SafetensorError, ValueError) as e:
        raise ValueError(f"Embedding {name!r} could not be read: {e}") from None
    if "clip_l" in data and "clip_g" in data:
        tensors = [data["clip_l"], data["clip_g"]]
    elif "emb_params" in data:
        tensors = [data["emb_params"]]
    elif len(data) == 1:
        tensors = list(data.values())
    else:
        raise ValueError(
            f"{name!r} is not a textual-inversion embedding this app reads (expected emb_params, "
            f"clip_l + clip_g, or a single tensor; it has {', '.join(sorted(data)[:5])})."
        )
    tensors = [t.reshape(1, -1) if t.dim() == 1 else t for t in tensors]
    counts = {t.shape[0] for t in tensors}
    if any(t.dim() != 2 for t in tensors) or len(counts) != 1:
        raise ValueError(f"Embedding {name!r} has tensors of an unexpected shape.")
    if not 1 <= counts.pop() <= MAX_VECTORS:
        raise ValueError(f"Embedding {name!r} has more than {MAX_VECTORS} vectors.")
    return Embedding(name, Path(path), tuple(t.float() for t in tensors))


@dataclass
class EmbeddingVocab:
    """One tokenizer's view of the embeddings: name tokens -> vectors for its encoder."""

    by_first_token: dict[int, list[tuple[list[int], Any]]]

    def match(self, tokens: list[int], position: int) -> tuple[int, Any] | None:
        """(tokens the name spans, vectors) of the longest embedding name at `position`."""
        for ids, vectors in self.by_first_token.get(tokens[position], ()):
            if tokens[position : position + len(ids)] == ids:
                return len(ids), vectors
        return None


def embedding_vocab(
    embeddings: Iterable[Embedding], tokenizer: Any, width: int, family: str = ""
) -> EmbeddingVocab:
    """Every embedding as `tokenizer` reads its name; ValueError, by name, if one does not fit."""
    lookup: dict[int, list[tuple[list[int], Any]]] = {}
    for emb in embeddings:
        vectors = emb.for_width(width)
        if vectors is None:
            widths = "/".join(str(t.shape[-1]) for t in emb.tensors)
            raise ValueError(
                f"Embedding {emb.name!r} is made for another model family (vectors {widths} "
                f"wide, this model's text encoder reads {width}); remove its name from the "
                "prompt or choose an embedding made for this model."
            )
        ids = tokenizer(emb.name, add_special_tokens=False, verbose=False)["input_ids"]
        if ids:
            lookup.setdefault(ids[0], []).append((ids, vectors))
    for entries in lookup.values():
        entries.sort(key=lambda e: -len(e[0]))  # the longest name wins, as in A1111
    return EmbeddingVocab(lookup)
