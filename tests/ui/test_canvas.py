from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from studio.ui.canvas import CanvasPanel
from studio.ui.canvas_view import EMPTY_HINT, CanvasView

W, H = 120, 80
BASE = (90, 120, 150)


@pytest.fixture
def panel(qtbot) -> CanvasPanel:
    panel = CanvasPanel()
    qtbot.addWidget(panel)
    panel.resize(520, 420)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_image(Image.new("RGB", (W, H), BASE))
    _one_to_one(panel.view)
    return panel


def _one_to_one(view: CanvasView) -> None:
    # 100 % zoom with a whole-pixel offset, so widget pixels and image pixels line up exactly
    view.actual_size()
    origin = view.map_from_image(QPointF(0, 0))
    view.pan_by(QPointF(round(origin.x()) - origin.x(), round(origin.y()) - origin.y()))


def _at(view: CanvasView, x: float, y: float) -> QPoint:
    """The widget pixel whose centre maps to the centre of image pixel (x, y)."""
    p = view.map_from_image(QPointF(x + 0.5, y + 0.5)) - QPointF(0.5, 0.5)
    return QPoint(round(p.x()), round(p.y()))


def _stroke(qtbot, view: CanvasView, points, button=Qt.MouseButton.LeftButton) -> None:
    """Press, move through the points, release: real mouse events through the view's handlers."""
    qtbot.mousePress(view, button, pos=points[0])
    for point in points[1:]:
        qtbot.mouseMove(view, point)
    qtbot.mouseRelease(view, button, pos=points[-1])


def _hline(qtbot, panel: CanvasPanel, x0: int, x1: int, y: int) -> None:
    view = panel.view
    _stroke(qtbot, view, [_at(view, x, y) for x in range(x0, x1 + 1, 10)] + [_at(view, x1, y)])


def _mask(panel: CanvasPanel) -> np.ndarray:
    arr = panel.mask_array()
    return np.zeros((H, W), np.uint8) if arr is None else arr


def _stroke_width(mask: np.ndarray, column: int) -> int:
    return int((mask[:, column] >= 128).sum())


def test_moves_carry_the_pressed_button(qtbot, panel):
    seen = []
    original = panel.view.mouseMoveEvent
    panel.view.mouseMoveEvent = lambda e: (seen.append(e.buttons()), original(e))
    _stroke(qtbot, panel.view, [_at(panel.view, 10, 10), _at(panel.view, 30, 10)])
    assert seen and all(b & Qt.MouseButton.LeftButton for b in seen)


def test_horizontal_stroke_covers_its_path_with_the_brush_radius(qtbot, panel):
    panel.set_brush_size(10)  # radius 5
    with qtbot.waitSignal(panel.mask_changed):
        _hline(qtbot, panel, 20, 90, 40)
    mask = _mask(panel)
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    # every pixel within radius - 1 of the path is fully painted
    assert np.all(mask[36:45, 20:91] == 255)
    # round caps: the ends reach out by the radius, not more
    assert mask[40, 16] == 255 and mask[40, 94] == 255
    assert mask[40, :13].max() == 0 and mask[40, 98:].max() == 0
    # nothing further than radius + 1 from the path
    assert mask[:34].max() == 0 and mask[47:].max() == 0
    assert _stroke_width(mask, 55) in (10, 11)


def test_a_click_paints_a_disc(qtbot, panel):
    panel.set_brush_size(9)
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=_at(panel.view, 60, 30))
    mask = _mask(panel)
    ys, xs = np.nonzero(mask >= 128)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (56, 64, 26, 34)
    assert mask[26, 56] == 0  # the corner of the box stays empty: round, not square


def test_brush_size_changes_the_stroke_width(qtbot, panel):
    widths = {}
    for size, y in ((4, 15), (12, 40), (30, 62)):
        panel.set_brush_size(size)
        before = _mask(panel).copy()
        _hline(qtbot, panel, 20, 100, y)
        widths[size] = _stroke_width(np.where(before == 0, _mask(panel), 0), 60)
    for size, width in widths.items():
        assert abs(width - size) <= 1, widths


