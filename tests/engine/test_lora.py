"""LoRAs named by <lora:name:weight> tags: kohya and peft layouts, several at once, and the
base weights exactly back after any number of switches."""

from __future__ import annotations

import numpy as np
import pytest

from studio.engine.addons.lora import find_lora, inspect_lora
from studio.engine.addons.tags import LoraTag, lora_tags, set_lora_tag, strip_lora_tags
from studio.engine.checks import check_request
from studio.engine.generate import generate
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest
from tests.engine import addon_files


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache()


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, tiny_model, cache):
    folder = tmp_path_factory.mktemp("loras")
    cache.load(str(tiny_model))
    pipe = cache.pipeline(GenerationRequest(model=str(tiny_model)))
    addon_files.save(addon_files.kohya_lora(pipe, seed=1), folder / "inky.safetensors")
    addon_files.save(addon_files.peft_lora(pipe, seed=2), folder / "sub" / "peaty.safetensors")
    addon_files.save(addon_files.loha(pipe), folder / "hairy.safetensors")
    addon_files.save(addon_files.lokr(pipe), folder / "kron.safetensors")
    addon_files.save(addon_files.foreign_lora(768), folder / "sd15only.safetensors")
    return folder


@pytest.fixture()
def base_request(tiny_model, lora_dir) -> GenerationRequest:
    return addon_files.tiny_request(tiny_model, seed=11, lora_dirs=(str(lora_dir),))


def pixels(request: GenerationRequest, cache: PipelineCache) -> np.ndarray:
    return np.asarray(generate(request, cache).images[0])


def with_tags(request: GenerationRequest, tags: str) -> GenerationRequest:
    return request.with_(prompt=f"{request.prompt} {tags}".strip())


@pytest.mark.parametrize("name", ["inky", "peaty"])  # kohya layout, peft layout
def test_a_lora_changes_the_output_and_removing_it_restores_it_exactly(cache, base_request, name):
    base = pixels(base_request, cache)
    with_lora = pixels(with_tags(base_request, f"<lora:{name}:1>"), cache)
    assert np.abs(with_lora.astype(int) - base).max() > 8
    assert np.array_equal(pixels(base_request, cache), base)


def test_the_weight_scales_the_lora_and_several_loras_combine(cache, base_request):
    base = pixels(base_request, cache).astype(int)
    full = pixels(with_tags(base_request, "<lora:inky:1>"), cache).astype(int)
    half = pixels(with_tags(base_request, "<lora:inky:0.3>"), cache).astype(int)
    both = pixels(with_tags(base_request, "<lora:inky:1> <lora:peaty:0.8>"), cache).astype(int)
    assert 0 < np.abs(half - base).mean() < np.abs(full - base).mean()
    assert not np.array_equal(both, full)


def test_twenty_switches_leave_no_drift(cache, base_request):
    base = pixels(base_request, cache)
    first_inky = pixels(with_tags(base_request, "<lora:inky:0.9>"), cache)
    cycle = ["<lora:inky:0.9>", "<lora:peaty:1>", "<lora:inky:0.5> <lora:peaty:0.7>", ""]
    for i in range(20):
        pixels(with_tags(base_request, cycle[i % len(cycle)]), cache)
    assert np.array_equal(pixels(with_tags(base_request, "<lora:inky:0.9>"), cache), first_inky)
    assert np.array_equal(pixels(base_request, cache), base)
    unet = cache.pipeline(base_request).unet
    assert not any("lora" in n for n, _ in unet.named_modules())  # no adapter layer left


def test_lora_tags_stay_in_the_request_and_the_text_is_read_without_them(cache, base_request):
    tagged = with_tags(base_request, "<lora:inky:0>")  # weight 0: the LoRA adds nothing
    result = generate(tagged, cache)
    assert result.request.prompt.endswith("<lora:inky:0>")
    assert np.array_equal(np.asarray(result.images[0]), pixels(base_request, cache))


@pytest.mark.parametrize(("name", "kind"), [("hairy", "LoHa"), ("kron", "LoKr")])
def test_lycoris_types_diffusers_cannot_load_get_a_message_naming_the_type(
    base_request, name, kind
):
    with pytest.raises(ValueError, match=rf"'{name}' is a {kind} \(LyCORIS\) file"):
        check_request(with_tags(base_request, f"<lora:{name}:1>"))


