"""A1111's "stealth" PNG info (the sd-webui-stealth-pnginfo extension, also NovelAI's): text in
the least-significant bits of the pixels, read column by column (x outer, y inner).

Layout of the bit stream: a 15-byte signature, then a 32-bit big-endian count of the data bits,
then the data, each byte most-significant bit first. Signatures: "stealth_pnginfo" (alpha LSBs,
plain UTF-8), "stealth_pngcomp" (alpha LSBs, gzip), "stealth_rgbinfo" / "stealth_rgbcomp" (the
R, G, B LSBs of each pixel in turn). Only the pixels are read; nothing is executed."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine.images import MAX_PIXELS

_SIGNATURES = {
    b"stealth_pnginfo": ("A", False),
    b"stealth_pngcomp": ("A", True),
    b"stealth_rgbinfo": ("RGB", False),
    b"stealth_rgbcomp": ("RGB", True),
}
_SIG_BITS = 15 * 8
_TEXT_LIMIT = 16 * 1024 * 1024  # decompressed text; A1111 text is kilobytes


def _bits(image: Image.Image, channels: str) -> np.ndarray:
    """The LSB stream of `channels`, in the extension's pixel order."""
    if channels == "A":
        plane = np.asarray(image.getchannel("A"), dtype=np.uint8)  # (h, w)
        return (plane.T.reshape(-1) & 1).astype(np.uint8)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (h, w, 3)
    return (rgb.transpose(1, 0, 2).reshape(-1) & 1).astype(np.uint8)


def stealth_text(image: Image.Image) -> str | None:
    """The hidden text, or None when the pixels carry none (or a damaged one)."""
    modes = ["A", "RGB"] if image.mode in ("RGBA", "LA", "PA") else ["RGB"]
    for channels in modes:
        bits = _bits(image, channels)
        if bits.size < _SIG_BITS + 32:
            continue
        signature = np.packbits(bits[:_SIG_BITS]).tobytes()
        spec = _SIGNATURES.get(signature)
        if spec is None or spec[0] != channels:
            continue
        count = int.from_bytes(np.packbits(bits[_SIG_BITS : _SIG_BITS + 32]).tobytes(), "big")
        start = _SIG_BITS + 32
        if count % 8 or count > bits.size - start:
            return None
        data = np.packbits(bits[start : start + count]).tobytes()
        if spec[1]:
            inflater = zlib.decompressobj(wbits=31)  # gzip
            try:
                data = inflater.decompress(data, _TEXT_LIMIT)
            except zlib.error:
                return None
            if inflater.unconsumed_tail:
                return None
        return data.decode("utf-8", errors="replace")
    return None


def stealth_text_of_file(path: Path) -> str | None:
    """The hidden text of a PNG file, decoding its pixels only when the size is sane."""
    with Image.open(path, formats=("PNG",)) as im:
        if im.width * im.height > MAX_PIXELS:
            return None
        im.load()
        return stealth_text(im)
