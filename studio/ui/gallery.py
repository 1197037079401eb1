"""History: thumbnails of this session's results and of the output folder, a viewer and the metadata.

Thumbnails of the folder load one per event-loop turn, so a folder of thousands of images never
freezes the window. The metadata comes from studio.engine.metadata.read_settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
THUMB = 96
MAX_FOLDER_ITEMS = 300  # the newest files; older ones stay on disk, out of the list
PATH_ROLE = Qt.ItemDataRole.UserRole


def load_thumbnail(path: Path, size: int = THUMB) -> QPixmap:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and max(full.width(), full.height()) > size:
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return QPixmap.fromImage(image) if not image.isNull() else QPixmap()


def metadata_text(path: Path) -> tuple[str, Any]:
    """The text shown in the metadata panel, and the ReadResult (None when unreadable)."""
    from studio.engine.metadata import read_settings

    try:
        result = read_settings(path)
    except Exception as exc:  # any file can be dropped here; none may crash the window
        return f"No settings could be read: {exc}", None
    if result.request is None:
        return "\n".join(["No generation settings in this image.", *result.warnings]), None
    lines = []
    if result.raw_parameters:
        lines.append(result.raw_parameters.strip())
    else:
        r = result.request
        lines.append(r.prompt)
        if r.negative_prompt:
            lines.append(f"Negative prompt: {r.negative_prompt}")
        lines.append(
            f"Steps: {r.steps}, Sampler: {r.sampler}, CFG scale: {r.cfg_scale}, Seed: {r.seed}, "
            f"Size: {r.width}x{r.height}, Model: {r.model}"
        )
    lines.append(f"\nSource: {result.source}")
    if result.unmapped:
        lines.append("Not used: " + ", ".join(f"{k}: {v}" for k, v in result.unmapped.items()))
    lines.extend(f"Note: {w}" for w in result.warnings)
    return "\n".join(lines), result


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted meanwhile
        return 0.0


class ImageLabel(QLabel):
    """Shows a pixmap scaled to fit, rescaled whenever the label is resized."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self._pixmap = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(64, 64)
        # the pixmap follows the label's size, never the other way round
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._rescale()

    def resizeEvent(self, event: object) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap.isNull():
            return
        mode = (
            Qt.TransformationMode.FastTransformation  # small images stay crisp pixels
            if self._pixmap.width() * 2 <= self.width()
            else Qt.TransformationMode.SmoothTransformation
        )
        self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio, mode))


