"""The main window: prompt and parameters on the left, the canvas in the middle, history on the right.

It builds requests from StudioState, hands them to the JobQueue, and shows what the worker
sends back. It never runs the engine itself, so it never blocks.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl, Signal
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
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio import settings as settings_io
from studio.engine.request import DEMO_MODEL_REF
from studio.ui.banner import Banner
from studio.ui.canvas import CanvasPanel
from studio.ui.control_panel import ControlPanel
from studio.ui.gallery import IMAGE_SUFFIXES, Gallery
from studio.ui.jobs import Job, JobQueue
from studio.ui.params_panel import ParamsPanel, model_label, round8
from studio.ui.prompt_panel import PromptPanel
from studio.ui.schedule_plot import SchedulePlot
from studio.ui.settings_dialog import SettingsDialog
from studio.ui.state import StudioState, bind
from studio.ui.worker import LoadedModel, WorkerThread

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    job_done = Signal(object)  # Job, after the window has shown its outcome
    preview_shown = Signal(object)  # the StepUpdate whose preview is on the canvas

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
        self.settings_file = settings_io.settings_path(config_dir)
        outcome = settings_io.load(self.settings_file)
        self.settings = outcome.settings
        if output_dir is not None:
            self.settings.output_dir = str(output_dir)

        self.state = StudioState(self)
        self.state.load_last(self.settings.last)
        if model:
            self.state.model = model
        self.state.preview_every = self.settings.preview_every
        self.state.preview_source = self.settings.preview_source
        self.queue = JobQueue(self)
        self.loaded: LoadedModel | None = None
        self._size_follows_model = False  # set when the user picks another model
        self._step_clock: tuple[int, float] | None = None  # (first step seen, its time)
        self._showing_result = False

        self._build_ui()
        for ref in self.settings.known_models:
            self.params.add_model(ref)
        self.params.add_model(self.state.model)
        self._build_menus()
        self._restore_geometry()

        self.worker = WorkerThread(device, initial_model=self.state.model, parent=self)
        self._connect()
        self.set_load_state(f"Loading {_model_name(self.state.model)}…")
        if outcome.corrupt_copy is not None or outcome.error:
            self.show_error(
                f"The settings file could not be read ({outcome.error}); using defaults. "
                f"The old file was kept as {outcome.corrupt_copy}."
            )
        # after the first paint: scanning a big folder must not delay the window
        QTimer.singleShot(0, self, lambda: self.gallery.load_folder(self.output_dir()))
        if start_worker:
            self.worker.start()

    # ---- layout --------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.prompts = PromptPanel()
        self.params = ParamsPanel(self.state)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.generate_button.setMinimumHeight(34)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running job (Esc)")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 3)
        buttons.addWidget(self.cancel_button, 1)

        self.queue_list = QListWidget()
        self.queue_list.setMaximumHeight(110)
        self.queue_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.queue_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.queue_list.setToolTip("Running and queued jobs; Delete removes a queued one")
        self.remove_button = QPushButton("Remove queued")
        self.remove_button.setEnabled(False)

        # parameters and ControlNet units share one tab area under the prompts
        self.controls = ControlPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(_scrolled(self.params), "Parameters")
        self.tabs.addTab(_scrolled(self.controls), "ControlNet")

        left = QWidget()
        left.setMinimumWidth(320)
        ll = QVBoxLayout(left)
        ll.addWidget(self.prompts, 2)
        ll.addWidget(self.tabs, 3)
        ll.addLayout(buttons)
        ll.addWidget(QLabel("Queue"))
        ll.addWidget(self.queue_list)
        ll.addWidget(self.remove_button)

        # centre: banner, canvas, and the diffusion-insight strip under it
        self.banner = Banner()
        self.canvas = CanvasPanel()
        self.preview_x0 = QRadioButton("x̂₀ (predicted clean image)")
        self.preview_xt = QRadioButton("xₜ (noisy latent)")
        self.preview_x0.setToolTip("Preview the model's current guess of the final image")
        self.preview_xt.setToolTip("Preview the noisy latent the sampler is holding at this step")
        group = QButtonGroup(self)
        group.addButton(self.preview_x0)
        group.addButton(self.preview_xt)
        (self.preview_x0 if self.state.preview_source == "x0" else self.preview_xt).setChecked(True)
        self.schedule_plot = SchedulePlot()
        self.schedule_plot.setFixedHeight(100)
        insight = QHBoxLayout()
        radios = QVBoxLayout()
        radios.addWidget(QLabel("Preview shows"))
        radios.addWidget(self.preview_x0)
        radios.addWidget(self.preview_xt)
        radios.addStretch(1)
        insight.addLayout(radios)
        insight.addWidget(self.schedule_plot, 1)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.banner)
        cl.addWidget(self.canvas, 1)
        cl.addLayout(insight)

        self.gallery = Gallery()
        self.gallery.setMinimumWidth(240)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(centre)
        split.addWidget(self.gallery)
        split.setStretchFactor(1, 1)
        split.setSizes([340, 640, 280])
        self.splitter = split
        self.setCentralWidget(split)

        # status bar: progress, then device, model, load state
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(210)  # "step 12/20, 3.4 it/s" on one line
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.device_label = QLabel("device: …")
        self.model_label = QLabel(f"model: {_model_name(self.state.model)}")
        self.load_label = QLabel()
        bar = self.statusBar()
        bar.addWidget(self.load_label, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.device_label)
        bar.addPermanentWidget(self.model_label)
        self.resize(1320, 860)

    def _build_menus(self) -> None:
        def action(menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "Open image…", self._open_image, QKeySequence.StandardKey.Open)
        action(file_menu, "Restore settings from image…", self._restore_dialog)
        self.save_action = action(
            file_menu, "Save image as…", self.save_as_dialog, QKeySequence.StandardKey.Save
        )
        self.copy_action = action(file_menu, "Copy image", self.copy_image, "Ctrl+Shift+C")
        action(file_menu, "Open output folder", self._open_output_folder)
        file_menu.addSeparator()
        action(file_menu, "Settings…", self.open_settings, "Ctrl+,")
        file_menu.addSeparator()
        action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)

        gen = self.menuBar().addMenu("&Generate")
        self.generate_action = action(gen, "Generate", self.generate, "Ctrl+Return")
        # Ctrl+Enter on the keypad too
        QShortcut(QKeySequence("Ctrl+Enter"), self, activated=self.generate)
        self.cancel_action = action(gen, "Cancel", self.cancel, "Esc")
        remove = action(
            gen, "Remove queued job", self.remove_selected, QKeySequence.StandardKey.Delete
        )
        # Delete belongs to the text fields everywhere else
        remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.queue_list.addAction(remove)
        action(gen, "Random seed", lambda: setattr(self.state, "seed", -1), "Ctrl+R")
        action(gen, "Reuse last seed", self.params.reuse_last_seed, "Ctrl+Shift+R")

    def _connect(self) -> None:
        s = self.state
        w = self.worker.worker
        # prompts are bound here: the panel is layout only
        bind(s, "prompt", self.prompts.prompt.edit)
        bind(s, "negative_prompt", self.prompts.negative.edit)
        self.preview_xt.toggled.connect(
            lambda on: setattr(s, "preview_source", "xt" if on else "x0")
        )
        s.preview_source_changed.connect(
            lambda v: (self.preview_xt if v == "xt" else self.preview_x0).setChecked(True)
        )
        s.model_changed.connect(self._model_chosen)
        self.params.add_model_requested.connect(self._add_model_dialog)

        self.generate_button.clicked.connect(self.generate)
        self.cancel_button.clicked.connect(self.cancel)
        self.remove_button.clicked.connect(self.remove_selected)
        self.queue_list.currentItemChanged.connect(self._queue_selection_changed)

        self.queue.start_requested.connect(self.worker.run)
        self.queue.changed.connect(self._refresh_queue)

        w.status.connect(self.set_load_state)
        w.model_loading.connect(lambda ref: self.set_load_state(f"Loading {_model_name(ref)}…"))
        w.model_loaded.connect(self._model_loaded)
        w.model_failed.connect(self._model_failed)
        w.ready.connect(self.queue.set_ready)
        w.job_started.connect(self._job_started)
        w.schedule.connect(lambda job, curve: self.schedule_plot.set_curve(curve))
        w.step.connect(self._step)
        w.finished.connect(self._finished)
        w.failed.connect(self._failed)

        self.controls.set_canvas_image_provider(self.canvas.image)
        self.controls.set_generation_size(s.width, s.height)
        s.width_changed.connect(lambda _: self.controls.set_generation_size(s.width, s.height))
        s.height_changed.connect(lambda _: self.controls.set_generation_size(s.width, s.height))

        self.canvas.send_to_img2img_requested.connect(lambda: self._send_to("img2img"))
        self.canvas.send_to_inpaint_requested.connect(lambda: self._send_to("inpaint"))
        self.canvas.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.canvas.image_opened.connect(self._offer_restore)
        self.canvas.image_changed.connect(self._canvas_image_changed)

        g = self.gallery
        g.reuse_settings_requested.connect(self.restore_from_file)
        g.reuse_seed_requested.connect(lambda seed: setattr(s, "seed", int(seed)))
        g.send_to_canvas_requested.connect(self._gallery_to_canvas)
        g.save_as_requested.connect(self.save_as_dialog)
        g.copy_requested.connect(self.copy_image)

    # ---- status ----------------------------------------------------------------------------
    def set_load_state(self, text: str) -> None:
        self.load_label.setText(text)

    def show_error(self, text: str) -> None:
        log.warning("%s", text)
        self.banner.show_message(text, "error")

    def show_info(self, text: str) -> None:
        self.banner.show_message(text, "info")

    def output_dir(self) -> Path:
        return self.settings.output_path()

    # ---- model -----------------------------------------------------------------------------
    def _model_chosen(self, ref: str) -> None:
        if self.loaded is not None and self.loaded.ref == ref:
            return
        self._size_follows_model = True
        self.model_label.setText(f"model: {_model_name(ref)}")
        self.worker.load_model(ref)

    def _model_loaded(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        info = loaded.info
        self.device_label.setText(f"{loaded.device} · {loaded.dtype}")
        self.model_label.setText(f"model: {info.name} ({info.family}, {info.native_size}px)")
        self.set_load_state(
            f"{info.name} ready on {loaded.device} (loaded in {loaded.load_s:.1f} s)"
        )
        self.setWindowTitle(f"Diffusion Studio — {info.name}")
        self.prompts.set_tokenizer(loaded.tokenizer)
        self.params.set_family(info.family, info.native_size)
        if self._size_follows_model:
            self.state.width = self.state.height = info.native_size
            self._size_follows_model = False

    def _model_failed(self, ref: str, message: str) -> None:
        # the cache may have dropped the previous model already: choosing it again reloads it
        self.loaded = None
        self.prompts.set_tokenizer(None)
        self.model_label.setText(f"model: {_model_name(ref)} (not loaded)")
        self.set_load_state(f"Model not loaded: {_model_name(ref)}")
        self.show_error(message)

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
            self.add_model(path)

    def add_model(self, ref: str) -> None:
        """Add a model to the picker, remember it and load it."""
        self.params.add_model(ref)
        if ref not in self.settings.known_models and ref != DEMO_MODEL_REF:
            self.settings.known_models.append(ref)
        self.state.model = ref

    # ---- generate --------------------------------------------------------------------------
    def generate(self) -> list[Job]:
        """Queue the widgets' settings as one job per batch; an invalid request queues nothing."""
        self.banner.hide()
        try:
            init, mask = self._canvas_inputs()
            controls = tuple(c for c in self.controls.specs() if c.enabled)
            requests = self.state.requests(init, mask, controls, mask_blur=self.canvas.feather())
            self._check(requests[0])
        except ValueError as exc:
            self.show_error(str(exc))
            return []
        out = self.output_dir()
        jobs = [
            self.queue.add(
                r,
                preview_every=self.state.preview_every,
                preview_source=self.state.preview_source,
                output_dir=out,
                image_format=self.settings.image_format,
            )
            for r in requests
        ]
        return jobs

    def _check(self, request: Any) -> None:
        # generate.py imports torch: use it only once the worker has imported it, so that a click
        # never waits for torch; before that the worker checks the request itself
        module = sys.modules.get("studio.engine.generate")
        if module is None:
            return
        info = self.loaded.info if self.loaded and self.loaded.ref == request.model else None
        module.check_request(request, info)

    def _canvas_inputs(self) -> tuple[Image.Image | None, Image.Image | None]:
        mode = self.state.mode
        if mode == "txt2img":
            return None, None
        init = self.state.init_image or self.canvas.image()
        if init is None:
            raise ValueError(
                f"{mode} needs an image: open, paste or drop one on the canvas, or generate one."
            )
        if mode != "inpaint":
            return init, None
        arr = self.canvas.mask_array()
        if arr is None:
            raise ValueError("Inpainting needs a mask: paint over the area to repaint.")
        mask = Image.fromarray(arr, "L")
        if mask.size != init.size:  # the canvas shows a result of another size than the input
            mask = mask.resize(init.size, Image.Resampling.NEAREST)
        return init, mask

    def _canvas_image_changed(self) -> None:
        # a result keeps the sent input (generate again = another variation of it); an image the
        # user opened, pasted or dropped becomes the input instead
        if not self._showing_result:
            self.state.init_image = None

    def _send_to(self, mode: str) -> None:
        image = self.canvas.image()
        if image is None:
            return
        self.state.init_image = image
        self.state.mode = mode
        self.state.width, self.state.height = round8(image.width), round8(image.height)
        self.statusBar().showMessage(
            f"Canvas image sent to {mode} ({image.width}×{image.height})", 5000
        )

    def cancel(self) -> None:
        self.queue.cancel_current()

    def remove_selected(self) -> None:
        item = self.queue_list.currentItem()
        if item is not None and item.data(Qt.ItemDataRole.UserRole) is not None:
            self.queue.remove(item.data(Qt.ItemDataRole.UserRole))

    def _refresh_queue(self) -> None:
        self.queue_list.clear()
        current = self.queue.current
        if current is not None:
            item = QListWidgetItem(f"▶ {current.label()}")
            item.setToolTip(current.request.prompt)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            self.queue_list.addItem(item)
        for job in self.queue.pending():
            item = QListWidgetItem(f"  {job.label()}")
            item.setToolTip(job.request.prompt)
            item.setData(Qt.ItemDataRole.UserRole, job.id)
            self.queue_list.addItem(item)
        self.cancel_button.setEnabled(current is not None)
        waiting = len(self.queue.pending())
        self.generate_button.setText(f"Generate  ({waiting} queued)" if waiting else "Generate")
        self._queue_selection_changed(self.queue_list.currentItem())

    def _queue_selection_changed(self, item: QListWidgetItem | None, *_: Any) -> None:
        self.remove_button.setEnabled(
            item is not None and item.data(Qt.ItemDataRole.UserRole) is not None
        )

    # ---- what the worker reports -----------------------------------------------------------
    def _job_started(self, job: Job) -> None:
        self._step_clock = None
        total = job.request.steps
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(0)
        self.progress.setFormat(f"job #{job.id}: starting")

    def _step(self, job: Job, update: Any) -> None:
        if job is not self.queue.current or job.cancel.is_set():
            return  # late updates of a cancelled job
        now = time.perf_counter()
        if self._step_clock is None:
            self._step_clock = (update.step, now)
        first, t0 = self._step_clock
        rate = (update.step - first) / (now - t0) if now > t0 and update.step > first else 0.0
        self.progress.setRange(0, update.total)
        self.progress.setValue(update.step)
        rate_text = f", {rate:.1f} it/s" if rate > 0 else ""
        self.progress.setFormat(f"step {update.step}/{update.total}{rate_text}")
        self.schedule_plot.set_step(update.step)
        if update.preview is not None:
            self.canvas.show_preview(update.preview)
            self.preview_shown.emit(update)

    def _finished(self, job: Job, result: Any, paths: list[Path]) -> None:
        self.queue.job_finished(job, result, paths)
        self.canvas.clear_preview()
        if result.cancelled:
            self.progress.setFormat(f"job #{job.id} cancelled")
            self.statusBar().showMessage(f"Job #{job.id} cancelled; nothing saved", 5000)
        else:
            self.progress.setValue(self.progress.maximum())
            self.progress.setFormat(f"done in {result.elapsed_s:.1f} s")
            if result.images:
                self._showing_result = True
                try:
                    self.canvas.set_image(result.images[0])
                finally:
                    self._showing_result = False
            self.gallery.add_results(list(paths))
            self.state.last_seed = result.request.seed
            saved = f"; saved {paths[0].name}" if paths else ""
            self.statusBar().showMessage(
                f"Job #{job.id} done in {result.elapsed_s:.1f} s{saved}", 8000
            )
        self.job_done.emit(job)

    def _failed(self, job: Job, message: str) -> None:
        self.queue.job_failed(job, message)
        self.canvas.clear_preview()
        self.progress.setFormat(f"job #{job.id} failed")
        self.show_error(f"Job #{job.id} failed: {message}")
        self.job_done.emit(job)

    # ---- images: restore, save, copy ---------------------------------------------------------
    def restore_from_file(self, path: str | Path) -> list[str]:
        """Put an image's stored settings into the widgets; report what could not be restored."""
        from studio.engine.metadata import read_settings

        path = Path(path)
        try:
            result = read_settings(path)
        except Exception as exc:  # any file may be dropped: report, never crash
            self.show_error(f"No settings could be read from {path.name}: {exc}")
            return []
        request = result.single_image_request()
        missing = [f"{k} ({v})" for k, v in result.unmapped.items()]
        if request is None:
            note = " ".join(result.warnings)
            self.show_error(f"{path.name} carries no generation settings. {note}".strip())
            return []
        applied = self.state.apply_request(request)
        if request.controls:
            self.controls.set_specs(request.controls)
            applied.append("ControlNet units")
            missing += [
                f"control image {i + 1}" for i, c in enumerate(request.controls) if c.image is None
            ]
        if "sampler" not in applied and "sampler" not in result.unmapped:
            missing.append(f"sampler ({request.sampler})")
        text = f"Restored from {path.name} ({result.source}): {', '.join(_labels(applied))}."
        model = result.model_name or request.model
        if model and model not in (
            self.state.model,
            _model_name(self.state.model),
            self._loaded_name(),
        ):
            missing.append(f"model ({model}; choose it in the model picker)")
        if missing:
            text += " Could not restore: " + "; ".join(missing) + "."
        if result.warnings:
            text += " " + " ".join(result.warnings)
        self.show_info(text)
        return applied

    def _offer_restore(self, path: str) -> None:
        """An image opened on the canvas may carry settings: offer them, do not overwrite."""
        from studio.engine.metadata import read_settings

        try:
            found = read_settings(path)
        except Exception:  # not our business here: the canvas reports unreadable files
            return
        if found.request is not None:
            self.banner.show_message(
                f"{Path(path).name} carries generation settings ({found.source}).",
                "info",
                ("Restore settings", lambda: self.restore_from_file(path)),
            )

    def _loaded_name(self) -> str:
        return self.loaded.info.name if self.loaded is not None else ""

    def _restore_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Restore settings from an image", "", _image_filter()
        )
        if path:
            self.restore_from_file(path)

    def _open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", _image_filter())
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        try:
            self.canvas.load_file(path)
        except ValueError as exc:
            self.show_error(str(exc))
            return False
        return True

    def _gallery_to_canvas(self, path: Path) -> None:
        self.open_image(path)

    def _current_image_path(self) -> Path | None:
        return self.gallery.current_path()

    def save_as_dialog(self, path: Path | None = None) -> None:
        source = Path(path) if path else self._current_image_path()
        if source is None:
            self.show_error("Nothing to save yet: select an image in the history.")
            return
        target, _ = QFileDialog.getSaveFileName(
            self,
            "Save image as",
            str(self.output_dir() / source.stem),
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
            self.show_error(f"Could not save {target.name}: {exc}")
            return None
        self.statusBar().showMessage(f"Saved {out}", 5000)
        return out

    def copy_image(self, path: Path | None = None) -> bool:
        source = Path(path) if path else self._current_image_path()
        image = QImage(str(source)) if source else QImage()
        if image.isNull():
            current = self.canvas.image()
            if current is None:
                return False
            from studio.ui.images import pil_to_qimage

            image = pil_to_qimage(current)
        QApplication.clipboard().setImage(image)
        self.statusBar().showMessage("Image copied to the clipboard", 3000)
        return True

    def _open_output_folder(self) -> None:
        folder = self.output_dir()
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
        self.restore_from_file(path)

    # ---- settings --------------------------------------------------------------------------
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings_dialog(dialog)

    def apply_settings_dialog(self, dialog: SettingsDialog) -> None:
        old_output = self.output_dir()
        dialog.apply_to(self.settings)
        self.state.preview_every = self.settings.preview_every
        self.state.preview_source = self.settings.preview_source
        if self.output_dir() != old_output:
            self.gallery.load_folder(self.output_dir())
        self.save_settings()

    def save_settings(self) -> None:
        s = self.settings
        s.last = self.state.to_last()
        s.preview_every = self.state.preview_every
        s.preview_source = self.state.preview_source
        s.known_models = [r for r in self.params.known_models()]
        s.window_geometry = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")
        s.window_state = base64.b64encode(bytes(self.saveState().data())).decode("ascii")
        try:
            settings_io.save(s, self.settings_file)
        except OSError as exc:
            log.warning("settings not saved: %s", exc)

    def _restore_geometry(self) -> None:
        try:
            if self.settings.window_geometry:
                self.restoreGeometry(QByteArray(base64.b64decode(self.settings.window_geometry)))
            if self.settings.window_state:
                self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))
        except ValueError:
            pass  # a damaged geometry string: the default size is fine

    # ---- shutdown --------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.queue.cancel_all()
        self.hide()  # the wait below may last one denoising step or the end of a load
        self.worker.stop()
        self.controls.shutdown()
        event.accept()

    def is_idle(self) -> bool:
        return not self.queue.is_busy()


def _scrolled(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll


def _model_name(ref: str) -> str:
    return "demo model" if ref == DEMO_MODEL_REF else model_label(ref)


def _labels(names: list[str]) -> list[str]:
    nice = {"negative_prompt": "negative prompt", "cfg_scale": "CFG", "schedule_type": "schedule"}
    return [nice.get(n, n) for n in names]


def _image_filter() -> str:
    return "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ")"


def _dropped_image(mime: Any) -> Path | None:
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and url.toLocalFile().lower().endswith(IMAGE_SUFFIXES):
            return Path(url.toLocalFile())
    return None
