from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from studio.engine.control_params import PARAMS
from studio.engine.request import ControlSpec, GenerationRequest
from studio.ui.control_panel import ControlPanel
from studio.ui.control_state import MAX_UNITS
from studio.ui.control_unit import ControlUnit
from studio.ui.images import qimage_to_numpy


class FakeCanvas:
    """The canvas as the session sees it: an image and a mask."""

    def __init__(self) -> None:
        self.picture: Image.Image | None = None

    def image(self) -> Image.Image | None:
        return self.picture

    def mask_array(self) -> None:
        return None


@pytest.fixture
def canvas(session) -> FakeCanvas:
    fake = FakeCanvas()
    session.attach_canvas(fake)
    return fake


@pytest.fixture
def panel(qtbot, session, canvas) -> Iterator[ControlPanel]:
    """The panel bound to a real session; maps are made on the session's background thread."""
    session.state.width = session.state.height = 64
    panel = ControlPanel(session.controls)
    qtbot.addWidget(panel)
    panel.resize(360, 700)
    panel.show()
    panel.fake_canvas = canvas  # what "Use canvas image" takes
    panel.session = session
    yield panel


def _square(offset: int = 16, side: int = 32, size: tuple[int, int] = (64, 64)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((offset, offset, offset + side - 1, offset + side - 1), "black")
    return image


def _busy(panel: ControlPanel) -> bool:
    return any(u.map_pending for u in panel.model.units())


def _wait_map(qtbot, panel: ControlPanel, unit: ControlUnit) -> None:
    qtbot.waitUntil(lambda: not _busy(panel), timeout=60_000)
    assert unit.unit.control_map is not None or unit.message_text()


def _give_canvas_image(qtbot, panel: ControlPanel, unit: ControlUnit, image: Image.Image) -> None:
    panel.fake_canvas.picture = image
    qtbot.mouseClick(unit.use_canvas_button, Qt.MouseButton.LeftButton)
    _wait_map(qtbot, panel, unit)


def test_units_are_added_and_removed(qtbot, panel):
    assert len(panel.units()) == 1
    first = panel.units()[0]
    assert not first.enabled.isChecked()  # a unit without an image must not block Generate
    assert not first.remove_button.isEnabled()  # the last unit stays
    with qtbot.waitSignal(panel.model.units_changed):
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    second = panel.units()[1]
    assert "ControlNet 2" in second.title.text()
    assert first.remove_button.isEnabled()
    second.weight.set_value(0.5)
    assert [s.weight for s in panel.model.specs()] == [1.0, 0.5]

    with qtbot.waitSignal(panel.model.units_changed):
        qtbot.mouseClick(first.remove_button, Qt.MouseButton.LeftButton)
    assert panel.units() == [second]
    assert "ControlNet 1" in second.title.text()  # renumbered
    assert [s.weight for s in panel.model.specs()] == [0.5]
    assert not second.remove_button.isEnabled()

    while panel.model.add() is not None:
        pass
    assert len(panel.units()) == MAX_UNITS
    assert not panel.add_button.isEnabled()


def test_specs_reflect_the_widgets(qtbot, panel, tmp_path):
    unit = panel.units()[0]
    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("lineart"))
    assert list(unit.param_sliders) == [p.name for p in PARAMS["lineart"]]
    unit.param_sliders["gaussian_sigma"].set_value(3.0)
    unit.weight.set_value(1.35)
    unit.start.set_value(0.2)
    unit.end.set_value(0.8)
    unit.model.setEditText("lllyasviel/control_v11p_sd15_lineart")
    unit.model.lineEdit().editingFinished.emit()
    _give_canvas_image(qtbot, panel, unit, _square())

    (spec,) = panel.model.specs()
    assert spec.enabled  # an image from the user switches the unit on
    assert spec.model == "lllyasviel/control_v11p_sd15_lineart"
    assert spec.preprocessor == "lineart"
    assert dict(spec.params) == pytest.approx({"gaussian_sigma": 3.0, "intensity_threshold": 8.0})
    assert (spec.weight, spec.guidance_start, spec.guidance_end) == pytest.approx((1.35, 0.2, 0.8))
    assert np.array_equal(np.asarray(spec.image), np.asarray(_square()))
    assert unit.message_text() == ""  # a hub id is a valid reference

    unit.enabled.setChecked(False)
    assert not panel.model.specs()[0].enabled
    unit.enabled.setChecked(True)
    unit.unit.set_model(str(tmp_path / "nowhere"))
    assert "ControlNet not found" in unit.message_text()


