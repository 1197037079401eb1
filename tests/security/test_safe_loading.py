from __future__ import annotations

import pickle
import shutil

import pytest

from studio.engine.generate import generate
from studio.engine.models import resolve_model
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest


class _Boom:
    def __reduce__(self):  # runs at unpickling time: must never happen
        return (exec, ("open('PWNED', 'w').write('x')",))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match="pickle checkpoint"):
        resolve_model(str(bad))
    assert not (tmp_path / "PWNED").exists()


def test_folder_with_pickled_weights_is_not_unpickled(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "evil"
    shutil.copytree(tiny_model, folder)
    unet = folder / "unet"
    for f in unet.glob("*.safetensors"):
        f.unlink()
    (unet / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match="Could not load model"):
        PipelineCache().load(str(folder))
    assert not (tmp_path / "PWNED").exists()


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


def test_corrupt_safetensors_file_is_reported(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        resolve_model(str(bad))


def test_missing_model_is_explained():
    with pytest.raises(ValueError, match="Model not found"):
        resolve_model("./no/such/folder")
