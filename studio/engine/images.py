"""Opening user images: every file or clipboard image the app reads comes through here.

Only the Pillow plugins for the formats we list are ever tried, whatever the file is called (EPS
or PDF would hand the file to Ghostscript); the size is checked from the header before any pixel
is decoded; the result is a plain 8-bit RGB or L image, EXIF-rotated, detached from the file.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import IO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
MAX_PIXELS = 8192 * 8192
MAX_SIDE = 16384

_FORMAT_NAMES = "PNG, JPEG, WebP, BMP, TIFF or GIF"
# the first bytes of the formats above: a file that starts so but does not open is cut or broken
_SIGNATURES = re.compile(
    rb"\x89PNG\r\n\x1a\n|\xff\xd8\xff|GIF8[79]a|RIFF....WEBP|BM|II\*\x00|MM\x00\*", re.S
)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def open_dialog_filter() -> str:
    return "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"


def open_image(path: str | os.PathLike[str], mode: Literal["RGB", "L"] = "RGB") -> Image.Image:
    """The image in `path` as 8-bit `mode`; any problem is a ValueError with a one-line message."""
    path = Path(path)
    try:
        kind = path.stat().st_mode
        if stat.S_ISDIR(kind):
            raise IsADirectoryError
        if not stat.S_ISREG(kind):  # opening a named pipe would wait for a writer forever
            raise ValueError(f"{path.name} is a pipe or device, not an image file.")
        f = path.open("rb")  # our own file object: Pillow gets no file name to guess from
    except FileNotFoundError:
        raise ValueError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an image.") from None
    except OSError as e:
        raise ValueError(f"Cannot read {path}: {e.strerror or e}.") from None
    with f:
        return _decode(f, path.name, mode)


def open_image_bytes(
    data: bytes, mode: Literal["RGB", "L"] = "RGB", name: str = "The image"
) -> Image.Image:
    """As open_image, for image data from the clipboard or a drop."""
    return _decode(io.BytesIO(data), name, mode)


def _decode(fp: IO[bytes], name: str, mode: str) -> Image.Image:
    if mode not in ("RGB", "L"):
        raise ValueError(f"Images open as RGB or L, not {mode!r}.")
    if not fp.read(1):
        raise ValueError(f"{name} is empty.")
    fp.seek(0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            opened = Image.open(fp, formats=_formats())
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: no size to show
        raise ValueError(f"{name} is too large to open ({e}); {_limit_text()}.") from None
    except UnidentifiedImageError:
        fp.seek(0)
        if _SIGNATURES.match(fp.read(12)):  # a known format whose header is cut or broken
            raise ValueError(f"{name} is truncated or corrupt: its header is incomplete.") from None
        raise ValueError(
            f"{name} is not an image in a format the app opens ({_FORMAT_NAMES})."
        ) from None
    except Exception as e:  # Pillow raises many types for a broken header
        raise ValueError(f"{name} is corrupt: {e}") from None
    bomb = False
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            bomb = True  # over Pillow's limit, even if someone lowered it below ours
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    with opened:
        width, height = opened.size
        if bomb or width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
            raise ValueError(
                f"{name} is too large to open: {width}x{height} pixels; {_limit_text()}."
            )
        try:
            opened.load()  # the first frame of an animation or a multi-page TIFF
            image = ImageOps.exif_transpose(opened)  # a copy: the file can close
        except Exception as e:  # OSError, SyntaxError, struct.error, ... for broken data
            raise ValueError(f"{name} is truncated or corrupt: {e}") from None
    try:
        return _to_8bit(image, mode)
    except (ValueError, OSError) as e:  # a colour mode Pillow cannot convert (e.g. LAB)
        raise ValueError(f"Cannot convert {name} from {image.mode} to {mode}: {e}") from None


def _formats() -> list[str]:
    # a Pillow built without a codec (e.g. WebP) lacks its plugin; asking for it would fail
    Image.preinit()
    if not all(f in Image.OPEN for f in PIL_FORMATS):
        Image.init()
    return [f for f in PIL_FORMATS if f in Image.OPEN]


def _limit_text() -> str:
    return f"the limit is {MAX_PIXELS:,} pixels and {MAX_SIDE:,} pixels a side"


def _to_8bit(image: Image.Image, mode: str) -> Image.Image:
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit grey (PNG, TIFF) scaled, not clipped: convert() would turn 40000 into white.
        # "I" is read as that 16-bit range too, "F" as 0..1, the float file convention.
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" else 65535.0
        grey = np.nan_to_num(values / top * 255.0).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert(mode)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # flattened on white, for masks too: transparent = white = repaint, which is also what
        # edit masks with a transparent hole (OpenAI style) mean
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert(mode)
    return image.convert(mode)  # CMYK (Adobe inverted too), YCbCr, P, 1, ...


def as_mode(image: Image.Image, mode: Literal["RGB", "L"] = "RGB") -> Image.Image:
    """An image already in memory (pasted, generated) converted the way `open_image` converts."""
    return image if image.mode == mode else _to_8bit(image, mode)
