"""Generation settings inside image files: written as A1111 text plus our JSON recipe, read back
from ours, A1111's, ComfyUI's and InvokeAI's metadata.

Where things go:
- PNG: a `parameters` text chunk (A1111's infotext, tEXt or iTXt) and a `studio_recipe` tEXt
  chunk (the JSON recipe, ASCII, uncompressed so Pillow's 1 MB zTXt limit never bites).
- JPEG and WebP: one EXIF block. UserComment (0x9286) holds the A1111 text as A1111 writes it
  (b"UNICODE\\0" + UTF-16-BE, what piexif's UserComment.dump(encoding="unicode") gives), so A1111's
  reader sees exactly its own format. MakerNote (0x927C) holds RECIPE_MAGIC + the recipe JSON:
  a separate tag, so neither reader ever has to split one string. A JPEG APP1 segment is at most
  64 KB, so the recipe embeds its images only when they fit, else names them by hash.

Reading never executes or unpickles anything: JSON and our own bounds-checked parsers of the
PNG, JPEG, WebP and EXIF containers. Bad metadata becomes a warning; only a file that is not an
image at all raises ValueError.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

import studio
from studio.engine.output import atomic_save
from studio.engine.request import (
    REQUEST_SCHEMA,
    ControlSpec,
    GenerationRequest,
    ScheduleOptions,
)
from studio.engine.samplers import SAMPLERS  # the names users know; torch-free

APP_ID = "diffusion-studio"
PNG_PARAMETERS_KEY = "parameters"
PNG_RECIPE_KEY = "studio_recipe"
RECIPE_MAGIC = b"DiffusionStudio\0"  # MakerNote prefix that marks our recipe
EXIF_LIMIT = 65533  # bytes of a JPEG APP1 payload, "Exif\0\0" included (Pillow's limit too)
JPEG_QUALITY = 95
WEBP_QUALITY = 95

SOURCES = ("studio", "a1111", "comfyui", "invokeai", "none")

_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
# formats Pillow may open to tell an image from garbage; never EPS & co. (they run Ghostscript)
_SAFE_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_MAX_TEXT = 64 * 1024 * 1024  # cap on one decompressed text chunk
_MAX_EMBEDDED_PIXELS = 4096 * 4096  # an embedded image larger than this is not decoded


@dataclass(frozen=True)
class ImageMeta:
    """What the recipe adds to the request for one saved image."""

    model_name: str = ""
    model_hash: str = ""
    image_index: int = 0
    seed: int | None = None  # the image's own seed, request.seed + image_index


@dataclass
class ReadResult:
    request: GenerationRequest | None
    source: str  # one of SOURCES
    unmapped: dict[str, str] = field(default_factory=dict)  # seen, but not turned into settings
    warnings: list[str] = field(default_factory=list)
    raw_parameters: str | None = None  # the A1111 text as found, if any
    image_index: int = 0  # position of this image in its batch
    image_seed: int | None = None  # seed of this very image (request.seed + image_index)
    model_name: str | None = None
    model_hash: str | None = None
    app_version: str | None = None  # our version that wrote the recipe
    missing_hashes: dict[str, str] = field(default_factory=dict)  # "init image" -> sha256

    def single_image_request(self) -> GenerationRequest | None:
        """The request that regenerates only this image (batch of one, its own seed)."""
        if self.request is None:
            return None
        seed = self.image_seed if self.image_seed is not None else self.request.seed
        return self.request.with_(seed=seed, batch_size=1)


# ---- sampler names ------------------------------------------------------------------------
def _split_karras(name: str) -> tuple[str, bool]:
    if name.endswith(" Karras"):
        return name[: -len(" Karras")], True
    return name, False


def effective_karras(sampler: str, karras: bool | None) -> bool:
    """Whether Karras sigmas are used: the explicit option, else what the sampler's name says."""
    return karras if karras is not None else _split_karras(sampler)[1]


def a1111_sampler(sampler: str, karras: bool | None) -> tuple[str, str]:
    """Our (sampler, karras option) as A1111 >= 1.9 writes them: (Sampler, Schedule type)."""
    base, suffixed = _split_karras(sampler)
    if karras is None:
        return base, "Karras" if suffixed else "Automatic"
    return base, "Karras" if karras else "Uniform"


def _resolve_sampler(base: str, karras: bool | None) -> tuple[str, bool | None] | None:
    """A base name (no Karras suffix) and wanted Karras use -> our (sampler, karras option)."""
    with_k = f"{base} Karras"
    plain_ok, k_ok = base in SAMPLERS, with_k in SAMPLERS
    if karras is True:
        if k_ok:
            return with_k, None
        if plain_ok:
            return base, True
    elif karras is False:
        if plain_ok:
            return base, False
        if k_ok:
            return with_k, False
    else:
        if plain_ok:
            return base, None
        if k_ok:
            return with_k, None
    return None


_A1111_SCHEDULES = {"Karras": True, "Uniform": False, "Automatic": None}

# ComfyUI sampler_name -> our base name; scheduler -> Karras use
_COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "lms": "LMS",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
}
_COMFY_SCHEDULERS = {"karras": True, "normal": False, "simple": False}

