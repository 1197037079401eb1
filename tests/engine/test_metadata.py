from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.engine import metadata as md
from studio.engine.addons.refs import AddonRef
from studio.engine.request import ControlSpec, GenerationRequest, ScheduleOptions, image_sha256

SAMPLERS = (
    "Euler",
    "Euler a",
    "DDIM",
    "DDPM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ 2M SDE Karras",
    "DPM++ SDE Karras",
    "UniPC",
    "LMS",
    "Heun",
    "LCM",
)
FORMATS = ("png", "jpg", "webp")
TRICKY_PROMPT = 'a "cat", sitting: on a mat\nsecond line, ünïcødé 猫 🐈 \\ back\\slash'


# ---- an independent reader of the A1111 format (the same idea as A1111's own code) ----------
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_like_a1111(text: str) -> dict[str, str]:
    *lines, last = text.strip().split("\n")
    if len(A1111_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        (negative if in_negative else prompt).append(line)
    out = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in A1111_PARAM.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            value = json.loads(value)
        out[key] = value
    return out


def tiff_entry(exif: bytes, ifd_tag: int, tag: int) -> tuple[int, bytes]:
    """(type, raw value) of one tag in the EXIF sub-IFD `ifd_tag`, read straight from the bytes."""
    tiff = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    e = "<" if tiff[:2] == b"II" else ">"

    def entries(offset: int) -> dict[int, tuple[int, int, bytes]]:
        (n,) = struct.unpack_from(e + "H", tiff, offset)
        out = {}
        for i in range(n):
            t, typ, count = struct.unpack_from(e + "HHI", tiff, offset + 2 + 12 * i)
            out[t] = (typ, count, tiff[offset + 10 + 12 * i : offset + 14 + 12 * i])
        return out

    ifd0 = entries(struct.unpack_from(e + "I", tiff, 4)[0])
    sub = entries(struct.unpack(e + "I", ifd0[ifd_tag][2])[0])
    typ, count, raw = sub[tag]
    start = struct.unpack(e + "I", raw)[0]
    return typ, tiff[start : start + count]


# ---- helpers ----------------------------------------------------------------------------
def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode)


OUT = noise((16, 16), seed=1)


def save(tmp_path: Path, request: GenerationRequest, fmt: str, **kw) -> Path:
    kw.setdefault("model_name", "demo")
    kw.setdefault("model_hash", "abcdef1234")
    return md.write_image(tmp_path / f"out.{fmt}", OUT, request, **kw)


# ---- the A1111 text, checked against the format --------------------------------------------
def test_a1111_text_has_the_fields_other_tools_read():
    request = GenerationRequest(
        prompt="a cat, oil painting",
        negative_prompt="blurry, lowres",
        sampler="DPM++ 2M Karras",
        steps=20,
        cfg_scale=7.0,
        seed=42,
        width=512,
        height=768,
    )
    text = md.a1111_parameters(request, model_name="sd15", model_hash="abcdef1234")
    assert text.splitlines()[1] == "Negative prompt: blurry, lowres"
    parsed = parse_like_a1111(text)
    assert parsed == {
        "Prompt": "a cat, oil painting",
        "Negative prompt": "blurry, lowres",
        "Steps": "20",
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": "7",
        "Seed": "42",
        "Size": "512x768",
        "Model hash": "abcdef1234",
        "Model": "sd15",
        "RNG": "CPU",  # our default; A1111's when the key is absent is GPU
    }


def test_a1111_text_without_negative_prompt_has_no_negative_line():
    text = md.a1111_parameters(GenerationRequest(prompt="x"), model_name="m", model_hash="")
    assert "Negative prompt" not in text
    assert "Model hash" not in parse_like_a1111(text)
    assert text.splitlines()[0] == "x"


