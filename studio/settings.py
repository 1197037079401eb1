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

SCHEMA_VERSION = 2
FILE_NAME = "settings.json"


@dataclass
class LastValues:
    """What the generation widgets showed when the app was closed."""

    model: str = "demo"
    prompt: str = ""
    negative_prompt: str = ""
    sampler: str = "DPM++ 2M Karras"
    schedule_type: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    seed: int = -1
    width: int = 128
    height: int = 128
    batch_count: int = 1
    batch_size: int = 1
    strength: float = 0.75
    mode: str = "txt2img"


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    output_dir: str = ""  # empty: the platform's pictures folder (paths.default_output_dir)
    preview_every: int = 1  # steps between live previews; 0 turns them off
    preview_source: str = "x0"  # "x0" (predicted clean image) or "xt" (noisy latent)
    image_format: str = "png"
    known_models: list[str] = field(default_factory=list)
    model_folders: list[str] = field(default_factory=list)
    window_geometry: str = ""  # base64 of QWidget.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState()
    last: LastValues = field(default_factory=LastValues)

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
                settings.last = _fill(LastValues(), data["last"])
            else:
                _set_checked(settings, f.name, data[f.name])
        return settings


def _fill(target: LastValues, data: Any) -> LastValues:
    if isinstance(data, dict):
        for name in (f.name for f in fields(target)):
            if name in data:
                _set_checked(target, name, data[name])
    return target


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
        last = {k: data.pop(k) for k in list(data) if k in {f.name for f in fields(LastValues)}}
        data["last"] = last
        if "preview_steps" in data:
            data["preview_every"] = data.pop("preview_steps")
        version = 2
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