# InvokeAI scheduler -> our (sampler, karras option)
_INVOKE_SCHEDULERS: dict[str, tuple[str, bool | None]] = {
    "euler": ("Euler", None),
    "euler_k": ("Euler", True),
    "euler_a": ("Euler a", None),
    "ddim": ("DDIM", None),
    "ddpm": ("DDPM", None),
    "lms": ("LMS", None),
    "lms_k": ("LMS", True),
    "heun": ("Heun", None),
    "heun_k": ("Heun", True),
    "dpmpp_2m": ("DPM++ 2M", None),
    "dpmpp_2m_k": ("DPM++ 2M Karras", None),
    "dpmpp_2m_sde": ("DPM++ 2M SDE Karras", False),
    "dpmpp_2m_sde_k": ("DPM++ 2M SDE Karras", None),
    "dpmpp_sde": ("DPM++ SDE Karras", False),
    "dpmpp_sde_k": ("DPM++ SDE Karras", None),
    "unipc": ("UniPC", None),
    "unipc_k": ("UniPC", True),
    "lcm": ("LCM", None),
}

_PREPROCESSOR_TO_A1111 = {"pose": "openpose"}
_A1111_MODULE_PREFIXES = (
    ("canny", "canny"),
    ("lineart", "lineart"),
    ("depth", "depth"),
    ("openpose", "pose"),
    ("dw_openpose", "pose"),
    ("pose", "pose"),
    ("none", "none"),
)


# ---- writing ------------------------------------------------------------------------------
def _num(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _quote(text: str) -> str:
    # A1111's quote() quotes on , \n and :; we also quote on '"' so a value that starts and
    # ends with a quote can never be mistaken for a quoted one (A1111 unquotes it the same way)
    if any(c in text for c in ',\n:"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _controlnet_text(spec: ControlSpec) -> str:
    parts = {
        "Module": _PREPROCESSOR_TO_A1111.get(spec.preprocessor, spec.preprocessor),
        "Model": spec.model,
        "Weight": _num(spec.weight),
        "Guidance Start": _num(spec.guidance_start),
        "Guidance End": _num(spec.guidance_end),
    }
    for name, value in spec.params:
        parts[name] = _num(float(value))
    return ", ".join(f"{k}: {_quote(v)}" for k, v in parts.items())


def a1111_parameters(
    request: GenerationRequest,
    *,
    model_name: str,
    model_hash: str,
    seed: int | None = None,
    index: int = 0,
) -> str:
    """A1111 infotext: prompt, `Negative prompt:` line, then one `Key: value, ...` line."""
    seed = request.seed + index if seed is None else seed
    sampler, schedule_type = a1111_sampler(request.sampler, request.schedule.karras)
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": sampler,
        "Schedule type": schedule_type,
        "CFG scale": request.cfg_scale,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model_hash or None,
        "Model": model_name or None,
    }
    if request.mode in ("img2img", "inpaint"):
        params["Denoising strength"] = request.strength
    if request.mode == "inpaint":
        params["Mask blur"] = request.mask_blur
        if request.inpaint_only_masked:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = request.inpaint_padding
    if request.batch_size > 1:
        params["Batch size"] = request.batch_size
        params["Batch pos"] = index
    schedule = request.schedule
    if schedule.cfg_rescale:
        params["CFG Rescale phi"] = schedule.cfg_rescale
    if schedule.zero_snr:
        params["Noise Schedule"] = "Zero Terminal SNR"
    params["Timestep spacing"] = schedule.timestep_spacing
    params["Prediction type"] = schedule.prediction_type
    for i, spec in enumerate(c for c in request.controls if c.enabled):
        params[f"ControlNet {i}"] = _controlnet_text(spec)

    line = ", ".join(
        f"{key}: {_quote(_num(v) if isinstance(v, (int, float)) else str(v))}"
        for key, v in params.items()
        if v is not None
    )
    negative = f"\nNegative prompt: {request.negative_prompt}" if request.negative_prompt else ""
    return f"{request.prompt}{negative}\n{line}".strip()


def _meta_dict(result_meta: ImageMeta | Mapping[str, Any]) -> ImageMeta:
    if isinstance(result_meta, ImageMeta):
        return result_meta
    seed = result_meta.get("seed", result_meta.get("image_seed"))
    return ImageMeta(
        model_name=str(result_meta.get("model_name", "") or ""),
        model_hash=str(result_meta.get("model_hash", "") or ""),
        image_index=int(result_meta.get("image_index", 0) or 0),
        seed=None if seed is None else int(seed),
    )


def recipe_json(
    request: GenerationRequest,
    result_meta: ImageMeta | Mapping[str, Any],
    *,
    embed_images: bool = True,
) -> str:
    """The complete recipe: request.to_dict() plus who wrote it and which image this is.

    Flat, so GenerationRequest.from_dict(recipe) works directly. The request's own "seed" is the
    batch's first seed; this image's seed is "image_seed" (a second "seed" key would clash).
    """
    meta = _meta_dict(result_meta)
    data = request.to_dict(embed_images=embed_images)
    data.update(
        app=APP_ID,
        app_version=studio.__version__,
        model_name=meta.model_name,
        model_hash=meta.model_hash,
        image_index=meta.image_index,
        image_seed=request.seed + meta.image_index if meta.seed is None else meta.seed,
    )
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _has_images(request: GenerationRequest) -> bool:
    return (
        request.init_image is not None
        or request.mask is not None
        or any(c.image is not None for c in request.controls)
    )


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


def _exif_for(params: str, request: GenerationRequest, meta: ImageMeta) -> bytes:
    comment = b"UNICODE\0" + params.encode("utf-16-be")
    for embed in (True, False) if _has_images(request) else (False,):
        recipe = recipe_json(request, meta, embed_images=embed).encode("ascii")
        exif = _build_exif(comment, RECIPE_MAGIC + recipe)
        if len(exif) <= EXIF_LIMIT:
            return exif
    exif = _build_exif(comment, None)  # the A1111 text alone still says most of it
    if len(exif) <= EXIF_LIMIT:
        return exif
    raise ValueError(
        f"The settings text is too long for JPEG/WebP metadata ({len(exif)} bytes, the limit is "
        f"{EXIF_LIMIT}). Save this image as PNG instead."
    )


def image_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Pillow's format name for an explicit format or the path's extension: PNG, JPEG or WEBP."""
    name = (format or Path(path).suffix.lstrip(".")).lower()
    if name not in _FORMATS:
        raise ValueError(
            f"Cannot save images as {name or 'a file without extension'!r}: "
            "use png, jpg/jpeg or webp."
        )
    return _FORMATS[name]


def write_image(
    path: str | os.PathLike[str],
    image: Image.Image,
    request: GenerationRequest,
    *,
    model_name: str,
    model_hash: str,
    index: int = 0,
    seed: int | None = None,
    format: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Save `image` atomically with both kinds of metadata. overwrite=False raises
    FileExistsError instead of replacing an existing file."""
    path = Path(path)
    fmt = image_format(path, format)
    seed = request.seed + index if seed is None else seed
    meta = ImageMeta(model_name, model_hash, index, seed)
    params = a1111_parameters(
        request, model_name=model_name, model_hash=model_hash, seed=seed, index=index
    )

    save: Callable[[IO[bytes]], None]
    if fmt == "PNG":
        info = PngInfo()
        info.add_text(PNG_PARAMETERS_KEY, params)  # tEXt, or iTXt beyond Latin-1
        info.add_text(PNG_RECIPE_KEY, recipe_json(request, meta, embed_images=True))

        def save(f: IO[bytes]) -> None:
            image.save(f, format="PNG", pnginfo=info)

    else:
        exif = _exif_for(params, request, meta)
        out = image
        if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
            out = image.convert("RGB")  # JPEG has no alpha
        elif fmt == "WEBP" and image.mode not in ("RGB", "RGBA"):
            out = image.convert("RGBA" if "A" in image.mode else "RGB")
        quality = JPEG_QUALITY if fmt == "JPEG" else WEBP_QUALITY

        def save(f: IO[bytes]) -> None:
            out.save(f, format=fmt, exif=exif, quality=quality)

    return atomic_save(path, save, overwrite=overwrite)


# ---- container parsing (bounds-checked, never raises on bad data) -------------------------
@dataclass
class _Found:
    texts: dict[str, str] = field(default_factory=dict)  # PNG text chunks / PIL info strings
    exif: bytes | None = None
    warnings: list[str] = field(default_factory=list)


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, _MAX_TEXT)
    if d.unconsumed_tail:
        raise ValueError("compressed text is larger than 64 MB")
    return out


