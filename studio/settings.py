"""The user's settings: a plain dataclass saved as JSON in the user config dir (no Qt, no torch).

A file that cannot be read never stops the app: it is moved aside as
`settings.json.corrupt-<timestamp>` and the defaults are used. Each value is checked on load
(type, range, allowed choices); one the studio cannot take falls back to its default, and the
file is moved aside the same way so nothing the user wrote is lost.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio import paths

SCHEMA_VERSION = 3
FILE_NAME = "settings.json"


# what v1 kept flat at the top level; since v2 these live in `last`
_V1_LAST_KEYS = (
    "model",
    "prompt",
    "negative_prompt",
    "sampler",
    "schedule_type",
    "steps",
    "cfg_scale",
    "seed",
    "width",
    "height",
    "batch_count",
    "batch_size",
    "strength",
    "mode",
)


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    output_dir: str = ""  # empty: the platform's pictures folder (paths.default_output_dir)
    image_format: str = "png"
    allow_downloads: bool = False  # fetch hub models not yet in the Hugging Face cache
    # where model weights live on a GPU (studio.engine.memory.POLICIES); "auto" from free VRAM
    memory_policy: str = "auto"
    vae_tiling: bool = False  # always decode in tiles (offloading turns it on by itself)
    known_models: list[str] = field(default_factory=list)
    model_folders: list[str] = field(default_factory=list)
    window_geometry: str = ""  # base64 of QWidget.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState()
    # the persistent properties of the window's state, by name (studio.ui.persistence): the state
    # class declares them and checks their types when they are read back
    last: dict[str, Any] = field(default_factory=dict)

    def output_path(self) -> Path:
        return Path(self.output_dir) if self.output_dir else paths.default_output_dir()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Unknown keys are dropped and bad values fall back to the default, one key at a time."""
        return cls.checked_from_dict(data)[0]

    @classmethod
    def checked_from_dict(cls, data: dict[str, Any]) -> tuple[Settings, list[str]]:
        """The settings, and one line per value that was refused (its default is used instead).

        ValueError when the whole file is unusable (a schema from a newer version).
        """
        data = migrate(dict(data))
        settings = cls()
        problems: list[str] = []
        for f in fields(cls):
            if f.name not in data or f.name == "schema_version":
                continue
            if f.name == "last":
                settings.last, refused = _check_last(data["last"])
                problems += refused
                continue
            problem = _check_field(f.name, data[f.name], getattr(settings, f.name))
            if problem:
                problems.append(problem)
            else:
                setattr(settings, f.name, _normalised(f.name, data[f.name]))
        return settings, problems


# ---- checking each value ---------------------------------------------------------------------
MAX_FILE_BYTES = 16 * 2**20  # a real settings file is a few KB; a huge one is not read at all
MAX_PATH_CHARS = 4096
MAX_PATHS = 1000  # entries in known_models / model_folders
MAX_LAYOUT_CHARS = 100_000  # base64 of the window's geometry and dock layout

# `last` holds the window state's persistent values; the state declares what each may be and
# hands its check over at import (studio.ui.persistence.declare_persisted). Without one, `last`
# keeps the JSON scalars and the state refuses what it cannot take when it is restored.
LastCheck = Callable[[Any], tuple[dict[str, Any], list[str]]]
_last_check: LastCheck | None = None


def set_last_check(check: LastCheck | None) -> None:
    global _last_check
    _last_check = check


def _check_last(data: Any) -> tuple[dict[str, Any], list[str]]:
    if _last_check is not None:
        return _last_check(data)
    if not isinstance(data, dict):
        return {}, [f"the saved window state is {type(data).__name__}, not an object"]
    return _json_scalars(data), []


def _json_scalars(data: dict[str, Any]) -> dict[str, Any]:
    scalar = (str, int, float, bool, type(None))
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, scalar)}


