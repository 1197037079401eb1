"""The UI's two long-lived threads: one runs the engine, one does everything else that is slow.

- `GenerationThread`: the engine. Everything that needs torch is imported inside it, after the
  window is shown. It reports through one typed signal, `message(WorkerMessage)`, carrying CPU
  numpy arrays, PIL images and plain dataclasses, never tensors. Cancel is a `threading.Event` on
  the job, set directly from the UI thread: a queued slot would not run while this thread is busy
  inside the pipeline.
- `BackgroundThread`: reading metadata of dropped or selected images, control-map previews,
  folder scans. A dropped image never waits behind a long job, and nothing waits on the UI thread.
"""

from __future__ import annotations

import copy
import enum
import gc
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.ui.jobs import Job

if TYPE_CHECKING:
    from studio.engine.models import ModelInfo
    from studio.engine.request import GenerationResult, StepUpdate
    from studio.engine.samplers import ScheduleCurve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    ref: str
    info: ModelInfo
    device: str
    dtype: str
    tokenizer: Any  # a private copy of the model's tokenizer for the UI thread, or None
    load_s: float


class WorkerEvent(enum.Enum):
    status = "status"  # text: what the engine is doing
    ready = "ready"  # the engine is imported: jobs can run
    model_loading = "model_loading"  # ref
    model_loaded = "model_loaded"  # loaded
    model_failed = "model_failed"  # ref, text, loaded: the model still in memory, or None
    job_started = "job_started"  # job
    schedule = "schedule"  # job, curve
    step = "step"  # job, update
    job_finished = "job_finished"  # job, result, paths, save_error
    job_failed = "job_failed"  # job, text


@dataclass(frozen=True)
class WorkerMessage:
    """One report of the generation worker; which fields are set depends on the event."""

    event: WorkerEvent
    job: Job | None = None
    text: str = ""
    ref: str = ""
    loaded: LoadedModel | None = None
    update: StepUpdate | None = None
    curve: ScheduleCurve | None = None
    result: GenerationResult | None = None
    paths: tuple[Path, ...] = ()
    save_error: str = ""  # the output folder failed: `paths` are the copies kept unsaved


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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return error_text(exc).rstrip(".")


