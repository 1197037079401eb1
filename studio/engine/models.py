"""Finding and inspecting models without loading them: diffusers folders, single files, hub ids.

Everything here reads JSON configs and file headers only; no weights are loaded and nothing is
unpickled. The weights file is hashed only when ModelInfo.model_hash is first asked for (to write
it into metadata), never on the way to a load. Loading lives in pipelines.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from studio.engine.checkpoints import Checkpoint, read_header, recognise
from studio.engine.request import DEMO_MODEL_REF
from studio.paths import DEMO_CONTROLNETS, DEMO_MODEL, cache_dir

# Pickle-based formats run arbitrary code when loaded: we refuse them instead of guessing.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

NATIVE_SIZE = {"sd1": 512, "sd2": 768, "sdxl": 1024}
CROSS_ATTENTION_DIM = {"sd1": 768, "sd2": 1024, "sdxl": 2048}
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "small": "small SD-shaped"}


@dataclass(frozen=True)
class ModelInfo:
    ref: str  # what the user named: "demo", a path, or a hub id
    name: str  # short display name, also written as "Model:" in the metadata
    path: Path | None  # local folder or file; None for a hub id
    kind: str  # "diffusers" | "single_file" | "hub"
    family: str  # "sd1" | "sd2" | "sdxl" | "small" (SD-shaped, smaller than SD 1.x)
    native_size: int  # pixels per side the model was trained at
    inpaint_unet: bool = False  # 9-channel inpainting UNet
    # the file A1111's short hash is taken of (the UNet weights, or the checkpoint), with its
    # (size, mtime_ns) when inspected; None for hub ids
    weights_file: Path | None = None
    weights_version: tuple[int, int] | None = None
    # A1111's hash is of a single checkpoint file; a diffusers folder has no standard hash, and
    # one of its UNet file alone would match nothing in other tools: none is written
    hashable: bool = True
    cross_attention_dim: int = 768  # width of the text features the UNet attends to
    checkpoint: Checkpoint | None = None  # what a single file's header says it is

    @property
    def max_size(self) -> int:
        # far beyond native size SD-family models tile and break; beyond that they run out of memory
        return min(4 * self.native_size, 4096)

    @property
    def model_hash(self) -> str:
        """A1111-style short hash (first 10 hex of the sha256 of the weights file), "" if unknown.

        Hashing reads the whole file (seconds for a real checkpoint), so it is done here, when
        metadata first needs it, not when the model is inspected or loaded; each version of a file
        is hashed once per process. A file replaced since inspection gives "" rather than the hash
        of weights that were never loaded.
        """
        if self.weights_file is None or not self.hashable:
            return ""
        try:
            if _file_version(self.weights_file) != self.weights_version:
                return ""
            return file_short_hash(self.weights_file)
        except OSError:
            return ""


def resolve_model(ref: str) -> ModelInfo:
    """Inspect the model `ref` names; raise ValueError with a message a user can act on."""
    ref = ref.strip()
    if not ref:
        raise ValueError("No model chosen.")
    if ref == DEMO_MODEL_REF:
        if not (DEMO_MODEL / "model_index.json").is_file():
            raise ValueError(f"The demo model is missing from {DEMO_MODEL}; reinstall the app.")
        return replace(inspect_diffusers_folder(DEMO_MODEL), ref=DEMO_MODEL_REF, name="demo")
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_dir():
            return inspect_diffusers_folder(path, ref=ref)
        return inspect_single_file(path, ref=ref)
    if not looks_like_hub_id(ref):
        raise ValueError(f"Model not found: {ref!r} is neither a folder, a file nor a hub id.")
    folder = cached_hub_model(ref)
    if folder is not None:  # downloaded before: the local copy, inspected like any folder
        return replace(
            inspect_diffusers_folder(folder, ref=ref), name=ref.split("/")[-1], kind="hub"
        )
    # family and size are known once downloaded (PipelineCache.load, when downloads are allowed)
    return ModelInfo(ref, ref.split("/")[-1], None, "hub", "sd1", 512)


def looks_like_hub_id(ref: str) -> bool:
    """`owner/name` that cannot be a path: a mistyped local path must not go to the network."""
    if not HUB_ID.match(ref) or ref.startswith((".", "~")) or "\\" in ref:
        return False
    if Path(ref).suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
        return False
    return not Path(ref.split("/")[0]).expanduser().exists()  # "models/mine" with models/ here


def cached_hub_model(ref: str) -> Path | None:
    """The folder of a hub model already in the Hugging Face cache; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref, local_files_only=True))
    except Exception:  # not cached, or a cache in a state we cannot read: treat as absent
        return None
    return folder if (folder / "model_index.json").is_file() else None


