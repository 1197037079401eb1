"""Images made by other tools, built here in each tool's format from its public description
(real keys and nesting): every field is read into the request or listed as unmapped, and no
default stands in for a value the image names without being listed as substituted."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.engine import metadata as md
from studio.engine.request import GenerationRequest


def png(tmp_path, name="x.png", mode="RGB", size=(64, 48), **texts: str):
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key.replace("_dash_", "-"), value)
    path = tmp_path / name
    Image.new(mode, size, (90, 120, 150, 255)[: len(mode)]).save(path, pnginfo=info)
    return path


def karras_used(request: GenerationRequest) -> bool:
    return md.effective_karras(request.sampler, request.schedule.karras)


# ---- ComfyUI -------------------------------------------------------------------------------
def comfy_graph(sampler_name: str, scheduler: str) -> dict:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 8566257,
                "steps": 20,
                "cfg": 8.0,
                "sampler_name": sampler_name,
                "scheduler": scheduler,
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.ckpt"}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 512, "height": 768, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a bottle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "C", "images": ["8", 0]}},
    }


def test_comfyui_dpmpp_sde_karras_is_dpmpp_sde_karras(tmp_path):
    result = md.read_settings(png(tmp_path, prompt=json.dumps(comfy_graph("dpmpp_sde", "karras"))))
    r = result.request
    assert result.source == "comfyui"
    assert r.sampler == "DPM++ SDE Karras" and karras_used(r)
    assert (r.model, r.width, r.height, r.steps, r.seed) == ("v1-5.ckpt", 512, 768, 20, 8566257)
    assert result.unmapped == {} and result.substituted == []


# ComfyUI's KSampler names (comfy/samplers.py KSAMPLER_NAMES + ddim, uni_pc, uni_pc_bh2)
COMFY_SAMPLER_NAMES = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "res_multistep", "gradient_estimation", "er_sde", "ddim",
    "uni_pc", "uni_pc_bh2",
]  # fmt: skip
COMFY_SCHEDULER_NAMES = [
    "normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta",
    "linear_quadratic", "kl_optimal",
]  # fmt: skip
# the pairs our samplers run exactly: (sampler_name, scheduler) -> (our sampler, Karras?)
COMFY_MAPPED = {
    ("euler", "normal"): ("Euler", False),
    ("euler", "karras"): ("Euler", True),
    ("euler_ancestral", "normal"): ("Euler a", False),
    ("heun", "normal"): ("Heun", False),
    ("heun", "karras"): ("Heun", True),
    ("lms", "normal"): ("LMS", False),
    ("lms", "karras"): ("LMS", True),
    ("dpmpp_2m", "normal"): ("DPM++ 2M", False),
    ("dpmpp_2m", "karras"): ("DPM++ 2M Karras", True),
    ("dpmpp_2m_sde", "normal"): ("DPM++ 2M SDE Karras", False),
    ("dpmpp_2m_sde", "karras"): ("DPM++ 2M SDE Karras", True),
    ("dpmpp_2m_sde_gpu", "karras"): ("DPM++ 2M SDE Karras", True),
    ("dpmpp_2m_sde_gpu", "normal"): ("DPM++ 2M SDE Karras", False),
    ("dpmpp_sde", "normal"): ("DPM++ SDE Karras", False),
    ("dpmpp_sde", "karras"): ("DPM++ SDE Karras", True),
    ("dpmpp_sde_gpu", "normal"): ("DPM++ SDE Karras", False),
    ("dpmpp_sde_gpu", "karras"): ("DPM++ SDE Karras", True),
    ("uni_pc_bh2", "normal"): ("UniPC", False),
    ("uni_pc_bh2", "karras"): ("UniPC", True),
    ("ddim", "ddim_uniform"): ("DDIM", False),
}


@pytest.mark.parametrize("scheduler", COMFY_SCHEDULER_NAMES)
@pytest.mark.parametrize("sampler_name", COMFY_SAMPLER_NAMES)
def test_every_comfyui_sampler_and_scheduler_is_mapped_or_reported(sampler_name, scheduler):
    graph = json.dumps(comfy_graph(sampler_name, scheduler))
    result = md.read_settings(md_png_image(graph))
    r = result.request
    if (sampler_name, scheduler) in COMFY_MAPPED:
        assert (r.sampler, karras_used(r)) == COMFY_MAPPED[(sampler_name, scheduler)]
        assert "sampler_name" not in result.unmapped and "scheduler" not in result.unmapped
        return
    # not run as written: the name is reported, never shown as something else silently
    reported = result.unmapped.get("sampler_name", "") + result.unmapped.get("scheduler", "")
    assert sampler_name in reported or scheduler in reported
    if "sampler_name" in result.unmapped:
        assert result.unmapped["sampler_name"].startswith(sampler_name)
        assert "sampler" in result.substituted
        assert result.unmapped["scheduler"].startswith(scheduler)  # kept with it


def md_png_image(prompt: str) -> Image.Image:
    image = Image.new("RGB", (8, 8))
    image.info["prompt"] = prompt  # what Pillow's info holds for a PNG text chunk
    return image


def test_comfyui_two_pass_ksampler_advanced_keeps_its_step_ranges(tmp_path):
    # SDXL base + refiner as in ComfyUI's example workflow: 25 steps, the refiner from step 20
    graph = comfy_graph("euler", "normal")
    del graph["3"]
    graph["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    graph["12"] = {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"},
    }
    common = {"cfg": 8, "sampler_name": "euler", "scheduler": "normal", "steps": 25}
    graph["10"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            **common,
            "add_noise": "enable",
            "noise_seed": 721897303308196,
            "start_at_step": 0,
            "end_at_step": 20,
            "return_with_leftover_noise": "enable",
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    }
    graph["11"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            **common,
            "add_noise": "disable",
            "noise_seed": 0,
            "start_at_step": 20,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            "model": ["12", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["10", 0],
        },
    }
    graph["8"]["inputs"]["samples"] = ["11", 0]
    result = md.read_settings(png(tmp_path, prompt=json.dumps(graph)))
    r = result.request
    assert (r.model, r.steps, r.seed, r.sampler) == (
        "sd_xl_base_1.0.safetensors",
        25,
        721897303308196,
        "Euler",
    )
    first = result.unmapped["pass 1 (node 10)"]
    second = result.unmapped["pass 2 (node 11)"]
    assert "steps 0-20 of 25" in first and "sd_xl_base_1.0" in first
    assert "steps 20-25 of 25" in second and "sd_xl_refiner_1.0" in second
    assert "add_noise disable" in second
    assert any("pass" in w for w in result.warnings)


def test_comfyui_ui_workflow_with_dpmpp_sde_karras(tmp_path):
    # the UI-format workflow: nodes with widgets_values, links [id, from, slot, to, slot, type]
    workflow = {
        "nodes": [
            {
                "id": 3,
                "type": "KSampler",
                "inputs": [
                    {"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 2},
                    {"name": "negative", "type": "CONDITIONING", "link": 3},
                    {"name": "latent_image", "type": "LATENT", "link": 4},
                ],
                "widgets_values": [42, "fixed", 30, 5.5, "dpmpp_sde", "karras", 1],
            },
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["anything.ckpt"]},
            {"id": 5, "type": "EmptyLatentImage", "widgets_values": [640, 384, 1]},
            {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a fox"]},
            {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["blur"]},
        ],
        "links": [
            [1, 4, 0, 3, 0, "MODEL"],
            [2, 6, 0, 3, 1, "CONDITIONING"],
            [3, 7, 0, 3, 2, "CONDITIONING"],
            [4, 5, 0, 3, 3, "LATENT"],
        ],
    }
    result = md.read_settings(png(tmp_path, workflow=json.dumps(workflow)))
    r = result.request
    assert (r.sampler, karras_used(r), r.steps, r.cfg_scale) == ("DPM++ SDE Karras", True, 30, 5.5)
    assert (r.prompt, r.negative_prompt, r.model) == ("a fox", "blur", "anything.ckpt")
    assert (r.width, r.height, r.seed) == (640, 384, 42)


def test_comfyui_graph_without_a_loader_says_the_model_is_a_default(tmp_path):
    graph = comfy_graph("euler", "normal")
    graph["4"]["class_type"] = "SomeCustomLoader"
    graph["4"]["inputs"] = {"path": "x"}
    result = md.read_settings(png(tmp_path, prompt=json.dumps(graph)))
    assert "model" in result.substituted


# ---- InvokeAI 3.x / 4.x --------------------------------------------------------------------
INVOKE4 = {
    "generation_mode": "sdxl_txt2img",
    "positive_prompt": "a red barn",
    "negative_prompt": "people",
    "width": 1024,
    "height": 832,
    "seed": 1234,
    "rand_device": "cpu",
    "cfg_scale": 6.5,
    "cfg_rescale_multiplier": 0,
    "steps": 32,
    "scheduler": "dpmpp_2m_k",
    "model": {
        "key": "9c3b1a2e-0000-4000-8000-00000000abcd",
        "hash": "blake3:0f1e2d3c",
        "name": "Juggernaut XL v9",
        "base": "sdxl",
        "type": "main",
    },
    "vae": {
        "key": "1d2c3b4a-0000-4000-8000-00000000dcba",
        "hash": "blake3:aabbcc",
        "name": "sdxl-vae-fp16-fix",
        "base": "sdxl",
        "type": "vae",
    },
    "positive_style_prompt": "",
    "negative_style_prompt": "",
    "app_version": "4.2.4",
}


def test_invokeai_4_model_and_vae_objects_are_named_not_defaulted(tmp_path):
    result = md.read_settings(png(tmp_path, invokeai_metadata=json.dumps(INVOKE4)))
    r = result.request
    assert result.source == "invokeai"
    assert r.model == "Juggernaut XL v9" and result.model_name == "Juggernaut XL v9"
    assert (r.prompt, r.negative_prompt, r.width, r.height) == ("a red barn", "people", 1024, 832)
    assert (r.seed, r.steps, r.cfg_scale, r.rng) == (1234, 32, 6.5, "CPU")
    assert r.sampler == "DPM++ 2M Karras" and karras_used(r)
    assert result.unmapped["vae"] == "sdxl-vae-fp16-fix"
    assert "base: sdxl" in result.unmapped["model details"]
    assert result.substituted == []


def test_invokeai_3_model_object_is_named(tmp_path):
    meta = dict(INVOKE4, model={"model_name": "dreamshaper-8", "base_model": "sd-1"})
    meta["vae"] = {"model_name": "sd-vae-ft-mse", "base_model": "sd-1"}
    result = md.read_settings(png(tmp_path, invokeai_metadata=json.dumps(meta)))
    assert result.request.model == "dreamshaper-8"
    assert result.unmapped["vae"] == "sd-vae-ft-mse"


# ---- Fooocus -------------------------------------------------------------------------------
FOOOCUS = {
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion.safetensors",
    "base_model_hash": "aeb7e9e689",
    "full_negative_prompt": ["(worst quality, low quality:1.4)", "unrealistic"],
    "full_prompt": ["a lighthouse at dawn", "cinematic still, a lighthouse at dawn"],
    "guidance_scale": 4,
    "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
    "metadata_scheme": "fooocus",
    "negative_prompt": "",
    "performance": "Speed",
    "prompt": "a lighthouse at dawn",
    "prompt_expansion": "a lighthouse at dawn, intricate, elegant",
    "refiner_model": "None",
    "refiner_switch": 0.5,
    "resolution": "(1152, 896)",
    "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras",
    "seed": "5961946316282137011",
    "sharpness": 2,
    "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']",
    "vae": "Default (model)",
    "version": "Fooocus v2.3.1",
}
FOOOCUS_READ = {
    "base_model", "base_model_hash", "guidance_scale", "negative_prompt", "prompt",
    "resolution", "sampler", "scheduler", "seed", "steps", "metadata_scheme", "version",
}  # fmt: skip


def test_fooocus_parameters_json_is_read(tmp_path):
    path = png(tmp_path, parameters=json.dumps(FOOOCUS), fooocus_scheme="fooocus")
    result = md.read_settings(path)
    r = result.request
    assert result.source == "fooocus"
    assert r.model == "juggernautXL_v8Rundiffusion.safetensors"
    assert result.model_hash == "aeb7e9e689"
    assert (r.prompt, r.steps, r.cfg_scale, r.seed) == (
        "a lighthouse at dawn",
        30,
        4.0,
        5961946316282137011,
    )
    assert (r.width, r.height) == (1152, 896)  # Fooocus writes str((width, height))
    assert r.sampler == "DPM++ 2M SDE Karras" and karras_used(r)
    assert set(FOOOCUS) - FOOOCUS_READ <= set(result.unmapped)
    assert result.substituted == []


# ---- NovelAI -------------------------------------------------------------------------------
NOVELAI_COMMENT = {
    "prompt": "1girl, {{masterpiece}}, night sky",
    "steps": 28,
    "height": 1216,
    "width": 832,
    "scale": 5.0,
    "uncond_scale": 1.0,
    "cfg_rescale": 0.2,
    "seed": 3503282341,
    "n_samples": 1,
    "hide_debug_overlay": False,
    "noise_schedule": "karras",
    "legacy_v3_extend": False,
    "reference_information_extracted_multiple": [],
    "reference_strength_multiple": [],
    "sampler": "k_euler",
    "controlnet_strength": 1.0,
    "controlnet_model": None,
    "dynamic_thresholding": False,
    "dynamic_thresholding_percentile": 0.999,
    "dynamic_thresholding_mimic_scale": 10.0,
    "sm": True,
    "sm_dyn": False,
    "skip_cfg_below_sigma": 0.0,
    "lora_unet_weights": None,
    "lora_clip_weights": None,
    "uc": "lowres, bad anatomy",
    "request_type": "PromptGenerateRequest",
    "signed_hash": "abc==",
}
NOVELAI_READ = {
    "prompt", "steps", "height", "width", "scale", "seed", "n_samples", "sampler", "uc",
    "cfg_rescale", "noise_schedule", "signed_hash", "request_type", "hide_debug_overlay",
}  # fmt: skip
NOVELAI_TEXTS = {
    "Title": "NovelAI generated image",
    "Description": "1girl, {{masterpiece}}, night sky",
    "Software": "NovelAI",
    "Source": "NovelAI Diffusion V3 4BDE2A90",
    "Comment": json.dumps(NOVELAI_COMMENT),
}


def test_novelai_comment_is_read(tmp_path):
    result = md.read_settings(png(tmp_path, **NOVELAI_TEXTS))
    r = result.request
    assert result.source == "novelai"
    assert r.model == "NovelAI Diffusion V3 4BDE2A90"  # named by Source, never "demo"
    assert (r.prompt, r.negative_prompt) == (
        "1girl, {{masterpiece}}, night sky",
        "lowres, bad anatomy",
    )
    assert (r.steps, r.cfg_scale, r.seed, r.width, r.height) == (28, 5.0, 3503282341, 832, 1216)
    assert r.sampler == "Euler" and karras_used(r)
    assert r.schedule.cfg_rescale == 0.2
    # what has no setting here is listed, not dropped (False/None/empty defaults aside)
    shown = {k for k, v in NOVELAI_COMMENT.items() if v not in (False, None, [], 0, 0.0)}
    assert shown - NOVELAI_READ <= set(result.unmapped)
    assert result.unmapped["sm"] == "true"
    assert any("1.05" in w for w in result.warnings)


# ---- InvokeAI 2.x --------------------------------------------------------------------------
SD_METADATA = {
    "model": "stable diffusion",
    "model_weights": "stable-diffusion-1.5",
    "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
    "app_id": "invoke-ai/InvokeAI",
    "app_version": "2.3.5",
    "image": {
        "prompt": [{"prompt": "a tabby cat [blurry, watermark]", "weight": 1.0}],
        "steps": 50,
        "cfg_scale": 7.5,
        "threshold": 0,
        "perlin": 0,
        "height": 512,
        "width": 576,
        "seed": 3357757885,
        "seamless": False,
        "hires_fix": False,
        "type": "txt2img",
        "postprocessing": None,
        "sampler": "k_lms",
        "variations": [],
    },
}


def test_invokeai_2_sd_metadata_is_read(tmp_path):
    dream = '"a tabby cat [blurry, watermark]" -s 50 -S 3357757885 -W 576 -H 512 -C 7.5 -A k_lms'
    path = png(tmp_path, sd_dash_metadata=json.dumps(SD_METADATA), Dream=dream)
    result = md.read_settings(path)
    r = result.request
    assert result.source == "invokeai"
    assert (r.prompt, r.negative_prompt) == ("a tabby cat", "blurry, watermark")
    assert (r.model, r.steps, r.cfg_scale, r.seed) == ("stable-diffusion-1.5", 50, 7.5, 3357757885)
    assert (r.width, r.height, r.sampler) == (576, 512, "LMS")
    assert result.model_hash == SD_METADATA["model_hash"]


def test_invokeai_2_dream_alone_is_read_and_names_no_model(tmp_path):
    dream = '"a tabby cat [blurry]" -s 50 -S 33 -W 576 -H 512 -C 7.5 -A k_dpm_2_a --seamless'
    result = md.read_settings(png(tmp_path, Dream=dream))
    r = result.request
    assert (r.prompt, r.negative_prompt, r.steps, r.seed, r.width) == (
        "a tabby cat",
        "blurry",
        50,
        33,
        576,
    )
    assert result.unmapped["-A"].startswith("k_dpm_2_a")
    assert result.unmapped["--seamless"] == "on"
    assert "sampler" in result.substituted


# ---- A1111 stealth PNG info ----------------------------------------------------------------
A1111_TEXT = (
    "a watercolor fox\nNegative prompt: photo\nSteps: 24, Sampler: Euler a, Schedule type: "
    "Automatic, CFG scale: 6, Seed: 987, Size: 96x64, Model: anything-v3"
)


def hide(image: Image.Image, text: bytes, signature: str, channels: str) -> Image.Image:
    """Write the sd-webui-stealth-pnginfo layout: signature, 32-bit bit count, data; one bit per
    alpha (or R, G, B) LSB, pixels column by column."""
    payload = signature.encode() + (len(text) * 8).to_bytes(4, "big") + text
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    arr = np.array(image)  # (h, w, c)
    h, w = arr.shape[:2]
    if channels == "A":
        column_major = arr[:, :, 3].T.reshape(-1).copy()
        column_major[: bits.size] = (column_major[: bits.size] & 0xFE) | bits
        arr[:, :, 3] = column_major.reshape(w, h).T
    else:
        rgb = arr[:, :, :3].transpose(1, 0, 2).reshape(-1).copy()
        rgb[: bits.size] = (rgb[: bits.size] & 0xFE) | bits
        arr[:, :, :3] = rgb.reshape(w, h, 3).transpose(1, 0, 2)
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("signature", "channels", "compress"),
    [
        ("stealth_pnginfo", "A", False),
        ("stealth_pngcomp", "A", True),
        ("stealth_rgbinfo", "RGB", False),
        ("stealth_rgbcomp", "RGB", True),
    ],
)
def test_stealth_png_info_is_read_from_the_pixels(tmp_path, signature, channels, compress):
    data = A1111_TEXT.encode()
    data = gzip.compress(data) if compress else data
    mode = "RGBA" if channels == "A" else "RGB"
    base = Image.new(mode, (96, 64), (200, 180, 160, 255)[: len(mode)])
    path = tmp_path / "stealth.png"
    hide(base, data, signature, channels).save(path)  # no text chunks at all
    result = md.read_settings(path)
    r = result.request
    assert result.source == "a1111"
    assert (r.prompt, r.negative_prompt, r.model) == ("a watercolor fox", "photo", "anything-v3")
    assert (r.steps, r.seed, r.width, r.height, r.sampler) == (24, 987, 96, 64, "Euler a")
    assert any("hidden in the pixels" in w for w in result.warnings)


def test_novelai_stealth_json_is_read(tmp_path):
    payload = gzip.compress(json.dumps(NOVELAI_TEXTS).encode())
    base = Image.new("RGBA", (128, 128), (10, 20, 30, 255))
    path = tmp_path / "nai.png"
    hide(base, payload, "stealth_pngcomp", "A").save(path)
    result = md.read_settings(path)
    assert result.source == "novelai"
    assert result.request.model == "NovelAI Diffusion V3 4BDE2A90"


def test_an_image_with_nothing_hidden_reads_as_none(tmp_path):
    result = md.read_settings(png(tmp_path, mode="RGBA"))
    assert result.request is None and result.source == "none"


def test_a_damaged_stealth_length_is_not_read(tmp_path):
    base = Image.new("RGBA", (16, 16), (0, 0, 0, 255))
    payload = b"stealth_pnginfo" + (10**6).to_bytes(4, "big")
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    arr = np.array(base)
    alpha = arr[:, :, 3].T.reshape(-1).copy()
    alpha[: bits.size] = (alpha[: bits.size] & 0xFE) | bits
    arr[:, :, 3] = alpha.reshape(16, 16).T
    path = tmp_path / "bad.png"
    Image.fromarray(arr).save(path)
    assert md.read_settings(path).request is None
