from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine import depth as depth_module
from studio.engine.control import PARAMS, preprocess, preprocess_control, release
from studio.engine.pose import OPENPOSE_NAMES, detect_pose
from studio.engine.request import PREPROCESSORS, ControlSpec

# OpenPose keypoint colours (controlnet-aux draw_bodypose), RGB
NOSE, NECK, R_SHOULDER, L_SHOULDER = (255, 0, 0), (255, 85, 0), (255, 170, 0), (85, 255, 0)
KP = {name: i for i, name in enumerate(OPENPOSE_NAMES)}


# ---- synthetic shapes ----------------------------------------------------------------
def shapes(size: int = 128) -> tuple[Image.Image, np.ndarray]:
    """A filled square and a filled circle on a flat background, and their union as a mask."""
    image = Image.new("RGB", (size, size), (30, 30, 30))
    mask = Image.new("L", (size, size), 0)
    s = size / 128
    for target, fill in ((image, None), (mask, 255)):
        draw = ImageDraw.Draw(target)
        draw.rectangle((16 * s, 20 * s, 56 * s, 60 * s), fill=fill or (230, 220, 200))
        draw.ellipse((70 * s, 66 * s, 116 * s, 112 * s), fill=fill or (190, 210, 240))
    return image, np.asarray(mask) > 0


def zones(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels within `width` of a shape border, shape interiors, background away from shapes)."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    m = mask.astype(np.uint8)
    grown, shrunk = cv2.dilate(m, kernel) > 0, cv2.erode(m, kernel) > 0
    return grown & ~shrunk, shrunk, ~grown


