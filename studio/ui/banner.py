"""An inline message strip above the canvas: errors and reports, never a modal box to click away."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

STYLES = {
    "error": "background: #f8d7d3; color: #5c1710; border: 1px solid #d04030; padding: 6px;",
    "info": "background: #dcebf7; color: #123a5c; border: 1px solid #5b8fc0; padding: 6px;",
}


class Banner(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # file names may hold "<"
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton()
        self.action.hide()
        self.action.clicked.connect(self._act)
        close = QToolButton(text="✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.kind = ""
        self._callback: Callable[[], object] | None = None
        self.hide()

    def show_message(
        self, text: str, kind: str = "error", action: tuple[str, Callable[[], object]] | None = None
    ) -> None:
        """Show `text`; `action` adds one button (label, callback) that also dismisses it."""
        self.kind = kind
        self.label.setText(text)
        self.label.setStyleSheet(STYLES[kind])
        self._callback = action[1] if action else None
        self.action.setText(action[0] if action else "")
        self.action.setVisible(action is not None)
        self.show()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()

    def _act(self) -> None:
        callback = self._callback
        self.hide()
        if callback is not None:
            callback()