def test_bracket_keys_resize_the_brush(qtbot, panel):
    panel.set_brush_size(20)
    panel.activateWindow()
    panel.view.setFocus()
    qtbot.waitUntil(lambda: panel.view.hasFocus())
    qtbot.keyClick(panel.view, Qt.Key.Key_BracketRight)
    bigger = panel.brush_size()
    qtbot.keyClick(panel.view, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(panel.view, Qt.Key.Key_BracketLeft)
    assert bigger > 20 > panel.brush_size() >= 1
    assert panel.size_slider.value() == panel.brush_size()


def test_eraser_restores_the_unpainted_mask(qtbot, panel):
    panel.set_brush_size(10)
    _hline(qtbot, panel, 20, 90, 40)
    _hline(qtbot, panel, 20, 90, 65)
    second_only = _mask(panel).copy()
    second_only[:55] = 0
    panel.set_eraser(True)
    panel.set_brush_size(24)
    _hline(qtbot, panel, 10, 100, 40)
    np.testing.assert_array_equal(_mask(panel), second_only)
    panel.set_eraser(False)
    _hline(qtbot, panel, 20, 90, 15)
    assert _mask(panel)[15, 50] == 255  # the brush paints again


def test_undo_and_redo_restore_exact_masks(qtbot, panel):
    panel.set_brush_size(10)
    _hline(qtbot, panel, 20, 90, 30)
    first = panel.mask_array().copy()
    panel.set_eraser(True)
    _hline(qtbot, panel, 40, 60, 30)
    second = panel.mask_array().copy()
    assert not np.array_equal(first, second)
    panel.undo()
    np.testing.assert_array_equal(panel.mask_array(), first)
    panel.undo()
    assert panel.mask_array() is None
    panel.redo()
    np.testing.assert_array_equal(panel.mask_array(), first)
    panel.redo()
    np.testing.assert_array_equal(panel.mask_array(), second)


def test_undo_redo_shortcuts(qtbot, panel):
    _hline(qtbot, panel, 20, 90, 30)
    painted = panel.mask_array().copy()
    panel.activateWindow()
    panel.view.setFocus()
    qtbot.waitUntil(lambda: panel.view.hasFocus())
    qtbot.keyClick(panel.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.mask_array() is None
    assert panel.redo_action.isEnabled() and not panel.undo_action.isEnabled()
    mods = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(panel.view, Qt.Key.Key_Z, mods)
    np.testing.assert_array_equal(panel.mask_array(), painted)


def test_clear_and_invert(qtbot, panel):
    _hline(qtbot, panel, 20, 90, 30)
    painted = panel.mask_array().copy()
    panel.invert_mask()
    np.testing.assert_array_equal(panel.mask_array(), 255 - painted)
    panel.invert_action.trigger()
    np.testing.assert_array_equal(panel.mask_array(), painted)
    panel.clear_action.trigger()
    assert panel.mask_array() is None
    panel.undo()  # a clear is undoable too
    np.testing.assert_array_equal(panel.mask_array(), painted)
    panel.clear_mask()
    panel.invert_mask()
    assert np.all(panel.mask_array() == 255)


def test_zoomed_view_maps_the_mouse_to_image_pixels(qtbot, panel):
    view = panel.view
    view.set_zoom(4.0)
    view.pan_by(view.map_from_image(QPointF(0, 0)) * -1 + QPointF(-40, -20))  # origin at (-40, -20)
    assert view.scale() == 4.0
    panel.set_brush_size(6)
    # widget (130, 110) -> image ((130.5 + 40) / 4, (110.5 + 20) / 4) = (42.6, 32.6)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(130, 110))
    mask = _mask(panel)
    ys, xs = np.nonzero(mask >= 128)
    assert abs(xs.mean() - 42.1) < 0.6 and abs(ys.mean() - 32.1) < 0.6
    assert xs.max() - xs.min() in (5, 6)  # 6 image pixels wide, whatever the zoom


def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot, panel):
    view = panel.view
    pos = QPointF(200, 150)
    under = view.map_to_image(pos)
    event = QWheelEvent(
        pos,
        view.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 240),  # two notches
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view, event)
    assert view.scale() == pytest.approx(1.25**2)
    after = view.map_to_image(pos)
    assert after.x() == pytest.approx(under.x()) and after.y() == pytest.approx(under.y())


