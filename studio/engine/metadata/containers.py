"""Metadata text and EXIF out of PNG, JPEG and WebP files: our own bounds-checked parsers. Bad
metadata becomes a warning, never an exception; only a file that is not an image raises
ValueError. Other image formats go through Pillow's info. Only the text keys some reader uses
are read (others are never inflated), all of them under one memory budget per file."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from PIL import Image

PNG_PARAMETERS_KEY = "parameters"
PNG_RECIPE_KEY = "studio_recipe"
# the text keys a reader reads (ours, A1111, ComfyUI, InvokeAI 2-5, Fooocus, NovelAI); other
# chunks are never inflated
READ_KEYS = frozenset(
    {PNG_PARAMETERS_KEY, PNG_RECIPE_KEY, "prompt", "workflow", "invokeai_metadata"}
    | {"sd-metadata", "Dream", "fooocus_scheme", "Comment", "Description", "Software", "Source"}
)
NOTICED_KEYS: frozenset[str] = frozenset()  # keys whose presence alone is reported

# formats Pillow may open to tell an image from garbage; never EPS & co. (they run Ghostscript)
_SAFE_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# all metadata read from one file, decompressed: Pillow's own total (MAX_TEXT_MEMORY), so any
# file Pillow opens fits, and a zip bomb of text chunks costs at most this much memory
_TEXT_BUDGET = 64 * 1024 * 1024
_BUDGET_MB = _TEXT_BUDGET // (1024 * 1024)
_PNG_KEYWORD_MAX = 79  # PNG keywords are 1-79 bytes


@dataclass
class _Found:
    texts: dict[str, str] = field(default_factory=dict)  # PNG text chunks / PIL info strings
    exif: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    budget: int = _TEXT_BUDGET  # bytes of metadata still allowed in memory

    def take(self, size: int, what: str) -> bool:
        """Spend `size` bytes of the budget on `what`; False (and a warning) when over it."""
        if size <= self.budget:
            self.budget -= size
            return True
        if self.budget >= 0:  # warn once; later chunks are skipped quietly
            self.warnings.append(
                f"The metadata in this file is larger than the {_BUDGET_MB} MB this reader "
                f"accepts; {what} and anything after it were skipped."
            )
        self.budget = -1
        return False


class _TooLarge(ValueError):
    pass


def _inflate(data: bytes, limit: int) -> bytes:
    if limit <= 0:  # decompress(data, 0) would mean no limit at all
        raise _TooLarge
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise _TooLarge
    return out


def _png_text(ctype: bytes, body: bytes, limit: int) -> tuple[str, str]:
    """(keyword, text) of a tEXt/zTXt/iTXt chunk, inflating at most `limit` bytes."""
    key, sep, rest = body.partition(b"\0")
    if not sep or not key:
        raise ValueError("no keyword")
    name = key.decode("latin-1")
    if ctype == b"tEXt":
        return name, rest.decode("latin-1")
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise ValueError("unknown compression")
        return name, _inflate(rest[1:], limit).decode("latin-1")
    # iTXt: flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        raise ValueError("truncated")
    compressed, method = rest[0], rest[1]
    _lang, _, rest = rest[2:].partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    if compressed:
        if method != 0:
            raise ValueError("unknown compression")
        text = _inflate(text, limit)
    return name, text.decode("utf-8", errors="replace")


def _wanted_key(f: IO[bytes], length: int, found: _Found) -> str | None:
    """The chunk's keyword when a reader wants its text and does not have it yet; else None.
    Reads only the keyword, so skipped chunks cost no memory and are never inflated."""
    key, sep, _ = f.read(min(length, _PNG_KEYWORD_MAX + 1)).partition(b"\0")
    name = key.decode("latin-1")
    if not sep or name in found.texts:
        return None
    if name in NOTICED_KEYS:
        found.texts[name] = ""
        return None
    return name if name in READ_KEYS else None


def _read_png_chunk(f: IO[bytes], ctype: bytes, length: int, found: _Found) -> bool:
    """Read one text or eXIf chunk into `found`; False when the file ends inside it."""
    label = ctype.decode("latin-1")
    start = f.tell()
    key = None
    if ctype != b"eXIf":
        key = _wanted_key(f, length, found)
        if key is None:
            return True
    elif found.exif is not None:
        return True
    what = f"the {key!r} text" if key else "the EXIF block"
    if not found.take(length, what):
        return True
    f.seek(start)
    body = f.read(length)
    crc = f.read(4)
    if len(body) < length or len(crc) < 4:
        found.warnings.append(f"The PNG file ends inside a {label} chunk.")
        return False
    if zlib.crc32(ctype + body) != int.from_bytes(crc, "big"):
        found.warnings.append(f"A damaged {label} chunk (bad checksum) was skipped.")
        return True
    if key is None:
        found.exif = body
        return True
    try:
        _, text = _png_text(ctype, body, found.budget + length)  # the body's share is reused
    except _TooLarge:
        found.take(found.budget + 1, what)
        return True
    except (ValueError, zlib.error, UnicodeDecodeError) as e:
        found.warnings.append(f"An unreadable {label} chunk was skipped ({e}).")
        return True
    if found.take(max(0, len(text) - length), what):  # what inflating added
        found.texts[key] = text
    return True


def _read_png(f: IO[bytes], found: _Found) -> None:
    f.seek(8)
    while True:
        head = f.read(8)
        if len(head) < 8:
            found.warnings.append("The PNG file ends early (no IEND chunk).")
            return
        length, ctype = struct.unpack(">I4s", head)
        if ctype == b"IEND":
            return
        start = f.tell()
        if ctype in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            if not _read_png_chunk(f, ctype, length, found):
                return
        f.seek(start + length + 4)  # past the body and its CRC


def _read_jpeg(f: IO[bytes], found: _Found) -> None:
    f.seek(2)
    while True:
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return
        marker = b[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # markers without a length
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            return
        size = f.read(2)
        if len(size) < 2 or struct.unpack(">H", size)[0] < 2:
            found.warnings.append("The JPEG file has a damaged segment header.")
            return
        length = struct.unpack(">H", size)[0] - 2
        if marker != 0xE1 or found.exif is not None:
            f.seek(length, os.SEEK_CUR)
            continue
        seg = f.read(length)
        if seg.startswith(b"Exif\0\0"):
            found.exif = seg


def _read_webp(f: IO[bytes], found: _Found) -> None:
    f.seek(12)
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        fourcc, size = struct.unpack("<4sI", head)
        if fourcc == b"EXIF" and found.exif is None and found.take(size, "the EXIF block"):
            data = f.read(size)
            if len(data) < size:
                found.warnings.append("The WebP file ends inside its EXIF chunk.")
                return
            found.exif = data
            f.seek(size % 2, os.SEEK_CUR)
        else:
            f.seek(size + size % 2, os.SEEK_CUR)


def _not_an_image(name: str, why: str) -> ValueError:
    return ValueError(f"{name} is not an image file that can be read ({why}).")


def _scan_file(path: Path) -> _Found:
    found = _Found()
    try:
        f = path.open("rb")
    except OSError as e:
        raise ValueError(f"Cannot open {path}: {e.strerror or e}.") from e
    with f:
        head = f.read(12)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            _read_png(f, found)
        elif head.startswith(b"\xff\xd8\xff"):
            _read_jpeg(f, found)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            _read_webp(f, found)
        else:
            if not head:
                raise _not_an_image(path.name, "the file is empty")
            try:
                with Image.open(path, formats=_SAFE_PIL_FORMATS) as im:
                    _from_pil_info(im.info, found)
            except Exception as e:  # Pillow raises many types for garbage
                raise _not_an_image(path.name, "unknown file type") from e
    return found


def _from_pil_info(info: Mapping[str, Any], found: _Found) -> None:
    """The texts a reader uses from Pillow's info, under the same budget as our own parsers."""
    for key, value in info.items():
        if not isinstance(value, str) or key in found.texts:
            continue
        if key in NOTICED_KEYS:
            found.texts[key] = ""
        elif key in READ_KEYS and found.take(len(value), f"the {key!r} text"):
            found.texts[key] = value
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)) and found.take(len(exif), "the EXIF block"):
        found.exif = bytes(exif)
