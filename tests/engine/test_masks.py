from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.engine import masks


def _square_mask(
    size: tuple[int, int] = (96, 64), box: tuple[int, int, int, int] = (40, 20, 60, 40)
):
    arr = np.zeros((size[1], size[0]), np.uint8)
    left, top, right, bottom = box
    arr[top:bottom, left:right] = 255
    return Image.fromarray(arr)


def _noise_image(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_feather_is_smooth_bounded_and_keeps_the_core():
    hard = _square_mask(box=(30, 12, 70, 52))
    soft = masks.feather(hard, 4)
    assert soft.dtype == np.uint8 and soft.shape == (64, 96)
    assert soft.min() == 0 and soft.max() == 255  # far outside 0, deep inside 255
    assert soft[32, 50] == 255
    # a Gaussian edge: many intermediate values, rising then falling monotonically
    row = soft[32, 15:85].astype(int)
    assert len(np.unique(row)) > 10
    assert np.all(np.diff(row[:35]) >= 0) and np.all(np.diff(row[35:]) <= 0)
    # about half strength on the original edge, no jump between neighbours
    assert 100 < soft[32, 30] < 160
    assert np.abs(np.diff(soft.astype(int), axis=1)).max() < 60
    # nothing leaks far from the mask
    assert soft[:, :15].max() == 0 and soft[:, 85:].max() == 0


def test_feather_zero_is_identity_and_negative_is_refused():
    hard = _square_mask()
    np.testing.assert_array_equal(masks.feather(hard, 0), np.asarray(hard))
    with pytest.raises(ValueError, match="blur"):
        masks.feather(hard, -1)


def test_prepare_mask_resizes_binarises_and_feathers():
    small = _square_mask((48, 32), (20, 10, 30, 20))
    out = masks.prepare_mask(small, (96, 64), blur=0)
    assert out.mode == "L" and out.size == (96, 64)
    arr = np.asarray(out)
    assert set(np.unique(arr)) == {0, 255}
    assert arr[30, 50] == 255 and arr[5, 5] == 0
    soft = np.asarray(masks.prepare_mask(small, (96, 64), blur=3))
    assert 0 < soft[30, 40] < 255 and soft[30, 50] == 255


def test_prepare_mask_rejects_bad_sizes():
    with pytest.raises(ValueError, match="size"):
        masks.prepare_mask(_square_mask(), (0, 10), blur=2)
    with pytest.raises(ValueError, match="blur"):
        masks.prepare_mask(_square_mask(), (96, 64), blur=-2)


def test_mask_bounds_pads_rounds_to_multiple_and_clamps():
    # painted 40..60 x 20..40 in a 96x64 image
    box = masks.mask_bounds(_square_mask(), padding=4, image_size=(96, 64))
    left, top, right, bottom = box
    assert left <= 36 and top <= 16 and right >= 64 and bottom >= 44
    assert (right - left) % 8 == 0 and (bottom - top) % 8 == 0
    # near the corner: the padding is clamped to the image instead of going negative
    corner = _square_mask(box=(2, 3, 12, 10))
    left, top, right, bottom = masks.mask_bounds(corner, padding=32, image_size=(96, 64))
    assert (left, top) == (0, 0) and right <= 96 and bottom <= 64
    assert right >= 44 and bottom >= 42
    assert right % 8 == 0 and bottom % 8 == 0
    # more padding than the image: the whole image
    assert masks.mask_bounds(_square_mask(), 500, (96, 64)) == (0, 0, 96, 64)


def test_mask_bounds_on_an_image_not_a_multiple_of_eight():
    arr = np.zeros((61, 99), np.uint8)
    arr[55:61, 90:99] = 255
    left, top, right, bottom = masks.mask_bounds(arr, padding=2, image_size=(99, 61))
    assert right == 99 and bottom == 61  # clamped to the edge
    assert (right - left) % 8 == 0 and (bottom - top) % 8 == 0
    assert left <= 88 and top <= 53


def test_mask_bounds_grows_the_narrow_side_to_the_target_aspect_ratio():
    def bounds(target_size: tuple[int, int] | None) -> masks.Box:
        return masks.mask_bounds(_square_mask(), 2, (96, 64), target_size=target_size)

    # painted 40..60 x 20..40 (20x20) in a 96x64 image; padding 2 makes it 24x24
    assert bounds(None) == (38, 18, 62, 42)
    # a 2:1 target widens it about its centre to 48x24; a 1:2 target makes it 24x48
    assert bounds((512, 256)) == (26, 18, 74, 42)
    assert bounds((256, 512)) == (38, 6, 62, 54)
    # a 1:4 target wants 96 rows of a 64-row image: all of them, as near the ratio as it goes
    assert bounds((128, 512)) == (38, 0, 62, 64)


def test_mask_bounds_aspect_box_slides_inside_the_image():
    # 12x12 painted at the right edge; a 3:1 target wants 36x12, rounded up to 40x16
    corner = _square_mask(box=(84, 20, 96, 32))
    assert masks.mask_bounds(corner, 0, (96, 64), target_size=(192, 64)) == (56, 18, 96, 34)


def test_mask_bounds_errors_are_readable():
    with pytest.raises(ValueError, match="empty"):
        masks.mask_bounds(np.zeros((8, 8), np.uint8), 4, (8, 8))
    with pytest.raises(ValueError, match="same size"):
        masks.mask_bounds(_square_mask(), 4, (10, 10))
    with pytest.raises(ValueError, match="target size must be positive"):
        masks.mask_bounds(_square_mask(), 4, (96, 64), target_size=(0, 64))


def test_paste_back_keeps_unmasked_pixels_bit_identical():
    original = _noise_image((96, 64), 1)
    generated = _noise_image((96, 64), 2)
    feathered = masks.prepare_mask(_square_mask(box=(30, 12, 70, 52)), (96, 64), blur=4)
    out = masks.paste_back(original, generated, feathered)
    assert out.size == original.size and out.mode == "RGB"
    o, g, r = (np.asarray(x) for x in (original, generated, out))
    w = np.asarray(feathered)
    outside, inside = w == 0, w == 255
    assert outside.sum() > 2000 and inside.sum() > 300
    np.testing.assert_array_equal(r[outside], o[outside])
    np.testing.assert_array_equal(r[inside], g[inside])
    # the soft edge is a blend, between the two sources
    edge = (w > 0) & (w < 255)
    lo, hi = np.minimum(o, g)[edge], np.maximum(o, g)[edge]
    assert np.all((r[edge] >= lo) & (r[edge] <= hi))


def test_paste_back_of_a_crop_goes_back_into_its_box():
    original = _noise_image((96, 64), 3)
    mask = _square_mask()
    box = masks.mask_bounds(mask, 8, (96, 64))
    feathered = masks.prepare_mask(mask, (96, 64), blur=2)
    crop = masks.crop_to_bounds(original, box)
    repainted = Image.new("RGB", (crop.width * 2, crop.height * 2), (255, 0, 0))  # model size
    out = np.asarray(masks.paste_back(original, repainted, feathered, box=box))
    w = np.asarray(feathered)
    np.testing.assert_array_equal(out[w == 0], np.asarray(original)[w == 0])
    assert np.all(out[w == 255] == (255, 0, 0))


def test_paste_back_rejects_a_mask_of_another_size():
    with pytest.raises(ValueError, match="same size"):
        masks.paste_back(
            _noise_image((96, 64), 1), _noise_image((96, 64), 2), _square_mask((10, 10))
        )
