"""The offline config folders for single-file checkpoints (resources/configs), fully offline.

Every model is built on the meta device (no memory, no weights) and must have the published
parameter count; the figures marked "computed" have no published number and were derived from the
architecture (explained next to each) and pinned.
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.engine import clip_vocab
from studio.engine.configs import (
    CLIP_TOKENIZER_DIR,
    CONFIG_NAMES,
    CONFIGS_DIR,
    DIFFUSERS_MODEL_TYPES,
    config_dir,
    load_clip_tokenizer,
    single_file_kwargs,
    tokenizers_for,
)
from studio.paths import CONFIGS

SD1 = ("sd15", "sd15-inpainting")
SD2 = ("sd21-v", "sd21-base", "sd2-inpainting")
SDXL = ("sdxl-base", "sdxl-refiner", "sdxl-inpainting")
INPAINTING = ("sd15-inpainting", "sd2-inpainting", "sdxl-inpainting")

# 5 extra input channels (mask + masked-image latents) on conv_in: 320 out x 5 in x 3 x 3
INPAINT_EXTRA = 320 * 5 * 3 * 3  # 14,400

UNET_SD15 = 859_520_964  # published
UNET_SD21 = 865_910_724  # published
UNET_SDXL = 2_567_463_684  # published
# computed: the refiner config (384-wide, channel_mult 1,2,4,4, 4 transformer layers at the two
# middle levels and in the mid block, context 1280, adm 2560) is what diffusers' own
# create_unet_diffusers_config_from_ldm makes of generative-models' sd_xl_refiner.yaml; ~2.26 B
UNET_SDXL_REFINER = 2_259_526_660
VAE = 83_653_863  # published, all families
CLIP_L = 123_060_480  # published (OpenAI CLIP ViT-L/14 text tower)
BIGG_WITH_PROJECTION = 694_659_840  # published (OpenCLIP bigG text tower + 1280x1280 projection)
# computed: SD 2's OpenCLIP ViT-H text tower without its last block (diffusers keeps 23 of 24):
#   token embedding 49408x1024 = 50,593,792; positions 77x1024 = 78,848;
#   per layer: q,k,v,o 4x(1024x1024 + 1024) = 4,198,400; two LayerNorms 4,096;
#              MLP 1024x4096 + 4096 + 4096x1024 + 1024 = 8,393,728  -> 12,596,224;
#   23 layers = 289,713,152; final LayerNorm 2,048; total 340,387,840 (~340.4 M). Check: 24 layers
#   plus OpenCLIP's 1024x1024 text_projection = 354,032,640, OpenCLIP's ViT-H-14 text tower.
OPENCLIP_H_23 = 340_387_840

EXPECTED = {
    "sd15": {"unet": UNET_SD15, "text_encoder": CLIP_L},
    "sd15-inpainting": {"unet": UNET_SD15 + INPAINT_EXTRA, "text_encoder": CLIP_L},
    "sd21-v": {"unet": UNET_SD21, "text_encoder": OPENCLIP_H_23},
    "sd21-base": {"unet": UNET_SD21, "text_encoder": OPENCLIP_H_23},
    "sd2-inpainting": {"unet": UNET_SD21 + INPAINT_EXTRA, "text_encoder": OPENCLIP_H_23},
    "sdxl-base": {
        "unet": UNET_SDXL,
        "text_encoder": CLIP_L,
        "text_encoder_2": BIGG_WITH_PROJECTION,
    },
    "sdxl-refiner": {"unet": UNET_SDXL_REFINER, "text_encoder_2": BIGG_WITH_PROJECTION},
    "sdxl-inpainting": {
        "unet": UNET_SDXL + INPAINT_EXTRA,
        "text_encoder": CLIP_L,
        "text_encoder_2": BIGG_WITH_PROJECTION,
    },
}

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _index(name: str) -> dict:
    return json.loads((config_dir(name) / "model_index.json").read_text(encoding="utf-8"))


def _config(name: str, component: str) -> dict:
    file = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((config_dir(name) / component / file).read_text(encoding="utf-8"))


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- the folders -------------------------------------------------------------------------------


def test_the_folders_are_the_known_names():
    assert CONFIGS_DIR == CONFIGS
    on_disk = {p.name for p in CONFIGS_DIR.iterdir() if p.is_dir()}
    assert on_disk == {*CONFIG_NAMES, CLIP_TOKENIZER_DIR.name}
    assert set(DIFFUSERS_MODEL_TYPES.values()) <= set(CONFIG_NAMES)
    for name in CONFIG_NAMES:
        assert config_dir(name) == CONFIGS_DIR / name


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="sd15") as err:
        config_dir("sd3")
    assert all(name in str(err.value) for name in CONFIG_NAMES)
    with pytest.raises(ValueError):
        tokenizers_for("clip-tokenizer")


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_model_index_names_real_classes_and_each_component_has_its_config(name):
    import diffusers

    index = _index(name)
    pipeline_cls = getattr(diffusers, index["_class_name"])
    accepted = set(inspect.signature(pipeline_cls.__init__).parameters)
    components = {k: v for k, v in index.items() if not k.startswith("_")}
    assert set(components) <= accepted, set(components) - accepted

    for slot, value in components.items():
        if not isinstance(value, list):
            continue  # a pipeline flag (requires_safety_checker, force_zeros_for_empty_prompt, ...)
        library, class_name = value
        if library is None:
            assert not (config_dir(name) / slot).exists()
            continue
        assert hasattr(importlib.import_module(library), class_name), (slot, value)
        if slot.startswith("tokenizer"):
            # the shared vocabulary is passed in as a keyword: no per-folder copies
            assert not (config_dir(name) / slot).exists()
        else:
            file = "scheduler_config.json" if slot == "scheduler" else "config.json"
            assert (config_dir(name) / slot / file).is_file(), slot

    tokenizer_slots = {k for k, v in components.items() if k.startswith("tokenizer") and v[0]}
    assert set(tokenizers_for(name)) == tokenizer_slots


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_no_safety_checker_or_feature_extractor(name):
    index = _index(name)
    assert index["feature_extractor"] == [None, None]
    if name not in SDXL:
        assert index["safety_checker"] == [None, None]
        assert index["requires_safety_checker"] is False


def test_sdxl_pipeline_flags_as_published():
    assert _index("sdxl-base")["force_zeros_for_empty_prompt"] is True
    assert _index("sdxl-inpainting")["force_zeros_for_empty_prompt"] is True
    assert _index("sdxl-inpainting")["requires_aesthetics_score"] is False
    refiner = _index("sdxl-refiner")
    assert refiner["requires_aesthetics_score"] is True
    assert refiner["force_zeros_for_empty_prompt"] is False
    assert refiner["text_encoder"] == [None, None] and refiner["tokenizer"] == [None, None]
    assert refiner["_class_name"] == "StableDiffusionXLImg2ImgPipeline"


def test_pipeline_classes_per_task():
    assert {n: _index(n)["_class_name"] for n in INPAINTING} == {
        "sd15-inpainting": "StableDiffusionInpaintPipeline",
        "sd2-inpainting": "StableDiffusionInpaintPipeline",
        "sdxl-inpainting": "StableDiffusionXLInpaintPipeline",
    }
    for name in ("sd15", "sd21-v", "sd21-base"):
        assert _index(name)["_class_name"] == "StableDiffusionPipeline"
    assert _index("sdxl-base")["_class_name"] == "StableDiffusionXLPipeline"


# --- schedulers --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_scheduler_loads_from_the_folder(name):
    import diffusers

    library, class_name = _index(name)["scheduler"]
    cls = getattr(importlib.import_module(library), class_name)
    # the call from_single_file makes for a scheduler component
    scheduler = cls.from_pretrained(
        str(config_dir(name)), subfolder="scheduler", local_files_only=True
    )
    assert isinstance(scheduler, diffusers.SchedulerMixin)
    config = scheduler.config
    assert config.num_train_timesteps == 1000
    assert (config.beta_schedule, config.beta_start, config.beta_end) == (
        "scaled_linear",
        0.00085,
        0.012,
    )
    assert config.steps_offset == 1
    expected = "v_prediction" if name == "sd21-v" else "epsilon"
    assert config.prediction_type == expected
    if name in SDXL:
        assert class_name == "EulerDiscreteScheduler" and config.timestep_spacing == "leading"
    scheduler.set_timesteps(20)
    assert 20 <= len(scheduler.timesteps) <= 21  # PNDM repeats one step for its warm-up
    assert 0 < int(scheduler.timesteps.min()) < int(scheduler.timesteps.max()) < 1000


# --- models on the meta device -----------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_models_build_with_the_published_parameter_counts(name):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = str(config_dir(name))
    expected = EXPECTED[name]
    classes = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection}
    with torch.device("meta"):
        # the same config reads as from_single_file (load_config / config_class.from_pretrained)
        unet_config = UNet2DConditionModel.load_config(
            folder, subfolder="unet", local_files_only=True
        )
        unet = UNet2DConditionModel.from_config(unet_config)
        vae_config = AutoencoderKL.load_config(folder, subfolder="vae", local_files_only=True)
        vae = AutoencoderKL.from_config(vae_config)
        counts = {"unet": _count(unet), "vae": _count(vae)}
        for slot, cls in classes.items():
            # under transformers 5 a missing subfolder silently gives a default config: check first
            if not (config_dir(name) / slot / "config.json").is_file():
                continue
            text_config = CLIPTextConfig.from_pretrained(
                folder, subfolder=slot, local_files_only=True
            )
            assert _index(name)[slot] == ["transformers", cls.__name__]
            model = cls(text_config)
            assert next(model.parameters()).device.type == "meta"
            counts[slot] = _count(model)
    assert counts == {**expected, "vae": VAE}


def test_inpainting_unets_take_nine_channels_and_the_rest_four():
    for name in CONFIG_NAMES:
        unet = _config(name, "unet")
        assert unet["in_channels"] == (9 if name in INPAINTING else 4), name
        assert unet["out_channels"] == 4


def test_native_resolutions():
    native = {n: _config(n, "unet")["sample_size"] * 8 for n in CONFIG_NAMES}
    assert native == {
        "sd15": 512,
        "sd15-inpainting": 512,
        "sd21-v": 768,
        "sd21-base": 512,
        "sd2-inpainting": 512,
        "sdxl-base": 1024,
        "sdxl-refiner": 1024,
        "sdxl-inpainting": 1024,
    }


def test_unet_cross_attention_matches_the_text_encoders():
    for name in CONFIG_NAMES:
        width = sum(
            _config(name, slot)["hidden_size"]
            for slot in ("text_encoder", "text_encoder_2")
            if (config_dir(name) / slot).is_dir()
        )
        assert _config(name, "unet")["cross_attention_dim"] == width, name
    # SDXL: pooled bigG (1280) + 6 (base: sizes, crop, target) or 5 (refiner: + aesthetic) x 256
    assert _config("sdxl-base", "unet")["projection_class_embeddings_input_dim"] == 1280 + 6 * 256
    assert (
        _config("sdxl-refiner", "unet")["projection_class_embeddings_input_dim"] == 1280 + 5 * 256
    )


def test_upcast_attention_as_published():
    assert _config("sd21-v", "unet")["upcast_attention"] is True
    for name in CONFIG_NAMES:
        if name != "sd21-v":
            assert not _config(name, "unet").get("upcast_attention"), name


def test_vae_scaling_and_upcast():
    for name in CONFIG_NAMES:
        vae = _config(name, "vae")
        if name in SDXL:
            assert vae["scaling_factor"] == 0.13025 and vae["force_upcast"] is True, name
        else:
            assert vae["scaling_factor"] == 0.18215, name


def test_text_encoder_families():
    for name in CONFIG_NAMES:
        if name == "sdxl-refiner":
            continue
        text = _config(name, "text_encoder")
        if name in SD2:  # OpenCLIP ViT-H, penultimate layer kept
            assert (text["hidden_size"], text["num_hidden_layers"], text["hidden_act"]) == (
                1024,
                23,
                "gelu",
            )
        else:  # OpenAI CLIP ViT-L/14
            assert (text["hidden_size"], text["num_hidden_layers"], text["hidden_act"]) == (
                768,
                12,
                "quick_gelu",
            )
    for name in SDXL:
        big_g = _config(name, "text_encoder_2")
        assert (big_g["hidden_size"], big_g["num_hidden_layers"], big_g["projection_dim"]) == (
            1280,
            32,
            1280,
        )


# --- tokenizers -------------------------------------------------------------------------------


def test_clip_tokenizer_reference_ids():
    for pad_with_exclamation in (False, True):
        tok = load_clip_tokenizer(pad_with_exclamation)
        assert tok("a photo of a cat").input_ids == CAT_IDS
        assert tok.model_max_length == 77
        assert len(tok) == 49408
        assert (tok.bos_token_id, tok.eos_token_id) == (49406, 49407)
        assert tok.tokenize("a photo of a cat") == [
            "a</w>",
            "photo</w>",
            "of</w>",
            "a</w>",
            "cat</w>",
        ]


def test_pad_tokens():
    eot, bang = load_clip_tokenizer(False), load_clip_tokenizer(True)
    assert (eot.pad_token, eot.pad_token_id) == ("<|endoftext|>", 49407)
    assert (bang.pad_token, bang.pad_token_id) == ("!", 0)
    padded = eot("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert padded == CAT_IDS + [49407] * 70
    padded = bang("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert padded == CAT_IDS + [0] * 70


def test_each_call_gives_a_fresh_tokenizer():
    # textual inversion adds tokens to the tokenizer it is given: models must not share one
    first, second = load_clip_tokenizer(False), load_clip_tokenizer(False)
    assert first is not second
    first.add_tokens(["<my-embedding>"])
    assert len(first) == 49409 and len(second) == 49408
    assert len(load_clip_tokenizer(False)) == 49408


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_tokenizers_for_pad_per_family(name):
    tokenizers = tokenizers_for(name)
    pads = {slot: tok.pad_token_id for slot, tok in tokenizers.items()}
    expected = {
        **dict.fromkeys(SD1, {"tokenizer": 49407}),
        **dict.fromkeys(SD2, {"tokenizer": 0}),
        "sdxl-base": {"tokenizer": 49407, "tokenizer_2": 0},
        "sdxl-inpainting": {"tokenizer": 49407, "tokenizer_2": 0},
        "sdxl-refiner": {"tokenizer_2": 0},
    }[name]
    assert pads == expected
    for tok in tokenizers.values():
        ids = tok(
            "a photo of a cat", padding="max_length", max_length=77, truncation=True
        ).input_ids
        assert ids[:7] == CAT_IDS and len(ids) == 77 and set(ids[7:]) == {tok.pad_token_id}


@pytest.mark.parametrize("name", ["sd15", "sdxl-refiner"])
def test_single_file_kwargs_carry_the_folder_offline_and_the_tokenizers(name):
    kwargs = single_file_kwargs(name)
    assert kwargs.pop("config") == str(config_dir(name))
    assert kwargs.pop("local_files_only") is True
    assert {k: v.pad_token_id for k, v in kwargs.items()} == {
        k: v.pad_token_id for k, v in tokenizers_for(name).items()
    }


def test_long_prompts_truncate_to_77_ending_in_eos():
    tok = load_clip_tokenizer(True)
    ids = tok(
        " ".join(["cat"] * 100), padding="max_length", max_length=77, truncation=True
    ).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407 and set(ids[1:-1]) == {2368}


# --- the shipped vocabulary and the script that made it ------------------------------------------


def _merges_lines() -> list[str]:
    return (CLIP_TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8").split("\n")


def test_shipped_vocabulary_is_clips_id_layout():
    vocab = json.loads((CLIP_TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    lines = _merges_lines()
    assert lines[0] == "#version: 0.2" and lines[-1] == ""
    merges = [tuple(line.split(" ")) for line in lines[1:-1]]
    assert len(merges) == clip_vocab.N_MERGES == 48894
    assert len(vocab) == clip_vocab.VOCAB_SIZE == 49408
    assert sorted(vocab.values()) == list(range(49408))
    by_id = sorted(vocab, key=vocab.__getitem__)
    byte_tokens = list(clip_vocab.bytes_to_unicode().values())
    assert len(set(byte_tokens)) == 256
    assert by_id[:256] == byte_tokens
    assert by_id[256:512] == [t + "</w>" for t in byte_tokens]
    assert by_id[512:-2] == ["".join(m) for m in merges]
    assert by_id[-2:] == ["<|startoftext|>", "<|endoftext|>"]


def test_clip_vocab_regenerates_the_shipped_files(tmp_path: Path):
    # rebuild a BPE file in CLIP's own format (its odd first line included) from the shipped
    # merges, then run the converter: it must give back the shipped files byte for byte
    lines = _merges_lines()
    body = '"bpe_simple_vocab_16e6.txt#version: 0.2\n' + "\n".join(lines[1:-1]) + "\nextra merge\n"
    bpe = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write(body)
    assert clip_vocab.main([str(bpe), str(tmp_path / "out")]) == 0
    for file in ("vocab.json", "merges.txt"):
        assert (tmp_path / "out" / file).read_bytes() == (CLIP_TOKENIZER_DIR / file).read_bytes()


def test_clip_vocab_refuses_a_short_or_headerless_file(tmp_path: Path):
    bpe = tmp_path / "short.txt.gz"
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\ni n\nt h\n")
    with pytest.raises(ValueError, match="48894"):
        clip_vocab.write_clip_vocab(bpe, tmp_path / "out")
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("i n\nt h\n")
    with pytest.raises(ValueError, match="header"):
        clip_vocab.write_clip_vocab(bpe, tmp_path / "out")


def test_importing_configs_and_clip_vocab_loads_no_torch():
    code = (
        "import sys, studio.engine.configs, studio.engine.clip_vocab; "
        "print(' '.join(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
