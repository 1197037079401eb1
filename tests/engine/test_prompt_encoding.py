"""Prompt embeddings as A1111 makes them, checked against the semantics and against diffusers.

Tiny pipelines with the shipped CLIP tokenizers (tests/ldm_layout.py): real vocabulary, random
weights, no download.
"""

from __future__ import annotations

import pytest
import torch

from studio.engine.prompts.chunks import CHUNK_LENGTH, token_counter_text, tokenize_prompt
from studio.engine.prompts.encoder import PromptEncoder
from tests.ldm_layout import tiny_pipeline

FAMILY = {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl"}


@pytest.fixture(scope="module")
def pipes():
    return {family: tiny_pipeline(family) for family in ("sd1", "sd2", "sdxl")}


def words(n: int, start: int = 0) -> str:
    # "cat" "dog" ... : ordinary words that are one CLIP token each
    vocabulary = ["cat", "dog", "red", "blue", "tree", "house", "sky", "sun", "car", "hat"]
    return " ".join(vocabulary[(start + i) % len(vocabulary)] for i in range(n))


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_a_plain_prompt_is_bit_identical_to_diffusers(pipes, family):
    pipe = pipes[family]
    ours = PromptEncoder(pipe, family).encode("a red cat on a blue sofa")
    with torch.no_grad():
        if family == "sdxl":
            theirs, _, pooled, _ = pipe.encode_prompt(
                "a red cat on a blue sofa", device="cpu", do_classifier_free_guidance=False
            )
            assert torch.equal(ours.pooled, pooled)
        else:
            theirs, _ = pipe.encode_prompt(
                "a red cat on a blue sofa", "cpu", 1, do_classifier_free_guidance=False
            )
    assert torch.equal(ours.embeds, theirs)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_weight_one_is_bit_identical_to_no_weight(pipes, family):
    encoder = PromptEncoder(pipes[family], family)
    assert torch.equal(encoder.encode("a (red:1.0) cat").embeds, encoder.encode("a red cat").embeds)


def test_a_weighted_token_is_scaled_and_the_chunk_mean_restored(pipes):
    encoder = PromptEncoder(pipes["sd1"], "sd1")
    plain = encoder.encode("a red cat").embeds
    weighted = encoder.encode("a (red:1.5) cat").embeds
    # token 0 is the start token, then "a", "red", "cat"
    multipliers = torch.ones(1, 77, 1)
    multipliers[0, 2] = 1.5
    expected = plain * multipliers
    expected = expected * (plain.mean() / expected.mean())
    torch.testing.assert_close(weighted, expected, rtol=0, atol=1e-6)
    assert torch.allclose(weighted.mean(), plain.mean())
    assert not torch.allclose(weighted[0, 2], plain[0, 2])


def test_long_prompts_are_chunked_never_truncated(pipes):
    encoder = PromptEncoder(pipes["sd1"], "sd1")
    encoded = encoder.encode(words(150))
    assert encoded.embeds.shape[1] == 2 * 77
    assert encoded.token_count == 150
    assert token_counter_text(words(80), pipes["sd1"].tokenizer) == "80/150"


def test_chunks_follow_a1111s_comma_backtrack(pipes):
    tokenizer = pipes["sd1"].tokenizer
    # 60 words, a comma, then 75 words: the chunk fills at 75 tokens, its last comma is 15
    # tokens back (within 20), so the 14 words after it move to the second chunk
    text = words(60) + ", " + words(75, start=60)
    chunks = tokenize_prompt(text, tokenizer).chunks
    comma = tokenizer.get_vocab()[",</w>"]
    first = chunks[0].tokens
    assert len(chunks) == 2 and all(len(c.tokens) == 77 for c in chunks)
    assert first[61] == comma  # start token, 60 words, then the comma ends the first chunk
    assert first[62:] == [tokenizer.eos_token_id] * 15
    assert (
        chunks[1].tokens[1:76]
        == tokenizer(words(75, start=60), add_special_tokens=False)["input_ids"]
    )
    # a comma further back than 20 tokens does not move anything
    far = tokenize_prompt(words(40) + ", " + words(109, start=40), tokenizer).chunks
    assert far[0].tokens[76] == tokenizer.eos_token_id and far[0].tokens[75] != comma


def test_break_starts_a_new_chunk(pipes):
    tokenizer = pipes["sd1"].tokenizer
    tokenized = tokenize_prompt("red cat BREAK blue dog", tokenizer)
    assert len(tokenized.chunks) == 2
    ids = tokenizer("blue dog", add_special_tokens=False)["input_ids"]
    assert tokenized.chunks[1].tokens[1:3] == ids
    assert tokenized.token_count == CHUNK_LENGTH + 2


def test_openclip_tokenizers_pad_with_zero_after_the_end_token(pipes):
    tokens = tokenize_prompt("red cat", pipes["sdxl"].tokenizer_2).chunks[0].tokens
    assert tokens[3] == pipes["sdxl"].tokenizer_2.eos_token_id and set(tokens[4:]) == {0}


def test_sdxl_pools_the_first_chunk_before_emphasis(pipes):
    encoder = PromptEncoder(pipes["sdxl"], "sdxl")
    first_only = encoder.encode(words(20))
    assert torch.equal(encoder.encode(words(20) + " BREAK " + words(5)).pooled, first_only.pooled)
    assert torch.equal(encoder.encode(f"({words(20)}:1.4)").pooled, first_only.pooled)
    assert not encoder.zeros_like_empty().embeds.any()


def test_clip_skip_reads_an_earlier_layer_on_sd1_and_is_ignored_on_sd2(pipes):
    for family, changes in (("sd1", True), ("sd2", False)):
        default = PromptEncoder(pipes[family], family).encode("red cat").embeds
        skipped = PromptEncoder(pipes[family], family, clip_skip=2).encode("red cat").embeds
        assert torch.equal(default, skipped) is not changes
    # A1111's "Clip skip: 2": the penultimate layer through the final LayerNorm
    encoder = pipes["sd1"].text_encoder
    ids = torch.tensor([tokenize_prompt("red cat", pipes["sd1"].tokenizer).chunks[0].tokens])
    with torch.no_grad():
        hidden = encoder(ids, output_hidden_states=True).hidden_states[-2]
        expected = encoder.final_layer_norm(hidden)  # transformers 5 layout
    assert torch.equal(
        PromptEncoder(pipes["sd1"], "sd1", clip_skip=2).encode("red cat").embeds, expected
    )
