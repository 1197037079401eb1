"""The one long-lived worker thread that runs the engine.

Everything that needs torch is imported inside the worker's thread, after the window is shown.
Signals carry CPU numpy arrays, PIL images and plain dataclasses, never tensors. Cancel is a
`threading.Event` on the job, set directly from the UI thread: a queued slot would not run while
this thread is busy inside the pipeline.
"""

from __future__ import annotations

import copy
import gc
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.ui.jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    ref: str
    info: Any  # studio.engine.models.ModelInfo
    device: str
    dtype: str
    tokenizer: Any  # a private copy for the UI thread's token count, or None
    load_s: float


_frozen = False


def _freeze_once() -> None:
    global _frozen
    if not _frozen:  # one engine per process; later windows (tests) need not freeze again
        gc.freeze()
        _frozen = True


def error_text(exc: BaseException) -> str:
    """A user-readable line: ValueErrors are written for users; other errors keep their type."""
    if isinstance(exc, ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class GenerationWorker(QObject):
    status = Signal(str)
    model_loading = Signal(str)  # ref
    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str, str)  # ref, message
    ready = Signal()  # the engine is imported: jobs can run
    job_started = Signal(object)  # Job
    schedule = Signal(object, object)  # Job, ScheduleCurve
    step = Signal(object, object)  # Job, StepUpdate
    finished = Signal(object, object, object)  # Job, GenerationResult, list[Path]
    failed = Signal(object, str)  # Job, message

    def __init__(self, device: str | None = None, initial_model: str | None = None) -> None:
        super().__init__()
        self._device = device
        self._initial_model = initial_model
        self._cache: Any = None

    @Slot()
    def initialize(self) -> None:
        self.status.emit("Starting the engine…")
        try:
            import studio.engine.generate  # noqa: F401  (torch, diffusers: imported here, once)
            from studio.engine.pipelines import PipelineCache

            # A full garbage collection walks every object and holds the GIL meanwhile: with torch
            # and diffusers loaded that is ~0.5 s of frozen window. Their modules live forever, so
            # move them out of the collector's sight.
            _freeze_once()
            self._cache = PipelineCache(self._device)
        except Exception as exc:  # a broken install must show, not kill the thread silently
            log.exception("engine start failed")
            self.status.emit(f"Engine failed to start: {error_text(exc)}")
            return
        self.ready.emit()
        if self._initial_model:
            self.load_model(self._initial_model)

    @Slot(str)
    def load_model(self, ref: str) -> None:
        self._load(ref)

    def _load(self, ref: str) -> str:
        """Load `ref`; returns the error message, or "" when it loaded."""
        if self._cache is None:
            return "The engine did not start."

        self.model_loading.emit(ref)
        start = time.perf_counter()
        try:
            info = self._cache.load(ref, on_status=self.status.emit)
            tokenizer = self._tokenizer()
        except Exception as exc:
            log.exception("model load failed")
            self.model_failed.emit(ref, error_text(exc))
            return error_text(exc)
        self.model_loaded.emit(
            LoadedModel(
                ref,
                info,
                str(self._cache.device),
                str(self._cache.dtype).replace("torch.", ""),
                tokenizer,
                time.perf_counter() - start,
            )
        )
        return ""

    def _tokenizer(self) -> Any:
        tokenizer = self._cache.tokenizer
        # the UI thread counts tokens while this thread may be encoding: give it its own copy
        return copy.deepcopy(tokenizer) if tokenizer is not None else None

    @Slot(object)
    def run_job(self, job: Job) -> None:
        self.job_started.emit(job)
        if self._cache is None:
            self.failed.emit(job, "The engine did not start; see the status bar.")
            return
        info = self._cache.info
        if info is None or info.ref != job.request.model:
            # shows "Loading…" like any other load
            error = self._load(job.request.model)
            if error:
                self.failed.emit(job, error)
                return
        try:
            from studio.engine.generate import generate
            from studio.engine.output import OutputFolder, save_result

            self._emit_schedule(job)

            def on_step(update: Any) -> None:
                self.step.emit(job, update)

            result = generate(
                job.request,
                self._cache,
                on_step=on_step,
                cancel=job.cancel,
                preview_every=job.preview_every,
                preview_source=job.preview_source,
            )
            paths = []
            if not result.cancelled and result.images and job.output_dir is not None:
                paths = save_result(result, OutputFolder(job.output_dir), format=job.image_format)
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self.failed.emit(job, error_text(exc))
            return
        self.finished.emit(job, result, paths)

    def _emit_schedule(self, job: Job) -> None:
        # the plot is an extra: a failure here must not fail the job
        try:
            from studio.engine.samplers import schedule_curve

            self.schedule.emit(job, schedule_curve(self._cache.scheduler_config, job.request))
        except Exception:
            log.debug("no schedule curve for job %s", job.id, exc_info=True)


class WorkerThread(QObject):
    """Owns the QThread and the worker living in it; the UI talks to the worker through this."""

    _load = Signal(str)
    _run = Signal(object)

    def __init__(
        self,
        device: str | None = None,
        initial_model: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("GenerationWorker")
        self.worker = GenerationWorker(device, initial_model)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.initialize)
        self._load.connect(self.worker.load_model)
        self._run.connect(self.worker.run_job)
        self._current: Job | None = None
        self.worker.job_started.connect(self._set_current)

    def start(self) -> None:
        self.thread.start()

    def load_model(self, ref: str) -> None:
        self._load.emit(ref)

    def run(self, job: Job) -> None:
        self._current = job
        self._run.emit(job)

    def _set_current(self, job: Job) -> None:
        self._current = job

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def stop(self) -> None:
        """Cancel the running job, end the thread's loop and wait for it (a load finishes first)."""
        if self._current is not None:
            self._current.cancel.set()
        if self.thread.isRunning():
            self.thread.quit()
            self.thread.wait()