def _png_text(ctype: bytes, body: bytes) -> tuple[str, str]:
    key, sep, rest = body.partition(b"\0")
    if not sep or not key:
        raise ValueError("no keyword")
    name = key.decode("latin-1")
    if ctype == b"tEXt":
        return name, rest.decode("latin-1")
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise ValueError("unknown compression")
        return name, _inflate(rest[1:]).decode("latin-1")
    # iTXt: flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        raise ValueError("truncated")
    compressed, method = rest[0], rest[1]
    _lang, _, rest = rest[2:].partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    if compressed:
        if method != 0:
            raise ValueError("unknown compression")
        text = _inflate(text)
    return name, text.decode("utf-8", errors="replace")


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
        if ctype not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            f.seek(length + 4, os.SEEK_CUR)
            continue
        body = f.read(length)
        crc = f.read(4)
        label = ctype.decode("latin-1")
        if len(body) < length or len(crc) < 4:
            found.warnings.append(f"The PNG file ends inside a {label} chunk.")
            return
        if zlib.crc32(ctype + body) != int.from_bytes(crc, "big"):
            found.warnings.append(f"A damaged {label} chunk (bad checksum) was skipped.")
            continue
        if ctype == b"eXIf":
            found.exif = found.exif or body
            continue
        try:
            key, text = _png_text(ctype, body)
        except (ValueError, zlib.error, UnicodeDecodeError) as e:
            found.warnings.append(f"An unreadable {label} chunk was skipped ({e}).")
            continue
        found.texts.setdefault(key, text)


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
        seg = f.read(struct.unpack(">H", size)[0] - 2)
        if marker == 0xE1 and seg.startswith(b"Exif\0\0") and found.exif is None:
            found.exif = seg


def _read_webp(f: IO[bytes], found: _Found) -> None:
    f.seek(12)
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        fourcc, size = struct.unpack("<4sI", head)
        if fourcc == b"EXIF":
            data = f.read(size)
            if len(data) < size:
                found.warnings.append("The WebP file ends inside its EXIF chunk.")
                return
            found.exif = found.exif or data
            f.seek(size % 2, os.SEEK_CUR)
        else:
            f.seek(size + size % 2, os.SEEK_CUR)


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
    for key, value in info.items():
        if isinstance(value, str):
            found.texts.setdefault(key, value)
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)):
        found.exif = bytes(exif)


