"""Where the project's shipped resources and the user's folders live (no Qt, no torch)."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path, user_pictures_path

APP_NAME = "DiffusionStudio"

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
DEMO_MODEL = RESOURCES / "models" / "demo"
DEMO_CONTROLNETS = RESOURCES / "models" / "demo-controlnet"
CONFIGS = RESOURCES / "configs"  # offline diffusers config folders for single-file checkpoints


def default_output_dir() -> Path:
    try:
        pictures = user_pictures_path()
    except Exception:  # no pictures folder on headless systems
        return user_data_path(APP_NAME) / "outputs"
    return pictures / APP_NAME


def config_dir() -> Path:
    return user_config_path(APP_NAME)


def cache_dir() -> Path:
    return user_cache_path(APP_NAME)