def test_set_specs_round_trips_through_request_json(qtbot, panel, tmp_path):
    specs = (
        ControlSpec(
            model="demo-depth",
            image=_square(8),
            preprocessor="depth",
            weight=0.75,
            guidance_start=0.1,
            guidance_end=0.6,
            enabled=False,
            params=(("resolution", 0.0),),
        ),
        ControlSpec(
            model=str(tmp_path / "my-controlnet"),
            image=_square(20, size=(80, 48)),
            preprocessor="canny",
            weight=1.5,
            params=(("low_threshold", 50.0), ("high_threshold", 120.0)),
        ),
        ControlSpec(model="demo-pose", image=None, preprocessor="none"),
    )
    with qtbot.waitSignal(panel.model.units_changed):
        panel.model.set_specs(specs)
    assert len(panel.units()) == 3
    assert panel.model.specs() == specs
    for got, want in zip(panel.model.specs(), specs, strict=True):
        assert (got.image is None) == (want.image is None)
        if want.image is not None:
            assert np.array_equal(np.asarray(got.image), np.asarray(want.image))

    # through the metadata format: what the window writes into an image comes back the same
    request = GenerationRequest(controls=panel.model.specs())
    restored = GenerationRequest.from_json(request.to_json())
    panel.model.set_specs(())
    assert len(panel.units()) == 1 and panel.model.specs()[0].image is None
    panel.model.set_specs(restored.controls)
    assert GenerationRequest(controls=panel.model.specs()) == request
    qtbot.waitUntil(lambda: not _busy(panel), timeout=60_000)