# ---- reading ------------------------------------------------------------------------------
def read_settings(path_or_image: str | os.PathLike[str] | Image.Image) -> ReadResult:
    """Settings stored in an image: our recipe first, then A1111 text, ComfyUI, InvokeAI."""
    if isinstance(path_or_image, Image.Image):
        found = _Found()
        _from_pil_info(path_or_image.info, found)
    else:
        found = _scan_file(Path(path_or_image))

    texts = dict(found.texts)
    if found.exif is not None:
        for key, value in _exif_texts(found.exif, found).items():
            texts.setdefault(key, value)
    warnings = list(found.warnings)
    raw = texts.get(PNG_PARAMETERS_KEY)

    attempts: list[tuple[str, Callable[[], ReadResult]]] = []
    if PNG_RECIPE_KEY in texts:
        attempts.append(("recipe", lambda: _read_recipe(texts[PNG_RECIPE_KEY])))
    if raw is not None:
        attempts.append(("A1111 parameters", lambda: read_a1111_text(raw)))
    if "prompt" in texts or "workflow" in texts:
        attempts.append(
            ("ComfyUI graph", lambda: _read_comfyui(texts.get("prompt"), texts.get("workflow")))
        )
    if "invokeai_metadata" in texts:
        attempts.append(("InvokeAI metadata", lambda: _read_invokeai(texts["invokeai_metadata"])))
    if "sd-metadata" in texts or "Dream" in texts:
        warnings.append("InvokeAI 2.x metadata was found; it is not supported.")

    for label, attempt in attempts:
        try:
            result = attempt()
        except Exception as e:  # untrusted metadata: a parser bug must not crash the reader
            warnings.append(f"The {label} could not be read ({type(e).__name__}: {e}).")
            continue
        if result.request is None:
            warnings.extend(result.warnings)
            continue
        result.warnings[:0] = warnings
        result.raw_parameters = raw
        return result
    return ReadResult(request=None, source="none", warnings=warnings, raw_parameters=raw)


# ---- our recipe ---------------------------------------------------------------------------
_REQUEST_TYPES: dict[str, type] = {}
for _f in fields(GenerationRequest):
    if isinstance(_f.default, (bool, int, float, str)):
        _REQUEST_TYPES[_f.name] = type(_f.default)
_SCHEDULE_TYPES: dict[str, tuple[type, ...]] = {
    "karras": (bool, type(None)),
    "timestep_spacing": (str, type(None)),
    "zero_snr": (bool,),
    "prediction_type": (str, type(None)),
    "cfg_rescale": (float,),
}
_CONTROL_TYPES: dict[str, type] = {
    "model": str,
    "preprocessor": str,
    "weight": float,
    "guidance_start": float,
    "guidance_end": float,
    "enabled": bool,
}


def _typed(value: Any, want: type, where: str) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is type(None) and value is None:
        return None
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{where} should be {want.__name__}, not {type(value).__name__}")


def _checked_image(ref: Any, name: str, warnings: list[str], missing: dict[str, str]) -> Any:
    """An image reference with its PNG checked, or one without pixels (then it reads as None)."""
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise ValueError(f"{name} should be an image reference")
    ref = dict(ref)
    data = ref.get("png_base64")
    if "png_base64" in ref:
        try:
            if not isinstance(data, str):
                raise TypeError("not text")
            png = base64.b64decode(data, validate=True)
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ValueError("not a PNG")
            with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
                if im.width * im.height > _MAX_EMBEDDED_PIXELS:
                    raise ValueError("too large")
                im.load()
        except (ValueError, TypeError, binascii.Error, OSError, Image.DecompressionBombError):
            warnings.append(f"The embedded {name} is damaged and was left out.")
            ref.pop("png_base64")
    if "png_base64" not in ref:
        missing[name] = str(ref.get("sha256", ""))
    return ref


