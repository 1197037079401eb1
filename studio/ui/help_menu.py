"""Help → Keyboard shortcuts, Help → About, and the first-run hint with example prompts.

`install_help(window)` adds all three to a main window (app.py calls it), so the window's own
module keeps to layout and bindings.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import __version__

# three scenes the demo model was trained on (its captions' words only)
EXAMPLE_PROMPTS = (
    "a big red circle on a blue background",
    "a small yellow star at the top and a large green square at the bottom",
    "a white stick figure waving on a black background",
)


def shortcuts(window: QWidget) -> list[tuple[str, str]]:
    """(action, keys) for every action with a shortcut, menus' and canvas's, in window order."""
    seen: dict[str, str] = {}
    for action in window.findChildren(QAction):
        keys = [
            k.toString(QKeySequence.SequenceFormat.NativeText)
            for k in action.shortcuts()
            if not k.isEmpty()
        ]
        text = action.text().replace("&", "").rstrip("…").strip()
        if keys and text and text not in seen:
            seen[text] = ", ".join(keys)
    return list(seen.items())


def versions() -> list[tuple[str, str]]:
    def v(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    from PySide6 import __version__ as pyside
    from PySide6.QtCore import qVersion

    return [
        ("Diffusion Studio", __version__),
        ("Python", f"{platform.python_version()} ({sys.platform})"),
        ("Qt / PySide6", f"{qVersion()} / {pyside}"),
        ("torch", v("torch")),
        ("diffusers", v("diffusers")),
        ("transformers", v("transformers")),
    ]


def device_text(session: Any) -> str:
    loaded = session.loaded_model
    if loaded is None:
        return "the model is still loading"
    return f"{loaded.device} ({loaded.dtype}), model: {loaded.info.name}"


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcuts(window)
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (text, keys) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(text))
            self.table.setItem(i, 1, QTableWidgetItem(keys))
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(460, 520)


def about_text(window: Any) -> str:
    rows = versions() + [("Device", device_text(window.session))]
    return "\n".join(f"{name}: {value}" for name, value in rows)


class FirstRunHint(QWidget):
    """Over the prompt: what to try first on the demo model; a click puts the prompt in."""

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("first_run_hint")
        intro = QLabel(
            "Welcome! The demo model draws simple shapes and stick figures. "
            "Click an example, then Generate (Ctrl+Enter):"
        )
        intro.setWordWrap(True)
        close = QToolButton(text="✕", toolTip="Hide this hint")
        close.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.addWidget(intro, 1)
        top.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        self.examples: list[QLabel] = []
        for prompt in EXAMPLE_PROMPTS:
            link = QLabel(f'<a href="{prompt}">{prompt}</a>')
            link.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
            link.setWordWrap(True)
            link.linkActivated.connect(self.use)
            layout.addWidget(link)
            self.examples.append(link)

    def use(self, prompt: str) -> None:
        self.session.state.prompt = prompt
        self.hide()


def is_first_run(window: Any) -> bool:
    from studio.engine.request import DEMO_MODEL_REF

    session = window.session
    return not session.settings_file.exists() and session.state.model == DEMO_MODEL_REF


def install_help(window: Any) -> None:
    menu = window.menuBar().addMenu("&Help")
    shortcuts_action = QAction("Keyboard shortcuts", window)
    shortcuts_action.setShortcut(QKeySequence("Ctrl+/"))
    shortcuts_action.triggered.connect(lambda: ShortcutsDialog(window).exec())
    menu.addAction(shortcuts_action)
    about = QAction("About Diffusion Studio", window)
    about.triggered.connect(
        lambda: QMessageBox.about(window, "About Diffusion Studio", about_text(window))
    )
    menu.addAction(about)
    window.help_menu = menu
    window.first_run_hint = None
    if is_first_run(window):
        hint = FirstRunHint(window.session)
        window.prompts.layout().insertWidget(0, hint)
        window.first_run_hint = hint
    from studio.ui.demo_words import install_demo_words

    install_demo_words(window)