def border_pixels(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return mask & ~(cv2.erode(m, np.ones((3, 3), np.uint8)) > 0)


def near(on: np.ndarray, where: np.ndarray, radius: int = 1) -> np.ndarray:
    """For each pixel in `where`: is some `on` pixel within `radius`?"""
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return (cv2.dilate(on.astype(np.uint8), k) > 0)[where]


def test_canny_marks_shape_borders_and_leaves_flat_areas_empty():
    image, mask = shapes()
    out = preprocess(image, "canny", (128, 128))
    assert out.size == (128, 128) and out.mode == "RGB"
    a = np.asarray(out)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    edges = a[..., 0] > 127
    border, interior, background = zones(mask, 2)
    assert not edges[interior].any()
    assert not edges[background].any()
    assert edges[border].sum() > 100
    # the whole outline is traced: square sides and circle alike
    assert near(edges, border_pixels(mask)).mean() > 0.95


def test_canny_thresholds_decide_which_edges_count():
    # a faint shape: a step of 20 grey levels gives a Sobel L1 magnitude of about 80
    image = Image.new("RGB", (64, 64), (80, 80, 80))
    ImageDraw.Draw(image).rectangle((16, 16, 48, 48), fill=(100, 100, 100))
    faint = preprocess(image, "canny", (64, 64), {"low_threshold": 30, "high_threshold": 60})
    strict = preprocess(image, "canny", (64, 64), {"low_threshold": 100, "high_threshold": 200})
    assert np.asarray(faint).max() == 255
    assert np.asarray(strict).max() == 0


def test_canny_equals_controlnet_aux_detector_at_multiples_of_64():
    from controlnet_aux.canny import CannyDetector

    image, _ = shapes(128)
    photo = Image.fromarray(np.asarray(image) // 2 + np.arange(128, dtype=np.uint8)[None, :, None])
    ours = preprocess(photo, "canny", (128, 128), {"low_threshold": 50, "high_threshold": 150})
    theirs = CannyDetector()(photo, 50, 150, detect_resolution=128, image_resolution=128)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_a_controlnet_unit_is_preprocessed_with_its_own_settings():
    image = Image.new("RGB", (64, 64), (80, 80, 80))
    ImageDraw.Draw(image).rectangle((16, 16, 48, 48), fill=(100, 100, 100))
    unit = ControlSpec(model="canny-net", image=image, preprocessor="canny")
    loose = ControlSpec(
        model="canny-net",
        image=image,
        preprocessor="canny",
        params=(("low_threshold", 30.0), ("high_threshold", 60.0)),
    )
    assert np.asarray(preprocess_control(unit, (64, 64))).max() == 0
    assert np.asarray(preprocess_control(loose, (64, 64))).max() == 255
    with pytest.raises(ValueError, match="no control image"):
        preprocess_control(ControlSpec(model="canny-net", preprocessor="canny"), (64, 64))


def test_canny_runs_at_the_generation_size():
    image, _ = shapes(256)
    out = preprocess(image, "canny", (96, 64))
    assert out.size == (96, 64)
    assert np.asarray(out).max() == 255


def test_lineart_draws_the_outlines_without_weights():
    image, mask = shapes(128)
    out = preprocess(image, "lineart", (128, 128))
    assert out.size == (128, 128) and out.mode == "RGB"
    ink = np.asarray(out)[..., 0].astype(int)
    # the ink fades out over the blur radius (sigma 6 px at 512 px = 1.5 px here)
    border, interior, background = zones(mask, 5)
    assert ink[interior].max() == 0
    assert ink[background].max() == 0
    assert ink[border].max() > 100
    assert near(ink > 20, border_pixels(mask), radius=2).mean() > 0.95


def test_lineart_blur_setting_changes_line_width():
    image, _ = shapes(128)
    thin = np.asarray(preprocess(image, "lineart", (128, 128), {"gaussian_sigma": 2}))
    wide = np.asarray(preprocess(image, "lineart", (128, 128), {"gaussian_sigma": 12}))
    assert (wide[..., 0] > 10).sum() > 1.5 * (thin[..., 0] > 10).sum()


# ---- none and framing ----------------------------------------------------------------
def test_none_only_resizes_and_converts():
    a = np.zeros((100, 200, 3), np.uint8)
    a[:, :100] = (255, 0, 0)
    a[:, 100:] = (0, 0, 255)
    out = preprocess(Image.fromarray(a), "none", (64, 32))
    assert out.size == (64, 32) and out.mode == "RGB"
    o = np.asarray(out)
    assert (o[:, :30] == (255, 0, 0)).all()
    assert (o[:, 34:] == (0, 0, 255)).all()


def test_none_makes_transparent_background_black_and_reads_grey_maps():
    rgba = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    ImageDraw.Draw(rgba).rectangle((8, 8, 23, 23), fill=(0, 255, 0, 255))
    o = np.asarray(preprocess(rgba, "none", (32, 32)))
    assert (o[0, 0] == 0).all() and (o[16, 16] == (0, 255, 0)).all()
    grey16 = Image.fromarray(np.linspace(0, 60000, 32 * 32).reshape(32, 32).astype(np.uint16))
    g = np.asarray(preprocess(grey16, "none", (32, 32)))
    assert g.shape == (32, 32, 3) and g.min() <= 2 and g.max() >= 253


def test_crop_mode_keeps_the_centre_and_stretch_keeps_everything():
    a = np.zeros((100, 200, 3), np.uint8)
    a[:, :40] = 255  # a white band on the far left
    image = Image.fromarray(a)
    stretched = np.asarray(preprocess(image, "none", (64, 64)))
    cropped = np.asarray(preprocess(image, "none", (64, 64), resize_mode="crop"))
    assert stretched[:, :10].min() > 200
    assert cropped.max() == 0  # the centre square (x 50..150) has no white


# ---- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("sketch", (64, 64)), {}, "Unknown preprocessor"),
        (("canny", (64, 64), {"sigma": 2}), {}, "no setting 'sigma'"),
        (("canny", (64, 64), {"low_threshold": 300}), {}, "from 0 to 255"),
        (("canny", (64, 64), {"low_threshold": 150, "high_threshold": 50}), {}, "low threshold"),
        (("depth", (64, 64), {"resolution": 10}), {}, "at least 28"),
        (("none", (0, 64)), {}, "1 to 8192"),
        (("none", "big"), {}, "(width, height)"),
        (("none", (64, 64)), {"resize_mode": "fill"}, "Unknown resize mode"),
    ],
)
def test_bad_requests_raise_clear_value_errors(args, kwargs, message):
    image, _ = shapes(64)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preprocess(image, *args, **kwargs)


def test_a_non_image_is_refused():
    with pytest.raises(ValueError, match="PIL image"):
        preprocess(np.zeros((8, 8, 3), np.uint8), "canny", (8, 8))  # type: ignore[arg-type]


def test_every_preprocessor_has_its_settings_listed():
    assert set(PARAMS) == set(PREPROCESSORS)
    for specs in PARAMS.values():
        for p in specs:
            assert p.minimum <= p.default <= p.maximum


# ---- pose ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def cameraman() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.camera())  # greyscale, a man bent over a camera