def test_a1111_text_quotes_values_with_commas_colons_and_quotes():
    request = GenerationRequest(prompt="p", sampler="Euler")
    name = 'my, "model": v2'
    text = md.a1111_parameters(request, model_name=name, model_hash="h")
    assert 'Model: "my, \\"model\\": v2"' in text
    assert parse_like_a1111(text)["Model"] == name
    for name, written in [("v2: final", '"v2: final"'), ("two\nlines", '"two\\nlines"')]:
        text = md.a1111_parameters(request, model_name=name, model_hash="h")
        assert f"Model: {written}" in text.splitlines()[-1]
        assert parse_like_a1111(text)["Model"] == name


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_a1111_text_has_denoising_strength_and_mask_blur_for_image_modes(mode):
    request = GenerationRequest(
        mode=mode,
        prompt="p",
        strength=0.45,
        mask_blur=6,
        inpaint_only_masked=True,
        inpaint_padding=40,
    )
    parsed = parse_like_a1111(md.a1111_parameters(request, model_name="m", model_hash="h"))
    assert parsed["Denoising strength"] == "0.45"
    if mode == "inpaint":
        assert parsed["Mask blur"] == "6"
        assert parsed["Inpaint area"] == "Only masked"
        assert parsed["Masked area padding"] == "40"
    else:
        assert "Mask blur" not in parsed


def test_a1111_text_of_a_txt2img_image_has_no_denoising_strength():
    parsed = parse_like_a1111(
        md.a1111_parameters(GenerationRequest(prompt="p"), model_name="m", model_hash="h")
    )
    assert "Denoising strength" not in parsed
    assert "Mask blur" not in parsed


def test_each_image_of_a_batch_has_its_own_seed():
    request = GenerationRequest(prompt="p", seed=1000, batch_size=4)
    for k in range(4):
        parsed = parse_like_a1111(
            md.a1111_parameters(request, model_name="m", model_hash="h", index=k)
        )
        assert parsed["Seed"] == str(1000 + k)
        assert parsed["Batch size"] == "4"
        assert parsed["Batch pos"] == str(k)


def test_a1111_text_carries_schedule_options():
    request = GenerationRequest(
        prompt="p",
        sampler="Euler",
        schedule=ScheduleOptions(
            karras=False,
            timestep_spacing="trailing",
            zero_snr=True,
            prediction_type="v_prediction",
            cfg_rescale=0.7,
        ),
    )
    parsed = parse_like_a1111(md.a1111_parameters(request, model_name="m", model_hash="h"))
    assert parsed["Schedule type"] == "Uniform"
    assert parsed["CFG Rescale phi"] == "0.7"
    assert parsed["Noise Schedule"] == "Zero Terminal SNR"


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_exif_user_comment_is_a1111_text_in_the_layout_a1111_reads(tmp_path, fmt):
    request = GenerationRequest(prompt=TRICKY_PROMPT, negative_prompt="bad", seed=7)
    path = save(tmp_path, request, fmt)
    with Image.open(path) as im:
        exif = im.info["exif"]
    typ, comment = tiff_entry(exif, 0x8769, 0x9286)
    assert typ == 7  # UNDEFINED: piexif hands A1111 bytes, not a tuple of ints
    assert comment.startswith(b"UNICODE\0")
    text = comment[8:].decode("utf-16-be")  # what piexif.helper.UserComment.load does
    assert text == md.a1111_parameters(request, model_name="demo", model_hash="abcdef1234")
    parsed = parse_like_a1111(text)
    assert parsed["Seed"] == "7"
    assert parsed["Negative prompt"] == "bad"
    typ, note = tiff_entry(exif, 0x8769, 0x927C)
    assert note.startswith(md.RECIPE_MAGIC)
    assert json.loads(note[len(md.RECIPE_MAGIC) :])["app"] == "diffusion-studio"


def test_png_has_parameters_and_recipe_text_chunks(tmp_path):
    request = GenerationRequest(prompt="猫 and ü", seed=3)
    path = save(tmp_path, request, "png")
    with Image.open(path) as im:
        assert im.text["parameters"] == md.a1111_parameters(
            request, model_name="demo", model_hash="abcdef1234"
        )
        recipe = json.loads(im.text["studio_recipe"])
    assert recipe["app"] == "diffusion-studio"
    assert recipe["image_seed"] == 3 and recipe["image_index"] == 0
    assert recipe["model_name"] == "demo" and recipe["model_hash"] == "abcdef1234"
    assert GenerationRequest.from_dict(recipe) == request


