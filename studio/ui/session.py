"""The session: the one observable model between the widgets and the two worker threads.

It owns the state, the ControlNet units, the job queue and the workers. The window binds widgets
to it and calls `generate()`, `cancel()`, `restore_from_file()` and `load_model()`; every worker
and queue signal comes here, and what the user should see leaves as observable properties
(`progress`, `error`, `notice`, `loaded_model`, ...) and a few signals. No widget in sight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio import settings as settings_io
from studio.engine.request import DEMO_MODEL_REF, GenerationRequest, StepUpdate
from studio.engine.samplers import ScheduleCurve
from studio.ui.canvas_inputs import CanvasSource, canvas_inputs
from studio.ui.control_state import ControlList
from studio.ui.jobs import Job, JobQueue
from studio.ui.persistence import persisted, restore
from studio.ui.progress import Progress, StepRate
from studio.ui.properties import Property
from studio.ui.restore import RestoreOutcome, apply_read_result, read_for_restore
from studio.ui.state import StudioState
from studio.ui.worker import (
    BackgroundTask,
    BackgroundThread,
    GenerationThread,
    LoadedModel,
    WorkerEvent,
    WorkerMessage,
)

if TYPE_CHECKING:
    from studio.engine.metadata import ReadResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """An information line for the banner, with an optional action button."""

    text: str
    action_label: str = ""
    action_path: Path | None = None  # the image whose settings the action restores
    found: ReadResult | None = None  # those settings, read already: the action applies them


def model_name(ref: str) -> str:
    return "demo model" if ref == DEMO_MODEL_REF else (Path(ref).name or ref)


class Session(QObject):
    progress_changed = Signal(Progress)
    error_changed = Signal(str)
    notice_changed = Signal(Notice)
    loaded_model_changed = Signal(LoadedModel)
    load_status_changed = Signal(str)
    model_status_changed = Signal(str)
    known_models_changed = Signal(list)

    progress = Property(Progress(), Progress)
    error = Property("", str)  # the last failure, for the banner; "" when all is well
    notice = Property(None, Notice)
    loaded_model = Property(None, LoadedModel)
    load_status = Property("", str)  # what the engine is doing, for the status bar
    model_status = Property("", str)  # the model chosen, and whether it is loaded
    known_models = Property([], list)  # model refs the user added, the demo excluded

    status_message = Signal(str)  # a transient line for the status bar
    preview_ready = Signal(StepUpdate)  # a step preview to show over the canvas
    schedule_ready = Signal(ScheduleCurve)  # of the job that started
    result_ready = Signal(Job)  # a finished job with images: show it, list its files
    job_done = Signal(Job)  # any job's end, after its outcome has been shown
    restored = Signal(RestoreOutcome)
    output_dir_changed = Signal(Path)

    def __init__(
        self,
        config_dir: Path | None = None,
        output_dir: Path | None = None,
        device: str | None = None,
        model: str | None = None,
        parent: QObject | None = None,
        worker: GenerationThread | None = None,  # tests pass a fake engine
    ) -> None:
        super().__init__(parent)
        self.settings_file = settings_io.settings_path(config_dir)
        outcome = settings_io.load(self.settings_file)
        self.settings = outcome.settings
        if output_dir is not None:
            self.settings.output_dir = str(output_dir)
        self.state = StudioState(self)
        restore(self.state, self.settings.last)
        if model:
            self.state.model = model
        self.known_models = [r for r in self.settings.known_models if r != DEMO_MODEL_REF]
        self._canvas: CanvasSource | None = None
        self.queue = JobQueue(self)
        self.worker = worker or GenerationThread(device, self.state.model, parent=self)
        self.background = BackgroundThread(self)
        self.controls = ControlList(self._canvas_image, self.background.submit, self)
        self._size_follows_model = False  # set when the user picks another model
        self._rate = StepRate()

        self.apply_settings()
        self.worker.message.connect(self._on_message)
        self.queue.start_requested.connect(self.worker.run)
        self.state.model_changed.connect(self._model_chosen)
        self.state.width_changed.connect(self._sync_control_size)
        self.state.height_changed.connect(self._sync_control_size)
        self._sync_control_size()
        self.load_status = f"Loading {model_name(self.state.model)}…"
        self.model_status = f"model: {model_name(self.state.model)}"
        if outcome.corrupt_copy is not None or outcome.error:
            self.error = outcome.message

    # ---- life cycle -----------------------------------------------------------------------
    def attach_canvas(self, canvas: CanvasSource) -> None:
        self._canvas = canvas

    def start(self) -> None:
        self.worker.start()

    def shutdown(self) -> None:
        """Cancel everything and stop both threads (a running load or step finishes first)."""
        self.queue.cancel_all()
        self.worker.stop()
        self.background.stop()

    def output_dir(self) -> Path:
        return self.settings.output_path()

    def save_settings(self, window_geometry: str = "", window_state: str = "") -> None:
        s = self.settings
        s.last = persisted(self.state)
        s.known_models = list(self.known_models)
        s.window_geometry = window_geometry or s.window_geometry
        s.window_state = window_state or s.window_state
        try:
            settings_io.save(s, self.settings_file)
        except OSError as exc:
            log.warning("settings not saved: %s", exc)

    def apply_settings(self) -> None:
        """Hand the engine what it reads from the settings (after the settings dialog)."""
        self.worker.set_allow_downloads(self.settings.allow_downloads)
        self.worker.set_memory(self.settings.memory_policy, self.settings.vae_tiling)

    def set_output_dir(self, folder: str) -> None:
        old = self.output_dir()
        self.settings.output_dir = folder
        if self.output_dir() != old:
            self.output_dir_changed.emit(self.output_dir())

    def is_idle(self) -> bool:
        return not self.queue.is_busy()

    # ---- models ---------------------------------------------------------------------------
    def load_model(self, ref: str) -> None:
        """Choose a model: remembered in the picker and loaded in the background."""
        if ref != DEMO_MODEL_REF and ref not in self.known_models:
            self.known_models = [*self.known_models, ref]
        self.state.model = ref

    def model_names(self) -> tuple[str, ...]:
        """The names the current model goes by, as images may record it."""
        names = [self.state.model, model_name(self.state.model)]
        if self.loaded_model is not None:
            names.append(self.loaded_model.info.name)
        return tuple(names)

    def _model_chosen(self, ref: str) -> None:
        if self.loaded_model is not None and self.loaded_model.ref == ref:
            return
        self._size_follows_model = True
        self.model_status = f"model: {model_name(ref)}"
        self.worker.load_model(ref)

    def _model_loaded(self, loaded: LoadedModel) -> None:
        info = loaded.info
        self.loaded_model = loaded
        self.model_status = f"model: {info.name} ({info.family}, {info.native_size}px)"
        self.load_status = f"{info.name} ready on {loaded.device} (loaded in {loaded.load_s:.1f} s)"
        if self._size_follows_model:
            self.state.width = self.state.height = info.native_size
            self._size_follows_model = False

    def _model_failed(self, ref: str, message: str, still_loaded: LoadedModel | None) -> None:
        self.error = message
        self.loaded_model = still_loaded
        if still_loaded is not None:  # refused before loading: the previous model stays in use
            self._size_follows_model = False
            self.state.model = still_loaded.ref
            self.model_status = f"model: {still_loaded.info.name}"
            self.load_status = f"{model_name(ref)} not loaded; {still_loaded.info.name} kept"
            return
        # the old weights were freed before the new ones failed: choosing a model loads it
        self.model_status = f"model: {model_name(ref)} (not loaded)"
        self.load_status = f"Model not loaded: {model_name(ref)}"

    # ---- generate -------------------------------------------------------------------------
    def generate(self) -> list[Job]:
        """Queue the settings as one job per batch; an invalid request queues nothing."""
        from studio.engine.batch import expand_batch
        from studio.engine.checks import check_request
        from studio.engine.output import check_destination
        from studio.engine.seeds import resolve_seed

        self.error = ""
        self.notice = None
        try:
            init, mask = canvas_inputs(self.state, self._canvas)
            controls = tuple(c for c in self.controls.specs() if c.enabled)
            seed = resolve_seed(self.state.seed)
            folders = tuple(self.settings.model_folders)  # LoRAs, embeddings, VAEs by name
            request = self.state.request(seed, init, mask, controls, addon_folders=folders)
            loaded = self.loaded_model
            info = loaded.info if loaded is not None and loaded.ref == request.model else None
            check_request(request, info)
            requests = expand_batch(request, self.state.batch_count)
            check_destination(self.output_dir(), self.settings.image_format)  # before any work
        except ValueError as exc:
            self.error = str(exc)
            return []
        return [self._queue(r) for r in requests]

    def _queue(self, request: GenerationRequest) -> Job:
        return self.queue.add(
            request,
            preview_every=self.state.preview_every,
            preview_source=self.state.preview_source,
            output_dir=self.output_dir(),
            image_format=self.settings.image_format,
        )

    def cancel(self) -> None:
        self.queue.cancel_current()

    def remove_job(self, job_id: int) -> None:
        self.queue.remove(job_id)

    def reuse_last_seed(self) -> None:
        if self.state.last_seed >= 0:
            self.state.seed = self.state.last_seed

    def _canvas_image(self) -> Image.Image | None:
        return self._canvas.image() if self._canvas is not None else None

    def send_canvas_to(self, mode: str) -> None:
        """The canvas image becomes the input of img2img or inpaint, at its own size."""
        image = self._canvas_image()
        if image is None:
            return
        self.state.init_image = image
        self.state.mode = mode
        self.state.width, self.state.height = round8(image.width), round8(image.height)
        self.status_message.emit(f"Canvas image sent to {mode} ({image.width}×{image.height})")

    def user_changed_canvas(self) -> None:
        # a result keeps the sent input (generate again = another variation of it); an image the
        # user opened, pasted or dropped becomes the input instead
        self.state.init_image = None

    # ---- what the worker reports ----------------------------------------------------------
    def _on_message(self, m: WorkerMessage) -> None:
        e = WorkerEvent
        if m.event is e.status:
            self.load_status = m.text
        elif m.event is e.ready:
            self.queue.set_ready()
        elif m.event is e.model_loading:
            self.load_status = f"Loading {model_name(m.ref)}…"
        elif m.event is e.model_loaded and m.loaded is not None:
            self._model_loaded(m.loaded)
        elif m.event is e.model_failed:
            self._model_failed(m.ref, m.text, m.loaded)
        elif m.job is None:
            return
        elif m.event is e.job_started:
            self.progress = self._rate.start(m.job.id, m.job.request.steps)
        elif m.event is e.schedule:
            self.schedule_ready.emit(m.curve)
        elif m.event is e.step and m.update is not None:
            self._step(m.job, m.update)
        elif m.event is e.job_finished and m.result is not None:
            self._finished(m.job, m)
        elif m.event is e.job_failed:
            self.queue.job_failed(m.job, m.text)
            self.progress = Progress(0, 1, f"job #{m.job.id} failed", m.job.id)
            self.error = f"Job #{m.job.id} failed: {m.text}"
            self.job_done.emit(m.job)

    def _step(self, job: Job, update: StepUpdate) -> None:
        if job is not self.queue.current or job.cancel.is_set():
            return  # late updates of a cancelled job
        self.progress = self._rate.step(job.id, update.step, update.total)
        if update.preview is not None:
            self.preview_ready.emit(update)

    def _finished(self, job: Job, m: WorkerMessage) -> None:
        result = m.result
        self.queue.job_finished(job, result, list(m.paths), m.save_error)
        if result.cancelled:
            self.progress = Progress(0, 1, f"job #{job.id} cancelled", job.id)
            self.status_message.emit(f"Job #{job.id} cancelled; nothing saved")
        else:
            top = self.progress.maximum
            self.progress = Progress(top, top, f"done in {result.elapsed_s:.1f} s", job.id)
            self.state.last_seed = result.request.seed
            self.result_ready.emit(job)
            if m.save_error:  # the images are kept unsaved; the banner says where and what to do
                self.error = f"Job #{job.id}: {m.save_error}"
            elif result.notes:  # e.g. "the VAE made NaNs in half precision; decoded in fp32"
                self.notice = Notice(f"Job #{job.id}: {' '.join(result.notes)}")
            saved = f"; saved {m.paths[0].name}" if m.paths and not m.save_error else ""
            self.status_message.emit(f"Job #{job.id} done in {result.elapsed_s:.1f} s{saved}")
        self.job_done.emit(job)

    # ---- background work: metadata, control maps ------------------------------------------
    def run_in_background(self, task: BackgroundTask) -> None:
        self.background.submit(task)

    def restore_from_file(self, path: str | Path) -> None:
        """Read an image's settings off the UI thread, then apply them; `restored` reports."""
        path = Path(path)
        folders = tuple(self.settings.model_folders)

        def failed(message: str) -> None:
            self.error = f"No settings could be read from {path.name}: {message}"
            self.restored.emit(RestoreOutcome(path, (), self.error, ok=False))

        self.background.submit(
            BackgroundTask(
                f"restore:{path}",
                lambda: read_for_restore(path, folders),
                lambda found: self._apply_read(path, found),
                failed,
            )
        )

    def _apply_read(self, path: Path, found: ReadResult) -> None:
        outcome = apply_read_result(path, found, self.state, self.controls, self.model_names())
        if outcome.ok:
            self.notice = Notice(outcome.text)
        else:
            self.error = outcome.text
        self.restored.emit(outcome)

    def offer_restore(self, path: str | Path) -> None:
        """An image opened on the canvas may carry settings: offer them, do not overwrite."""
        path = Path(path)
        folders = tuple(self.settings.model_folders)

        def found(result: ReadResult) -> None:
            if result.request is not None:
                text = f"{path.name} carries generation settings ({result.source})."
                self.notice = Notice(text, "Restore settings", path, result)
            elif self.notice is not None and self.notice.action_path is not None:
                # the offer was for the previous image: it must not restore that one's settings
                self.notice = Notice(f"{path.name} carries no generation settings.")

        self.background.submit(
            BackgroundTask(
                f"offer:{path}", lambda: read_for_restore(path, folders), found, lambda _: None
            )
        )

    def accept_notice(self, notice: Notice) -> None:
        """The banner's action: apply the settings the notice offered, without reading again."""
        if notice.action_path is not None and notice.found is not None:
            self._apply_read(notice.action_path, notice.found)

    def _sync_control_size(self, *_: int) -> None:
        self.controls.set_size(self.state.width, self.state.height)


def round8(x: float) -> int:
    return max(64, int(round(x / 8)) * 8)
