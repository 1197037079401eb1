from __future__ import annotations

import os

# Qt must never open a real window in tests; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test must never reach a model hub
# tiny models gain nothing from intra-op threads, and on a busy machine spinning OpenMP
# threads make each step 10-50x slower; one thread keeps the suite fast everywhere
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """The app's cache (model hashes) lives in a temporary folder, never in the user's."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SD pipeline saved as a local diffusers folder (64x64 native)."""
    from tests.tiny_models import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_inpaint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random 9-channel inpainting pipeline (SD-inpainting shaped)."""
    from tests.tiny_models import save_tiny_pipeline

    return save_tiny_pipeline(
        tmp_path_factory.mktemp("models") / "tiny-sd-inpaint", unet_in_channels=9
    )
