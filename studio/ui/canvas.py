"""The canvas panel: the image view with mask painting, and its two tool bars.

The main window talks to it only through the methods and signals of `CanvasPanel`; images come
and go as PIL / numpy, converted once by studio.ui.images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QLabel,
    QSlider,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio.engine.images import as_mode, is_image_path, open_dialog_filter, open_image
from studio.ui.canvas_view import CanvasView
from studio.ui.images import numpy_to_qimage, pil_to_qimage, qimage_to_numpy, qimage_to_pil

MAX_BRUSH = 512
MAX_FEATHER = 64


class CanvasPanel(QWidget):
    image_changed = Signal()
    mask_changed = Signal()
    send_to_img2img_requested = Signal()
    send_to_inpaint_requested = Signal()
    # the user brought in a picture (open, paste, drop): it replaces the img2img input
    user_image_changed = Signal()
    # a file was opened or dropped (its settings can be offered), a status text
    image_opened = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: Image.Image | None = None
        self.view = CanvasView(self)
        self.view.mask_edited.connect(self._on_mask_edited)
        self.view.zoom_changed.connect(self._show_zoom)
        self.setAcceptDrops(True)

        self._build_actions()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._build_image_bar())
        layout.addWidget(self._build_mask_bar())
        layout.addWidget(self.view, 1)
        self._sync_enabled()

    # ---- public API ---------------------------------------------------------------------
    def set_image(self, img: Image.Image, keep_mask: bool = True) -> None:
        """Show `img`; a same-size image (e.g. an inpainting result) keeps the mask and its undo
        unless keep_mask is False. Any step preview is dropped."""
        if not isinstance(img, Image.Image):
            raise ValueError(f"set_image needs a PIL image; got {type(img).__name__}.")
        rgb = as_mode(img, "RGB")
        self._image = rgb
        self.view.set_image(pil_to_qimage(rgb), keep_mask=keep_mask)
        self._sync_enabled()
        self.image_changed.emit()

    def image(self) -> Image.Image | None:
        return None if self._image is None else self._image.copy()

    def show_preview(self, rgb: np.ndarray) -> None:
        """Show a step preview over the image area; the image and the mask are untouched."""
        self.view.set_preview(numpy_to_qimage(rgb))

    def clear_preview(self) -> None:
        self.view.set_preview(None)

    def mask_array(self) -> np.ndarray | None:
        layer = self.view.layer
        if layer is None:
            return None
        arr = qimage_to_numpy(layer.mask)
        return arr if arr.any() else None

    def set_mask_array(self, arr: np.ndarray) -> None:
        layer = self.view.layer
        if layer is None:
            raise ValueError("Open an image before setting a mask.")
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape != (layer.mask.height(), layer.mask.width()):
            raise ValueError(
                f"The mask must be {layer.mask.height()}x{layer.mask.width()} (HxW) like the image; "
                f"got shape {arr.shape}."
            )
        layer.replace(numpy_to_qimage(arr), "Set mask")

    def clear_mask(self) -> None:
        if self.view.layer is not None:
            self.view.layer.clear()

    def invert_mask(self) -> None:
        if self.view.layer is not None:
            self.view.layer.invert()

    def feather(self) -> int:
        return self.feather_spin.value()

    def set_feather(self, pixels: int) -> None:
        self.feather_spin.setValue(pixels)

    def brush_size(self) -> int:
        return self.view.brush_size

    def set_brush_size(self, size: int) -> None:
        self.size_slider.setValue(max(1, min(MAX_BRUSH, int(size))))

    def set_eraser(self, on: bool) -> None:
        (self.eraser_action if on else self.brush_action).setChecked(True)

    def set_mask_visible(self, visible: bool) -> None:
        self.show_mask_action.setChecked(visible)

    def mask_visible(self) -> bool:
        return self.show_mask_action.isChecked()

    def undo(self) -> None:
        if self.view.layer is not None:
            self.view.layer.undo_stack.undo()

    def redo(self) -> None:
        if self.view.layer is not None:
            self.view.layer.undo_stack.redo()

    def load_file(self, path: str | Path) -> None:
        """Open an image file onto the canvas; raises ValueError with a readable message."""
        self.set_image(open_image(path), keep_mask=False)  # a new picture: a fresh mask
        self.user_image_changed.emit()
        self.image_opened.emit(str(path))

    # ---- actions and bars -----------------------------------------------------------------
    def _action(
        self, text: str, slot, shortcuts=(), tip: str = "", checkable: bool = False
    ) -> QAction:
        action = QAction(text, self)
        action.setCheckable(checkable)
        keys = [QKeySequence(k) for k in shortcuts]
        action.setShortcuts(keys)
        # only while the canvas has focus, so the prompt's own Ctrl+Z / Ctrl+V keep working
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        hint = f" ({', '.join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys)})"
        action.setToolTip((tip or text) + (hint if keys else ""))
        if slot is not None:
            # toggled also fires on setChecked from code, triggered only on user clicks
            (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_action = a("Open…", self._open_dialog, ["Ctrl+O"], "Open an image file")
        self.paste_action = a(
            "Paste", self._paste, [QKeySequence.StandardKey.Paste], "Paste an image"
        )
        self.fit_action = a("Fit", self.view.fit, ["F"], "Fit the image in the view")
        self.actual_size_action = a("100%", self.view.actual_size, ["1"], "Actual pixels")
        self.send_img2img_action = a(
            "Send to img2img", self.send_to_img2img_requested, tip="Use this image for img2img"
        )
        self.send_inpaint_action = a(
            "Send to inpaint", self.send_to_inpaint_requested, tip="Repaint the masked area"
        )

        self.brush_action = a("Brush", None, ["B"], "Paint the mask", True)
        self.eraser_action = a("Eraser", self._set_erasing, ["E"], "Erase the mask", True)
        group = QActionGroup(self)
        group.addAction(self.brush_action)
        group.addAction(self.eraser_action)
        self.brush_action.setChecked(True)
        self.smaller_action = a("Smaller brush", lambda: self._step_brush(-1), ["["])
        self.bigger_action = a("Bigger brush", lambda: self._step_brush(1), ["]"])
        self.undo_action = a("Undo", self.undo, ["Ctrl+Z"], "Undo the last mask edit")
        self.redo_action = a("Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo")
        self.clear_action = a("Clear", self.clear_mask, tip="Clear the mask")
        self.invert_action = a("Invert", self.invert_mask, ["I"], "Invert the mask")
        self.show_mask_action = a("Show mask", self._set_mask_visible, ["M"], checkable=True)
        self.show_mask_action.setChecked(True)

    def _build_image_bar(self) -> QToolBar:
        bar = QToolBar("Image", self)
        for action in (self.open_action, self.paste_action):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(self.fit_action)
        bar.addAction(self.actual_size_action)
        self.zoom_label = QLabel("", bar)
        self.zoom_label.setMinimumWidth(48)
        bar.addWidget(self.zoom_label)
        bar.addSeparator()
        bar.addAction(self.send_img2img_action)
        bar.addAction(self.send_inpaint_action)
        return bar

    def _build_mask_bar(self) -> QToolBar:
        bar = QToolBar("Mask", self)
        bar.addAction(self.brush_action)
        bar.addAction(self.eraser_action)
        self.size_slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.size_slider.setRange(1, MAX_BRUSH)
        self.size_slider.setValue(self.view.brush_size)
        self.size_slider.setMaximumWidth(140)
        self.size_slider.setToolTip("Brush size in image pixels ([ and ])")
        self.size_label = QLabel(f"{self.view.brush_size} px", bar)
        self.size_label.setMinimumWidth(44)
        self.size_slider.valueChanged.connect(self._on_size)
        bar.addWidget(self.size_slider)
        bar.addWidget(self.size_label)
        bar.addSeparator()
        for action in (self.undo_action, self.redo_action, self.clear_action, self.invert_action):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(self.show_mask_action)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(self.view.overlay_opacity * 100))
        self.opacity_slider.setMaximumWidth(90)
        self.opacity_slider.setToolTip("Mask overlay opacity")
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        bar.addWidget(self.opacity_slider)
        bar.addWidget(QLabel(" Feather ", bar))
        self.feather_spin = QSpinBox(bar)
        self.feather_spin.setRange(0, MAX_FEATHER)
        self.feather_spin.setValue(4)
        self.feather_spin.setSuffix(" px")
        self.feather_spin.setToolTip("Mask blur: how softly the repainted area blends in")
        bar.addWidget(self.feather_spin)
        self.only_masked_box = QCheckBox("Only masked", bar)
        self.only_masked_box.setToolTip(
            "Inpaint a crop around the mask at full resolution, then paste it back"
        )
        bar.addWidget(self.only_masked_box)
        return bar

    # ---- slots ----------------------------------------------------------------------------
    def _set_erasing(self, on: bool) -> None:
        self.view.erasing = on
        self.view.update()

    def _step_brush(self, direction: int) -> None:
        size = self.view.brush_size
        step = max(1, round(size * 0.2))  # 20 % per key press: fine when small, fast when big
        self.set_brush_size(size + direction * step)

    def _on_size(self, value: int) -> None:
        self.view.brush_size = value
        self.size_label.setText(f"{value} px")
        self.view.update()

    def _on_opacity(self, value: int) -> None:
        self.view.overlay_opacity = value / 100
        self.view.update()

    def _set_mask_visible(self, visible: bool) -> None:
        self.view.mask_visible = visible
        self.view.update()

    def _show_zoom(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f}%")

    def _on_mask_edited(self) -> None:
        self._sync_enabled()
        self.mask_changed.emit()

    def _sync_enabled(self) -> None:
        layer = self.view.layer
        has_image = layer is not None
        self.undo_action.setEnabled(has_image and layer.undo_stack.canUndo())
        self.redo_action.setEnabled(has_image and layer.undo_stack.canRedo())
        for action in (
            self.clear_action,
            self.invert_action,
            self.fit_action,
            self.actual_size_action,
            self.send_img2img_action,
            self.send_inpaint_action,
        ):
            action.setEnabled(has_image)
        self._show_zoom(self.view.scale())

    def _report(self, text: str) -> None:
        self.view.show_message(text)
        self.message.emit(text)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", open_dialog_filter())
        if path:
            self._load_reporting(path)

    def _load_reporting(self, path: str) -> bool:
        try:
            self.load_file(path)
        except ValueError as exc:
            self._report(str(exc))
            return False
        return True

    def _paste(self) -> None:
        if not self._take_mime(QGuiApplication.clipboard().mimeData()):
            self._report("The clipboard holds no image.")

    def _take_mime(self, mime: QMimeData | None) -> bool:
        if mime is None:
            return False
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile() and is_image_path(url.toLocalFile()):
                return self._load_reporting(url.toLocalFile())
        if mime.hasImage():
            qimg = QImage(mime.imageData())
            if not qimg.isNull():
                self.set_image(qimage_to_pil(qimg), keep_mask=False)
                self.user_image_changed.emit()
                return True
        return False

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        has_file = any(
            u.isLocalFile() and is_image_path(u.toLocalFile())
            for u in (mime.urls() if mime.hasUrls() else [])
        )
        if has_file or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if self._take_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()
