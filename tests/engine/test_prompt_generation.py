"""The prompt language end to end through generate(): editing, weights, long prompts, AND."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.prompts.conditioning import ConditionedUNet, PromptConditioning
from studio.engine.prompts.encoder import PromptEncoder
from studio.engine.request import ControlSpec, GenerationRequest
from tests.ldm_layout import write_tiny_single_file
from tests.tiny_models import save_tiny_controlnet


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture()
def base(tiny_model) -> GenerationRequest:
    return GenerationRequest(
        model=str(tiny_model), prompt="red cat", width=64, height=64, steps=6, seed=3
    )


def run(cache, request) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0]).astype(np.int16)


def test_prompt_editing_at_the_ends_is_exactly_one_side(cache, base):
    red, blue = run(cache, base.with_(prompt="red")), run(cache, base.with_(prompt="blue"))
    assert np.array_equal(run(cache, base.with_(prompt="[blue:red:0.0]")), red)
    assert np.array_equal(run(cache, base.with_(prompt="[blue:red:1.0]")), blue)
    halfway = run(cache, base.with_(prompt="[blue:red:0.5]"))
    assert not np.array_equal(halfway, red) and not np.array_equal(halfway, blue)


def test_alternation_differs_from_either_option(cache, base):
    mixed = run(cache, base.with_(prompt="[red|blue] cat"))
    assert not np.array_equal(mixed, run(cache, base.with_(prompt="red cat")))
    assert not np.array_equal(mixed, run(cache, base.with_(prompt="blue cat")))


def test_a_weight_changes_the_image_and_weight_one_changes_nothing(cache):
    # the demo model: a trained text encoder (a random one has no mean for emphasis to keep)
    demo = GenerationRequest(prompt="a red circle and a blue square", steps=8, seed=5)
    plain = run(cache, demo)
    assert np.array_equal(
        run(cache, demo.with_(prompt="a (red:1.0) circle and a blue square")), plain
    )
    heavier = run(cache, demo.with_(prompt="a (red:1.6) circle and a blue square"))
    assert not np.array_equal(heavier, plain)


def test_words_after_the_75th_token_still_count(cache, base):
    # the tiny tokenizer has one token per letter: 80 letters fill more than one chunk
    head = "a" * 80
    red = run(cache, base.with_(prompt=f"{head} red"))
    blue = run(cache, base.with_(prompt=f"{head} blue"))
    assert not np.array_equal(red, blue)  # diffusers alone would truncate both to the same


def test_and_of_one_prompt_with_weights_summing_to_one_is_that_prompt(cache, base):
    plain = run(cache, base)
    composed = run(cache, base.with_(prompt="red cat :0.5 AND red cat :0.5"))
    assert np.abs(composed - plain).max() <= 2


def test_and_combines_two_prompts_into_something_new(cache, base):
    both = run(cache, base.with_(prompt="red cat AND blue dog"))
    assert not np.array_equal(both, run(cache, base))
    assert not np.array_equal(both, run(cache, base.with_(prompt="red cat blue dog")))


def test_a_negative_prompt_longer_than_the_prompt_runs_as_its_own_pass(cache, base):
    long_negative = base.with_(negative_prompt="b" * 100)  # two chunks against one
    image = run(cache, long_negative)
    assert not np.array_equal(image, run(cache, base.with_(negative_prompt="b")))


def test_batch_image_k_of_an_and_prompt_is_the_same_alone(cache, base):
    request = base.with_(prompt="red cat AND [blue|green] dog:0.7", batch_size=2)
    batch = generate(request, cache).images
    alone = generate(request.with_(batch_size=1, seed=request.seed + 1), cache).images[0]
    diff = np.abs(np.asarray(batch[1]).astype(int) - np.asarray(alone).astype(int))
    assert diff.max() <= 2


def test_the_wrapped_unet_equals_separate_unet_calls(tiny_model, cache, base):
    cache.load(str(tiny_model))
    pipe = cache.pipeline(base)
    with torch.no_grad():
        conditioning = PromptConditioning(
            PromptEncoder(pipe, "small"), "red cat AND blue:0.5", "x" * 90, 6
        )
        now = conditioning.at(0)
        sample = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        t = torch.tensor(500)

        def unet(x, encoded):
            return pipe.unet(x, t, encoder_hidden_states=encoded.embeds, return_dict=False)[0]

        u = unet(sample[:1], now.uncond)
        c1, c2 = (unet(sample[1:], c) for c, _ in now.conds)
        expected = torch.cat([u, u + 1.0 * (c1 - u) + 0.5 * (c2 - u)])
        with ConditionedUNet(pipe, conditioning, batch_size=1):
            placeholder = torch.zeros(2, 77, 32)
            got = pipe.unet(sample, t, encoder_hidden_states=placeholder, return_dict=False)[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert "forward" not in vars(pipe.unet)  # unwrapped again


def test_controlnet_runs_with_and_and_editing(tiny_model, tmp_path, cache, base):
    control = save_tiny_controlnet(tiny_model, tmp_path / "cn")
    square = Image.new("RGB", (64, 64))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    request = base.with_(
        prompt="[red:blue:0.5] cat AND dog",
        controls=(ControlSpec(model=str(control), image=square),),
    )
    result = generate(request, cache)
    assert result.images and result.images[0].size == (64, 64)


def test_sdxl_runs_and_editing_and_weights_with_pooled_embeddings(tmp_path):
    model = write_tiny_single_file("sdxl", tmp_path / "xl").diffusers
    cache = PipelineCache()
    request = GenerationRequest(
        model=str(model), prompt="red cat", width=64, height=64, steps=4, seed=1
    )
    plain = run(cache, request)
    edited = run(cache, request.with_(prompt="[red:(blue:1.3):0.5] cat AND dog:0.4"))
    assert edited.shape == plain.shape and not np.array_equal(edited, plain)