# ---- round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_and_schedule_round_trips(tmp_path, fmt, sampler):
    for karras in (None, True, False):
        request = GenerationRequest(
            prompt=TRICKY_PROMPT,
            negative_prompt='ugly, "bad": hands\nline two',
            sampler=sampler,
            schedule=ScheduleOptions(
                karras=karras, timestep_spacing="trailing", zero_snr=True, cfg_rescale=0.7
            ),
            steps=13,
            cfg_scale=6.5,
            seed=2**40 + 5,
            width=640,
            height=384,
            batch_size=3,
        )
        path = md.write_image(
            tmp_path / f"{karras}.{fmt}", OUT, request, model_name="m", model_hash="h", index=2
        )
        result = md.read_settings(path)
        assert result.source == "studio"
        assert result.request == request
        assert result.image_index == 2 and result.image_seed == request.seed + 2
        assert result.warnings == [] and result.unmapped == {}
        assert result.single_image_request() == request.with_(seed=request.seed + 2, batch_size=1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "prompt",
    [
        "",
        " leading and trailing ",
        "Negative: no, Steps: 3, Seed: 9, Size: 1x1",
        "\n\nx\n",
        "é" * 300,
    ],
)
def test_odd_prompts_round_trip_exactly(tmp_path, fmt, prompt):
    request = GenerationRequest(prompt=prompt, negative_prompt=prompt[::-1])
    assert md.read_settings(save(tmp_path, request, fmt)).request == request


def test_img2img_png_embeds_the_init_image(tmp_path):
    init = noise((64, 48), seed=2)
    request = GenerationRequest(mode="img2img", prompt="p", init_image=init, strength=0.3)
    result = md.read_settings(save(tmp_path, request, "png"))
    assert result.request == request
    assert np.array_equal(np.asarray(result.request.init_image), np.asarray(init))
    assert result.request.missing_images() == []


def test_inpaint_and_control_images_round_trip_in_png(tmp_path):
    mask = noise((32, 32), "L", seed=3)
    control = ControlSpec(
        model="/models/cn-canny",
        image=noise((32, 32), seed=4),
        preprocessor="canny",
        weight=0.8,
        guidance_end=0.9,
        params=(("low_threshold", 100.0), ("high_threshold", 200.0)),
    )
    request = GenerationRequest(
        mode="inpaint",
        prompt="p",
        init_image=noise((32, 32), seed=5),
        mask=mask,
        inpaint_only_masked=True,
        controls=(control,),
    )
    result = md.read_settings(save(tmp_path, request, "png"))
    assert result.request == request
    assert result.request.missing_images() == []


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_exif_embeds_small_images(tmp_path, fmt):
    request = GenerationRequest(mode="img2img", prompt="p", init_image=noise((16, 16), seed=6))
    result = md.read_settings(save(tmp_path, request, fmt))
    assert result.request == request
    assert result.missing_hashes == {}


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_exif_names_images_too_large_to_embed_by_hash(tmp_path, fmt):
    init = noise((256, 256), seed=7)  # ~200 KB as PNG, beyond the 64 KB EXIF limit
    request = GenerationRequest(mode="img2img", prompt="p", init_image=init)
    result = md.read_settings(save(tmp_path, request, fmt))
    assert result.source == "studio"
    assert result.request.init_image is None
    assert result.request.missing_images() == ["init image"]
    assert result.missing_hashes == {"init image": image_sha256(init)}
    assert any("init image" in w for w in result.warnings)
    assert result.request.with_(init_image=init) == request


def test_png_embeds_images_in_order_while_they_fit_the_budget(tmp_path, monkeypatch):
    from studio.engine.metadata import writer

    init, mask = noise((64, 64), seed=8), noise((8, 8), "L", seed=9)
    control = ControlSpec(model="c", image=noise((8, 8), seed=10))
    monkeypatch.setattr(writer, "PNG_IMAGE_BUDGET", 2000)  # 64x64 noise is ~16 KB of base64
    request = GenerationRequest(
        mode="inpaint", prompt="p", init_image=init, mask=mask, controls=(control,)
    )
    result = md.read_settings(save(tmp_path, request, "png"))
    assert result.missing_hashes == {"init image": image_sha256(init)}
    assert result.request.mask is not None and result.request.controls[0].image is not None
    assert result.request.with_(init_image=init) == request
    assert any("init image is not stored" in w for w in result.warnings)