def test_a_lora_for_another_family_is_refused_by_name(cache, base_request):
    with pytest.raises(ValueError, match=r"LoRA 'sd15only' is made for SD 1.x models"):
        generate(with_tags(base_request, "<lora:sd15only:1>"), cache)


def test_a_missing_lora_names_the_folders_it_was_looked_for_in(base_request, lora_dir):
    with pytest.raises(ValueError, match=r"LoRA 'nosuch' was not found.*" + lora_dir.name):
        check_request(with_tags(base_request, "<lora:nosuch:1>"))


def test_pickled_loras_are_refused_with_a_message(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="pickle"):
        find_lora("old", [tmp_path])


def test_lora_files_are_found_in_subfolders_and_inspected_from_the_header(lora_dir):
    path = find_lora("peaty", [lora_dir])
    assert path.parent.name == "sub"
    assert inspect_lora(path).context_width == 32


def test_tags_parse_as_a1111_writes_them():
    assert lora_tags("a <lora:x:0.5>, b <lora:y> <lyco:z:0.2:0.7>") == [
        LoraTag("x", 0.5, 0.5),
        LoraTag("y", 1.0, 1.0),
        LoraTag("z", 0.2, 0.7),
    ]
    assert strip_lora_tags("a <lora:x:0.5>, b") == "a , b"
    with pytest.raises(ValueError, match="not a number"):
        lora_tags("<lora:x:heavy>")
    assert set_lora_tag("a cat", LoraTag("x", 0.5), "x") == "a cat <lora:x:0.5>"
    assert set_lora_tag("a <lora:x:1> cat", None, "x") == "a cat"


def test_the_token_counter_leaves_lora_tags_out():
    from studio.engine.prompts.chunks import token_counter_text
    from tests.ldm_layout import tiny_pipeline

    tokenizer = tiny_pipeline("sd1").tokenizer
    assert token_counter_text("a cat <lora:inky:0.8>", tokenizer) == token_counter_text(
        "a cat ", tokenizer
    )


def test_an_sdxl_lora_reaches_both_text_encoders_and_is_removed_exactly(tmp_path):
    import torch

    from studio.engine.addons.lora import apply_loras, check_lora_fits
    from tests.ldm_layout import tiny_pipeline

    pipe = tiny_pipeline("sdxl")
    pipe.set_progress_bar_config(disable=True)
    weights = addon_files.kohya_lora(pipe, seed=1)
    weights = {k.replace("lora_te_", "lora_te1_"): v for k, v in weights.items()}  # kohya's SDXL
    g = torch.Generator().manual_seed(5)
    for name, m in addon_files._linears(pipe.text_encoder_2):
        key = "lora_te2_" + name.replace(".", "_")
        weights[f"{key}.lora_down.weight"] = torch.randn(4, m.in_features, generator=g) * 0.3
        weights[f"{key}.lora_up.weight"] = torch.randn(m.out_features, 4, generator=g) * 0.3
        weights[f"{key}.alpha"] = torch.tensor(4.0)
    lora = inspect_lora(addon_files.save(weights, tmp_path / "xl.safetensors"))
    assert lora.sdxl
    check_lora_fits(lora, pipe)

    def run():
        generator = torch.Generator().manual_seed(0)
        return pipe("a cat", num_inference_steps=2, generator=generator, output_type="np").images

    base = run()
    apply_loras(pipe, [(lora, LoraTag("xl", 1.0))])
    assert set(pipe.get_list_adapters()) == {"unet", "text_encoder", "text_encoder_2"}
    assert np.abs(run() - base).max() > 0.05
    apply_loras(pipe, [])
    assert np.array_equal(run(), base)

    sd1 = inspect_lora(addon_files.save(addon_files.foreign_lora(32), tmp_path / "sd1.safetensors"))
    with pytest.raises(ValueError, match="LoRA 'sd1' is made for a model with 32-wide"):
        check_lora_fits(sd1, pipe)
