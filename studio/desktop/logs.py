"""Quiet output: library warnings go to a log file in the user's data folder, not the terminal.

`--verbose` shows everything in the terminal as well. The studio's own warnings and errors are
always shown; so is anything a library logs as an error.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from platformdirs import user_data_path

from studio.paths import APP_NAME

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_file() -> Path:
    return user_data_path(APP_NAME) / "logs" / "studio.log"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (a test's capture, a redirected stream)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _OwnOrErrors(logging.Filter):
    """Quiet terminal: the studio's warnings, and other libraries' errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings":  # warnings.warn from any library
            return False
        return record.name.startswith("studio") or record.levelno >= logging.ERROR


def setup(verbose: bool = False, path: Path | None = None) -> Path | None:
    """Route logging and Python warnings; returns the log file (None if it cannot be written)."""
    if not verbose:
        # these libraries print through their own handlers; errors still come through
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    logging.captureWarnings(True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_studio", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = _Stderr()
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if verbose:
        console.setLevel(logging.DEBUG)
    else:
        console.setLevel(logging.WARNING)
        console.addFilter(_OwnOrErrors())
    handlers: list[logging.Handler] = [console]
    path = path or log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.handlers.RotatingFileHandler(
            path, maxBytes=2 * 2**20, backupCount=2, encoding="utf-8", delay=True
        )
        file.setFormatter(logging.Formatter(FORMAT))
        file.setLevel(logging.INFO)
        handlers.append(file)
    except OSError:
        path = None  # a read-only home: the terminal still works
    for handler in handlers:
        handler._studio = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    return path
