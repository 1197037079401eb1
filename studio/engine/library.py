"""The model library: every checkpoint, LoRA, embedding, VAE and ControlNet in the user's folders.

A scan walks the folders and classifies each file from its safetensors header alone (nothing is
loaded, nothing unpickled). What a file is depends only on its bytes, so each result is cached on
disk by path, size and mtime (`<user cache>/DiffusionStudio/library.json`): scanning an unchanged
folder again costs one stat per file. A1111's short hash of a checkpoint reads the whole file, so
it is a separate step (`add_hashes`), run after the listing is shown. A file that cannot be used is
listed with the reason instead of being skipped, and never stops the rest of the scan.

No Qt here: the window runs these on its background thread, the CLI (`studio models`) directly.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from studio.engine.checkpoints import Header, _not_a_checkpoint, read_header, recognise
from studio.engine.models import (
    CROSS_ATTENTION_DIM,
    FAMILY_NAMES,
    PICKLE_SUFFIXES,
    file_short_hash,
    inspect_diffusers_folder,
)
from studio.paths import cache_dir

KINDS = ("checkpoint", "lora", "embedding", "vae", "controlnet")
KIND_NAMES = {
    "checkpoint": "Checkpoints",
    "lora": "LoRAs",
    "embedding": "Embeddings",
    "vae": "VAEs",
    "controlnet": "ControlNets",
    "unusable": "Unusable",
}
CACHE_FILE = "library.json"
CACHE_VERSION = 1
MAX_FILES = 20_000  # a folder tree larger than this is not walked further
_DTYPES = {"F16": "fp16", "F32": "fp32", "BF16": "bf16", "F64": "fp64"}
_WIDTH_FAMILY = {dim: family for family, dim in CROSS_ATTENTION_DIM.items()}
# what `_not_a_checkpoint` says -> our kind
_OTHER_KINDS = {
    "a LoRA": "lora",
    "a VAE": "vae",
    "a textual-inversion embedding": "embedding",
    "a ControlNet": "controlnet",
}

# The standard model sub-folders of A1111 (stable-diffusion-webui) and ComfyUI, by kind
A1111_FOLDERS = {
    "checkpoint": "models/Stable-diffusion",
    "lora": "models/Lora",
    "embedding": "embeddings",  # A1111 keeps them at its root; some installs under models/
    "vae": "models/VAE",
    "controlnet": "models/ControlNet",
}
COMFYUI_FOLDERS = {
    "checkpoint": "models/checkpoints",
    "lora": "models/loras",
    "embedding": "models/embeddings",
    "vae": "models/vae",
    "controlnet": "models/controlnet",
}


@dataclass(frozen=True)
class LibraryEntry:
    path: str  # the file, or the diffusers folder
    name: str
    kind: str  # one of KINDS, or "unusable"
    size: int  # bytes on disk (a folder: its weights files)
    mtime_ns: int
    family: str = ""  # "sd1" | "sd2" | "sdxl" | "small"; "" unknown; "any" (VAEs)
    variant: str = ""  # checkpoints: "inpaint" | "refiner" | ""
    prediction: str = ""  # checkpoints: "epsilon" | "v_prediction" | "probe" (decided at load)
    native_size: int = 0  # checkpoints: pixels per side
    precision: str = ""  # "fp16" | "fp32" | "bf16" | ... : the dtype of most of the weights
    short_hash: str = ""  # A1111's 10-hex sha256 of a single-file checkpoint, once computed
    error: str = ""  # why an unusable file cannot be used

    @property
    def usable(self) -> bool:
        return self.kind != "unusable"

    @property
    def hashable(self) -> bool:
        return self.kind == "checkpoint" and self.path.lower().endswith(".safetensors")

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES.get(self.family, self.family)


@dataclass
class ScanStats:
    """What a scan had to do (tests count these instead of timing)."""

    files: int = 0
    cached: int = 0
    inspected: int = 0


# ---- the scan ----------------------------------------------------------------------------------
def scan(
    folders: Iterable[str | os.PathLike[str]],
    cache_file: Path | None = None,
    stats: ScanStats | None = None,
) -> list[LibraryEntry]:
    """Everything in `folders` (subfolders included), sorted by kind and name."""
    cache_file = cache_file or cache_dir() / CACHE_FILE
    stats = stats if stats is not None else ScanStats()
    cache = _read_cache(cache_file)
    roots = [os.path.abspath(os.path.expanduser(f)) for f in folders]
    known: dict[str, dict] = {}
    entries: list[LibraryEntry] = []
    for path, signature in _candidates(roots):
        stats.files += 1
        key = str(path)
        hit = cache.get(key)
        entry = _from_cache(hit, signature)
        if entry is None:
            stats.inspected += 1
            entry = inspect_entry(path, signature)
        else:
            stats.cached += 1
        known[key] = {"size": entry.size, "mtime_ns": entry.mtime_ns, "entry": asdict(entry)}
        entries.append(entry)
    # files gone from the scanned folders leave the cache; other folders' entries stay
    stale = [k for k in cache if k not in known and k.startswith(tuple(r + os.sep for r in roots))]
    if stats.inspected or stale:  # nothing new: nothing to write
        kept = {k: v for k, v in cache.items() if k not in stale}
        _write_cache(cache_file, {**kept, **known})
    return sort_entries(entries)


def sort_entries(entries: Iterable[LibraryEntry]) -> list[LibraryEntry]:
    order = {k: i for i, k in enumerate((*KINDS, "unusable"))}
    return sorted(entries, key=lambda e: (order.get(e.kind, 99), e.name.lower(), e.path))


def add_hashes(
    entries: list[LibraryEntry],
    cache_file: Path | None = None,
    on_hash: Callable[[LibraryEntry], None] | None = None,
) -> list[LibraryEntry]:
    """The entries with A1111's short hash of every single-file checkpoint filled in.

    Reads each such file once per version (models.file_short_hash keeps its own disk cache);
    the hashes also go into the library cache so that the next scan lists them at once.
    """
    cache_file = cache_file or cache_dir() / CACHE_FILE
    out: list[LibraryEntry] = []
    changed = False
    for entry in entries:
        if entry.hashable and not entry.short_hash:
            try:
                entry = replace(entry, short_hash=file_short_hash(Path(entry.path)))
                changed = True
            except OSError:  # gone or unreadable since the scan: no hash rather than a failure
                pass
            if on_hash is not None:
                on_hash(entry)
        out.append(entry)
    if changed:
        cache = _read_cache(cache_file)
        for entry in out:
            old = cache.get(entry.path)
            if entry.short_hash and isinstance(old, dict) and old.get("mtime_ns") == entry.mtime_ns:
                old["entry"] = asdict(entry)
        _write_cache(cache_file, cache)
    return out


def inspect_entry(path: Path, signature: tuple[int, int] | None = None) -> LibraryEntry:
    """One file or diffusers folder, classified from its header or configs; never raises."""
    size, mtime_ns = signature or _signature(path)
    base = LibraryEntry(str(path), _display_name(path), "unusable", size, mtime_ns)
    try:
        if path.is_dir():
            return _inspect_folder(path, base)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return replace(
                base,
                error=f"a {path.suffix} pickle file, which can run code when loaded; "
                "convert it to .safetensors",
            )
        return _inspect_file(path, read_header(path), base)
    except (ValueError, OSError) as exc:
        return replace(base, kind="unusable", error=str(exc).rstrip("."))


def _inspect_file(path: Path, header: Header, base: LibraryEntry) -> LibraryEntry:
    base = replace(base, precision=precision(header))
    other = _not_a_checkpoint(header.keys())
    kind = _OTHER_KINDS.get(other)
    if kind is None and not other and _looks_like_embedding(header):
        kind = "embedding"  # diffusers' learned_embeds: one tensor named after its token
    if kind == "lora":
        return replace(base, kind="lora", family=_lora_family(header))
    if kind == "embedding":
        return replace(base, kind="embedding", family=_embedding_family(header))
    if kind == "vae":
        return replace(base, kind="vae", family="any")  # one VAE shape serves SD 1, 2 and XL
    if kind == "controlnet":
        return replace(base, kind="controlnet", family=_width_family(_attention_width(header)))
    checkpoint = recognise(header, path.name)  # raises, naming what it is otherwise
    variant = "inpaint" if checkpoint.inpaint else "refiner" if checkpoint.refiner else ""
    return replace(
        base,
        kind="checkpoint",
        family=checkpoint.family,
        variant=variant,
        prediction=checkpoint.prediction_type or "probe",
        native_size=checkpoint.native_size,
    )


def _inspect_folder(folder: Path, base: LibraryEntry) -> LibraryEntry:
    if (folder / "model_index.json").is_file():
        info = inspect_diffusers_folder(folder)
        if info.weights_file is None:
            return replace(base, error="a diffusers folder without UNet weights in unet/")
        scheduler = _json(folder / "scheduler" / "scheduler_config.json")
        weights = info.weights_file
        return replace(
            base,
            kind="checkpoint",
            family=info.family,
            variant="inpaint" if info.inpaint_unet else "",
            prediction=str(scheduler.get("prediction_type", "epsilon")),
            native_size=info.native_size,
            precision=precision(read_header(weights)) if _is_safetensors(weights) else "",
        )
    config = _json(folder / "config.json")
    weights = sorted(folder.glob("*.safetensors"))
    width = config.get("cross_attention_dim")
    return replace(
        base,
        kind="controlnet",
        family=_width_family(width if isinstance(width, int) else None),
        precision=precision(read_header(weights[0])) if weights else "",
    )


# ---- what the header says ----------------------------------------------------------------------
def precision(header: Header) -> str:
    """The dtype holding most of the weights (by element count): "fp16", "fp32", "bf16", ..."""
    counts: dict[str, int] = {}
    for entry in header.values():
        dtype = str(entry.get("dtype", ""))
        if dtype.startswith("F") or dtype == "BF16":
            numel = 1
            for n in entry.get("shape", []):
                numel *= n
            counts[dtype] = counts.get(dtype, 0) + numel
    if not counts:
        return ""
    top = max(counts, key=lambda d: counts[d])
    return _DTYPES.get(top, top.lower().replace("f8_", "fp8-"))


def _attention_width(header: Header) -> int | None:
    for key, entry in header.items():
        if key.endswith("attn2.to_k.weight") and len(entry.get("shape", [])) == 2:
            return int(entry["shape"][1])
    return None


def _lora_family(header: Header) -> str:
    if any(k.startswith(("lora_te2_", "text_encoder_2.", "te2.")) for k in header):
        return "sdxl"
    for key, entry in header.items():
        down = key.endswith(("lora_down.weight", "lora_A.weight", "lora.down.weight"))
        shape = entry.get("shape", [])
        if down and "attn2" in key and "to_k" in key and len(shape) >= 2:
            return _width_family(shape[1])
    return ""


def _looks_like_embedding(header: Header) -> bool:
    shapes = [e.get("shape", []) for e in header.values()]
    return len(shapes) in (1, 2) and all(
        1 <= len(s) <= 2 and s[-1] in (768, 1024, 1280) for s in shapes
    )


def _embedding_family(header: Header) -> str:
    if "clip_g" in header:
        return "sdxl"
    shape = next(iter(header.values()), {}).get("shape", [])
    return _width_family(shape[-1] if shape else None)


def _width_family(width: int | None) -> str:
    if width is None:
        return ""
    # narrower than SD 1.x: the demo and tiny test models ("small SD-shaped", as models.py)
    return _WIDTH_FAMILY.get(width, "small" if width < 768 else "")


# ---- walking the folders -----------------------------------------------------------------------
def _candidates(folders: Iterable[str | os.PathLike[str]]) -> Iterable[tuple[Path, tuple]]:
    """(path, (size, mtime_ns)) of every model file and model folder, once each."""
    seen: set[str] = set()
    count = 0
    for folder in folders:
        for root, dirs, names in os.walk(Path(folder).expanduser()):
            here = Path(root)
            if "model_index.json" in names or _is_controlnet_folder(here, names):
                dirs.clear()  # a diffusers model: listed as one entry, not file by file
                found = [here]
            else:
                dirs.sort()
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found = [here / n for n in sorted(names) if _is_model_file(n)]
            for path in found:
                real = os.path.realpath(path)
                if real in seen:
                    continue
                seen.add(real)
                count += 1
                if count > MAX_FILES:
                    return
                try:
                    yield path, _signature(path)
                except OSError:
                    yield path, (0, 0)


def _is_model_file(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return not name.startswith(".") and (suffix == ".safetensors" or suffix in PICKLE_SUFFIXES)


def _is_controlnet_folder(folder: Path, names: list[str]) -> bool:
    if "config.json" not in names:
        return False
    try:
        return "ControlNet" in str(_json(folder / "config.json").get("_class_name", ""))
    except ValueError:
        return False


def _signature(path: Path) -> tuple[int, int]:
    """(size, mtime_ns): of a file; of a model folder, its configs' and weights' together."""
    if not path.is_dir():
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    size = mtime = 0
    for sub in ("", "unet", "text_encoder", "text_encoder_2", "vae"):
        for child in sorted((path / sub).glob("*")) if (path / sub).is_dir() else []:
            if child.is_file() and child.suffix in (".json", ".safetensors", ".bin"):
                st = child.stat()
                size, mtime = size + st.st_size, max(mtime, st.st_mtime_ns)
    return size, mtime


def _display_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _is_safetensors(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() == ".safetensors"


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path.name} is corrupt ({e})") from e
    return data if isinstance(data, dict) else {}


# ---- the cache ---------------------------------------------------------------------------------
_FIELDS = {f.name for f in fields(LibraryEntry)}


def _from_cache(hit: object, signature: tuple[int, int]) -> LibraryEntry | None:
    if not isinstance(hit, dict) or (hit.get("size"), hit.get("mtime_ns")) != tuple(signature):
        return None
    data = hit.get("entry")
    if not isinstance(data, dict) or set(data) != _FIELDS:
        return None
    try:
        return LibraryEntry(**data)
    except TypeError:
        return None


def _read_cache(cache_file: Path) -> dict[str, object]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: inspecting again is always correct
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _write_cache(cache_file: Path, files: dict[str, object]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".library-", dir=cache_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": CACHE_VERSION, "files": files}, f)
        os.replace(tmp, cache_file)
    except OSError:  # a read-only cache folder only costs a slower scan next time
        pass


# ---- A1111 / ComfyUI installs ------------------------------------------------------------------
def standard_folders(root: str | os.PathLike[str]) -> list[Path]:
    """The model folders of an A1111 or ComfyUI install at `root` (or of its `models` folder)."""
    root = Path(root).expanduser()
    base = root.parent if root.name == "models" else root
    subs = dict.fromkeys([*A1111_FOLDERS.values(), "models/embeddings", *COMFYUI_FOLDERS.values()])
    found: dict[tuple[int, int], Path] = {}  # by inode: models/vae is models/VAE on macOS
    for sub in subs:
        if (base / sub).is_dir():
            st = (base / sub).stat()
            found.setdefault((st.st_dev, st.st_ino), base / sub)
    return list(found.values())


# ---- the last image made with each model (for thumbnails) -------------------------------------
THUMBS_FILE = "model-thumbnails.json"
MAX_THUMBS = 500


def last_images(cache_file: Path | None = None) -> dict[str, str]:
    """{model path or ref: the newest image made with it}."""
    try:
        data = json.loads((cache_file or cache_dir() / THUMBS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def remember_image(model: str, image: Path, cache_file: Path | None = None) -> None:
    """Note `image` as the newest one made with `model` (a few bytes, when a job finishes)."""
    cache_file = cache_file or cache_dir() / THUMBS_FILE
    data = last_images(cache_file)
    data.pop(model, None)
    data[model] = str(image)
    kept = dict(list(data.items())[-MAX_THUMBS:])  # insertion order: the oldest go first
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".thumbs-", dir=cache_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(kept, f)
        os.replace(tmp, cache_file)
    except OSError:
        pass


# ---- `studio models` ---------------------------------------------------------------------------
COLUMNS = ("kind", "name", "family", "pred", "size px", "prec", "file", "hash", "path")


def row(entry: LibraryEntry) -> tuple[str, ...]:
    family = entry.family_name + (f" {entry.variant}" if entry.variant else "")
    return (
        entry.kind,
        entry.name,
        family if entry.usable else "—",
        {"v_prediction": "v", "epsilon": "eps"}.get(entry.prediction, entry.prediction),
        str(entry.native_size) if entry.native_size else "",
        entry.precision,
        human_size(entry.size),
        entry.short_hash,
        entry.path if entry.usable else f"{entry.path}  ({entry.error})",
    )


def format_table(entries: Iterable[LibraryEntry]) -> str:
    rows = [COLUMNS, *(row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def to_json(entries: Iterable[LibraryEntry]) -> str:
    return json.dumps([{**asdict(e), "usable": e.usable} for e in entries], indent=2)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