def _checked_recipe(data: Any, warnings: list[str], missing: dict[str, str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("the recipe is not a JSON object")
    out = dict(data)
    for name, want in _REQUEST_TYPES.items():
        if name in out:
            out[name] = _typed(out[name], want, name)
    schedule = out.get("schedule", {})
    if not isinstance(schedule, dict):
        raise ValueError("schedule should be an object")
    for name, wants in _SCHEDULE_TYPES.items():
        if name in schedule and not any(
            _accepts(schedule[name], w) for w in wants
        ):  # karras: true/false/null
            raise ValueError(f"schedule.{name} has the wrong type")
    if isinstance(schedule.get("cfg_rescale"), int):
        out["schedule"] = {**schedule, "cfg_rescale": float(schedule["cfg_rescale"])}
    for name in ("init_image", "mask"):
        label = "init image" if name == "init_image" else "mask"
        out[name] = _checked_image(out.get(name), label, warnings, missing)
    controls = out.get("controls", [])
    if not isinstance(controls, list):
        raise ValueError("controls should be a list")
    checked = []
    for i, c in enumerate(controls):
        if not isinstance(c, dict):
            raise ValueError(f"control {i + 1} should be an object")
        c = dict(c)
        if "model" not in c:
            raise ValueError(f"control {i + 1} names no model")
        for name, want in _CONTROL_TYPES.items():
            if name in c:
                c[name] = _typed(c[name], want, f"control {i + 1} {name}")
        params = c.get("params", [])
        if not isinstance(params, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _accepts(p[1], float)
            for p in params
        ):
            raise ValueError(f"control {i + 1} params should be [name, number] pairs")
        c["image"] = _checked_image(c.get("image"), f"control image {i + 1}", warnings, missing)
        checked.append(c)
    out["controls"] = checked
    return out


def _accepts(value: Any, want: type) -> bool:
    try:
        _typed(value, want, "")
    except ValueError:
        return False
    return True


def _read_recipe(text: str) -> ReadResult:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("app") != APP_ID:
        raise ValueError("the recipe was not written by Diffusion Studio")
    warnings: list[str] = []
    schema = data.get("schema")
    if not isinstance(schema, int) or schema > REQUEST_SCHEMA:
        warnings.append(
            f"The recipe uses schema {schema!r}, newer than this version understands "
            f"({REQUEST_SCHEMA}); settings it added are ignored."
        )
    missing: dict[str, str] = {}
    request = GenerationRequest.from_dict(_checked_recipe(data, warnings, missing))
    for name in missing:
        warnings.append(f"The {name} is not stored in this file (only its hash); supply it again.")
    index = data.get("image_index", 0)
    seed = data.get("image_seed")
    return ReadResult(
        request=request,
        source="studio",
        warnings=warnings,
        image_index=index if isinstance(index, int) else 0,
        image_seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        model_name=str(data.get("model_name") or "") or None,
        model_hash=str(data.get("model_hash") or "") or None,
        app_version=str(data.get("app_version") or "") or None,
        missing_hashes=missing,
    )


# ---- A1111 infotext -----------------------------------------------------------------------
# the same key/value pattern as A1111's infotext_utils.re_param
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_CONTROLNET = re.compile(r"^ControlNet \d+$")
_RE_MODEL_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]+\]$")
_CORE_KEYS = ("Steps", "Sampler", "CFG scale", "Seed", "Size")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def split_a1111_text(text: str) -> tuple[str, str, dict[str, str] | None]:
    """(prompt, negative prompt, {key: value}) as A1111 splits it; None when no settings line."""
    *lines, last = text.strip().split("\n")
    params: dict[str, str] | None = None
    if len(_RE_PARAM.findall(last)) >= 3:
        params = {k: _unquote(v.strip()) for k, v in _RE_PARAM.findall(last)}
    else:
        lines.append(last)
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    return "\n".join(prompt), "\n".join(negative), params


def _sampler_from_a1111(
    name: str, schedule: str | None, unmapped: dict[str, str], warnings: list[str]
) -> tuple[str, bool | None] | None:
    base, old_karras = _split_karras(name)
    if base.endswith(" Exponential"):  # pre-1.9 names such as "DPM++ 2M SDE Exponential"
        base, schedule = base[: -len(" Exponential")], schedule or "Exponential"
    karras: bool | None = None
    if old_karras:
        karras = True
    elif schedule is not None:
        if schedule in _A1111_SCHEDULES:
            karras = _A1111_SCHEDULES[schedule]
        else:
            unmapped["Schedule type"] = schedule
            warnings.append(f"Schedule type {schedule!r} is not available; the default is used.")
    resolved = _resolve_sampler(base, karras)
    if resolved is None:
        unmapped["Sampler"] = name
        warnings.append(f"Sampler {name!r} is not available; the default sampler is used.")
    return resolved


def _controlnet_from_a1111(
    key: str, text: str, unmapped: dict[str, str], warnings: list[str]
) -> ControlSpec | None:
    values = {k: _unquote(v.strip()) for k, v in _RE_PARAM.findall(text)}
    module = values.pop("Module", "none").strip()
    preprocessor = next(
        (ours for pre, ours in _A1111_MODULE_PREFIXES if module.startswith(pre)), None
    )
    model = _RE_MODEL_HASH_SUFFIX.sub("", values.pop("Model", "")).strip()
    if preprocessor is None or not model or model == "None":
        unmapped[key] = text
        warnings.append(f"{key} uses {module!r}, which cannot be mapped; it was left out.")
        return None
    kwargs: dict[str, Any] = {"model": model, "preprocessor": preprocessor}
    params: list[tuple[str, float]] = []
    left: dict[str, str] = {}
    names = {"Weight": "weight", "Guidance Start": "guidance_start", "Guidance End": "guidance_end"}
    thresholds = {"Threshold A": "low_threshold", "Threshold B": "high_threshold"}
    for k, v in values.items():
        try:
            if k in names:
                kwargs[names[k]] = float(v)
            elif k in thresholds and preprocessor == "canny":
                params.append((thresholds[k], float(v)))
            elif re.fullmatch(r"[a-z][a-z0-9_]*", k):
                params.append((k, float(v)))
            else:
                left[k] = v
        except ValueError:
            left[k] = v
    if left:
        unmapped[key] = ", ".join(f"{k}: {v}" for k, v in left.items())
    return ControlSpec(**kwargs, params=tuple(params))


