"""A small plot of the active schedule's log-SNR over the training timesteps (QPainter only).

The curve is log(ᾱ_t / (1 − ᾱ_t)); dots mark the timesteps the sampler visits and the current
step is drawn larger, so a person sees where on the noise schedule the preview comes from.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

MARGIN_LEFT = 34.0
MARGIN = 8.0


class SchedulePlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "log-SNR of the schedule over the training timesteps t.\n"
            "Dots: the timesteps this sampler visits; the large dot is the current step."
        )
        self._t: np.ndarray | None = None
        self._log_snr: np.ndarray | None = None
        self._visits: np.ndarray = np.zeros(0)
        self._step = 0  # 1-based step just finished; 0 = not started

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(240, 110)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(120, 80)

    def set_curve(self, curve: object) -> None:
        """Take a studio.engine.samplers.ScheduleCurve."""
        self._t = np.asarray(curve.train_timesteps, dtype=np.float64)
        self._log_snr = np.asarray(curve.log_snr, dtype=np.float64)
        self._visits = np.asarray(curve.sampling_timesteps, dtype=np.float64)
        self._step = 0
        self.update()

    def set_step(self, step: int) -> None:
        self._step = step
        self.update()

    def current_timestep(self) -> float | None:
        if not 0 < self._step <= len(self._visits):
            return None
        return float(self._visits[self._step - 1])

    def log_snr_at(self, t: float) -> float:
        assert self._t is not None and self._log_snr is not None
        return float(np.interp(t, self._t, self._log_snr))

    # ---- drawing ---------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        area = QRectF(
            MARGIN_LEFT,
            MARGIN,
            self.width() - MARGIN_LEFT - MARGIN,
            self.height() - 2 * MARGIN - 10,
        )
        text_pen = QPen(pal.text().color())
        p.setPen(text_pen)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        p.setFont(font)
        if self._t is None or self._log_snr is None or len(self._t) < 2:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "log-SNR: no schedule yet")
            return
        lo, hi = float(self._log_snr.min()), float(self._log_snr.max())
        lo, hi = max(lo, -20.0), min(hi, 20.0)  # zero-terminal SNR would stretch the axis
        if hi - lo < 1e-6:
            hi = lo + 1.0
        t_max = float(self._t[-1]) or 1.0

        def point(t: float, y: float) -> QPointF:
            y = min(max(y, lo), hi)
            return QPointF(
                area.left() + area.width() * t / t_max,
                area.bottom() - area.height() * (y - lo) / (hi - lo),
            )

        # axes and labels
        p.setPen(QPen(pal.mid().color()))
        p.drawRect(area)
        p.setPen(text_pen)
        p.drawText(
            QRectF(0, area.top() - 4, MARGIN_LEFT - 3, 12), Qt.AlignmentFlag.AlignRight, f"{hi:.0f}"
        )
        p.drawText(
            QRectF(0, area.bottom() - 8, MARGIN_LEFT - 3, 12),
            Qt.AlignmentFlag.AlignRight,
            f"{lo:.0f}",
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 1, area.width(), 12),
            Qt.AlignmentFlag.AlignLeft,
            "t=0",
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 1, area.width(), 12),
            Qt.AlignmentFlag.AlignHCenter,
            "log-SNR",
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 1, area.width(), 12),
            Qt.AlignmentFlag.AlignRight,
            f"t={int(t_max)}",
        )
        # the curve
        path = QPainterPath(point(self._t[0], self._log_snr[0]))
        stride = max(1, len(self._t) // 200)  # 200 points are plenty for a 240 px plot
        for t, y in zip(self._t[::stride], self._log_snr[::stride], strict=True):
            path.lineTo(point(t, y))
        accent = pal.highlight().color()
        p.setPen(QPen(accent, 1.5))
        p.drawPath(path)
        # the timesteps the sampler visits, and the current one
        p.setPen(Qt.PenStyle.NoPen)
        done = QColor(accent)
        todo = QColor(pal.mid().color())
        for i, t in enumerate(self._visits):
            p.setBrush(done if i < self._step else todo)
            p.drawEllipse(point(t, self.log_snr_at(t)), 2.2, 2.2)
        current = self.current_timestep()
        if current is not None:
            p.setBrush(QColor(220, 60, 40))
            p.drawEllipse(point(current, self.log_snr_at(current)), 4.5, 4.5)
