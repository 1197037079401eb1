"""Loading a model does only the work a load needs: counted here, never timed."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from studio.engine import metadata as md
from studio.engine import models
from studio.engine.generate import generate
from studio.engine.output import OutputFolder, save_result
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest


@pytest.fixture()
def hashed(monkeypatch) -> list[str]:
    """The files whose bytes are read for the model hash, in order, counted from a clean cache."""
    models._sha256_prefix.cache_clear()
    calls: list[str] = []
    real = models._sha256_of_file

    def counting(path: str) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(models, "_sha256_of_file", counting)
    yield calls
    models._sha256_prefix.cache_clear()


def short_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def fake_checkpoint(path: Path, payload: bytes = b"\0" * 64) -> Path:
    """A .safetensors file with SD 1.x keys in its header; inspecting reads only the header."""
    header = {
        "model.diffusion_model.input_blocks.0.0.weight": {"dtype": "F16", "shape": [320, 4, 3, 3]},
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": {
            "dtype": "F16",
            "shape": [768],
        },
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD 1.x single file, with its tiny configs beside it."""
    import shutil

    from tests.ldm_layout import write_tiny_single_file

    tiny = write_tiny_single_file("sd1", tmp_path_factory.mktemp("checkpoint"))
    shutil.copytree(tiny.config, tiny.path.with_name(tiny.path.name + ".config"))
    return tiny.path


def test_load_hashes_nothing_and_a_save_hashes_the_checkpoint_once(
    tiny_checkpoint, tmp_path, hashed
):
    ref = str(tiny_checkpoint)
    cache = PipelineCache("cpu")
    info = cache.load(ref)
    cache.load(ref)  # already loaded: nothing to do
    PipelineCache("cpu").load(ref)  # a second cache loads again, still no hash
    assert hashed == []

    request = GenerationRequest(model=ref, prompt="a red circle", width=64, height=64, steps=2)
    folder = OutputFolder(tmp_path / "out", "{counter:03}")
    paths = save_result(generate(request, cache), folder)
    paths += save_result(generate(request.with_(seed=4), cache), folder)
    assert len(paths) == 2 and info.weights_file == tiny_checkpoint
    assert hashed == [str(tiny_checkpoint.resolve())]  # once, for both images

    # what the metadata says is A1111's short hash of the checkpoint file
    for path in paths:
        assert md.read_settings(path).model_hash == short_sha256(tiny_checkpoint)

    # the next session finds it in the hash cache on disk: the file is not read again
    models._sha256_prefix.cache_clear()
    assert models.resolve_model(ref).model_hash == short_sha256(tiny_checkpoint)
    assert hashed == [str(tiny_checkpoint.resolve())]


def test_a_diffusers_folder_writes_no_model_hash(tiny_model, tmp_path, hashed):
    cache = PipelineCache("cpu")
    request = GenerationRequest(model=str(tiny_model), prompt="x", width=64, height=64, steps=1)
    (path,) = save_result(generate(request, cache), OutputFolder(tmp_path / "out"))
    read = md.read_settings(path)
    assert read.model_hash in ("", None) and hashed == []
    assert "Model hash" not in (read.raw_parameters or "")


def test_the_pipeline_is_built_once_per_model(tiny_model, monkeypatch):
    from studio.engine import pipelines

    built: list[str] = []
    real = pipelines._load_base
    monkeypatch.setattr(
        pipelines, "_load_base", lambda info, dtype: built.append(info.ref) or real(info, dtype)
    )
    cache = PipelineCache("cpu")
    for _ in range(3):
        cache.load(str(tiny_model))
    assert built == [str(tiny_model)]


def test_inspecting_a_checkpoint_reads_only_its_header(tmp_path, hashed):
    path = fake_checkpoint(tmp_path / "model.safetensors")
    info = models.resolve_model(str(path))
    assert models.find_models([tmp_path]) and hashed == []
    assert info.model_hash == short_sha256(path)
    assert info.model_hash == short_sha256(path)
    assert hashed == [str(path.resolve())]


def test_a_weights_file_replaced_after_inspection_gets_no_hash(tmp_path, hashed):
    path = fake_checkpoint(tmp_path / "model.safetensors")
    info = models.resolve_model(str(path))
    fake_checkpoint(path, payload=b"\1" * 128)  # another model under the same name
    os.utime(path, ns=(1, 1))
    assert info.model_hash == ""  # not the hash of weights that were never loaded
    assert models.resolve_model(str(path)).model_hash == short_sha256(path)


def test_a_hub_model_has_no_hash_and_no_weights_file():
    info = models.resolve_model("someone/some-model")
    assert info.weights_file is None and info.model_hash == ""


def test_a_small_model_loads_on_one_thread_and_the_threads_come_back(tiny_model, monkeypatch):
    import torch

    from studio.engine import pipelines

    seen: list[int] = []
    real = pipelines._load_base

    def load_base(info, dtype):
        seen.append(torch.get_num_threads())
        return real(info, dtype)

    monkeypatch.setattr(pipelines, "_load_base", load_base)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        PipelineCache("cpu").load(str(tiny_model))
        assert seen == [1] and torch.get_num_threads() == 2
        big = models.ModelInfo(
            "big", "big", None, "single_file", "sd1", 512, weights_version=(2**31, 0)
        )
        with pipelines._one_thread_if_small(big):
            assert torch.get_num_threads() == 2  # large tensors do gain from the threads
    finally:
        torch.set_num_threads(before)