def inspect_diffusers_folder(folder: Path, ref: str | None = None) -> ModelInfo:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ValueError(
            f"{folder} is not a diffusers model folder (no model_index.json). "
            "Choose the folder that holds model_index.json, or a .safetensors checkpoint."
        )
    index = _read_json(index_file)
    unet_config = _read_json(folder / "unet" / "config.json")
    vae_config = _read_json(folder / "vae" / "config.json")
    vae_factor = 2 ** (len(vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)
    native = int(unet_config.get("sample_size", 64)) * vae_factor
    family = _family_from_folder(index, folder, native)
    return ModelInfo(
        ref=ref or str(folder),
        name=folder.name,
        path=folder,
        kind="diffusers",
        family=family,
        native_size=native,
        inpaint_unet=int(unet_config.get("in_channels", 4)) == 9,
        **_weights_fields(_weights_file(folder / "unet")),
        hashable=False,
        cross_attention_dim=int(unet_config.get("cross_attention_dim", 768)),
    )


def inspect_single_file(path: Path, ref: str | None = None) -> ModelInfo:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path.name} is a pickle checkpoint, which can run arbitrary code when loaded. "
            "Convert it to .safetensors (or use a diffusers folder) and load that instead."
        )
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{path.name}: unsupported model file; use a .safetensors checkpoint.")
    header = read_header(path)
    checkpoint = recognise(header, path.name)
    family = checkpoint.family
    return ModelInfo(
        ref=ref or str(path),
        name=path.stem,
        path=path,
        kind="single_file",
        family=family,
        native_size=checkpoint.native_size,
        inpaint_unet=checkpoint.inpaint,
        checkpoint=checkpoint,
        **_weights_fields(path),
        cross_attention_dim=_controlnet_dim_from_header(header) or CROSS_ATTENTION_DIM[family],
    )


@dataclass(frozen=True)
class ControlNetInfo:
    ref: str
    name: str
    path: Path | None
    kind: str  # "diffusers" | "single_file" | "hub"
    cross_attention_dim: int | None  # None: unknown until loaded (hub ids)