def test_recipe_json_without_a_budget_embeds_every_image():
    request = GenerationRequest(mode="img2img", init_image=noise((64, 64), seed=8))
    data = json.loads(md.recipe_json(request, md.ImageMeta()))
    assert "png_base64" in data["init_image"]
    data = json.loads(md.recipe_json(request, md.ImageMeta(), image_budget=0))
    assert "png_base64" not in data["init_image"] and data["init_image"]["sha256"]


def test_jpeg_with_a_prompt_too_long_for_the_recipe_keeps_the_a1111_text(tmp_path):
    request = GenerationRequest(prompt="word " * 5000, seed=11, sampler="Euler a")
    result = md.read_settings(save(tmp_path, request, "jpg"))
    assert result.source == "a1111"
    assert result.request.prompt == request.prompt.strip()
    assert result.request.seed == 11 and result.request.sampler == "Euler a"


def test_jpeg_with_a_prompt_too_long_for_exif_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="Save this image as PNG"):
        save(tmp_path, GenerationRequest(prompt="w" * 40000), "jpg")
    assert list(tmp_path.iterdir()) == []


def test_rgba_image_saves_as_jpeg(tmp_path):
    path = md.write_image(
        tmp_path / "a.jpg",
        Image.new("RGBA", (8, 8), (1, 2, 3, 4)),
        GenerationRequest(),
        model_name="m",
        model_hash="h",
    )
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.mode == "RGB"


def test_write_image_refuses_unknown_formats_and_existing_files(tmp_path):
    with pytest.raises(ValueError, match="png, jpg/jpeg or webp"):
        save(tmp_path, GenerationRequest(), "gif")
    path = save(tmp_path, GenerationRequest(prompt="first"), "png")
    with pytest.raises(FileExistsError):
        md.write_image(
            path,
            OUT,
            GenerationRequest(prompt="second"),
            model_name="",
            model_hash="",
            overwrite=False,
        )
    assert md.read_settings(path).request.prompt == "first"


def test_read_settings_accepts_an_open_pil_image(tmp_path):
    request = GenerationRequest(prompt="from PIL", seed=5)
    with Image.open(save(tmp_path, request, "png")) as im:
        assert md.read_settings(im).request == request


# ---- the A1111 reader -------------------------------------------------------------------
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("karras", [None, True, False])
def test_a1111_text_alone_keeps_sampler_and_karras_meaning(sampler, karras):
    request = GenerationRequest(prompt="p", sampler=sampler, schedule=ScheduleOptions(karras))
    text = md.a1111_parameters(request, model_name="demo", model_hash="h")
    got = md.read_a1111_text(text).request

    def base(name: str) -> str:
        return name.removesuffix(" Karras")

    assert base(got.sampler) == base(sampler) or got.sampler == sampler
    if base(sampler) == "UniPC":  # A1111 runs UniPC on its own timesteps: no Schedule type
        assert "Schedule type" not in md.split_a1111_text(text)[2]
        assert not md.effective_karras(got.sampler, got.schedule.karras)
        return
    assert md.effective_karras(got.sampler, got.schedule.karras) == md.effective_karras(
        sampler, karras
    )
    if karras is None:
        assert got == request  # the common case is exact


def test_a1111_text_alone_round_trips_the_other_settings():
    request = GenerationRequest(
        mode="inpaint",
        model="demo",
        prompt="a, b: c",
        negative_prompt="n",
        sampler="DPM++ SDE Karras",
        schedule=ScheduleOptions(
            timestep_spacing="trailing",
            zero_snr=True,
            prediction_type="v_prediction",
            cfg_rescale=0.7,
        ),
        steps=31,
        cfg_scale=4.5,
        seed=99,
        width=448,
        height=320,
        batch_size=2,
        strength=0.35,
        mask_blur=9,
        inpaint_only_masked=True,
        inpaint_padding=24,
        controls=(
            ControlSpec(model="cn, depth", preprocessor="depth", weight=0.5, guidance_start=0.1),
        ),
    )
    text = md.a1111_parameters(request, model_name="demo", model_hash="h", index=1)
    result = md.read_a1111_text(text)
    assert result.request == request
    assert result.image_index == 1 and result.image_seed == 100
    assert result.request.missing_images() == ["init image", "mask", "control image 1"]