def _check_field(name: str, value: Any, default: Any) -> str:
    """Why `value` cannot be the setting `name` ("" when it can)."""
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else f"{name} must be true or false"
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) > MAX_PATHS:
            return f"{name} must be a list of at most {MAX_PATHS} folders or files"
        problem = next((p for p in map(_path_problem, value) if p), "")
        return f"{name}: {problem}" if problem else ""
    if not isinstance(value, str):
        return f"{name} must be text, not {type(value).__name__}"
    if name == "image_format":
        from studio.engine.metadata.writer import image_format

        try:
            image_format("x", value)
        except ValueError:
            return f"image_format {_short(value)} is not one the studio saves (png, jpeg, webp)"
        return ""
    if name == "output_dir":
        return _path_problem(value)
    if name == "memory_policy":
        from studio.engine.memory import POLICIES  # imports no torch

        if value not in POLICIES:
            return f"memory_policy {_short(value)} is not one of {', '.join(POLICIES)}"
        return ""
    if len(value) > MAX_LAYOUT_CHARS:
        return f"{name} is too long ({len(value):,} characters)"
    return ""


def _path_problem(value: Any) -> str:
    if not isinstance(value, str):
        return f"{_short(value)} is not a path"
    if len(value) > MAX_PATH_CHARS or "\0" in value:
        return f"{_short(value)} is not a usable path"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{_short(value)} is not a usable path"
    return ""


def _normalised(name: str, value: Any) -> Any:
    return value.lower() if name == "image_format" else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older file up to SCHEMA_VERSION, one step at a time."""
    version = data.get("schema_version", 1)
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= SCHEMA_VERSION
    ):
        raise ValueError(f"settings schema_version {version!r} is not one this version can read")
    if version == 1:
        # v1 kept the last values flat at the top level and called the preview interval "preview_steps"
        data["last"] = {k: data.pop(k) for k in list(data) if k in _V1_LAST_KEYS}
        if "preview_steps" in data:
            data["preview_every"] = data.pop("preview_steps")
        version = 2
    if version == 2:
        # v3: the preview choices are window state like the rest, kept in `last`
        last = data.get("last") if isinstance(data.get("last"), dict) else {}
        for key in ("preview_every", "preview_source"):
            if key in data:
                last[key] = data.pop(key)
        data["last"] = last
        version = 3
    data["schema_version"] = version
    return data


def settings_path(config_dir: Path | None = None) -> Path:
    return (config_dir or paths.config_dir()) / FILE_NAME


@dataclass
class LoadOutcome:
    settings: Settings
    # where the file was moved, so the UI can tell the user; None when all was well
    corrupt_copy: Path | None = None
    error: str = ""  # what was wrong: the whole file, or the values that were refused
    partial: bool = False  # True: only the values named in `error` fell back to their defaults

    @property
    def message(self) -> str:
        """One sentence for the user ("" when all was well)."""
        if not self.error:
            return ""
        kept = f" The original file was kept as {self.corrupt_copy}." if self.corrupt_copy else ""
        if self.partial:
            return f"Some saved settings were unusable and were reset: {self.error}.{kept}"
        return f"The settings file could not be read ({self.error}); using defaults.{kept}"


def load(path: Path) -> LoadOutcome:
    """Never raises: an unreadable file, or one with values the studio cannot take, is moved
    aside as `settings.json.corrupt-<timestamp>`; a file with some good values is rewritten
    with those values, so the user is told once."""
    try:
        if not path.exists() and not path.is_symlink():
            return LoadOutcome(Settings())
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"the file is {path.stat().st_size // 2**20} MB, far beyond settings")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the file does not hold a JSON object")
        settings, problems = Settings.checked_from_dict(data)
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return LoadOutcome(Settings(), _set_aside(path), f"{type(exc).__name__}: {reason}")
    if not problems:
        return LoadOutcome(settings)
    aside = _set_aside(path)
    if aside is not None:
        try:
            save(settings, path)  # the good values, so the next start is clean
        except OSError:
            pass  # saved again when the window closes
    shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
    return LoadOutcome(settings, aside, "; ".join(shown), partial=True)


def _set_aside(path: Path) -> Path | None:
    """Move the file out of the way under a name no earlier copy has; None if it cannot be."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        aside = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{n}" if n else ""))
        if aside.exists() or aside.is_symlink():
            continue
        try:
            os.replace(path, aside)
        except OSError:
            return None
        return aside
    return None


def save(settings: Settings, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settings.schema_version = SCHEMA_VERSION
    text = json.dumps(settings.to_dict(), indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