def test_pose_finds_head_above_shoulders_on_a_photograph(astronaut):
    kp = detect_pose(astronaut)
    assert kp is not None and len(kp) == 18
    head = [kp[KP[n]] for n in ("nose", "right_eye", "left_eye")]
    neck, right, left = kp[KP["neck"]], kp[KP["right_shoulder"]], kp[KP["left_shoulder"]]
    assert all(p is not None for p in (*head, neck, right, left))
    assert max(p[1] for p in head) < min(right[1], left[1], neck[1]) - 60
    # a person facing the camera has the right shoulder on the image's left, the head between
    assert right[0] < kp[KP["nose"]][0] < left[0]
    assert right[0] + 120 < left[0]
    # the neck is the shoulders' midpoint
    assert neck == pytest.approx(((right[0] + left[0]) / 2, (right[1] + left[1]) / 2))
    # the hips are below the frame here, so they are left out rather than guessed
    assert kp[KP["right_hip"]] is None and kp[KP["left_hip"]] is None


def test_pose_finds_shoulders_above_hips_on_a_photograph(cameraman):
    kp = detect_pose(cameraman)
    assert kp is not None
    shoulders = [kp[KP["right_shoulder"]], kp[KP["left_shoulder"]]]
    hips = [kp[KP["right_hip"]], kp[KP["left_hip"]]]
    assert all(p is not None for p in shoulders + hips)
    assert max(p[1] for p in shoulders) < min(p[1] for p in hips) - 80
    assert kp[KP["nose"]][1] < min(p[1] for p in hips)


def test_pose_map_draws_openpose_colours_at_the_keypoints(astronaut):
    kp = detect_pose(astronaut)
    out = preprocess(astronaut, "pose", (512, 512))
    assert out.size == (512, 512) and out.mode == "RGB"
    a = np.asarray(out)
    for name, colour in (
        ("nose", NOSE),
        ("neck", NECK),
        ("right_shoulder", R_SHOULDER),
        ("left_shoulder", L_SHOULDER),
    ):
        x, y = (int(c) for c in kp[KP[name]])
        patch = a[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3)
        assert (patch == colour).all(axis=1).any(), name
    assert (a[:40, :40] == 0).all() and (a[-40:, -40:] == 0).all()  # black background


def test_pose_map_scales_keypoints_to_the_generation_size(astronaut):
    kp = detect_pose(astronaut)
    a = np.asarray(preprocess(astronaut, "pose", (128, 256))).astype(int)
    assert a.shape == (256, 128, 3)
    x, y = kp[KP["nose"]]
    r, g, b = a[int(y / 2), int(x / 4)]
    assert r > 200 and g < 60 and b < 60  # still the nose's red


def test_pose_on_a_picture_without_people_is_empty():
    image, _ = shapes(128)
    assert detect_pose(image) is None
    assert np.asarray(preprocess(image, "pose", (64, 64))).max() == 0


# ---- depth ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Depth Anything (DINOv2 backbone) in the Depth-Anything-V2-Small-hf layout."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    folder = tmp_path_factory.mktemp("models") / "tiny-depth"
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def test_depth_runs_a_local_model_at_the_generation_size(tiny_depth_model, astronaut):
    out = preprocess(astronaut, "depth", (96, 64), depth_model=tiny_depth_model)
    assert out.size == (96, 64) and out.mode == "RGB"
    a = np.asarray(out)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert a.min() == 0 and a.max() == 255  # the full range is used
    assert len(np.unique(a)) > 20
    # the network's input side can be chosen (a multiple of 14 after the processor rounds it)
    coarse = preprocess(
        astronaut, "depth", (96, 64), {"resolution": 28}, depth_model=tiny_depth_model
    )
    assert coarse.size == (96, 64)
    assert not np.array_equal(np.asarray(coarse), a)


def test_depth_model_folder_can_come_from_the_environment(tiny_depth_model, monkeypatch):
    monkeypatch.setenv(depth_module.DEPTH_ENV, str(tiny_depth_model))
    image, _ = shapes(64)
    first = preprocess(image, "depth", (64, 64))
    release()  # models are freed and load again on the next call, giving the same map
    assert np.array_equal(np.asarray(preprocess(image, "depth", (64, 64))), np.asarray(first))


def test_missing_depth_model_folder_is_a_clear_error(tmp_path):
    image, _ = shapes(64)
    with pytest.raises(ValueError, match="does not exist.*config.json"):
        preprocess(image, "depth", (64, 64), depth_model=tmp_path / "nowhere")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="no .safetensors"):
        preprocess(image, "depth", (64, 64), depth_model=pickled)


def test_no_depth_model_anywhere_says_where_to_put_one(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv(depth_module.DEPTH_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    image, _ = shapes(64)
    with pytest.raises(ValueError) as info:
        preprocess(image, "depth", (64, 64))
    message = str(info.value)
    assert str(depth_module.default_depth_folder()) in message
    assert str(tmp_path / "data") in message
    assert depth_module.DEPTH_HUB_ID in message and depth_module.DEPTH_ENV in message
