"""The main window: prompt and parameters on the left, the canvas in the middle, history on the right.

Layout, menus and bindings only: the session (studio.ui.session) builds and checks requests, runs
the queue and the workers, and restores settings; the window binds widgets to it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.engine.images import is_image_path, open_dialog_filter
from studio.ui.banner import Banner
from studio.ui.canvas import CanvasPanel
from studio.ui.control_panel import ControlPanel
from studio.ui.gallery import Gallery
from studio.ui.insight_strip import InsightStrip
from studio.ui.jobs import Job
from studio.ui.library_panel import add_library_dock
from studio.ui.params_panel import ParamsPanel
from studio.ui.prompt_panel import PromptPanel
from studio.ui.properties import bind
from studio.ui.queue_view import QueueView
from studio.ui.session import Notice, Session
from studio.ui.settings_dialog import SettingsDialog
from studio.ui.status_bar import StudioStatusBar
from studio.ui.worker import LoadedModel


class MainWindow(QMainWindow):
    def __init__(
        self,
        config_dir: Path | None = None,
        output_dir: Path | None = None,
        device: str | None = None,
        model: str | None = None,
        start_worker: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Diffusion Studio")
        self.setAcceptDrops(True)
        self.session = Session(config_dir, output_dir, device, model, parent=self)
        self._build_ui()
        self._build_menus()
        self._bind()
        self._restore_geometry()
        # after the first paint: scanning a big folder must not delay the window
        QTimer.singleShot(0, self, lambda: self.gallery.load_folder(self.session.output_dir()))
        if start_worker:
            self.session.start()

    # ---- layout --------------------------------------------------------------------------
    def _build_ui(self) -> None:
        session = self.session
        self.prompts = PromptPanel()
        self.params = ParamsPanel(session)
        self.queue_view = QueueView(session)
        # parameters and ControlNet units share one tab area under the prompts
        self.controls = ControlPanel(session.controls)
        self.tabs = QTabWidget()
        self.tabs.addTab(_scrolled(self.params), "Parameters")
        self.tabs.addTab(_scrolled(self.controls), "ControlNet")
        left = QWidget()
        left.setMinimumWidth(320)
        ll = QVBoxLayout(left)
        ll.addWidget(self.prompts, 2)
        ll.addWidget(self.tabs, 3)
        ll.addWidget(self.queue_view)

        # centre: banner, canvas, and the diffusion-insight strip under it
        self.banner = Banner()
        self.canvas = CanvasPanel()
        self.insight = InsightStrip(self.session)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.banner)
        cl.addWidget(self.canvas, 1)
        cl.addWidget(self.insight)

        self.gallery = Gallery(session.run_in_background)
        self.gallery.setMinimumWidth(240)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(centre)
        split.addWidget(self.gallery)
        split.setStretchFactor(1, 1)
        split.setSizes([340, 640, 280])
        self.splitter = split
        self.setCentralWidget(split)
        self.status = StudioStatusBar(session)
        self.setStatusBar(self.status)
        self.resize(1320, 860)

    def _build_menus(self) -> None:
        def action(menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        s = self.session
        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "Open image…", self._open_image, QKeySequence.StandardKey.Open)
        action(file_menu, "Restore settings from image…", self._restore_dialog)
        action(file_menu, "Save image as…", self.save_as_dialog, QKeySequence.StandardKey.Save)
        action(file_menu, "Copy image", self.copy_image, "Ctrl+Shift+C")
        action(file_menu, "Open output folder", self._open_output_folder)
        file_menu.addSeparator()
        action(file_menu, "Settings…", self.open_settings, "Ctrl+,")
        file_menu.addSeparator()
        action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)

        gen = self.menuBar().addMenu("&Generate")
        action(gen, "Generate", s.generate, "Ctrl+Return")
        QShortcut(QKeySequence("Ctrl+Enter"), self, activated=s.generate)  # the keypad's Enter
        action(gen, "Cancel", s.cancel, "Esc")
        remove = action(
            gen,
            "Remove queued job",
            self.queue_view.remove_selected,
            QKeySequence.StandardKey.Delete,
        )
        # Delete belongs to the text fields everywhere else
        remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.queue_view.queue_list.addAction(remove)
        action(gen, "Random seed", lambda: setattr(s.state, "seed", -1), "Ctrl+R")
        action(gen, "Reuse last seed", s.reuse_last_seed, "Ctrl+Shift+R")
        self.library = add_library_dock(self, s)  # a dock, with its toggle in a View menu

    def _bind(self) -> None:
        s, state, canvas = self.session, self.session.state, self.canvas
        bind(state, "prompt", self.prompts.prompt.edit)
        bind(state, "negative_prompt", self.prompts.negative.edit)
        bind(state, "mask_blur", canvas.feather_spin)
        bind(state, "inpaint_only_masked", canvas.only_masked_box)
        s.attach_canvas(canvas)

        canvas.send_to_img2img_requested.connect(lambda: s.send_canvas_to("img2img"))
        canvas.send_to_inpaint_requested.connect(lambda: s.send_canvas_to("inpaint"))
        canvas.user_image_changed.connect(s.user_changed_canvas)
        canvas.image_opened.connect(s.offer_restore)
        canvas.message.connect(lambda text: self.status.showMessage(text, 5000))
        s.preview_ready.connect(lambda update: canvas.show_preview(update.preview))
        s.result_ready.connect(self._show_result)
        s.job_done.connect(lambda _job: canvas.clear_preview())
        s.error_changed.connect(self._show_error)
        s.notice_changed.connect(self._show_notice)
        s.loaded_model_changed.connect(self._model_loaded)
        s.output_dir_changed.connect(self.gallery.load_folder)
        self._show_error(s.error)

        g = self.gallery
        g.reuse_settings_requested.connect(s.restore_from_file)
        g.reuse_seed_requested.connect(lambda seed: setattr(state, "seed", seed))
        g.send_to_canvas_requested.connect(self.open_image)
        g.save_as_requested.connect(self.save_as_dialog)
        g.copy_requested.connect(self.copy_image)
        self.params.add_model_requested.connect(self._add_model_dialog)

    # ---- what the session reports ----------------------------------------------------------
    def _show_result(self, job: Job) -> None:
        if job.result.images:
            self.canvas.set_image(job.result.images[0])
        self.gallery.add_results(list(job.paths))

    def _show_error(self, text: str) -> None:
        if text:
            self.banner.show_message(text, "error")
        elif self.banner.kind == "error":
            self.banner.hide()

    def _show_notice(self, notice: Notice | None) -> None:
        if notice is None:
            return
        action = None
        if notice.action_label:
            action = (notice.action_label, lambda: self.session.accept_notice(notice))
        self.banner.show_message(notice.text, "info", action)

    def _model_loaded(self, loaded: LoadedModel | None) -> None:
        self.prompts.set_tokenizer(loaded.tokenizer if loaded is not None else None)
        if loaded is not None:
            self.setWindowTitle(f"Diffusion Studio — {loaded.info.name}")

    # ---- files: open, restore, save, copy --------------------------------------------------
    def _add_model_dialog(self, kind: str) -> None:
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(
                self, "A diffusers model folder (with model_index.json)"
            )
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "A model file", "", "Safetensors (*.safetensors)"
            )
        if path:
            self.session.load_model(path)

    def _restore_dialog(self) -> None:
        title = "Restore settings from an image"
        path, _ = QFileDialog.getOpenFileName(self, title, "", open_dialog_filter())
        if path:
            self.session.restore_from_file(path)

    def _open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", open_dialog_filter())
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        try:
            self.canvas.load_file(path)
        except ValueError as exc:
            self.session.error = str(exc)
            return False
        return True

    def save_as_dialog(self, path: Path | None = None) -> None:
        source = Path(path) if path else self.gallery.current_path()
        if source is None:
            self.session.error = "Nothing to save yet: select an image in the history."
            return
        target, _ = QFileDialog.getSaveFileName(
            self,
            "Save image as",
            str(self.session.output_dir() / source.stem),
            "PNG (*.png);;JPEG (*.jpg);;WebP (*.webp)",
        )
        if target:
            self.save_as(source, Path(target))

    def save_as(self, source: Path, target: Path) -> Path | None:
        """Copy an image to another file and format, carrying its settings along."""
        from studio.ui.export import export_image

        try:
            out = export_image(source, target)
        except (ValueError, OSError) as exc:
            self.session.error = f"Could not save {target.name}: {exc}"
            return None
        self.status.showMessage(f"Saved {out}", 5000)
        return out

    def copy_image(self, path: Path | None = None) -> bool:
        source = Path(path) if path else self.gallery.current_path()
        image = QImage(str(source)) if source else QImage()
        if image.isNull():
            current = self.canvas.image()
            if current is None:
                return False
            from studio.ui.images import pil_to_qimage

            image = pil_to_qimage(current)
        QApplication.clipboard().setImage(image)
        self.status.showMessage("Image copied to the clipboard", 3000)
        return True

    def _open_output_folder(self) -> None:
        folder = self.session.output_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ---- drag and drop: an image dropped on the window restores its settings -------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if _dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = _dropped_image(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.session.restore_from_file(path)

    # ---- settings and shutdown ----------------------------------------------------------------
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.session.settings, self.session.state, self)
        if dialog.exec():
            self.apply_settings_dialog(dialog)

    def apply_settings_dialog(self, dialog: SettingsDialog) -> None:
        dialog.apply_to(self.session.settings, self.session.state)
        self.session.apply_settings()
        self.session.set_output_dir(dialog.output_dir.text().strip())
        self.save_settings()

    def save_settings(self) -> None:
        geometry = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")
        state = base64.b64encode(bytes(self.saveState().data())).decode("ascii")
        self.session.save_settings(geometry, state)

    def _restore_geometry(self) -> None:
        s = self.session.settings
        try:
            if s.window_geometry:
                self.restoreGeometry(QByteArray(base64.b64decode(s.window_geometry)))
            if s.window_state:
                self.restoreState(QByteArray(base64.b64decode(s.window_state)))
        except ValueError:
            pass  # a damaged geometry string: the default size is fine

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.hide()  # the wait below may last one denoising step or the end of a load
        self.session.shutdown()
        event.accept()


def _scrolled(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll


def _dropped_image(mime: Any) -> Path | None:
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and is_image_path(url.toLocalFile()):
            return Path(url.toLocalFile())
    return None
