"""The EXIF block for JPEG and WebP: built by hand for writing, parsed (bounds-checked) for
reading, its tags turned into the same text keys as PNG chunks."""

from __future__ import annotations

import struct

from studio.engine.metadata.containers import PNG_PARAMETERS_KEY, PNG_RECIPE_KEY, _Found

RECIPE_MAGIC = b"DiffusionStudio\0"  # MakerNote prefix that marks our recipe
EXIF_LIMIT = 65533  # bytes of a JPEG APP1 payload, "Exif\0\0" included (Pillow's limit too)


def _build_exif(user_comment: bytes, maker_note: bytes | None) -> bytes:
    """A minimal big-endian EXIF block: IFD0 -> Exif IFD with ExifVersion, MakerNote, UserComment.

    Written by hand because Pillow types raw bytes as BYTE, and A1111's piexif reader then gets
    a tuple instead of bytes and cannot decode the comment. These are UNDEFINED, as EXIF says.
    """
    entries = [(0x9000, b"0230")]
    if maker_note is not None:
        entries.append((0x927C, maker_note))
    entries.append((0x9286, user_comment))

    exif_ifd_at = 8 + 2 + 12 + 4
    data_at = exif_ifd_at + 2 + 12 * len(entries) + 4
    ifd = struct.pack(">H", len(entries))
    blob = b""
    for tag, value in entries:
        if len(value) <= 4:
            ifd += struct.pack(">HHI", tag, 7, len(value)) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack(">HHII", tag, 7, len(value), data_at + len(blob))
            blob += value + (b"\0" if len(value) % 2 else b"")  # offsets stay even
    ifd += struct.pack(">I", 0)
    head = b"MM\0*" + struct.pack(">I", 8)
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, exif_ifd_at)
    ifd0 += struct.pack(">I", 0)
    return b"Exif\0\0" + head + ifd0 + ifd + blob


_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _ifd(data: bytes, offset: int, endian: str) -> dict[int, bytes]:
    if offset + 2 > len(data):
        raise ValueError("IFD offset outside the EXIF block")
    (count,) = struct.unpack_from(endian + "H", data, offset)
    out: dict[int, bytes] = {}
    for i in range(min(count, 1000)):
        at = offset + 2 + 12 * i
        if at + 12 > len(data):
            raise ValueError("IFD runs past the EXIF block")
        tag, typ, n = struct.unpack_from(endian + "HHI", data, at)
        size = _TIFF_SIZES.get(typ, 1) * n
        if size <= 4:
            out[tag] = data[at + 8 : at + 8 + size]
        else:
            (start,) = struct.unpack_from(endian + "I", data, at + 8)
            if start + size > len(data):
                raise ValueError(f"tag {tag:#06x} points outside the EXIF block")
            out[tag] = data[start : start + size]
    return out


def exif_fields(exif: bytes) -> dict[int, bytes]:
    """Raw bytes of the EXIF tags we read: IFD0 0x010E/0x010F/0x0110, Exif 0x927C/0x9286."""
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    if exif[:4] not in (b"II*\0", b"MM\0*"):
        raise ValueError("not a TIFF/EXIF block")
    endian = "<" if exif[:2] == b"II" else ">"
    (first,) = struct.unpack_from(endian + "I", exif, 4)
    ifd0 = _ifd(exif, first, endian)
    out = {tag: ifd0[tag] for tag in (0x010E, 0x010F, 0x0110) if tag in ifd0}
    if 0x8769 in ifd0 and len(ifd0[0x8769]) == 4:
        (sub,) = struct.unpack(endian + "I", ifd0[0x8769])
        exif_ifd = _ifd(exif, sub, endian)
        out.update({tag: exif_ifd[tag] for tag in (0x927C, 0x9286) if tag in exif_ifd})
    return out


def decode_user_comment(raw: bytes) -> str:
    """EXIF UserComment: an 8-byte charset prefix, then the text."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if body[:2] == b"\xff\xfe":
            return body[2:].decode("utf-16-le", errors="replace")
        if body[:2] == b"\xfe\xff":
            return body[2:].decode("utf-16-be", errors="replace")
        # no BOM: A1111 (piexif) writes big-endian; some Windows tools write little-endian
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        codec = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
        return body[: len(body) // 2 * 2].decode(codec, errors="replace")
    if prefix == b"ASCII\0\0\0":
        return body.decode("latin-1")
    if prefix in (b"\0" * 8, b"JIS\0\0\0\0\0"):
        return body.decode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="replace")


def _exif_texts(exif: bytes, found: _Found) -> dict[str, str]:
    """The EXIF tags as keys like the PNG ones, so one reader handles both."""
    try:
        tags = exif_fields(exif)
    except (ValueError, struct.error) as e:
        found.warnings.append(f"The EXIF block is damaged and was ignored ({e}).")
        return {}
    out: dict[str, str] = {}
    note = tags.get(0x927C, b"")
    if note.startswith(RECIPE_MAGIC):
        out[PNG_RECIPE_KEY] = note[len(RECIPE_MAGIC) :].decode("utf-8", errors="replace")
    if 0x9286 in tags:
        text = decode_user_comment(tags[0x9286]).rstrip("\0")
        if text.strip():
            out[PNG_PARAMETERS_KEY] = text
    # ComfyUI's WebP/JPEG savers: "prompt:{...}" in Model, "workflow:{...}" in Make
    for tag in (0x0110, 0x010F, 0x010E):
        value = tags.get(tag, b"").rstrip(b"\0").decode("utf-8", errors="replace")
        for key in ("prompt", "workflow"):
            if value.startswith(key + ":"):
                out.setdefault(key, value[len(key) + 1 :])
    return out