SAMPLE_MODERN = """\
masterpiece, best quality, 1girl, "smiling", (red dress:1.2)
Negative prompt: lowres, bad anatomy
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, \
Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, \
Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, \
Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03", Version: v1.9.4"""

SAMPLE_OLD = """\
a photo of an astronaut riding a horse on mars
Negative prompt: cartoon, painting
Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3950391924, Size: 768x512, \
Model hash: 9aba26abdf, Model: deliberate_v2, ENSD: 31337"""

SAMPLE_INPAINT = """\
portrait of a knight,
intricate armor
Steps: 25, Sampler: Euler a, CFG scale: 7.5, Seed: 77, Size: 512x512, Model hash: e1441589a6, \
Model: "sd_xl_base_1.0, fixed", Denoising strength: 0.6, Mask blur: 8, Inpaint area: Only masked, \
Masked area padding: 48, Mask mode: Inpaint masked, Masked content: original, Version: v1.6.0"""


def test_reads_modern_a1111_text_with_hires_fix():
    result = md.read_a1111_text(SAMPLE_MODERN)
    r = result.request
    assert result.source == "a1111"
    assert r.prompt == 'masterpiece, best quality, 1girl, "smiling", (red dress:1.2)'
    assert r.negative_prompt == "lowres, bad anatomy"
    assert (r.mode, r.steps, r.cfg_scale, r.seed) == ("txt2img", 28, 6.5, 1234567890)
    assert (r.sampler, r.schedule.karras) == ("DPM++ 2M Karras", None)
    assert (r.width, r.height, r.model) == (512, 768, "v1-5-pruned-emaonly")
    assert (r.clip_skip, r.rng, r.ensd) == (2, "GPU", 0)
    assert result.unmapped == {
        "Model hash": "6ce0161689",
        "Denoising strength": "0.45",
        "Hires upscale": "2",
        "Hires steps": "10",
        "Hires upscaler": "Latent",
        "Version": "v1.9.4",
    }
    assert result.addons == [
        AddonRef("lora", "add_detail", "7c6bad76eb54"),
        AddonRef("embedding", "easynegative", "c74b4e810b03"),
    ]
    assert any("Hires" in w for w in result.warnings)
    assert result.model_hash == "6ce0161689"


def test_reads_old_a1111_sampler_names_with_karras_in_them():
    result = md.read_a1111_text(SAMPLE_OLD)
    r = result.request
    assert (r.sampler, r.schedule.karras) == ("DPM++ 2M Karras", None)
    assert (r.seed, r.width, r.height, r.model) == (3950391924, 768, 512, "deliberate_v2")
    assert result.unmapped == {"Model hash": "9aba26abdf"}
    assert (r.ensd, r.rng, r.clip_skip) == (31337, "GPU", 1)  # A1111's defaults when absent


def test_reads_a1111_inpaint_text():
    result = md.read_a1111_text(SAMPLE_INPAINT)
    r = result.request
    assert r.prompt == "portrait of a knight,\nintricate armor"
    assert (r.mode, r.strength, r.mask_blur) == ("inpaint", 0.6, 8)
    assert (r.inpaint_only_masked, r.inpaint_padding) == (True, 48)
    assert (r.sampler, r.cfg_scale, r.model) == ("Euler a", 7.5, "sd_xl_base_1.0, fixed")
    assert r.missing_images() == ["init image", "mask"]
    assert {"Mask mode", "Masked content", "Version"} <= set(result.unmapped)


@pytest.mark.parametrize(
    ("sampler", "schedule", "expected"),
    [
        ("DPM++ 2M SDE", "Uniform", ("DPM++ 2M SDE Karras", False)),
        ("DPM++ SDE Karras", None, ("DPM++ SDE Karras", None)),
        ("Euler", "Karras", ("Euler", True)),
        ("LMS Karras", None, ("LMS", True)),
        ("DDIM", "Automatic", ("DDIM", None)),
    ],
)
def test_a1111_sampler_names_map_both_ways(sampler, schedule, expected):
    tail = f", Schedule type: {schedule}" if schedule else ""
    r = md.read_a1111_text(f"p\nSteps: 5, Sampler: {sampler}{tail}, Seed: 1").request
    assert (r.sampler, r.schedule.karras) == expected


