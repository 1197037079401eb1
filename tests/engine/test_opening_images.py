from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageFile

from studio.engine import images
from studio.engine.images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    PIL_FORMATS,
    is_image_path,
    open_dialog_filter,
    open_image,
    open_image_bytes,
)

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n"
    b"%%BoundingBox: 0 0 10 10\n"
    b"%%EndComments\n"
    b"newpath 0 0 moveto 10 10 lineto stroke\n"
    b"showpage\n"
    b"%%EOF\n"
)
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


@pytest.fixture
def eps_opens(monkeypatch) -> list[object]:
    """Calls of the EPS plugin's header parser, the step before Ghostscript."""
    calls: list[object] = []
    original = EpsImagePlugin.EpsImageFile._open

    def recording(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", recording)
    return calls


@pytest.fixture
def open_formats(monkeypatch) -> list[object]:
    """The `formats` of every Image.open call."""
    seen: list[object] = []
    original = Image.open

    def recording(fp, mode="r", formats=None):
        seen.append(formats)
        return original(fp, mode, formats)

    monkeypatch.setattr(Image, "open", recording)
    return seen


@pytest.mark.parametrize("data", [EPS, PDF], ids=["eps", "pdf"])
def test_postscript_and_pdf_are_refused_before_any_plugin_opens_them(
    tmp_path, eps_opens, open_formats, data
):
    evil = tmp_path / "evil.jpg"  # the name must not steer which plugin is tried
    evil.write_bytes(data)
    with pytest.raises(ValueError) as e:
        open_image(evil)
    assert eps_opens == []
    assert open_formats and all(f is not None and set(f) <= set(PIL_FORMATS) for f in open_formats)
    assert str(e.value) == (
        "evil.jpg is not an image in a format the app opens (PNG, JPEG, WebP, BMP, TIFF or GIF)."
    )
    with pytest.raises(ValueError, match="format the app opens"):
        open_image_bytes(data)
    assert eps_opens == []


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Decoders Pillow creates and ImageFile.load calls: pixel data being read."""
    calls: list[str] = []
    original_decoder = Image._getdecoder
    original_load = ImageFile.ImageFile.load

    def decoder(mode, name, *args, **kwargs):
        calls.append(name)
        return original_decoder(mode, name, *args, **kwargs)

    def load(self):
        calls.append("load")
        return original_load(self)

    monkeypatch.setattr(Image, "_getdecoder", decoder)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


def test_a_huge_image_is_refused_from_its_header_without_decoding(tmp_path, decodes):
    huge = tmp_path / "huge.png"
    Image.new("1", (10000, 10000)).save(huge)  # 100 Mpx, a few kB on disk
    decodes.clear()
    with pytest.raises(ValueError, match="too large") as e:
        open_image(huge)
    assert "10000x10000" in str(e.value) and f"{MAX_PIXELS:,}" in str(e.value)
    assert decodes == []


def test_a_too_long_side_is_refused_without_decoding(tmp_path, decodes):
    long = tmp_path / "long.png"
    Image.new("1", (20000, 8)).save(long)  # few pixels, but wider than any texture
    decodes.clear()
    with pytest.raises(ValueError, match="20000x8"):
        open_image(long)
    assert decodes == []


def test_pillows_own_bomb_warning_and_error_become_value_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warned = tmp_path / "warned.png"
    Image.new("L", (40, 40)).save(warned)  # over the limit: Pillow warns
    failed = tmp_path / "failed.png"
    Image.new("L", (100, 100)).save(failed)  # over twice the limit: Pillow raises
    with pytest.raises(ValueError, match="too large to open: 40x40"):
        open_image(warned)
    with pytest.raises(ValueError, match="too large"):
        open_image(failed)


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the left half ends on top
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    image = open_image(path)
    assert image.size == (20, 40)
    r, g, b = image.getpixel((10, 5))
    assert r > 200 and b < 60
    r, g, b = image.getpixel((10, 35))
    assert b > 200 and r < 60


def test_16_bit_grey_is_scaled_not_clipped_to_white(tmp_path):
    path = tmp_path / "depth16.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert open_image(path).getpixel((3, 3)) == (156, 156, 156)  # 40000 / 65535 * 255
    assert open_image(path, "L").getpixel((3, 3)) == 156
    tiff = tmp_path / "depth16.tif"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tiff)
    assert open_image(tiff).getpixel((0, 0)) == (255, 255, 255)


def test_float_images_are_read_as_0_to_1(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert open_image(path, "L").getpixel((0, 0)) == 128


def test_transparent_palette_png_is_flattened_on_white(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putpixel((0, 0), 1)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)  # index 0, black, is transparent
    opened = open_image(path)
    assert opened.mode == "RGB"
    assert opened.getpixel((2, 2)) == (255, 255, 255)
    assert opened.getpixel((0, 0)) == (255, 0, 0)


def test_rgba_is_flattened_on_white_for_images_and_masks(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    path = tmp_path / "rgba.png"
    rgba.save(path)
    image = open_image(path)
    assert image.getpixel((3, 3)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert 120 <= image.getpixel((1, 0))[0] <= 135
    mask = open_image(path, "L")
    assert mask.mode == "L"
    assert (mask.getpixel((3, 3)), mask.getpixel((0, 0))) == (255, 0)  # transparent = repaint


def test_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    image = open_image(path)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == (255, 0, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = open_image(path)
    assert image.mode == "RGB"
    r, g, b = image.getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_truncated_and_empty_files_are_value_errors(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match="cut.png is truncated or corrupt"):
        open_image(path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png is empty"):
        open_image(empty)


def test_missing_file_and_folder_are_named(tmp_path):
    missing = tmp_path / "nowhere.png"
    with pytest.raises(ValueError, match="No such file") as e:
        open_image(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ValueError, match="folder"):
        open_image(tmp_path)


def test_result_is_loaded_and_detached_from_the_file(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (6, 4), (10, 20, 30)).save(path)
    image = open_image(path)
    path.unlink()
    assert not isinstance(image, ImageFile.ImageFile)
    assert image.size == (6, 4) and image.getpixel((5, 3)) == (10, 20, 30)


def test_bytes_are_opened_with_the_same_rules():
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(buffer, "PNG")
    assert open_image_bytes(buffer.getvalue()).getpixel((0, 0)) == (156, 156, 156)
    with pytest.raises(ValueError, match="not an image"):
        open_image_bytes(b"hello")


def test_suffixes_and_dialog_filter():
    assert is_image_path("a/B.JPG") and is_image_path("x.tiff")
    assert not is_image_path("x.eps") and not is_image_path("x.pdf") and not is_image_path("png")
    text = open_dialog_filter()
    assert text.startswith("Images (*.png *.jpg") and text.endswith(";;All files (*)")
    assert all(f"*{s}" in text for s in IMAGE_SUFFIXES)
    assert images.MAX_SIDE >= 8192
