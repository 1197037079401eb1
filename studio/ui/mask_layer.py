"""The inpainting mask of one image: a Grayscale8 QImage (255 = repaint) painted in image pixels,
a coloured overlay kept in step with it rect by rect, and an undo stack of mask edits.

Only the rectangle a stroke touches is redrawn in the overlay and stored for undo, so painting
on a large image costs the size of the brush, not the size of the image.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QUndoCommand, QUndoStack

MASK_FORMAT = QImage.Format.Format_Grayscale8
OVERLAY_COLOR = QColor(255, 48, 96)


class MaskEdit(QUndoCommand):
    """One edit of the mask: the pixels of `rect` before and after it."""

    def __init__(self, layer: MaskLayer, rect: QRect, before: QImage, after: QImage, text: str):
        super().__init__(text)
        self._layer, self._rect, self._before, self._after = layer, QRect(rect), before, after

    def redo(self) -> None:
        self._layer.put(self._rect, self._after)

    def undo(self) -> None:
        self._layer.put(self._rect, self._before)


class MaskLayer(QObject):
    # a region of the mask changed (image pixels): repaint it
    region_changed = Signal(QRect)
    # an edit was committed, undone or redone
    edited = Signal()

    def __init__(self, width: int, height: int, parent: QObject | None = None):
        super().__init__(parent)
        self.mask = QImage(width, height, MASK_FORMAT)
        self.mask.fill(0)
        self.overlay = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
        self.overlay.fill(Qt.GlobalColor.transparent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(self.edited)
        self._before: QImage | None = None
        self._stroke_rect = QRect()
        self._pen = QPen()
        self._last = QPointF()

    def rect(self) -> QRect:
        return self.mask.rect()

    # ---- strokes --------------------------------------------------------------------
    def begin_stroke(self, point: QPointF, diameter: float, erase: bool) -> None:
        self._before = self.mask.copy()
        self._stroke_rect = QRect()
        color = QColor(0, 0, 0) if erase else QColor(255, 255, 255)
        self._pen = QPen(
            color,
            max(1.0, diameter),
            Qt.PenStyle.SolidLine,
            Qt.PenCapStyle.RoundCap,
            Qt.PenJoinStyle.RoundJoin,
        )
        self._last = QPointF(point)
        self._draw(point, point)

    def extend_stroke(self, point: QPointF) -> None:
        if self._before is None:
            return
        self._draw(self._last, point)
        self._last = QPointF(point)

    def end_stroke(self, text: str = "Stroke") -> bool:
        """Commit the stroke as one undo step; False when it changed nothing."""
        before, rect = self._before, self._stroke_rect.intersected(self.rect())
        self._before = None
        if before is None or rect.isEmpty():
            return False
        old, new = before.copy(rect), self.mask.copy(rect)
        if old == new:
            return False
        self.undo_stack.push(MaskEdit(self, rect, old, new, text))
        return True

    def is_stroking(self) -> bool:
        return self._before is not None

    def _draw(self, start: QPointF, end: QPointF) -> None:
        painter = QPainter(self.mask)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(self._pen)
        if start == end:
            painter.drawPoint(start)  # a round-capped point is a disc
        else:
            painter.drawLine(start, end)
        painter.end()
        pad = self._pen.widthF() / 2 + 2
        dirty = QRectF(start, end).normalized().adjusted(-pad, -pad, pad, pad).toAlignedRect()
        dirty = dirty.intersected(self.rect())
        self._stroke_rect = self._stroke_rect.united(dirty)
        self._refresh(dirty)

    # ---- whole-mask edits (undoable) --------------------------------------------------
    def replace(self, new_mask: QImage, text: str) -> bool:
        if new_mask.size() != self.mask.size():
            raise ValueError(
                f"The mask is {new_mask.width()}x{new_mask.height()} but the image is "
                f"{self.mask.width()}x{self.mask.height()}; they must be the same size."
            )
        new_mask = new_mask.convertToFormat(MASK_FORMAT)
        if new_mask == self.mask:
            return False
        self.undo_stack.push(MaskEdit(self, self.rect(), self.mask.copy(), new_mask, text))
        return True

    def clear(self) -> bool:
        empty = QImage(self.mask.size(), MASK_FORMAT)
        empty.fill(0)
        return self.replace(empty, "Clear mask")

    def invert(self) -> bool:
        inverted = self.mask.copy()
        inverted.invertPixels()
        return self.replace(inverted, "Invert mask")

    # ---- used by undo commands --------------------------------------------------------
    def put(self, rect: QRect, pixels: QImage) -> None:
        painter = QPainter(self.mask)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(rect.topLeft(), pixels)
        painter.end()
        self._refresh(rect)

    def _refresh(self, rect: QRect) -> None:
        if rect.isEmpty():
            return
        # overlay = colour with the mask as alpha; Alpha8 reads the same bytes as alpha
        alpha = self.mask.copy(rect)
        alpha.reinterpretAsFormat(QImage.Format.Format_Alpha8)
        painter = QPainter(self.overlay)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.fillRect(rect, OVERLAY_COLOR)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
        painter.drawImage(rect.topLeft(), alpha)
        painter.end()
        self.region_changed.emit(QRect(rect))