class GenerationWorker(QObject):
    message = Signal(WorkerMessage)

    def __init__(self, device: str | None = None, initial_model: str | None = None) -> None:
        super().__init__()
        self._device = device
        self._initial_model = initial_model
        self._cache: Any = None
        self.allow_downloads = False  # set from the UI thread; read when a load starts
        self.memory = ("auto", False)  # (policy, VAE tiling): likewise, read before loads and jobs
        self._loaded: LoadedModel | None = None  # what the cache holds now

    def _say(self, event: WorkerEvent, **fields: Any) -> None:
        self.message.emit(WorkerMessage(event, **fields))

    @Slot()
    def initialize(self) -> None:
        self._say(WorkerEvent.status, text="Starting the engine…")
        # A full garbage collection walks every object and holds the GIL meanwhile: during the
        # imports of torch and diffusers each one froze the window for 250-450 ms. Collect nothing
        # while they import; then move their modules, which live forever, out of its sight.
        gc.disable()
        try:
            import studio.engine.generate  # noqa: F401  (torch, diffusers: imported here, once)
            from studio.engine.pipelines import PipelineCache

            policy, tiling = self.memory
            self._cache = PipelineCache(self._device, memory_policy=policy, vae_tiling=tiling)
        except Exception as exc:  # a broken install must show, not kill the thread silently
            log.exception("engine start failed")
            self._say(WorkerEvent.status, text=f"Engine failed to start: {error_text(exc)}")
            return
        finally:
            _freeze_once()
            gc.enable()
        self._say(WorkerEvent.ready)
        if self._initial_model:
            self.load_model(self._initial_model)

    @Slot(str)
    def load_model(self, ref: str) -> None:
        self._load(ref)

    def _load(self, ref: str) -> str:
        """Load `ref`; returns the error message, or "" when it loaded."""
        if self._cache is None:
            return "The engine did not start."
        self._say(WorkerEvent.model_loading, ref=ref)
        self._cache.allow_downloads = self.allow_downloads
        self._cache.set_memory(*self.memory)
        start = time.perf_counter()
        try:
            info = self._cache.load(ref, on_status=lambda t: self._say(WorkerEvent.status, text=t))
            tokenizer = self._cache.tokenizer
            # the UI thread counts tokens while this thread may be encoding: give it its own copy
            tokenizer = copy.deepcopy(tokenizer) if tokenizer is not None else None
        except Exception as exc:
            log.exception("model load failed")
            # a file refused before loading (a LoRA, a bad header) leaves the previous model in
            # memory: say so, so that it stays in use
            if self._cache.info is None:  # the cache freed it before the new one failed
                self._loaded = None
            self._say(WorkerEvent.model_failed, ref=ref, text=error_text(exc), loaded=self._loaded)
            return error_text(exc)
        device, dtype = str(self._cache.device), str(self._cache.dtype).replace("torch.", "")
        loaded = LoadedModel(ref, info, device, dtype, tokenizer, time.perf_counter() - start)
        self._loaded = loaded
        self._say(WorkerEvent.model_loaded, ref=ref, loaded=loaded)
        return ""

    @Slot(Job)
    def run_job(self, job: Job) -> None:
        self._say(WorkerEvent.job_started, job=job)
        if self._cache is not None:
            self._cache.set_memory(*self.memory)  # the settings may have changed: placed anew
        if job.output_dir is not None:
            # the folder may have changed since the job was queued: find out before any work
            from studio.engine.output import check_destination

            try:
                check_destination(job.output_dir, job.image_format)
            except ValueError as exc:
                self._say(WorkerEvent.job_failed, job=job, text=str(exc))
                return
        if self._cache is None:
            self._say(WorkerEvent.job_failed, job=job, text="The engine did not start.")
            return
        info = self._cache.info
        if info is None or info.ref != job.request.model:
            error = self._load(job.request.model)  # shows "Loading…" like any other load
            if error:
                self._say(WorkerEvent.job_failed, job=job, text=error)
                return
        try:
            from studio.engine.generate import generate
            from studio.engine.memory import call_freeing_memory

            self._send_schedule(job)
            # out of memory: what the failed job held is freed and the message says what to try;
            # the model stays loaded for the next job
            result = call_freeing_memory(
                generate,
                job.request,
                self._cache,
                on_step=lambda update: self._say(WorkerEvent.step, job=job, update=update),
                cancel=job.cancel,
                preview_every=job.preview_every,
                preview_source=job.preview_source,
            )
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self._say(WorkerEvent.job_failed, job=job, text=error_text(exc))
            return
        paths, save_error = self._save(job, result)
        self._say(
            WorkerEvent.job_finished,
            job=job,
            result=result,
            paths=tuple(paths),
            save_error=save_error,
        )

    def _save(self, job: Job, result: GenerationResult) -> tuple[list[Path], str]:
        """The saved files, and "" or why the output folder failed. A finished image is never
        lost to a failed save: it is kept in the temp folder and listed, unsaved, instead."""
        from studio.engine.output import OutputFolder, keep_unsaved, save_result

        if result.cancelled or not result.images or job.output_dir is None:
            return [], ""
        try:
            return save_result(result, OutputFolder(job.output_dir), format=job.image_format), ""
        except Exception as exc:
            log.error("job %s not saved:\n%s", job.id, traceback.format_exc())
            failed = f"The image could not be saved into {job.output_dir} ({_reason(exc)})"
        try:
            kept = keep_unsaved(result)
        except Exception as exc:
            log.error("job %s not kept either:\n%s", job.id, traceback.format_exc())
            return [], f"{failed}, nor kept in the temp folder ({_reason(exc)}): copy it now."
        return kept, f"{failed}. It is kept in the history, unsaved: use Save as… to keep it."

    def _send_schedule(self, job: Job) -> None:
        # the plot is an extra: a failure here must not fail the job
        try:
            from studio.engine.samplers import schedule_curve

            curve = schedule_curve(self._cache.scheduler_config, job.request)
            self._say(WorkerEvent.schedule, job=job, curve=curve)
        except Exception:
            log.debug("no schedule curve for job %s", job.id, exc_info=True)


