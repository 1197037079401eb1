"""Jobs and the queue that hands them, one at a time, to the worker.

The queue lives on the UI thread. It never runs anything itself: it emits `start_requested(job)`
when the worker is free, and learns the outcome through `job_finished` / `job_failed` /
`job_cancelled`, which the session calls when the worker reports.
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.engine.request import GenerationRequest, GenerationResult


class JobState(enum.Enum):
    queued = "queued"
    running = "running"
    done = "done"
    cancelled = "cancelled"
    failed = "failed"


_ids = itertools.count(1)
MAX_HISTORY = 50


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    id: int = field(default_factory=lambda: next(_ids))
    state: JobState = JobState.queued
    # set from the UI thread; the worker's step callback sees it within one step
    cancel: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    paths: list[Path] = field(default_factory=list)
    error: str = ""
    # why the output folder did not take the images; `paths` then lists the copies kept unsaved
    # in the temp folder, or nothing when even those failed
    save_error: str = ""
    # how the worker runs and saves it
    preview_every: int = 1
    preview_source: str = "x0"
    output_dir: Path | None = None  # None: do not save
    image_format: str = "png"

    def label(self) -> str:
        r = self.request
        prompt = r.prompt if len(r.prompt) <= 40 else r.prompt[:39] + "…"
        return f"#{self.id} {r.mode} · {r.width}×{r.height} · seed {r.seed} · {prompt or '(no prompt)'}"


class JobQueue(QObject):
    changed = Signal()  # anything in the list or a state changed
    start_requested = Signal(Job)  # the worker should run it now
    job_done = Signal(Job)  # whatever its final state

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: list[Job] = []
        self._current: Job | None = None
        self._history: list[Job] = []
        self._ready = False  # the worker has started and can take jobs

    # ---- what the UI asks ------------------------------------------------------------------
    @property
    def current(self) -> Job | None:
        return self._current

    def pending(self) -> list[Job]:
        return list(self._pending)

    def history(self) -> list[Job]:
        return list(self._history)

    def is_busy(self) -> bool:
        return self._current is not None or bool(self._pending)

    def add(self, request: GenerationRequest, **options: Any) -> Job:
        """Queue a request; options are Job fields (preview_every, output_dir, ...)."""
        job = Job(request, **options)
        self._pending.append(job)
        self.changed.emit()
        self._start_next()
        return job

    def remove(self, job_id: int) -> bool:
        """Remove a job that has not started; a running job is cancelled instead."""
        for job in self._pending:
            if job.id == job_id:
                self._pending.remove(job)
                job.state = JobState.cancelled
                self._remember(job)
                self.changed.emit()
                self.job_done.emit(job)
                return True
        return False

    def cancel_current(self) -> None:
        if self._current is not None:
            self._current.cancel.set()

    def cancel_all(self) -> None:
        for job in list(self._pending):
            self.remove(job.id)
        self.cancel_current()

    # ---- what the worker reports -------------------------------------------------------------
    def set_ready(self, ready: bool = True) -> None:
        self._ready = ready
        self._start_next()

    def job_finished(
        self, job: Job, result: GenerationResult, paths: list[Path], save_error: str = ""
    ) -> None:
        job.result, job.paths, job.save_error = result, list(paths), save_error
        self._end(job, JobState.cancelled if result.cancelled else JobState.done)

    def job_failed(self, job: Job, message: str) -> None:
        job.error = message
        self._end(job, JobState.failed)

    def _end(self, job: Job, state: JobState) -> None:
        job.state = state
        if job is self._current:
            self._current = None
        self._remember(job)
        self.changed.emit()
        self.job_done.emit(job)
        self._start_next()

    def _remember(self, job: Job) -> None:
        # finished jobs hold their images: keep a bounded history, the files are on disk
        self._history.append(job)
        del self._history[:-MAX_HISTORY]

    def _start_next(self) -> None:
        if not self._ready or self._current is not None or not self._pending:
            return
        job = self._pending.pop(0)
        job.state = JobState.running
        self._current = job
        self.changed.emit()
        self.start_requested.emit(job)
