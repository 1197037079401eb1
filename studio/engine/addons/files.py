"""Finding add-on files by name in the user's folders (subfolders included, as A1111 does)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SAFE_SUFFIX = ".safetensors"
# formats that are Python pickles: loading one can run code, so they are never loaded
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
MAX_FILES = 20_000  # a folder tree larger than this is not walked further


def list_addon_files(folders: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """{name: path} of every .safetensors file (name = file name without extension).

    The first folder wins when two hold the same name."""
    found: dict[str, Path] = {}
    for path in _walk(folders):
        if path.suffix.lower() == SAFE_SUFFIX:
            found.setdefault(path.stem, path)
    return found


def find_addon(name: str, folders: Iterable[str | os.PathLike[str]], kind: str) -> Path:
    """The .safetensors file called `name` (exact, then ignoring case); ValueError if none."""
    folders = [Path(f) for f in folders]
    files = list_addon_files(folders)
    if name in files:
        return files[name]
    lowered = {k.lower(): v for k, v in files.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    pickles = [p for p in _walk(folders) if p.stem == name and p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ValueError(
            f"{kind} {name!r} is a {pickles[0].suffix} file, a Python pickle that could run code "
            "when loaded; only .safetensors files are loaded. Convert it to .safetensors."
        )
    where = ", ".join(str(f) for f in folders) or "none set"
    raise ValueError(
        f"{kind} {name!r} was not found in your {kind} folders ({where}); add its "
        f".safetensors file to one of them, or set the folders in Settings."
    )


def _walk(folders: Iterable[str | os.PathLike[str]]) -> Iterable[Path]:
    seen = 0
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                seen += 1
                if seen > MAX_FILES:
                    return
                yield Path(root) / name
