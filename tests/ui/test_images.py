from __future__ import annotations

import gc

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QColor, QImage

from studio.ui.images import numpy_to_qimage, pil_to_qimage, qimage_to_numpy, qimage_to_pil

# odd widths make Qt pad each row to 4 bytes: the stride differs from width * channels
SIZES = [(1, 1), (7, 5), (33, 17), (64, 48), (101, 3)]


def _rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", SIZES)
def test_rgb_array_round_trips_exactly(qapp, size):
    arr = _rgb(*size)
    qimg = numpy_to_qimage(arr)
    assert (qimg.width(), qimg.height()) == size
    assert qimg.format() == QImage.Format.Format_RGB888
    back = qimage_to_numpy(qimg)
    assert back.dtype == np.uint8 and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("size", SIZES)
def test_gray_array_round_trips_exactly(qapp, size):
    arr = _rgb(*size)[..., 0].copy()
    qimg = numpy_to_qimage(arr)
    assert qimg.format() == QImage.Format.Format_Grayscale8
    np.testing.assert_array_equal(qimage_to_numpy(qimg), arr)


@pytest.mark.parametrize("size", SIZES)
def test_pil_round_trips_rgb_and_l(qapp, size):
    rgb = Image.fromarray(_rgb(*size, seed=1))
    back = qimage_to_pil(pil_to_qimage(rgb))
    assert back.mode == "RGB" and back.size == size
    assert back.tobytes() == rgb.tobytes()
    gray = rgb.convert("L")
    back = qimage_to_pil(pil_to_qimage(gray))
    assert back.mode == "L" and back.tobytes() == gray.tobytes()


def test_pixels_land_where_qt_reads_them(qapp):
    arr = np.zeros((5, 7, 3), np.uint8)
    arr[2, 6] = (10, 200, 30)
    qimg = numpy_to_qimage(arr)
    assert QColor(qimg.pixel(6, 2)).getRgb()[:3] == (10, 200, 30)
    assert QColor(qimg.pixel(5, 2)).getRgb()[:3] == (0, 0, 0)


def test_conversions_copy_instead_of_sharing_buffers(qapp):
    arr = _rgb(9, 7)
    qimg = numpy_to_qimage(arr)
    expected = arr.copy()
    arr[:] = 0  # the QImage must not see this
    del arr
    gc.collect()
    np.testing.assert_array_equal(qimage_to_numpy(qimg), expected)
    out = qimage_to_numpy(qimg)
    qimg.fill(QColor(255, 255, 255))  # the array must not see this
    np.testing.assert_array_equal(out, expected)


def test_other_qt_formats_and_pil_modes_convert(qapp):
    argb = QImage(5, 3, QImage.Format.Format_ARGB32)
    argb.fill(QColor(1, 2, 3, 255))
    assert np.all(qimage_to_numpy(argb) == (1, 2, 3))
    pal = Image.fromarray(_rgb(6, 4)).convert("P")
    assert qimage_to_pil(pil_to_qimage(pal)).tobytes() == pal.convert("RGB").tobytes()
    rgba = Image.new("RGBA", (3, 3), (9, 8, 7, 128))
    assert pil_to_qimage(rgba).format() == QImage.Format.Format_RGBA8888


def test_bad_arrays_give_clear_errors(qapp):
    with pytest.raises(ValueError, match="uint8"):
        numpy_to_qimage(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        numpy_to_qimage(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        qimage_to_numpy(QImage())
