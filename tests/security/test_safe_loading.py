"""Damaged model folders and missing models: a clear error, and the cache stays usable.

Hostile files (pickles, broken safetensors, the wrong kind of file) are in test_hostile_models.py.
"""

from __future__ import annotations

import shutil

import pytest

from studio.engine.generate import generate
from studio.engine.models import resolve_model
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest


def test_corrupt_weights_give_a_clear_error_and_the_cache_stays_usable(tiny_model, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model, folder)
    for f in (folder / "unet").glob("*.safetensors"):
        f.write_bytes(b"\x00" * 64)
    cache = PipelineCache()
    with pytest.raises(ValueError, match="Could not load model 'corrupt'"):
        cache.load(str(folder))
    ok = generate(GenerationRequest(model=str(tiny_model), width=64, height=64, steps=2), cache)
    assert len(ok.images) == 1


def test_missing_model_is_explained():
    with pytest.raises(ValueError, match="Model not found"):
        resolve_model("./no/such/folder")
