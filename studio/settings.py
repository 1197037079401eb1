"""The user's settings: a plain dataclass saved as JSON in the user config dir (no Qt, no torch).

A file that cannot be read never stops the app: it is moved aside as
`settings.json.corrupt-<timestamp>` and the defaults are used.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
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
        """Unknown keys are dropped and wrong types fall back to the default, one key at a time."""
        data = migrate(dict(data))
        settings = cls()
        for f in fields(cls):
            if f.name not in data or f.name == "schema_version":
                continue
            if f.name == "last":
                settings.last = _json_scalars(data["last"])
            else:
                _set_checked(settings, f.name, data[f.name])
        return settings


def _json_scalars(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    scalar = (str, int, float, bool, type(None))
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, scalar)}


def _set_checked(target: Any, name: str, value: Any) -> None:
    default = getattr(target, name)
    if isinstance(default, bool) or isinstance(value, bool):
        ok = type(value) is type(default)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, type(default))
    if ok:
        setattr(target, name, value)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older file up to SCHEMA_VERSION, one step at a time."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
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
    # where a corrupt file was moved, so the UI can tell the user; None when all was well
    corrupt_copy: Path | None = None
    error: str = ""


def load(path: Path) -> LoadOutcome:
    if not path.exists():
        return LoadOutcome(Settings())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the file does not hold a JSON object")
        return LoadOutcome(Settings.from_dict(data))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = None
        return LoadOutcome(Settings(), aside, f"{type(exc).__name__}: {exc}")


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