def test_unknown_a1111_sampler_and_schedule_are_reported_not_guessed():
    result = md.read_a1111_text(
        "p\nSteps: 5, Sampler: DPM++ 2S a, Schedule type: Exponential, Seed: 1, Size: 64x64"
    )
    assert result.unmapped["Sampler"] == "DPM++ 2S a"
    assert result.unmapped["Schedule type"] == "Exponential"
    assert result.request.sampler == GenerationRequest().sampler
    assert len(result.warnings) >= 2


def test_png_written_by_a1111_is_read(tmp_path):
    info = PngInfo()
    info.add_text("parameters", SAMPLE_OLD)
    path = tmp_path / "a1111.png"
    OUT.save(path, pnginfo=info)
    result = md.read_settings(path)
    assert result.source == "a1111"
    assert result.raw_parameters == SAMPLE_OLD
    assert result.request.model == "deliberate_v2"


def test_jpeg_with_a_little_endian_user_comment_is_read(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + SAMPLE_INPAINT.encode("utf-16-le")
    path = tmp_path / "other.jpg"
    OUT.save(path, exif=exif.tobytes())
    result = md.read_settings(path)
    assert result.source == "a1111"
    assert result.request.seed == 77


def test_camera_comment_is_not_taken_for_settings(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0holiday at the sea"
    path = tmp_path / "camera.jpg"
    OUT.save(path, exif=exif.tobytes())
    result = md.read_settings(path)
    assert (result.request, result.source) == (None, "none")
    assert result.raw_parameters == "holiday at the sea"


# ---- ComfyUI and InvokeAI -------------------------------------------------------------
COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 25,
            "cfg": 6.0,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "dreamshaper_8.safetensors"},
    },
    "10": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "detail.safetensors",
            "strength_model": 0.7,
            "strength_clip": 0.7,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 640, "height": 448, "batch_size": 2},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a castle, at dusk", "clip": ["10", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["10", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "C"}},
}


def comfy_png(tmp_path: Path, **chunks: str) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / "comfy.png"
    OUT.save(path, pnginfo=info)
    return path


def check_comfy_castle(result: md.ReadResult) -> None:
    r = result.request
    assert result.source == "comfyui"
    # the LoraLoader becomes the tag A1111 would have written
    assert (r.prompt, r.negative_prompt) == ("a castle, at dusk <lora:detail:0.7>", "fog")
    assert (r.seed, r.steps, r.cfg_scale) == (156680208700286, 25, 6.0)
    assert (r.sampler, r.schedule.karras) == ("DPM++ 2M Karras", None)
    assert (r.width, r.height, r.batch_size) == (640, 448, 2)
    assert (r.mode, r.model) == ("txt2img", "dreamshaper_8.safetensors")
    assert result.unmapped == {}
    assert result.addons == [AddonRef("lora", "detail")]


def test_reads_a_comfyui_prompt_graph(tmp_path):
    check_comfy_castle(md.read_settings(comfy_png(tmp_path, prompt=json.dumps(COMFY_PROMPT))))


