"""Property-based fuzzing of the metadata readers: whatever the text, JSON, chunks or EXIF bytes,
reading gives a result with warnings and never raises anything but the documented error."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.engine import metadata as md
from studio.engine.metadata.comfyui import _WIDGETS, _read_comfyui
from studio.engine.metadata.containers import NOTICED_KEYS, READ_KEYS
from studio.engine.metadata.exif import _build_exif
from studio.engine.metadata.infotext import find_params
from studio.engine.metadata.invokeai import _read_invokeai
from studio.engine.metadata.recipe import _read_recipe
from studio.engine.request import GenerationRequest

FUZZ = settings(
    max_examples=200,
    deadline=None,  # no timing in tests; a hang would still show as a stuck run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ_FILES = settings(FUZZ, max_examples=100)  # each example writes and reads an image file

# A1111's own pattern (modules/infotext_utils.py), the reference find_params must agree with
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

# pieces that steer random text towards settings lines: keys, colons, quotes, escapes, commas
A1111_PIECES = st.sampled_from(
    [
        "Steps",
        "Sampler",
        "CFG scale",
        "Seed",
        "Size",
        "Model",
        "ControlNet 0",
        "Schedule type",
        "Batch pos",
        "Denoising strength",
        "Mask blur",
        "Hires upscale",
        "Negative prompt:",
        ": ",
        ":",
        ", ",
        ",",
        '"',
        '\\"',
        "\\",
        "\n",
        " ",
        "\t",
        "-",
        "/",
        "20",
        "-1",
        "1e999",
        "nan",
        "512x768",
        "Euler a",
        "Karras",
        "[abc]",
        "é猫",
        "\x00",
        "\r",
    ]
)
A1111_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(A1111_PIECES | st.text(max_size=5), max_size=60).map("".join),
)


def check_result(result: md.ReadResult) -> None:
    assert result.source in md.SOURCES
    assert all(isinstance(w, str) and w for w in result.warnings)
    assert result.request is None or isinstance(result.request, GenerationRequest)
    if result.request is None:
        assert result.warnings or result.source == "none"


# ---- A1111 text ------------------------------------------------------------------------------
@FUZZ
@given(A1111_TEXT)
@example('a: "x\\", b: "y\n')
@example("Steps: 20, Size: 5x, Seed: 99999999999999999999999, CFG scale: inf")
def test_find_params_agrees_with_a1111s_regex(text):
    assert find_params(text) == A1111_PARAM.findall(text)


@FUZZ
@given(A1111_TEXT)
@example('Steps: 1e999, Sampler: ?, Seed: -, ControlNet 0: "Module: x, Model: \\""')
def test_read_a1111_text_never_raises(text):
    result = md.read_a1111_text(text)
    check_result(result)
    assert result.raw_parameters == text
    assert result.source in ("a1111", "none")


SHORT_VALUES = st.text(max_size=20) | st.lists(A1111_PIECES, max_size=8).map("".join)


@FUZZ
@given(
    SHORT_VALUES,
    st.dictionaries(
        st.sampled_from(["Sampler", "CFG scale", "Seed", "Size", "Model", "Batch pos"])
        | st.sampled_from(["ControlNet 0", "Schedule type", "Inpaint area", "Timestep spacing"]),
        SHORT_VALUES,
        min_size=2,
    ),
)
def test_a1111_settings_lines_with_any_values_read(steps, params):
    line = ", ".join(
        f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in {"Steps": steps, **params}.items()
    )
    result = md.read_a1111_text(f"a prompt\n{line}")
    check_result(result)
    assert result.source == "a1111"


# ---- JSON readers: our recipe, ComfyUI, InvokeAI --------------------------------------------
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and Infinity too: json.loads accepts them
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
REQUEST_KEYS = [
    "mode",
    "model",
    "prompt",
    "sampler",
    "schedule",
    "steps",
    "cfg_scale",
    "seed",
    "width",
    "height",
    "batch_size",
    "strength",
    "init_image",
    "mask",
    "controls",
    "image_index",
    "image_seed",
    "schema",
]


def recipe_dicts() -> st.SearchStrategy[dict[str, Any]]:
    control = st.fixed_dictionaries(
        {"model": JSON_SCALARS},
        optional={
            "params": JSON,
            "image": JSON,
            "weight": JSON_SCALARS,
            "preprocessor": JSON_SCALARS,
        },
    )
    values = {k: JSON_SCALARS for k in REQUEST_KEYS}
    values.update(init_image=JSON, mask=JSON)
    values["controls"] = st.lists(control | JSON, max_size=3) | JSON
    values["schedule"] = st.dictionaries(
        st.sampled_from(
            ["karras", "timestep_spacing", "zero_snr", "prediction_type", "cfg_rescale"]
        ),
        JSON_SCALARS,
    )
    return st.fixed_dictionaries({"app": st.just(md.APP_ID)}, optional=values)


@FUZZ
@given(recipe_dicts())
def test_recipe_reader_raises_only_value_errors(data):
    try:
        result = _read_recipe(json.dumps(data))
    except ValueError:
        return
    check_result(result)
    assert result.source == "studio"


COMFY_TYPES = sorted(_WIDGETS) + ["EmptyLatentImage", "VAEEncode", "PrimitiveNode"]


def comfy_graphs() -> st.SearchStrategy[dict[str, Any]]:
    ids = st.sampled_from(["1", "2", "3", "4", "5"])
    link = st.tuples(ids, st.integers(0, 2)).map(list)
    inputs = st.dictionaries(
        st.sampled_from(
            ["model", "positive", "negative", "latent_image", "seed", "steps", "cfg", "text"]
            + ["sampler_name", "scheduler", "denoise", "width", "height", "ckpt_name", "sampling"]
        ),
        link | JSON_SCALARS,
        max_size=8,
    )
    node = st.fixed_dictionaries({"class_type": st.sampled_from(COMFY_TYPES), "inputs": inputs})
    return st.dictionaries(ids, node | JSON, max_size=5)


@FUZZ
@given(comfy_graphs())
def test_comfyui_prompt_reader_raises_only_value_errors(graph):
    try:
        result = _read_comfyui(json.dumps(graph), None)
    except ValueError:
        return
    check_result(result)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "nodes": st.lists(
                st.fixed_dictionaries(
                    {"id": st.integers(0, 5), "type": st.sampled_from(COMFY_TYPES)},
                    optional={
                        "widgets_values": JSON,
                        "inputs": st.lists(
                            st.fixed_dictionaries(
                                {"name": st.text(max_size=8), "link": st.integers(0, 5)}
                            ),
                            max_size=3,
                        ),
                    },
                )
                | JSON,
                max_size=5,
            ),
            "links": st.lists(st.lists(st.integers(0, 5) | JSON_SCALARS, max_size=6), max_size=5),
        },
    )
)
def test_comfyui_workflow_reader_raises_only_value_errors(workflow):
    try:
        result = _read_comfyui(None, json.dumps(workflow))
    except ValueError:
        return
    check_result(result)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width"]
            + ["height", "strength", "scheduler", "model", "generation_mode"]
            + ["cfg_rescale_multiplier", "app_version"]
        )
        | st.text(max_size=8),
        JSON,
    )
    | JSON
)
def test_invokeai_reader_raises_only_value_errors(data):
    try:
        result = _read_invokeai(json.dumps(data))
    except ValueError:
        return
    check_result(result)


# ---- whole images: text chunk maps and EXIF ---------------------------------------------------
TEXT_KEYS = st.sampled_from(sorted(READ_KEYS | NOTICED_KEYS)) | st.text(
    st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20
)
TEXT_VALUES = A1111_TEXT | JSON.map(json.dumps)


@FUZZ_FILES
@given(st.dictionaries(TEXT_KEYS, TEXT_VALUES, max_size=6), st.booleans())
def test_any_png_text_chunk_map_reads(tmp_path, texts, compress):
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value, zip=compress)
    path = tmp_path / "fuzz.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    check_result(md.read_settings(path))


def png_with_raw_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    data = buf.getvalue()
    raw = b"".join(
        struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
        for ctype, body in chunks
    )
    return data[:33] + raw + data[33:]


def chunk_bodies() -> st.SearchStrategy[bytes]:
    key = st.sampled_from([k.encode() for k in sorted(READ_KEYS)]) | st.binary(max_size=10)
    deflated = st.binary(max_size=200).map(zlib.compress)
    rest = st.binary(max_size=200) | deflated.map(lambda d: b"\0" + d)
    itxt = st.tuples(
        st.sampled_from([b"\0\0", b"\1\0", b"\1\1"]), deflated | st.binary(max_size=50)
    )
    return st.one_of(
        st.tuples(key, rest).map(lambda kr: kr[0] + b"\0" + kr[1]),
        st.tuples(key, itxt).map(lambda k: k[0] + b"\0" + k[1][0] + b"en\0\0" + k[1][1]),
        st.binary(max_size=200),
    )


@FUZZ_FILES
@given(
    st.lists(
        st.tuples(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"eXIf"]), chunk_bodies()),
        max_size=6,
    )
)
def test_any_raw_png_text_chunks_read(tmp_path, chunks):
    path = tmp_path / "raw.png"
    path.write_bytes(png_with_raw_chunks(chunks))
    check_result(md.read_settings(path))


@FUZZ
@given(st.binary(max_size=300))
def test_exif_fields_raise_only_value_or_struct_errors(data):
    for block in (data, b"Exif\0\0MM\0*" + data, b"II*\0" + data):
        try:
            fields = md.exif_fields(block)
        except (ValueError, struct.error):
            continue
        assert all(isinstance(v, bytes) for v in fields.values())


@FUZZ
@given(st.binary(max_size=300))
def test_any_user_comment_decodes(raw):
    for prefix in (b"", b"UNICODE\0", b"ASCII\0\0\0", b"\0" * 8, b"UNICODE\0\xff\xfe"):
        assert isinstance(md.decode_user_comment(prefix + raw), str)


@FUZZ_FILES
@given(
    st.binary(max_size=300) | A1111_TEXT.map(lambda t: b"UNICODE\0" + t.encode("utf-16-be")),
    st.none() | st.binary(max_size=300).map(lambda b: md.RECIPE_MAGIC + b),
    st.sampled_from(["image", "jpg", "webp"]),
)
def test_any_exif_user_comment_and_maker_note_read(tmp_path, comment, note, where):
    exif = _build_exif(comment, note)
    if where == "image":
        image = Image.new("RGB", (4, 4))
        image.info["exif"] = exif
        check_result(md.read_settings(image))
        return
    path = tmp_path / f"fuzz.{where}"
    Image.new("RGB", (4, 4)).save(path, exif=exif)
    check_result(md.read_settings(path))


def test_fuzz_helpers_make_readable_files(tmp_path):
    # the raw-chunk builder makes files the reader takes apart as intended
    path = tmp_path / "ok.png"
    path.write_bytes(
        png_with_raw_chunks([(b"tEXt", b"parameters\0p\nSteps: 3, Seed: 1, Size: 8x8")])
    )
    assert md.read_settings(Path(path)).request.steps == 3
