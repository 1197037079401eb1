"""Textual-inversion embeddings: triggered by their file name in the prompt, every vector
placed, chunk boundaries counting the vectors, nothing left behind after the job."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine.addons.embeddings import embedding_vocab, load_embedding, triggered_names
from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.prompts.chunks import CHUNK_LENGTH, EMBEDDING_PLACEHOLDER, tokenize_prompt
from studio.engine.prompts.encoder import PromptEncoder
from studio.engine.request import GenerationRequest
from tests.engine import addon_files
from tests.ldm_layout import tiny_pipeline

WIDTH = 32  # the tiny models' text encoder


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embeddings")
    addon_files.save(addon_files.embedding(WIDTH, 1, seed=1), folder / "zqx.safetensors")
    addon_files.save(
        addon_files.embedding(WIDTH, 3, seed=2, layout="single"), folder / "vvk.safetensors"
    )
    addon_files.save(addon_files.embedding(768, 2, seed=3), folder / "bigone.safetensors")
    return folder


@pytest.fixture()
def request_(tiny_model, emb_dir) -> GenerationRequest:
    return GenerationRequest(
        model=str(tiny_model),
        prompt="a zqx circle",
        width=64,
        height=64,
        steps=3,
        seed=5,
        sampler="Euler",
        embedding_dirs=(str(emb_dir),),
    )


def image(request: GenerationRequest, cache: PipelineCache) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0])


@pytest.mark.parametrize("name", ["zqx", "vvk"])  # one vector, three vectors
def test_an_embedding_is_triggered_by_its_name(cache, request_, name):
    prompt = f"a {name} circle"
    plain = image(request_.with_(prompt=prompt, embedding_dirs=()), cache)
    with_embedding = image(request_.with_(prompt=prompt), cache)
    assert np.abs(with_embedding.astype(int) - plain).max() > 4
    # and the model is back to its base state: the same job without the folder is unchanged
    assert np.array_equal(image(request_.with_(prompt=prompt, embedding_dirs=()), cache), plain)


def test_a_prompt_without_the_name_is_not_changed_by_the_folder(cache, request_):
    prompt = "a red circle"
    assert np.array_equal(
        image(request_.with_(prompt=prompt), cache),
        image(request_.with_(prompt=prompt, embedding_dirs=()), cache),
    )


def test_each_vector_takes_a_token_and_the_vectors_reach_the_encoder(tiny_model, emb_dir):
    pipe = tiny_pipeline("sd1")
    emb = load_embedding("vvk", emb_dir / "vvk.safetensors")
    vocab = embedding_vocab([emb], pipe.tokenizer, WIDTH)
    tokenized = tokenize_prompt("a vvk", pipe.tokenizer, embeddings=vocab)
    chunk = tokenized.chunks[0]
    a_ids = pipe.tokenizer("a", add_special_tokens=False)["input_ids"]
    assert chunk.tokens[1 : 2 + 3] == [*a_ids, *[EMBEDDING_PLACEHOLDER] * 3]
    assert [offset for offset, _ in chunk.fixes] == [1 + len(a_ids)]
    assert tokenized.token_count == len(a_ids) + 3

    # what the encoder's embedding layer (token + position) hands to the transformer
    token_layer = pipe.text_encoder.get_input_embeddings()
    layer = next(m for m in pipe.text_encoder.modules() if token_layer in m.children())
    seen = {}
    hook = layer.register_forward_hook(lambda m, a, out: seen.update(x=out.detach().clone()))
    PromptEncoder(pipe, "sd1", embeddings=[emb]).encode("a vvk")
    hook.remove()
    start = 1 + len(a_ids)
    positions = layer.position_embedding.weight[start : start + 3].detach()
    placed = seen["x"][0, start : start + 3] - positions
    assert torch.allclose(placed, emb.tensors[0], atol=1e-5)


def test_an_embedding_never_straddles_two_chunks(emb_dir):
    pipe = tiny_pipeline("sd1")
    emb = load_embedding("vvk", emb_dir / "vvk.safetensors")
    vocab = embedding_vocab([emb], pipe.tokenizer, WIDTH)
    filler = " ".join(["a"] * (CHUNK_LENGTH - 2))  # 73 tokens: 2 left, the embedding needs 3
    tokenized = tokenize_prompt(f"{filler} vvk", pipe.tokenizer, embeddings=vocab)
    assert len(tokenized.chunks) == 2
    assert tokenized.chunks[0].fixes == []
    second = tokenized.chunks[1]
    assert second.tokens[1:4] == [EMBEDDING_PLACEHOLDER] * 3
    assert [offset for offset, _ in second.fixes] == [1]


def test_sdxl_embeddings_give_each_encoder_its_own_vectors(tmp_path):
    pipe = tiny_pipeline("sdxl")
    path = addon_files.save(
        addon_files.embedding((32, 64), 2, seed=4, layout="sdxl"), tmp_path / "xlemb.safetensors"
    )
    emb = load_embedding("xlemb", path)
    plain = PromptEncoder(pipe, "sdxl").encode("a xlemb")
    with_emb = PromptEncoder(pipe, "sdxl", embeddings=[emb]).encode("a xlemb")
    assert plain.embeds.shape == with_emb.embeds.shape
    # both halves of the SDXL embedding (CLIP-L 32 wide, bigG 64 wide) change
    assert not torch.equal(plain.embeds[..., :32], with_emb.embeds[..., :32])
    assert not torch.equal(plain.embeds[..., 32:], with_emb.embeds[..., 32:])


def test_an_embedding_for_another_family_is_refused_by_name(cache, request_):
    with pytest.raises(ValueError, match=r"Embedding 'bigone' is made for another model family"):
        generate(request_.with_(prompt="a bigone circle"), cache)


def test_names_are_found_as_words_ignoring_case():
    assert triggered_names(["A ZQX, circle"], ["zqx", "zq", "circ"]) == ["zqx"]