def test_middle_drag_and_space_drag_pan_without_painting(qtbot, panel):
    view = panel.view
    start = view.map_from_image(QPointF(0, 0))
    _stroke(
        qtbot,
        view,
        [QPoint(100, 100), QPoint(130, 110), QPoint(150, 120)],
        Qt.MouseButton.MiddleButton,
    )
    moved = view.map_from_image(QPointF(0, 0)) - start
    assert (moved.x(), moved.y()) == (50, 20)
    view.setFocus()
    qtbot.keyPress(view, Qt.Key.Key_Space)
    _stroke(qtbot, view, [QPoint(150, 120), QPoint(140, 120)])
    qtbot.keyRelease(view, Qt.Key.Key_Space)
    moved = view.map_from_image(QPointF(0, 0)) - start
    assert (moved.x(), moved.y()) == (40, 20)
    assert panel.mask_array() is None


def test_fit_shows_the_whole_image(qtbot, panel):
    view = panel.view
    panel.fit_action.trigger()
    top_left = view.map_from_image(QPointF(0, 0))
    bottom_right = view.map_from_image(QPointF(W, H))
    assert top_left.x() >= -0.01 and top_left.y() >= -0.01
    assert bottom_right.x() <= view.width() + 0.01 and bottom_right.y() <= view.height() + 0.01
    assert view.scale() > 2  # the small image is blown up to fill the view


def test_set_mask_array_round_trips_and_validates(panel):
    arr = np.zeros((H, W), np.uint8)
    arr[10:20, 30:50] = 255
    arr[50, 5] = 77
    with_signal = []
    panel.mask_changed.connect(lambda: with_signal.append(1))
    panel.set_mask_array(arr)
    np.testing.assert_array_equal(panel.mask_array(), arr)
    assert with_signal
    with pytest.raises(ValueError, match="like the image"):
        panel.set_mask_array(np.zeros((W, H), np.uint8))
    panel.undo()
    assert panel.mask_array() is None


def test_empty_canvas_has_no_mask_and_refuses_one(qtbot):
    panel = CanvasPanel()
    qtbot.addWidget(panel)
    assert panel.image() is None and panel.mask_array() is None
    assert not panel.send_inpaint_action.isEnabled()
    with pytest.raises(ValueError, match="Open an image"):
        panel.set_mask_array(np.zeros((4, 4), np.uint8))
    assert "drop an image" in EMPTY_HINT
    _stroke(qtbot, panel.view, [QPoint(10, 10), QPoint(50, 10)])  # painting nothing is harmless
    assert panel.mask_array() is None


def _pixel(view: CanvasView, x: int, y: int) -> tuple[int, int, int]:
    return QColor(view.grab().toImage().pixel(_at(view, x, y))).getRgb()[:3]


