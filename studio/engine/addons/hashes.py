"""The hashes A1111 writes for add-ons, so a recipe names the exact files it used.

- LoRA (`Lora hashes`): the kohya "addnet" hash, the sha256 of a .safetensors file's tensor
  data (everything after the 8-byte length and the JSON header), first 12 hex; or the
  `sshs_model_hash` the file's metadata carries.
- Embedding (`TI hashes`): the sha256 of the whole file, first 12 hex.
- VAE (`VAE hash`): the sha256 of the whole file, first 10 hex (like `Model hash`).
Each digest is kept per (path, size, mtime): a replaced file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import struct
from functools import lru_cache
from pathlib import Path

LORA_HASH_LENGTH = 12
TI_HASH_LENGTH = 12
VAE_HASH_LENGTH = 10


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def file_sha256(path: Path) -> str:
    return _file_sha256(*_key(path))


def addnet_hash(path: Path) -> str:
    """The kohya addnet sha256 of a .safetensors file (full hex)."""
    return _addnet_hash(*_key(path))


def lora_hash(path: Path) -> str:
    metadata_hash = safetensors_metadata(path).get("sshs_model_hash", "")
    if isinstance(metadata_hash, str) and len(metadata_hash) >= LORA_HASH_LENGTH:
        return metadata_hash[:LORA_HASH_LENGTH]
    return addnet_hash(path)[:LORA_HASH_LENGTH]


def embedding_hash(path: Path) -> str:
    return file_sha256(path)[:TI_HASH_LENGTH]


def vae_hash(path: Path) -> str:
    """A VAE file's hash; a diffusers VAE folder is hashed by its weights file."""
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            return ""
        path = weights[0]
    return file_sha256(path)[:VAE_HASH_LENGTH]


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` table of a .safetensors file ({} when it has none or is no such file)."""
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100 * 2**20:
                return {}
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


@lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _addnet_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + length)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
