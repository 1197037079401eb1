"""The ControlNet panel: one ControlUnit widget per unit of the session's ControlList.

Maps are made by the session on its background thread; this panel only shows the units.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from studio.ui.control_state import MAX_UNITS, ControlList
from studio.ui.control_unit import ControlUnit


class ControlPanel(QWidget):
    def __init__(self, units: ControlList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = units
        self._widgets: list[ControlUnit] = []
        self.add_button = QPushButton("Add unit")
        self.add_button.setToolTip("Add another ControlNet (several steer together)")
        self.add_button.clicked.connect(units.add)
        self._units_layout = QVBoxLayout()
        self._units_layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._units_layout)
        layout.addLayout(buttons)
        layout.addStretch(1)
        units.units_changed.connect(self._sync)
        self._sync()

    def units(self) -> list[ControlUnit]:
        return list(self._widgets)

    def _sync(self) -> None:
        """Keep a widget for each unit, in order; widgets of removed units go."""
        wanted = self.model.units()
        by_unit = {w.unit: w for w in self._widgets}
        for widget in self._widgets:
            if widget.unit not in wanted:
                self._units_layout.removeWidget(widget)
                widget.deleteLater()
        self._widgets = [by_unit.get(u) or ControlUnit(u, self.model) for u in wanted]
        for index, widget in enumerate(self._widgets):
            self._units_layout.insertWidget(index, widget)
        self.add_button.setEnabled(len(wanted) < MAX_UNITS)
        for widget in self._widgets:
            widget.remove_button.setEnabled(len(wanted) > 1)