def read_a1111_text(text: str) -> ReadResult:
    """A request from A1111 infotext (also what the GUI's "paste settings" uses)."""
    prompt, negative, params = split_a1111_text(text)
    if params is None or not any(k in params for k in _CORE_KEYS):
        return ReadResult(
            request=None,
            source="none",
            raw_parameters=text,
            warnings=["The text has no generation settings line (Steps: ..., Sampler: ...)."],
        )
    unmapped: dict[str, str] = {}
    warnings: list[str] = []
    req: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative}
    schedule: dict[str, Any] = {}
    controls: list[ControlSpec] = []
    image_seed: int | None = None
    batch_pos = 0
    hires = any(k.startswith("Hires ") or k == "First pass size" for k in params)

    def number(key: str, cast: Callable[[str], Any]) -> Any:
        try:
            value = cast(params[key])
        except (ValueError, OverflowError):
            unmapped[key] = params[key]
            warnings.append(f"{key} {params[key]!r} is not a number; the default is used.")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            unmapped[key] = params[key]
            return None
        return value

    for key, value in params.items():
        if key == "Steps":
            req["steps"] = number(key, int)
        elif key == "CFG scale":
            req["cfg_scale"] = number(key, float)
        elif key == "Seed":
            image_seed = number(key, int)
        elif key == "Size":
            m = _RE_SIZE.match(value)
            if m:
                req["width"], req["height"] = int(m.group(1)), int(m.group(2))
            else:
                unmapped[key] = value
        elif key == "Model":
            req["model"] = value
        elif key == "Denoising strength" and not hires:
            req["strength"] = number(key, float)
        elif key == "Mask blur":
            req["mask_blur"] = number(key, int)
        elif key == "Inpaint area":
            if value in ("Only masked", "Whole picture"):
                req["inpaint_only_masked"] = value == "Only masked"
            else:
                unmapped[key] = value
        elif key == "Masked area padding":
            req["inpaint_padding"] = number(key, int)
        elif key == "Batch size":
            req["batch_size"] = number(key, int)
        elif key == "Batch pos":
            batch_pos = number(key, int) or 0
        elif key in ("CFG Rescale phi", "CFG Rescale φ", "CFG Rescale"):
            schedule["cfg_rescale"] = number(key, float)
        elif key == "Noise Schedule" and value in ("Zero Terminal SNR", "Default"):
            schedule["zero_snr"] = value == "Zero Terminal SNR"
        elif key == "Timestep spacing" and value in ("leading", "linspace", "trailing"):
            schedule["timestep_spacing"] = value
        elif key == "Prediction type" and value in ("epsilon", "v_prediction", "sample"):
            schedule["prediction_type"] = value
        elif _RE_CONTROLNET.match(key):
            spec = _controlnet_from_a1111(key, value, unmapped, warnings)
            if spec is not None:
                controls.append(spec)
        elif key in ("Sampler", "Schedule type"):
            pass  # below, together
        else:
            unmapped[key] = value

    if "Sampler" in params:
        resolved = _sampler_from_a1111(
            params["Sampler"], params.get("Schedule type"), unmapped, warnings
        )
        if resolved is not None:
            req["sampler"], schedule["karras"] = resolved
    elif "Schedule type" in params:
        unmapped["Schedule type"] = params["Schedule type"]

    if hires:
        warnings.append("Hires fix settings are not supported; only the first pass is used.")
    elif "Denoising strength" in params:
        masked = any(k in params for k in ("Mask blur", "Inpaint area", "Mask mode"))
        req["mode"] = "inpaint" if masked else "img2img"
        need = "the init image and mask" if masked else "the init image"
        warnings.append(f"A1111 text does not store {need}; supply it to regenerate.")
    if "Model" not in params:
        warnings.append("The text names no model; the default model is used.")
    if "Model hash" in params:
        warnings.append(
            f"Model hash {params['Model hash']} was not checked; the model is found by name."
        )
    missing = [k for k in _CORE_KEYS if k not in params]
    if missing:
        warnings.append("Not in the text, defaults used: " + ", ".join(missing) + ".")

    if image_seed is not None:
        req["seed"] = image_seed - batch_pos
    req = {k: v for k, v in req.items() if v is not None}
    schedule = {k: v for k, v in schedule.items() if v is not None}
    request = GenerationRequest(
        **req, schedule=ScheduleOptions(**schedule), controls=tuple(controls)
    )
    return ReadResult(
        request=request,
        source="a1111",
        unmapped=unmapped,
        warnings=warnings,
        raw_parameters=text,
        image_index=batch_pos,
        image_seed=image_seed,
        model_name=params.get("Model"),
        model_hash=params.get("Model hash"),
    )


