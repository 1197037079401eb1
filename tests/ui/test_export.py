"""'Save as…' opens its source through the one image opener: PostScript never reaches Pillow's
EPS plugin (and Ghostscript behind it), whatever the file is named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from studio.ui.export import export_image
from tests.engine.test_opening_images import EPS


def test_save_as_refuses_postscript_named_as_an_image(tmp_path, monkeypatch):
    opened: list[object] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    source = tmp_path / "photo.png"
    source.write_bytes(EPS)
    with pytest.raises(ValueError, match="not an image in a format the app opens"):
        export_image(source, tmp_path / "copy.png")
    assert opened == [] and not (tmp_path / "copy.png").exists()


def test_save_as_copies_a_plain_image_into_another_format(tmp_path):
    source = tmp_path / "plain.png"
    Image.new("RGB", (16, 8), (10, 200, 30)).save(source)
    out = export_image(source, tmp_path / "copy")  # no suffix: PNG
    assert out == tmp_path / "copy.png"
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(source)))
    jpeg = export_image(source, tmp_path / "copy.jpg")
    assert Image.open(jpeg).format == "JPEG" and Image.open(jpeg).size == (16, 8)