def test_reads_a_comfyui_ui_workflow_when_no_prompt_graph_is_there(tmp_path):
    workflow = {
        "nodes": [
            {
                "id": 3,
                "type": "KSampler",
                "inputs": [
                    {"name": "model", "link": 1},
                    {"name": "positive", "link": 2},
                    {"name": "negative", "link": 3},
                    {"name": "latent_image", "link": 4},
                ],
                "widgets_values": [156680208700286, "fixed", 25, 6, "dpmpp_2m", "karras", 1],
            },
            {
                "id": 4,
                "type": "CheckpointLoaderSimple",
                "widgets_values": ["dreamshaper_8.safetensors"],
            },
            {
                "id": 10,
                "type": "LoraLoader",
                "inputs": [{"name": "model", "link": 5}],
                "widgets_values": ["detail.safetensors", 0.7, 0.7],
            },
            {"id": 5, "type": "EmptyLatentImage", "widgets_values": [640, 448, 2]},
            {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a castle, at dusk"]},
            {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["fog"]},
        ],
        "links": [
            [1, 10, 0, 3, 0, "MODEL"],
            [2, 6, 0, 3, 1, "CONDITIONING"],
            [3, 7, 0, 3, 2, "CONDITIONING"],
            [4, 5, 0, 3, 3, "LATENT"],
            [5, 4, 0, 10, 0, "MODEL"],
        ],
    }
    check_comfy_castle(md.read_settings(comfy_png(tmp_path, workflow=json.dumps(workflow))))


def test_comfyui_sampler_we_lack_is_reported(tmp_path):
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["3"]["inputs"].update(sampler_name="dpmpp_3m_sde", scheduler="exponential")
    result = md.read_settings(comfy_png(tmp_path, prompt=json.dumps(graph)))
    assert result.unmapped["sampler_name"].startswith("dpmpp_3m_sde ")
    assert result.unmapped["scheduler"].startswith("exponential ")
    assert "sampler" in result.substituted
    assert result.request.prompt == "a castle, at dusk <lora:detail:0.7>"


INVOKE = {
    "generation_mode": "txt2img",
    "positive_prompt": "a lighthouse, stormy sea",
    "negative_prompt": "text",
    "width": 768,
    "height": 512,
    "seed": 4242,
    "rand_device": "cpu",
    "cfg_scale": 7.5,
    "cfg_rescale_multiplier": 0.5,
    "steps": 30,
    "scheduler": "dpmpp_2m_k",
    "seamless_x": False,
    "model": {"key": "x1", "hash": "blake3:ab", "name": "juggernaut", "base": "sd-1"},
    "app_version": "4.2.0",
}


def test_reads_invokeai_metadata(tmp_path):
    result = md.read_settings(comfy_png(tmp_path, invokeai_metadata=json.dumps(INVOKE)))
    r = result.request
    assert result.source == "invokeai"
    assert (r.prompt, r.negative_prompt) == ("a lighthouse, stormy sea", "text")
    assert (r.width, r.height, r.seed, r.steps, r.cfg_scale) == (768, 512, 4242, 30, 7.5)
    assert (r.sampler, r.schedule.karras, r.schedule.cfg_rescale) == ("DPM++ 2M Karras", None, 0.5)
    assert (r.model, r.rng) == ("juggernaut", "CPU")
    assert result.unmapped == {"model details": "base: sd-1, hash: blake3:ab, key: x1"}


def test_recipe_wins_over_foreign_chunks(tmp_path):
    request = GenerationRequest(prompt="ours")
    path = save(tmp_path, request, "png")
    with Image.open(path) as im:
        info = PngInfo()
        for k, v in im.text.items():
            info.add_text(k, v)
        info.add_text("prompt", json.dumps(COMFY_PROMPT))
        im.save(tmp_path / "both.png", pnginfo=info)
    assert md.read_settings(tmp_path / "both.png").request == request


# ---- bad input --------------------------------------------------------------------------
def test_image_without_settings_reads_as_none(tmp_path):
    OUT.save(tmp_path / "plain.png")
    OUT.save(tmp_path / "plain.gif")
    for name in ("plain.png", "plain.gif"):
        result = md.read_settings(tmp_path / name)
        assert (result.request, result.source, result.warnings) == (None, "none", [])


def test_text_file_renamed_png_is_a_clear_value_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("Steps: 20, Sampler: Euler, Seed: 1\n")
    with pytest.raises(ValueError, match="notes.png is not an image"):
        md.read_settings(path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        md.read_settings(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="Cannot open"):
        md.read_settings(tmp_path / "missing.png")


@pytest.mark.parametrize(
    "recipe",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"app": "diffusion-studio", "steps": "twenty"}),
        json.dumps({"app": "diffusion-studio", "schedule": [1]}),
        json.dumps({"app": "diffusion-studio", "controls": [{"model": 3}]}),
        "[" * 100000 + "]" * 100000,
    ],
)
def test_broken_recipe_falls_back_to_the_a1111_text_with_a_warning(tmp_path, recipe):
    path = comfy_png(tmp_path, parameters=SAMPLE_OLD, studio_recipe=recipe)
    result = md.read_settings(path)
    assert result.source == "a1111"
    assert result.request.model == "deliberate_v2"
    assert any("recipe" in w for w in result.warnings)


