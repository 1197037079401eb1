"""A horizontal slider over a list of float values, with the value shown beside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


class ValueSlider(QWidget):
    value_changed = Signal(float)

    def __init__(
        self,
        values: Sequence[float],
        value: float,
        text: Callable[[float], str] = lambda v: f"{v:g}",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._values = list(values)
        self._text = text
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, len(self._values) - 1)
        self.label = QLabel()
        self.label.setMinimumWidth(38)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self.set_value(value)
        self._moved(self.slider.value())

    def value(self) -> float:
        return self._values[self.slider.value()]

    def set_value(self, value: float) -> None:
        """Move to the offered value nearest to `value`."""
        nearest = min(range(len(self._values)), key=lambda i: abs(self._values[i] - value))
        self.slider.setValue(nearest)

    def _moved(self, index: int) -> None:
        self.label.setText(self._text(self._values[index]))
        self.value_changed.emit(self._values[index])


def fractions(lo: float, hi: float, step: float) -> list[float]:
    """lo, lo + step, ..., hi, rounded so that 0.35 is 0.35."""
    return [round(lo + i * step, 4) for i in range(round((hi - lo) / step) + 1)]