def resolve_controlnet(ref: str) -> ControlNetInfo:
    """Inspect a ControlNet: 'demo-canny' / 'demo-depth' / 'demo-pose', a folder, a file, a hub id."""
    ref = ref.strip()
    if ref.startswith("demo-"):
        folder = DEMO_CONTROLNETS / ref.removeprefix("demo-")
        if not (folder / "config.json").is_file():
            raise ValueError(f"The demo ControlNet {ref!r} is not installed (looked in {folder}).")
        return replace(resolve_controlnet(str(folder)), ref=ref, name=ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        config = _read_json(path / "config.json")
        if not config:
            raise ValueError(f"{path} is not a ControlNet folder (no config.json).")
        return ControlNetInfo(ref, path.name, path, "diffusers", config.get("cross_attention_dim"))
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(f"{path.name} is a pickle file; use a .safetensors ControlNet.")
        header = safetensors_header(path)
        dim = _controlnet_dim_from_header(header)
        return ControlNetInfo(ref, path.stem, path, "single_file", dim)
    if HUB_ID.match(ref):
        return ControlNetInfo(ref, ref.split("/")[-1], None, "hub", None)
    raise ValueError(f"ControlNet not found: {ref!r}.")


def check_controlnet_fits(control: ControlNetInfo, model: ModelInfo) -> None:
    """Refuse a ControlNet made for another model family before any weights load."""
    dim = control.cross_attention_dim
    if dim is not None and dim != model.cross_attention_dim:
        made_for = _family_of_dim(dim)
        raise ValueError(
            f"ControlNet {control.name!r} is made for {made_for} models, but {model.name!r} is "
            f"{_family_of_dim(model.cross_attention_dim)}; choose a ControlNet for that family."
        )


def _family_of_dim(dim: int) -> str:
    for family, family_dim in CROSS_ATTENTION_DIM.items():
        if dim == family_dim:
            return FAMILY_NAMES[family]
    return f"small SD-shaped (text width {dim})"


def _controlnet_dim_from_header(header: dict[str, dict]) -> int | None:
    for key, entry in header.items():
        # the first cross-attention key projection maps text features (width = cross_attention_dim)
        if key.endswith("attn2.to_k.weight") and entry.get("shape"):
            return int(entry["shape"][1])
    return None


def find_models(folders: list[Path]) -> list[ModelInfo]:
    """Models directly inside the given folders; unreadable entries are skipped, not fatal."""
    found: list[ModelInfo] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            try:
                if entry.is_dir() and (entry / "model_index.json").is_file():
                    found.append(inspect_diffusers_folder(entry))
                elif entry.suffix.lower() == ".safetensors":
                    found.append(inspect_single_file(entry))
            except (ValueError, OSError):
                continue
    return found


# ---- helpers ----------------------------------------------------------------------------
def safetensors_header(path: Path) -> dict[str, dict]:
    """Tensor names, dtypes and shapes from a .safetensors header, without loading weights."""
    return read_header(path)


def file_short_hash(path: Path) -> str:
    stat = path.stat()
    return _sha256_prefix(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the key so a replaced file is hashed again; the disk cache
    # keeps a multi-GB checkpoint from being read again in every session
    key = f"{path}|{size}|{mtime_ns}"
    known = _hash_cache().get(key)
    if isinstance(known, str) and len(known) == 64:
        return known[:10]
    digest = _sha256_of_file(path)
    _remember_hash(key, digest)
    return digest[:10]


HASH_CACHE_FILE = "hashes.json"


def _hash_cache() -> dict[str, object]:
    try:
        data = json.loads((cache_dir() / HASH_CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: hashing again is always correct
        return {}
    return data if isinstance(data, dict) else {}


def _remember_hash(key: str, digest: str) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = {**_hash_cache(), key: digest}
        fd, tmp = tempfile.mkstemp(prefix=".hashes-", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, folder / HASH_CACHE_FILE)
    except OSError:  # a read-only cache folder only costs a rehash next time
        pass


def _sha256_of_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_version(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _weights_file(unet_folder: Path) -> Path | None:
    files = sorted(unet_folder.glob("*.safetensors")) or sorted(unet_folder.glob("*.bin"))
    return files[0] if files else None


def _weights_fields(path: Path | None) -> dict:
    """ModelInfo's weights_file and weights_version: a stat, not a hash (see model_hash)."""
    if path is None:
        return {}
    try:
        return {"weights_file": path, "weights_version": _file_version(path)}
    except OSError:
        return {}


def _family_from_folder(index: dict, folder: Path, native: int) -> str:
    if "XL" in index.get("_class_name", "") or "text_encoder_2" in index:
        return "sdxl"
    text_config = _read_json(folder / "text_encoder" / "config.json")
    hidden = text_config.get("hidden_size") or text_config.get("text_config", {}).get("hidden_size")
    if hidden == 1024:
        return "sd2"
    if hidden == 768:
        return "sd1"
    return "small"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is corrupt ({e}).") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} is corrupt (a JSON {type(data).__name__}, not an object).")
    return data