# ---- ComfyUI ------------------------------------------------------------------------------
_EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyLatentImageSD3")
_SCALAR_INPUTS = ("value", "seed", "noise_seed", "text", "string", "int", "float", "number")
# widget order of the UI-format workflow for the nodes we read (None: a UI-only widget)
_WIDGETS: dict[str, list[str | None]] = {
    "KSampler": ["seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    "KSamplerAdvanced": [
        "add_noise",
        "noise_seed",
        None,
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ],
    "CLIPTextEncode": ["text"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "LoraLoader": ["lora_name", "strength_model", "strength_clip"],
    "ModelSamplingDiscrete": ["sampling", "zsnr"],
    "VAEEncodeForInpaint": ["grow_mask_by"],
}


def _workflow_to_graph(workflow: Any) -> dict[str, dict[str, Any]]:
    """The UI-format workflow (nodes + links) turned into the API-format prompt graph."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise ValueError("the workflow has no node list")
    links: dict[Any, list[Any]] = {}
    raw_links = workflow.get("links")
    for link in raw_links if isinstance(raw_links, list) else []:
        if isinstance(link, list) and len(link) >= 5 and isinstance(link[0], int):
            links[link[0]] = [str(link[1]), link[2]]
    graph: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        inputs: dict[str, Any] = {}
        widgets = node.get("widgets_values")
        names = _WIDGETS.get(node["type"], [])
        if isinstance(widgets, dict):
            inputs.update(widgets)
        elif isinstance(widgets, list):
            inputs.update({n: v for n, v in zip(names, widgets, strict=False) if n})
        node_inputs = node.get("inputs")
        for inp in node_inputs if isinstance(node_inputs, list) else []:
            if isinstance(inp, dict) and isinstance(inp.get("link"), int) and inp["link"] in links:
                inputs[str(inp.get("name"))] = links[inp["link"]]
        graph[str(node.get("id"))] = {"class_type": node["type"], "inputs": inputs}
    return graph


class _Comfy:
    def __init__(self, graph: dict[str, Any]) -> None:
        self.graph = {
            str(k): v
            for k, v in graph.items()
            if isinstance(v, dict)
            and isinstance(v.get("class_type"), str)
            and isinstance(v.get("inputs"), dict)
        }
        self.unmapped: dict[str, str] = {}
        self.warnings: list[str] = []

    def node(self, value: Any) -> tuple[str, dict[str, Any]] | None:
        if isinstance(value, list) and len(value) == 2 and str(value[0]) in self.graph:
            nid = str(value[0])
            return nid, self.graph[nid]
        return None

    def scalar(self, value: Any, depth: int = 0) -> Any:
        """A literal input, or the value of a primitive node it is wired to."""
        linked = self.node(value)
        if linked is None:
            # only plain values count; anything else is junk, not a setting
            return value if isinstance(value, (str, int, float)) else None
        if depth > 8:
            return None
        inputs = linked[1]["inputs"]
        for key in _SCALAR_INPUTS:
            if key in inputs:
                return self.scalar(inputs[key], depth + 1)
        return None

    def text(self, value: Any, role: str, depth: int = 0) -> str | None:
        linked = self.node(value)
        if linked is None or depth > 20:
            return None
        nid, node = linked
        inputs = node["inputs"]
        for key in ("text", "text_g"):
            if key in inputs:
                text = self.scalar(inputs[key])
                if key == "text_g" and self.scalar(inputs.get("text_l")) not in (None, text):
                    self.warnings.append(
                        f"The {role} prompt has separate SDXL text_l; text_g used."
                    )
                return text if isinstance(text, str) else None
        for key in (role, "conditioning", "conditioning_1", "conditioning_to"):
            if key in inputs:
                if key in ("conditioning_1", "conditioning_to"):
                    self.warnings.append(
                        f"The {role} prompt combines several texts; only the first is read."
                    )
                return self.text(inputs[key], role, depth + 1)
        return None

    def model(self, value: Any, schedule: dict[str, Any], depth: int = 0) -> str | None:
        linked = self.node(value)
        if linked is None or depth > 20:
            return None
        nid, node = linked
        kind, inputs = node["class_type"], node["inputs"]
        for key in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
        if kind.startswith("LoraLoader"):
            self.unmapped[f"LoRA {inputs.get('lora_name', nid)}"] = str(
                inputs.get("strength_model", "")
            )
        elif kind == "ModelSamplingDiscrete":
            sampling = self.scalar(inputs.get("sampling"))
            prediction = {"eps": "epsilon", "v_prediction": "v_prediction", "x0": "sample"}
            if sampling in prediction:
                schedule["prediction_type"] = prediction[sampling]
            elif sampling is not None:
                self.unmapped["ModelSamplingDiscrete sampling"] = str(sampling)
            if self.scalar(inputs.get("zsnr")) is True:
                schedule["zero_snr"] = True
        elif "model" in inputs:
            self.unmapped[f"node {nid}"] = f"{kind} (in the model chain, not applied)"
        return self.model(inputs.get("model"), schedule, depth + 1)


def _read_comfyui(prompt_text: str | None, workflow_text: str | None) -> ReadResult:
    if prompt_text:
        graph = json.loads(prompt_text)
        if not isinstance(graph, dict):
            raise ValueError("the ComfyUI prompt is not a JSON object")
    else:
        graph = _workflow_to_graph(json.loads(workflow_text or "null"))
    c = _Comfy(graph)
    samplers = [
        nid for nid, n in c.graph.items() if n["class_type"] in ("KSampler", "KSamplerAdvanced")
    ]
    if not samplers:
        return ReadResult(
            request=None,
            source="comfyui",
            warnings=["The ComfyUI graph has no KSampler node; no settings were read."],
        )

    def first_pass(nid: str) -> bool:
        latent = c.node(c.graph[nid]["inputs"].get("latent_image"))
        return latent is not None and latent[1]["class_type"] in _EMPTY_LATENTS

    def order(nid: str) -> tuple[bool, int, str]:
        return (not first_pass(nid), int(nid) if nid.isdigit() else 1 << 62, nid)

    nid = min(samplers, key=order)
    node = c.graph[nid]
    kind, inputs = node["class_type"], node["inputs"]
    if len(samplers) > 1:
        c.warnings.append(
            f"The graph has {len(samplers)} sampler nodes; node {nid} was read, the rest ignored."
        )
    req: dict[str, Any] = {}
    schedule: dict[str, Any] = {}

    def put(key: str, source: str, cast: type) -> None:
        value = c.scalar(inputs.get(source))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is not None:
                c.unmapped[source] = str(value)
            return
        req[key] = cast(value)

    put("seed", "noise_seed" if kind == "KSamplerAdvanced" else "seed", int)
    put("steps", "steps", int)
    put("cfg_scale", "cfg", float)

    name = c.scalar(inputs.get("sampler_name"))
    scheduler = c.scalar(inputs.get("scheduler"))
    karras = _COMFY_SCHEDULERS.get(scheduler) if isinstance(scheduler, str) else None
    if scheduler is not None and scheduler not in _COMFY_SCHEDULERS:
        c.unmapped["scheduler"] = str(scheduler)
    base = _COMFY_SAMPLERS.get(name) if isinstance(name, str) else None
    resolved = _resolve_sampler(base, karras) if base else None
    if resolved is None:
        c.unmapped["sampler_name"] = str(name)
        c.warnings.append(f"ComfyUI sampler {name!r} is not available; the default is used.")
    else:
        req["sampler"], schedule["karras"] = resolved

    for role, key in (("positive", "prompt"), ("negative", "negative_prompt")):
        text = c.text(inputs.get(role), role)
        if text is None:
            c.warnings.append(f"The {role} prompt could not be traced to a text node.")
        else:
            req[key] = text

    model = c.model(inputs.get("model"), schedule)
    if model is None:
        c.warnings.append("No checkpoint loader found; the default model is used.")
    else:
        req["model"] = model

    latent = c.node(inputs.get("latent_image"))
    latent_kind = latent[1]["class_type"] if latent else None
    denoise = c.scalar(inputs.get("denoise", 1.0))
    if latent_kind in _EMPTY_LATENTS:
        assert latent is not None
        lin = latent[1]["inputs"]
        for key in ("width", "height", "batch_size"):
            value = c.scalar(lin.get(key))
            if isinstance(value, int) and not isinstance(value, bool):
                req[key] = value
        if isinstance(denoise, (int, float)) and denoise != 1:
            c.unmapped["denoise"] = str(denoise)
    elif latent_kind in ("VAEEncode", "VAEEncodeForInpaint", "SetLatentNoiseMask"):
        req["mode"] = "img2img" if latent_kind == "VAEEncode" else "inpaint"
        if isinstance(denoise, (int, float)) and 0 < denoise <= 1:
            req["strength"] = float(denoise)
        c.warnings.append("The input image is not stored in the graph; supply it to regenerate.")
        c.warnings.append("The image size comes from the input image; the default is shown.")
    else:
        c.warnings.append(f"The latent input ({latent_kind}) is not understood; size defaulted.")
    if kind == "KSamplerAdvanced":
        for key, default in (("start_at_step", 0), ("add_noise", "enable")):
            value = c.scalar(inputs.get(key))
            if value is not None and value != default:
                c.unmapped[key] = str(value)
        end = c.scalar(inputs.get("end_at_step"))
        if isinstance(end, int) and end < req.get("steps", 10**9):
            c.unmapped["end_at_step"] = str(end)

    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="comfyui",
        unmapped=c.unmapped,
        warnings=c.warnings,
        image_seed=request.seed,
        model_name=model,
    )


# ---- InvokeAI -----------------------------------------------------------------------------
_INVOKE_IGNORED = {"app_version", "generation_mode", "rand_device_note"}


def _read_invokeai(text: str) -> ReadResult:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the InvokeAI metadata is not a JSON object")
    req: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    unmapped: dict[str, str] = {}
    warnings: list[str] = []
    simple = {
        "positive_prompt": ("prompt", str),
        "negative_prompt": ("negative_prompt", str),
        "seed": ("seed", int),
        "steps": ("steps", int),
        "cfg_scale": ("cfg_scale", float),
        "width": ("width", int),
        "height": ("height", int),
        "strength": ("strength", float),
    }
    for key, value in data.items():
        if key in simple:
            name, want = simple[key]
            try:
                req[name] = _typed(value, want, key)
            except ValueError:
                unmapped[key] = json.dumps(value)[:200]
        elif key == "scheduler" and isinstance(value, str) and value in _INVOKE_SCHEDULERS:
            req["sampler"], schedule["karras"] = _INVOKE_SCHEDULERS[value]
        elif key == "cfg_rescale_multiplier" and _accepts(value, float):
            schedule["cfg_rescale"] = float(value)
        elif key == "model" and isinstance(value, dict) and isinstance(value.get("name"), str):
            req["model"] = value["name"]
        elif key == "model" and isinstance(value, str):
            req["model"] = value
        elif key in _INVOKE_IGNORED or value in (None, "", [], {}, False):
            continue
        else:
            unmapped[key] = value if isinstance(value, str) else json.dumps(value)[:200]
            if key == "scheduler":
                warnings.append(f"InvokeAI scheduler {value!r} is not available.")
    mode = str(data.get("generation_mode", "txt2img")).removeprefix("sdxl_")
    if mode in ("img2img", "inpaint"):
        req["mode"] = mode
        warnings.append("The input image is not stored in InvokeAI metadata; supply it again.")
    elif mode != "txt2img":
        unmapped["generation_mode"] = mode
    if mode == "txt2img":
        req.pop("strength", None)
    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="invokeai",
        unmapped=unmapped,
        warnings=warnings,
        image_seed=request.seed,
        model_name=req.get("model"),
    )
