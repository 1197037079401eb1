"""History: thumbnails of this session's results and of the output folder, a viewer and the metadata.

The folder is scanned and the metadata read on the session's background thread; thumbnails
load one per event-loop turn, so a folder of thousands of images never freezes the window.
"""

from __future__ import annotations

from collections.abc import Callable
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

from studio.engine.images import IMAGE_SUFFIXES
from studio.engine.output import is_unsaved
from studio.engine.seeds import MAX_SEED
from studio.ui.worker import BackgroundTask

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


def scan_folder(folder: Path) -> list[Path]:
    """The folder's newest images, and those of its date subfolders (a picture library below
    stays unscanned). Runs on the background thread."""
    files = []
    for pattern in ("*", "*/*"):
        try:
            files += [p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES]
        except OSError:
            continue
    files.sort(key=_mtime, reverse=True)
    return files[:MAX_FOLDER_ITEMS]


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
    selected = Signal(Path)  # the image shown
    reuse_settings_requested = Signal(Path)
    reuse_seed_requested = Signal("qlonglong")  # seeds exceed a C int
    send_to_canvas_requested = Signal(Path)
    save_as_requested = Signal(Path)
    copy_requested = Signal(Path)
    metadata_shown = Signal(Path)  # the metadata panel now describes this image

    def __init__(
        self, run_in_background: Callable[[BackgroundTask], None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._background = run_in_background
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
        self._scanning = False
        self._timer = QTimer(self, interval=0)
        self._timer.timeout.connect(self._load_one)
        self._set_actions_enabled(False)

    # ---- content ---------------------------------------------------------------------------
    def paths(self) -> list[Path]:
        return [self._path(self.list.item(i)) for i in range(self.list.count())]

    def unsaved_paths(self) -> list[Path]:
        """The images listed whose save failed, kept in the temp folder."""
        return [p for p in self.paths() if is_unsaved(p)]

    def add_image(self, path: Path, at_top: bool = True) -> QListWidgetItem:
        item = QListWidgetItem(QIcon(load_thumbnail(path)), "")
        item.setData(PATH_ROLE, str(path))
        item.setToolTip(path.name)
        if is_unsaved(path):  # its save failed: kept in the temp folder until "Save as…"
            item.setText("unsaved")
            item.setToolTip(f"Not saved in the output folder: use Save as… to keep it ({path})")
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
        """Scan the folder off the UI thread, then thumbnail its newest images after this
        session's results."""
        self._pending.clear()
        self._scanning = True
        self._background(
            BackgroundTask(
                "gallery:scan", lambda: scan_folder(folder), self._scanned, self._no_scan
            )
        )

    def _scanned(self, files: list[Path]) -> None:
        self._scanning = False
        known = set(self.paths())
        self._pending = [p for p in files if p not in known]
        if self._pending:
            self._timer.start()

    def _no_scan(self, _error: str) -> None:
        self._scanning = False

    def is_loading(self) -> bool:
        return self._scanning or bool(self._pending)

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
        self._set_actions_enabled(True)
        self.reuse_settings.setEnabled(False)
        self.reuse_seed.setEnabled(False)
        self.metadata.setPlainText("Reading the settings…")
        self._background(
            BackgroundTask(
                "gallery:metadata",
                lambda: metadata_text(path),
                lambda found: self._show_metadata(path, *found),
            )
        )

    def _show_metadata(self, path: Path, text: str, result: Any) -> None:
        if path != self.current_path():
            return  # the selection moved on while this was read
        self.metadata.setPlainText(text)
        seed = result.image_seed if result is not None else None
        if result is not None and seed is None:
            seed = result.request.seed
        self._seed = seed if seed is not None and 0 <= seed <= MAX_SEED else None
        self.reuse_settings.setEnabled(result is not None)
        self.reuse_seed.setEnabled(self._seed is not None)
        self.metadata_shown.emit(path)

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