def test_damaged_embedded_image_is_dropped_with_a_warning(tmp_path):
    request = GenerationRequest(mode="img2img", prompt="p", init_image=noise((8, 8)))
    data = json.loads(md.recipe_json(request, md.ImageMeta()))
    buf = io.BytesIO()
    noise((8, 8)).save(buf, format="GIF")  # not PNG: never decoded
    data["init_image"]["png_base64"] = base64.b64encode(buf.getvalue()).decode()
    result = md.read_settings(comfy_png(tmp_path, studio_recipe=json.dumps(data)))
    assert result.source == "studio"
    assert result.request.init_image is None
    assert any("damaged" in w for w in result.warnings)


@pytest.mark.parametrize(
    "chunks",
    [
        {"prompt": "{{{{"},
        {"prompt": json.dumps({"1": "x", "2": {"class_type": 5}})},
        {"prompt": json.dumps({"3": {"class_type": "KSampler", "inputs": {"positive": ["3", 0]}}})},
        {"workflow": json.dumps({"nodes": "no"})},
        {"invokeai_metadata": "null"},
        {"parameters": "just a caption"},
        {"parameters": "\x00\x01\x02 garbage: , , :"},
    ],
)
def test_garbage_chunks_give_warnings_not_exceptions(tmp_path, chunks):
    result = md.read_settings(comfy_png(tmp_path, **chunks))
    assert result.warnings
    if "KSampler" not in json.dumps(chunks):
        assert result.request is None


def png_with_raw_chunk(tmp_path: Path, ctype: bytes, body: bytes, crc: int | None = None) -> Path:
    buf = io.BytesIO()
    OUT.save(buf, format="PNG")
    data = buf.getvalue()
    crc = zlib.crc32(ctype + body) if crc is None else crc
    chunk = struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)
    path = tmp_path / "raw.png"
    path.write_bytes(data[:33] + chunk + data[33:])  # after IHDR
    return path


def test_bad_checksum_and_broken_compressed_chunks_are_skipped(tmp_path):
    body = b"parameters\0" + SAMPLE_OLD.encode()
    result = md.read_settings(png_with_raw_chunk(tmp_path, b"tEXt", body, crc=1))
    assert result.request is None and "checksum" in result.warnings[0]
    result = md.read_settings(png_with_raw_chunk(tmp_path, b"zTXt", b"parameters\0\0garbage"))
    assert result.request is None and "unreadable" in result.warnings[0]
    bomb = b"parameters\0\0" + zlib.compress(b"a" * (65 * 1024 * 1024))
    result = md.read_settings(png_with_raw_chunk(tmp_path, b"zTXt", bomb))
    assert result.request is None and "64 MB" in result.warnings[0]


def test_truncated_files_give_warnings(tmp_path):
    path = save(tmp_path, GenerationRequest(prompt="p"), "png")
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"studio_recipe") + 40])
    result = md.read_settings(path)
    assert result.source == "a1111" and result.warnings
    jpg = save(tmp_path, GenerationRequest(prompt="p"), "jpg")
    jpg.write_bytes(jpg.read_bytes()[:200])
    result = md.read_settings(jpg)
    assert result.request is None and result.warnings


def test_corrupt_exif_gives_a_warning(tmp_path):
    path = tmp_path / "bad.jpg"
    OUT.save(path, exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + b"\0" * 20)
    result = md.read_settings(path)
    assert (result.request, result.source) == (None, "none")
    assert "EXIF" in result.warnings[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_randomly_damaged_files_never_crash_the_reader(tmp_path, fmt):
    request = GenerationRequest(mode="img2img", prompt="p, q: r", init_image=noise((8, 8)))
    original = save(tmp_path, request, fmt).read_bytes()
    rng = np.random.default_rng(123)
    path = tmp_path / "damaged"
    sources = set()
    for _ in range(150):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(data)))
            if rng.random() < 0.6:
                data[at] = int(rng.integers(0, 256))
            else:
                del data[at : at + int(rng.integers(1, 40))]
        path.write_bytes(bytes(data))
        try:
            sources.add(md.read_settings(path).source)
        except ValueError as e:
            assert "not an image" in str(e)
    assert sources <= set(md.SOURCES)
