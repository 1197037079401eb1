"""The image area: shows the image, a live preview and the mask overlay under a zoom/pan
transform, and turns mouse strokes into mask strokes in image pixels.

A custom paintEvent draws only the exposed part of each layer; a mask stroke repaints only the
widget rectangle it touched.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui.mask_layer import MaskLayer

EMPTY_HINT = "Open, paste or drop an image — or generate one"
MIN_SCALE, MAX_SCALE = 0.02, 32.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch


class CanvasView(QWidget):
    zoom_changed = Signal(float)
    # a stroke, undo, redo, clear or invert changed the mask
    mask_edited = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self._pixmap: QPixmap | None = None
        self._preview: QImage | None = None
        self.layer: MaskLayer | None = None
        self._scale = 1.0
        self._offset = QPointF(0, 0)  # widget position of image pixel (0, 0)
        self._fit = True  # keep fitting on resize until the user zooms or pans
        self.brush_size = 32  # diameter in image pixels
        self.erasing = False
        self.overlay_opacity = 0.5
        self.mask_visible = True
        self._hover: QPointF | None = None
        self._pan_from: QPointF | None = None
        self._space_down = False
        self._message = ""
        self._message_timer = QTimer(self, singleShot=True, interval=4000)
        self._message_timer.timeout.connect(lambda: self.show_message(""))

    def sizeHint(self) -> QSize:
        return QSize(640, 512)

    # ---- content ------------------------------------------------------------------------
    def image_size(self) -> QSize | None:
        return self._pixmap.size() if self._pixmap is not None else None

    def set_image(self, image: QImage, keep_mask: bool) -> None:
        resized = self._pixmap is None or image.size() != self._pixmap.size()
        self._pixmap = QPixmap.fromImage(image)
        self._preview = None
        if resized or not keep_mask or self.layer is None:
            self._set_layer(MaskLayer(image.width(), image.height(), self))
        if resized:
            self.fit()
        self.update()

    def _set_layer(self, layer: MaskLayer) -> None:
        if self.layer is not None:
            self.layer.region_changed.disconnect(self._on_region_changed)
            self.layer.edited.disconnect(self.mask_edited)
            self.layer.deleteLater()
        self.layer = layer
        layer.region_changed.connect(self._on_region_changed)
        layer.edited.connect(self.mask_edited)

    def set_preview(self, preview: QImage | None) -> None:
        self._preview = preview
        self.update()

    def show_message(self, text: str) -> None:
        self._message = text
        if text:
            self._message_timer.start()
        self.update()

    # ---- view transform -------------------------------------------------------------
    def scale(self) -> float:
        return self._scale

    def map_to_image(self, pos: QPointF) -> QPointF:
        return (pos - self._offset) / self._scale

    def map_from_image(self, point: QPointF) -> QPointF:
        return point * self._scale + self._offset

    def image_rect_in_widget(self, rect: QRectF) -> QRectF:
        return QRectF(self.map_from_image(rect.topLeft()), self.map_from_image(rect.bottomRight()))

    def fit(self) -> None:
        self._fit = True
        size = self._content_size()
        if size is None:
            return
        scale = min(self.width() / size.width(), self.height() / size.height())
        self._set_transform(scale, self._centred_offset(scale, size))

    def actual_size(self) -> None:
        size = self._content_size()
        self._fit = False
        if size is not None:
            self._set_transform(1.0, self._centred_offset(1.0, size))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if self._pixmap is None:
            return
        anchor = QPointF(self.width() / 2, self.height() / 2) if anchor is None else anchor
        fixed = self.map_to_image(anchor)  # the image point under the anchor stays put
        scale = min(MAX_SCALE, max(MIN_SCALE, self._scale * factor))
        self._fit = False
        self._set_transform(scale, anchor - fixed * scale)

    def set_zoom(self, scale: float) -> None:
        self.zoom_by(scale / self._scale)

    def pan_by(self, delta: QPointF) -> None:
        self._fit = False
        self._set_transform(self._scale, self._offset + delta)

    def _content_size(self) -> QSize | None:
        if self._pixmap is not None:
            return self._pixmap.size()
        return None

    def _centred_offset(self, scale: float, size: QSize) -> QPointF:
        return QPointF(
            (self.width() - size.width() * scale) / 2, (self.height() - size.height() * scale) / 2
        )

    def _set_transform(self, scale: float, offset: QPointF) -> None:
        changed = scale != self._scale
        self._scale, self._offset = scale, offset
        self.update()
        if changed:
            self.zoom_changed.emit(scale)

    # ---- painting -----------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), self.palette().color(self.backgroundRole()).darker(130))
        if self._pixmap is None:
            if self._preview is not None:
                self._paint_preview_only(painter)
            else:
                painter.setPen(self.palette().color(self.foregroundRole()))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, EMPTY_HINT)
        else:
            self._paint_layers(painter, event.rect())
            self._paint_brush_outline(painter)
        if self._message:
            self._paint_message(painter)
        painter.end()

    def _paint_layers(self, painter: QPainter, exposed: QRect) -> None:
        assert self._pixmap is not None
        image_rect = QRectF(self._pixmap.rect())
        # the image pixels under the exposed widget rect, with a margin for smooth sampling
        src = QRectF(
            self.map_to_image(QPointF(exposed.topLeft())),
            self.map_to_image(QPointF(exposed.bottomRight()) + QPointF(1, 1)),
        )
        src = src.adjusted(-2, -2, 2, 2).intersected(image_rect).toAlignedRect()
        if src.isEmpty():
            return
        painter.save()
        painter.setClipRect(exposed)
        painter.translate(self._offset)
        painter.scale(self._scale, self._scale)
        # smooth when zoomed out; crisp pixels when zoomed in, for precise masking
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 1.0)
        painter.drawPixmap(QRectF(src), self._pixmap, QRectF(src))
        if self._preview is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(_fit_rect(QRectF(self._preview.rect()), image_rect), self._preview)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 1.0)
        if self.layer is not None and self.mask_visible and self.overlay_opacity > 0:
            painter.setOpacity(self.overlay_opacity)
            painter.drawImage(QRectF(src), self.layer.overlay, QRectF(src))
        painter.restore()

    def _paint_preview_only(self, painter: QPainter) -> None:
        assert self._preview is not None
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        target = _fit_rect(QRectF(self._preview.rect()), QRectF(self.rect()))
        painter.drawImage(target, self._preview)

    def _paint_brush_outline(self, painter: QPainter) -> None:
        if self._hover is None or self._pan_from is not None or self._space_down:
            return
        radius = self.brush_size * self._scale / 2
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        # two outlines so the circle shows on both light and dark images
        painter.setPen(QPen(QColor(0, 0, 0, 160), 3))
        painter.drawEllipse(self._hover, radius, radius)
        painter.setPen(
            QPen(
                QColor(255, 255, 255),
                1,
                Qt.PenStyle.DashLine if self.erasing else Qt.PenStyle.SolidLine,
            )
        )
        painter.drawEllipse(self._hover, radius, radius)

    def _paint_message(self, painter: QPainter) -> None:
        rect = QRect(0, self.height() - 36, self.width(), 36)
        painter.fillRect(rect, QColor(0, 0, 0, 170))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._message)

    def _on_region_changed(self, rect: QRect) -> None:
        self.update(self.image_rect_in_widget(QRectF(rect)).toAlignedRect().adjusted(-2, -2, 2, 2))

    def _update_outline(self, pos: QPointF | None) -> None:
        radius = self.brush_size * self._scale / 2 + 4
        for point in (self._hover, pos):
            if point is not None:
                self.update(
                    QRectF(
                        point.x() - radius, point.y() - radius, 2 * radius, 2 * radius
                    ).toAlignedRect()
                )
        self._hover = pos

    # ---- mouse and keys ------------------------------------------------------------------
    def _image_point(self, event: QMouseEvent) -> QPointF:
        # +0.5: a mouse position names a widget pixel; paint at that pixel's centre
        return self.map_to_image(event.position() + QPointF(0.5, 0.5))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
        elif button == Qt.MouseButton.LeftButton and self.layer is not None:
            self.layer.begin_stroke(self._image_point(event), self.brush_size, self.erasing)
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            self.pan_by(event.position() - self._pan_from)
            self._pan_from = event.position()
        elif self.layer is not None and self.layer.is_stroking():
            if event.buttons() & Qt.MouseButton.LeftButton:
                self.layer.extend_stroke(self._image_point(event))
            else:  # the release went elsewhere (focus loss): close the stroke
                self.layer.end_stroke()
        if self._pixmap is not None:
            self._update_outline(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self.setCursor(
                Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.CrossCursor
            )
        elif event.button() == Qt.MouseButton.LeftButton and self.layer is not None:
            if self.layer.is_stroking():
                self.layer.extend_stroke(self._image_point(event))
                self.layer.end_stroke()
        else:
            super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self._update_outline(None)
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps and self._pixmap is not None:
            self.zoom_by(WHEEL_STEP**steps, event.position())
            event.accept()
        else:
            super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._pan_from = None
            self.setCursor(Qt.CursorShape.CrossCursor)
            event.accept()
        else:
            super().keyReleaseEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        if self._fit:
            self.fit()
        super().resizeEvent(event)


def _fit_rect(content: QRectF, area: QRectF) -> QRectF:
    """The largest rect of `content`'s aspect ratio centred in `area`."""
    if content.width() <= 0 or content.height() <= 0:
        return QRectF(area)
    scale = min(area.width() / content.width(), area.height() / content.height())
    width, height = content.width() * scale, content.height() * scale
    return QRectF(
        area.x() + (area.width() - width) / 2,
        area.y() + (area.height() - height) / 2,
        width,
        height,
    )