class Gallery(QWidget):
    selected = Signal(object)  # Path of the image shown
    reuse_settings_requested = Signal(object)  # Path
    reuse_seed_requested = Signal(object)  # int; seeds exceed a C int
    send_to_canvas_requested = Signal(object)  # Path
    save_as_requested = Signal(object)  # Path
    copy_requested = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 10, THUMB + 10))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(
            lambda item: self.send_to_canvas_requested.emit(self._path(item))
        )

        self.viewer = ImageLabel("Click a thumbnail to see it here")
        self.viewer.setMinimumHeight(120)
        self.metadata = QPlainTextEdit(readOnly=True)
        self.metadata.setPlaceholderText("Settings stored in the image")

        self.reuse_settings = QPushButton("Reuse settings")
        self.reuse_seed = QPushButton("Reuse seed")
        self.to_canvas = QPushButton("Send to canvas")
        self.open_folder = QPushButton("Open folder")
        self.save_as = QPushButton("Save as…")
        self.copy = QPushButton("Copy")
        self.reuse_settings.clicked.connect(lambda: self._emit_path(self.reuse_settings_requested))
        self.reuse_seed.clicked.connect(self._reuse_seed)
        self.to_canvas.clicked.connect(lambda: self._emit_path(self.send_to_canvas_requested))
        self.open_folder.clicked.connect(self._open_folder)
        self.save_as.clicked.connect(lambda: self._emit_path(self.save_as_requested))
        self.copy.clicked.connect(lambda: self._emit_path(self.copy_requested))
        buttons = QGridLayout()
        for i, b in enumerate(
            (
                self.reuse_settings,
                self.reuse_seed,
                self.to_canvas,
                self.open_folder,
                self.save_as,
                self.copy,
            )
        ):
            buttons.addWidget(b, i // 2, i % 2)

        details = QWidget()
        dl = QVBoxLayout(details)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.viewer, 3)
        dl.addLayout(buttons)
        dl.addWidget(self.metadata, 2)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.list)
        split.addWidget(details)
        split.setSizes([170, 490])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self._seed: int | None = None
        self._pending: list[Path] = []  # folder files whose thumbnails are still to load
        self._timer = QTimer(self, interval=0)
        self._timer.timeout.connect(self._load_one)
        self._set_actions_enabled(False)

    # ---- content ---------------------------------------------------------------------------
    def paths(self) -> list[Path]:
        return [self._path(self.list.item(i)) for i in range(self.list.count())]

    def add_image(self, path: Path, at_top: bool = True) -> QListWidgetItem:
        item = QListWidgetItem(QIcon(load_thumbnail(path)), "")
        item.setData(PATH_ROLE, str(path))
        item.setToolTip(path.name)
        if at_top:
            self.list.insertItem(0, item)
        else:
            self.list.addItem(item)
        return item

    def add_results(self, paths: list[Path]) -> None:
        """This session's new images go first and the newest is selected."""
        known = set(self.paths())
        for path in paths:
            if path in known:
                continue
            self.add_image(path)
        if paths:
            self.list.setCurrentRow(0)

    def load_folder(self, folder: Path) -> None:
        """Queue the folder's newest images for thumbnailing, after this session's results."""
        self._pending.clear()
        files = []
        # the folder and its date subfolders; a whole picture library below stays unscanned
        for pattern in ("*", "*/*"):
            try:
                files += [p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES]
            except OSError:
                continue
        files.sort(key=_mtime, reverse=True)
        known = set(self.paths())
        self._pending = [p for p in files[:MAX_FOLDER_ITEMS] if p not in known]
        if self._pending:
            self._timer.start()

    def is_loading(self) -> bool:
        return bool(self._pending)

    def _load_one(self) -> None:
        if not self._pending:
            self._timer.stop()
            return
        path = self._pending.pop(0)
        if path.is_file() and path not in set(self.paths()):
            self.add_image(path, at_top=False)

    # ---- selection -------------------------------------------------------------------------
    def current_path(self) -> Path | None:
        item = self.list.currentItem()
        return self._path(item) if item is not None else None

    def select(self, path: Path) -> None:
        for i in range(self.list.count()):
            if self._path(self.list.item(i)) == path:
                self.list.setCurrentRow(i)
                return

    def _current_changed(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        if item is None:
            self._set_actions_enabled(False)
            return
        path = self._path(item)
        self._show(path)
        self.selected.emit(path)

    def _show(self, path: Path) -> None:
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            self.viewer.set_image(QPixmap())
            self.viewer.setText(f"Cannot show {path.name}")
        else:
            self.viewer.set_image(pixmap)
        text, result = metadata_text(path)
        self.metadata.setPlainText(text)
        self._seed = result.image_seed if result is not None else None
        if result is not None and self._seed is None:
            self._seed = result.request.seed
        self._set_actions_enabled(True)
        self.reuse_settings.setEnabled(result is not None)
        self.reuse_seed.setEnabled(self._seed is not None)

    def _set_actions_enabled(self, enabled: bool) -> None:
        for b in (
            self.reuse_settings,
            self.reuse_seed,
            self.to_canvas,
            self.open_folder,
            self.save_as,
            self.copy,
        ):
            b.setEnabled(enabled)

    # ---- actions ---------------------------------------------------------------------------
    def _emit_path(self, signal: Any) -> None:
        path = self.current_path()
        if path is not None:
            signal.emit(path)

    def _reuse_seed(self) -> None:
        if self._seed is not None:
            self.reuse_seed_requested.emit(self._seed)

    def _open_folder(self) -> None:
        path = self.current_path()
        if path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    @staticmethod
    def _path(item: QListWidgetItem) -> Path:
        return Path(item.data(PATH_ROLE))