def test_canny_preview_shows_the_edges_of_a_square(qtbot, panel):
    unit = panel.units()[0]
    assert unit.unit.preprocessor == "canny"
    _give_canvas_image(qtbot, panel, unit, _square(16, 32))

    edges = np.asarray(unit.unit.control_map.convert("L"))
    assert edges.shape == (64, 64)
    border = np.zeros((64, 64), bool)
    border[14:50, 14:50] = True
    border[18:46, 18:46] = False
    assert edges[border].max() == 255  # edges on the square's outline...
    assert edges[~border].max() == 0  # ...and nowhere else
    for side in (edges[14:50, 14:18], edges[14:50, 46:50], edges[14:18, 14:50]):
        assert (side.max(axis=1 if side.shape[1] == 4 else 0) == 255).mean() > 0.8  # whole sides

    # the thumbnail shows that map: bright outline, dark inside and outside
    thumb = qimage_to_numpy(unit.map_label.pixmap().toImage())
    gray = thumb.mean(axis=2) if thumb.ndim == 3 else thumb
    h, w = gray.shape
    assert gray[h // 2, w // 2] == 0 and gray[2, 2] == 0
    assert gray[h // 2, round(w * 16 / 64) - 2 : round(w * 16 / 64) + 2].max() == 255

    # the map follows the generation size and the thresholds
    panel.session.state.width = 96
    _wait_map(qtbot, panel, unit)
    assert unit.unit.control_map.size == (96, 64)
    faint = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(faint).rectangle((16, 16, 47, 47), (200, 200, 200))
    _give_canvas_image(qtbot, panel, unit, faint)
    assert (np.asarray(unit.unit.control_map.convert("L")) > 0).sum() > 100
    unit.param_sliders["high_threshold"].set_value(255)
    unit.param_sliders["low_threshold"].set_value(255)
    _wait_map(qtbot, panel, unit)
    assert (np.asarray(unit.unit.control_map.convert("L")) > 0).sum() < 20  # too faint to count


def test_guidance_start_stays_below_end(qtbot, panel):
    unit = panel.units()[0]
    unit.start.set_value(0.8)
    unit.end.set_value(0.5)
    spec = panel.model.specs()[0]
    assert spec.guidance_start < spec.guidance_end == pytest.approx(0.5)
    unit.end.set_value(0.0)
    assert (unit.start.value(), unit.end.value()) == pytest.approx((0.0, 0.01))
    unit.start.set_value(1.0)
    assert (unit.start.value(), unit.end.value()) == pytest.approx((0.99, 1.0))
    unit.start.slider.setValue(unit.start.slider.maximum())  # as a mouse drag does
    assert unit.start.value() < unit.end.value()
    # Canny's low threshold never passes the high one either
    unit.param_sliders["high_threshold"].set_value(90)
    unit.param_sliders["low_threshold"].set_value(150)
    assert dict(panel.model.specs()[0].params) == {"low_threshold": 150.0, "high_threshold": 150.0}


def test_missing_depth_model_says_where_to_put_it(qtbot, panel, tmp_path, monkeypatch):
    import huggingface_hub.constants

    # no depth model anywhere: not in the environment, the user data dir or the hub cache
    monkeypatch.delenv("STUDIO_DEPTH_MODEL", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    unit = panel.units()[0]
    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("depth"))
    _give_canvas_image(qtbot, panel, unit, _square())
    assert unit.unit.control_map is None
    assert "Depth needs a depth-estimation model" in unit.message_text()
    assert "depth-anything-v2-small" in unit.message_text()  # where to put it
    assert unit.message.isVisible()

    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("canny"))
    _wait_map(qtbot, panel, unit)
    assert unit.unit.control_map is not None and "Depth" not in unit.message_text()


def test_dropping_an_image_on_a_unit_sets_its_source(qtbot, panel, tmp_path):
    path = tmp_path / "pose.png"
    _square(8, 24).save(path)
    unit = panel.units()[0]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with warnings.catch_warnings():  # the QPoint constructor is deprecated in newer PySide6
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(20, 20), *args)
    QApplication.sendEvent(unit, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(unit, QDropEvent(QPointF(20, 20), *args))
    _wait_map(qtbot, panel, unit)
    assert unit.enabled.isChecked()
    assert np.array_equal(np.asarray(unit.unit.image), np.asarray(_square(8, 24)))
    assert np.asarray(unit.unit.control_map)[8, 8:32].max() == 255

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    unit.load_file(broken)
    assert "broken.png is not an image" in unit.message_text()


# ---- end to end: the panel's specs steer a real (tiny) ControlNet generation ---------------------
@pytest.fixture(scope="module")
def tiny_controlnet(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import save_tiny_controlnet

    return save_tiny_controlnet(
        tiny_model, tmp_path_factory.mktemp("controlnets") / "tiny-controlnet"
    )


def test_panel_drives_a_controlled_generation(qtbot, panel, tiny_model, tiny_controlnet):
    from studio.engine.generate import generate
    from studio.engine.pipelines import PipelineCache

    unit = panel.units()[0]
    unit.model.lineEdit().clear()
    qtbot.keyClicks(unit.model.lineEdit(), str(tiny_controlnet))
    qtbot.keyClick(unit.model.lineEdit(), Qt.Key.Key_Return)
    assert unit.unit.model == str(tiny_controlnet)
    cache = PipelineCache(device="cpu")
    request = GenerationRequest(
        model=str(tiny_model), prompt="a square", width=64, height=64, steps=3, sampler="Euler"
    )

    def run(source: Image.Image) -> tuple[np.ndarray, Image.Image]:
        _give_canvas_image(qtbot, panel, unit, source)
        result = generate(request.with_(controls=panel.model.specs()), cache)
        # the map the panel shows is the map that steered
        assert np.array_equal(np.asarray(result.control_maps[0]), np.asarray(unit.unit.control_map))
        return np.asarray(result.images[0]).astype(np.int16), result.control_maps[0]

    first, _ = run(_square(8, 24))
    second, _ = run(_square(32, 24))
    assert np.abs(first - second).mean() > 3.0  # another control image, another picture (11 here)
    assert np.array_equal(run(_square(8, 24))[0], first)  # and the same one, the same picture

    unit.enabled.setChecked(False)
    off = generate(request.with_(controls=panel.model.specs()), cache)
    plain = generate(request, cache)
    assert np.array_equal(np.asarray(off.images[0]), np.asarray(plain.images[0]))
    assert off.control_maps == []


def test_installed_demo_controlnets_are_offered_and_follow_the_preprocessor(
    qtbot, tmp_path, monkeypatch
):
    import studio.engine.models
    import studio.ui.control_state
    from studio.ui.control_state import ControlList

    for name in ("canny", "depth"):  # the pose demo is not installed here
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"cross_attention_dim": 768}')
    monkeypatch.setattr(studio.ui.control_state, "DEMO_CONTROLNETS", tmp_path)
    monkeypatch.setattr(studio.engine.models, "DEMO_CONTROLNETS", tmp_path)
    panel = ControlPanel(ControlList())
    qtbot.addWidget(panel)
    unit = panel.units()[0]
    offered = [unit.model.itemText(i) for i in range(unit.model.count())]
    assert offered[:2] == ["demo-canny", "demo-depth"] and "demo-pose" not in offered
    assert unit.unit.model == "demo-canny"
    unit.enabled.setChecked(True)
    assert unit.message_text() == ""

    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("depth"))
    assert unit.unit.model == "demo-depth"
    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("pose"))
    assert unit.unit.model == ""
    assert "Choose a ControlNet" in unit.message_text()
    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("lineart"))
    assert unit.unit.model == "demo-canny"  # line drawings suit the edge ControlNet
    unit.unit.set_model("some/hub-controlnet")  # the user's own choice stays put
    unit.preprocessor.setCurrentIndex(unit.preprocessor.findData("depth"))
    assert unit.unit.model == "some/hub-controlnet"