class GenerationThread(QObject):
    """Owns the QThread and the worker living in it; the session talks to the worker here."""

    _load = Signal(str)
    _run = Signal(Job)

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
        self.message = self.worker.message
        self.thread.started.connect(self.worker.initialize)
        self._load.connect(self.worker.load_model)
        self._run.connect(self.worker.run_job)
        self._current: Job | None = None

    def start(self) -> None:
        if not self.thread.isRunning():
            self.thread.start()

    def load_model(self, ref: str) -> None:
        self._load.emit(ref)

    def set_allow_downloads(self, allow: bool) -> None:
        self.worker.allow_downloads = allow  # one attribute write: safe across threads

    def set_memory(self, policy: str, vae_tiling: bool) -> None:
        self.worker.memory = (
            policy,
            vae_tiling,
        )  # applied by the worker before its next load or job

    def run(self, job: Job) -> None:
        self._current = job
        self._run.emit(job)

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def stop(self) -> None:
        """Cancel the running job, end the thread's loop and wait for it (a load finishes first)."""
        if self._current is not None:
            self._current.cancel.set()
        if self.thread.isRunning():
            self.thread.quit()
            self.thread.wait()


# ---- the second thread: everything slow that is not generation ------------------------------
@dataclass(frozen=True)
class BackgroundTask:
    key: str  # a newer task with the same key replaces one still waiting (only the latest counts)
    run: Callable[[], object]  # runs on the background thread
    done: Callable[[object], None]  # called on the UI thread with what `run` returned
    failed: Callable[[str], None] | None = None  # on the UI thread, with a user-readable line


@dataclass(frozen=True)
class TaskOutcome:
    task: BackgroundTask
    result: object = None
    error: str = ""


class BackgroundThread(QThread):
    """One long-lived thread that runs small tasks in order, newest per key."""

    finished_task = Signal(TaskOutcome)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("BackgroundWorker")
        self._wake = threading.Condition()
        self._pending: dict[str, BackgroundTask] = {}
        self._stopping = False
        self.finished_task.connect(self._deliver)  # queued: emitted from the thread

    def submit(self, task: BackgroundTask) -> None:
        with self._wake:
            if self._stopping:
                return
            self._pending.pop(task.key, None)  # re-queue at the end, replacing an older one
            self._pending[task.key] = task
            self._wake.notify()
        if not self.isRunning():
            self.start()

    def stop(self) -> None:
        """Drop what waits and end the thread once the running task returns (at shutdown)."""
        with self._wake:
            self._stopping = True
            self._pending.clear()
            self._wake.notify()
        if self.isRunning():
            self.wait()

    def run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                task = self._pending.pop(next(iter(self._pending)))
            try:
                outcome = TaskOutcome(task, result=task.run())
            except ValueError as exc:  # written for users
                outcome = TaskOutcome(task, error=str(exc))
            except Exception as exc:  # a broken file or package: report, never take the UI down
                log.warning("background task %s failed", task.key, exc_info=True)
                outcome = TaskOutcome(task, error=error_text(exc))
            self.finished_task.emit(outcome)

    def _deliver(self, outcome: TaskOutcome) -> None:
        if self._stopping:
            return
        if outcome.error:
            if outcome.task.failed is not None:
                outcome.task.failed(outcome.error)
        else:
            outcome.task.done(outcome.result)
