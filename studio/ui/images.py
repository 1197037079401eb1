"""The only place that converts images between Qt and numpy/PIL.

Every function copies: a QImage built on a numpy or bytes buffer would point at freed memory once
that buffer goes away, and an array built on QImage bits would change under the caller's feet.
Rows of a QImage are padded to 4 bytes (bytesPerLine), so odd widths are read row by row.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage


def numpy_to_qimage(arr: np.ndarray) -> QImage:
    """HxWx3 uint8 RGB -> RGB888, HxWx4 -> RGBA8888, HxW uint8 -> Grayscale8."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise ValueError(f"An image array must be uint8; got {arr.dtype}.")
    if arr.ndim == 2:
        fmt, channels = QImage.Format.Format_Grayscale8, 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt, channels = QImage.Format.Format_RGB888, 3
    elif arr.ndim == 3 and arr.shape[2] == 4:
        fmt, channels = QImage.Format.Format_RGBA8888, 4
    else:
        raise ValueError(f"An image array must be HxW, HxWx3 or HxWx4; got shape {arr.shape}.")
    height, width = arr.shape[:2]
    if width == 0 or height == 0:
        raise ValueError(f"An image must not be empty; got {width}x{height}.")
    data = np.ascontiguousarray(arr).tobytes()
    return QImage(data, width, height, width * channels, fmt).copy()


def qimage_to_numpy(qimg: QImage) -> np.ndarray:
    """Grayscale images -> HxW uint8; anything else -> HxWx3 uint8 RGB (alpha dropped)."""
    if qimg.isNull():
        raise ValueError("The image is empty.")
    if qimg.format() in (QImage.Format.Format_Grayscale8, QImage.Format.Format_Alpha8):
        src, channels = qimg, 1
    else:
        src = qimg.convertToFormat(QImage.Format.Format_RGB888)
        channels = 3
    width, height, stride = src.width(), src.height(), src.bytesPerLine()
    rows = np.frombuffer(src.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    arr = rows[:, : width * channels].copy()
    return arr if channels == 1 else arr.reshape(height, width, 3)


def pil_to_qimage(img: Image.Image) -> QImage:
    if img.mode == "L":
        return numpy_to_qimage(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return numpy_to_qimage(np.asarray(img.convert("RGBA")))
    return numpy_to_qimage(np.asarray(img.convert("RGB")))


def qimage_to_pil(qimg: QImage) -> Image.Image:
    """Grayscale -> "L", everything else -> "RGB"."""
    return Image.fromarray(qimage_to_numpy(qimg))
