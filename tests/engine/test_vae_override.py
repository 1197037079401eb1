"""A VAE override decodes instead of the model's own VAE, is recorded, and clears exactly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from studio.engine.generate import generate
from studio.engine.metadata.infotext import a1111_parameters
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest
from tests.engine import addon_files
from tests.ldm_layout import vae_to_ldm


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("vaes")
    config = dict(AutoencoderKL.load_config(tiny_model / "vae"))
    torch.manual_seed(9)
    other = AutoencoderKL.from_config(config)
    with torch.no_grad():  # a decoder clearly unlike the model's own
        for p in other.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    other.save_pretrained(folder / "other-folder", safe_serialization=True)
    ldm = {k: v.contiguous() for k, v in vae_to_ldm(other.state_dict(), config).items()}
    addon_files.save(ldm, folder / "other.safetensors")
    wrong = AutoencoderKL.from_config({**config, "block_out_channels": [8, 8, 8, 8]})
    addon_files.save(vae_to_ldm(wrong.state_dict(), config), folder / "wrong.safetensors")
    return folder


@pytest.fixture()
def request_(tiny_model, vae_dir) -> GenerationRequest:
    return addon_files.tiny_request(tiny_model, seed=3, vae_dirs=(str(vae_dir),))


def image(request: GenerationRequest, cache: PipelineCache) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0])


def test_a_vae_override_changes_decoding_and_clearing_it_restores_the_models_own(
    cache, request_, vae_dir
):
    base = image(request_, cache)
    single_file = image(request_.with_(vae="other"), cache)
    assert np.abs(single_file.astype(int) - base).max() > 8
    # the single file (original layout) and the diffusers folder hold the same weights
    folder = image(request_.with_(vae=str(vae_dir / "other-folder")), cache)
    assert np.array_equal(single_file, folder)
    assert np.array_equal(image(request_, cache), base)
    pipe = cache.pipeline(request_)
    assert pipe.vae is cache._base.vae


def test_the_vae_is_recorded_as_a1111_writes_it(request_, vae_dir):
    text = a1111_parameters(request_.with_(vae="other"), model_name="tiny", model_hash="")
    digest = hashlib.sha256((vae_dir / "other.safetensors").read_bytes()).hexdigest()
    assert f"VAE hash: {digest[:10]}, VAE: other.safetensors" in text


def test_a_vae_of_another_architecture_is_refused_by_name(cache, request_):
    with pytest.raises(ValueError, match=r"VAE 'wrong.safetensors' does not fit this model"):
        generate(request_.with_(vae="wrong"), cache)


def test_a_missing_vae_says_where_it_was_looked_for(cache, request_, vae_dir):
    with pytest.raises(ValueError, match=r"VAE 'nosuch' was not found.*" + vae_dir.name):
        generate(request_.with_(vae="nosuch"), cache)