def test_preview_and_overlay_are_drawn_without_touching_image_or_mask(qtbot, panel):
    view = panel.view
    panel.set_brush_size(20)
    _hline(qtbot, panel, 10, 50, 20)
    mask = panel.mask_array().copy()
    assert _pixel(view, 100, 60) == BASE
    overlaid = _pixel(view, 30, 20)
    assert overlaid != BASE  # the tinted overlay
    panel.set_mask_visible(False)
    assert _pixel(view, 30, 20) == BASE
    panel.set_mask_visible(True)

    preview = np.zeros((H // 4, W // 4, 3), np.uint8)
    preview[...] = (250, 10, 10)
    panel.show_preview(preview)
    assert _pixel(view, 100, 60) == (250, 10, 10)
    assert panel.image().getpixel((100, 60)) == BASE
    np.testing.assert_array_equal(panel.mask_array(), mask)
    panel.set_image(Image.new("RGB", (W, H), (0, 200, 0)))  # the result replaces the preview
    assert _pixel(view, 100, 60) == (0, 200, 0)


def test_same_size_result_keeps_the_mask_new_size_resets_it(qtbot, panel):
    _hline(qtbot, panel, 20, 90, 30)
    painted = panel.mask_array().copy()
    with qtbot.waitSignal(panel.image_changed):
        panel.set_image(Image.new("RGB", (W, H), (1, 2, 3)))
    np.testing.assert_array_equal(panel.mask_array(), painted)
    panel.set_image(Image.new("RGB", (W + 8, H), (1, 2, 3)))
    assert panel.mask_array() is None
    assert panel.image().size == (W + 8, H)


def test_open_file_and_bad_file(qtbot, panel, tmp_path):
    _hline(qtbot, panel, 20, 90, 30)
    path = tmp_path / "photo.png"
    Image.new("RGBA", (W, H), (10, 20, 30, 255)).save(path)
    with qtbot.waitSignal(panel.image_opened) as opened:
        panel.load_file(path)
    assert opened.args == [str(path)]
    assert panel.image().mode == "RGB" and panel.image().getpixel((3, 3)) == (10, 20, 30)
    assert panel.mask_array() is None  # a new picture gets a fresh mask
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png is not an image"):
        panel.load_file(bad)
    with pytest.raises(ValueError, match="No such file"):
        panel.load_file(tmp_path / "missing.png")


def _drag_events(path) -> tuple[QMimeData, QDragEnterEvent, QDropEvent]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Qt only delivers a drop to a widget that accepted the drag's enter event
    with warnings.catch_warnings():
        # the QPoint constructor is deprecated in PySide6 6.12, the QPointF one absent before it
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(50, 50), *args)
    # the events do not own the mime data: the caller keeps it alive
    return mime, enter, QDropEvent(QPointF(50, 50), *args)


def test_dropping_a_file_opens_it(qtbot, panel, tmp_path):
    path = tmp_path / "dropped.png"
    Image.new("RGB", (40, 30), (200, 100, 0)).save(path)
    _mime, enter, drop = _drag_events(path)
    QApplication.sendEvent(panel, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(panel, drop)
    assert panel.image().size == (40, 30)
    assert panel.image().getpixel((5, 5)) == (200, 100, 0)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _mime, enter, _ = _drag_events(text)
    QApplication.sendEvent(panel, enter)
    assert not enter.isAccepted()


def test_paste_takes_the_clipboard_image(qtbot, panel):
    qimg = QImage(16, 12, QImage.Format.Format_RGB888)
    qimg.fill(QColor(7, 77, 177))
    QGuiApplication.clipboard().setImage(qimg)
    panel.paste_action.trigger()
    assert panel.image().size == (16, 12)
    assert panel.image().getpixel((0, 0)) == (7, 77, 177)


def test_send_buttons_and_feather(qtbot, panel):
    with qtbot.waitSignal(panel.send_to_inpaint_requested):
        panel.send_inpaint_action.trigger()
    with qtbot.waitSignal(panel.send_to_img2img_requested):
        panel.send_img2img_action.trigger()
    panel.feather_spin.setValue(9)
    assert panel.feather() == 9


def _awkward_images(folder) -> dict[str, object]:
    """Files that arrive wrong when opened naively: rotated, 16-bit, transparent palette."""
    rotated = Image.new("RGB", (40, 20), (200, 0, 0))
    rotated.paste((0, 0, 200), (0, 0, 10, 20))  # a blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    rotated.save(folder / "phone.jpg", exif=exif, quality=95)
    grey16 = Image.fromarray(np.full((16, 24), 40000, np.uint16))
    grey16.save(folder / "scan16.png")
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))
    palette.save(folder / "sticker.png", transparency=0)
    return {
        p.name: p for p in (folder / "phone.jpg", folder / "scan16.png", folder / "sticker.png")
    }


def test_awkward_files_arrive_as_the_user_sees_them_and_as_the_cli_opens_them(
    qtbot, panel, tmp_path
):
    from studio.cli import _open_image

    for name, path in _awkward_images(tmp_path).items():
        panel.load_file(path)
        shown = np.asarray(panel.image())
        assert np.array_equal(shown, np.asarray(_open_image(path, "RGB"))), name
        if name == "phone.jpg":
            assert shown.shape[:2] == (40, 20)  # upright: rotated by its EXIF orientation
            assert shown[2, 10, 2] > 150 and shown[37, 10, 0] > 150  # blue band now on top
        elif name == "scan16.png":
            assert shown.max() < 200 and shown.min() > 100  # 40000/65535 grey, not white
        else:
            assert tuple(shown[4, 4]) == (255, 0, 0) and tuple(shown[4, 12]) == (255, 255, 255)
