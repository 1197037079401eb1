"""The ControlNet panel: a list of units, each previewing its control map at the generation size.

The window talks to it through `specs()`, `set_specs()`, `set_canvas_image_provider()`,
`set_generation_size()`, the `changed` signal, and `shutdown()` when it closes. Maps are
preprocessed on a helper thread here, so a slow depth or pose model never freezes the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image
from PySide6.QtCore import QCoreApplication, QThread, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from studio.engine.request import ControlSpec
from studio.ui.control_unit import ControlUnit

MAX_UNITS = 4  # each unit is a whole ControlNet in memory and in every step


@dataclass(frozen=True)
class _Job:
    unit: int  # the unit's id in the panel
    number: int  # increases with every request of that unit; only the latest one is shown
    image: Image.Image
    preprocessor: str
    size: tuple[int, int]
    params: dict[str, float]


class _PreviewThread(QThread):
    """Runs preprocess() for the latest request of each unit; exits when nothing is left to do."""

    done = Signal(int, int, object, str)  # unit id, job number, map (PIL) or None, error text

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("control-preview")
        self._lock = threading.Lock()
        self._pending: dict[int, _Job] = {}  # unit id -> its newest job; older ones are dropped
        self._active = False  # run() is (about to be) draining the queue
        self._stopping = False

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._stopping:
                return
            self._pending[job.unit] = job
            if self._active:
                return
            self._active = True
        self.wait()  # a run() that just found the queue empty may still be returning
        self.start()

    def stop(self) -> None:
        """Drop what is queued and wait for the map being made (a depth model may be loading)."""
        with self._lock:
            self._stopping = True
            self._pending.clear()
        self.wait()

    def run(self) -> None:
        from studio.engine.control import preprocess  # cv2 etc. load here, not in the UI thread

        while True:
            with self._lock:
                if self._stopping or not self._pending:
                    self._active = False
                    return
                job = self._pending.pop(next(iter(self._pending)))
            try:
                result = preprocess(job.image, job.preprocessor, job.size, job.params)
            except ValueError as exc:  # bad settings, a missing depth model: the text says what
                self.done.emit(job.unit, job.number, None, str(exc))
            except Exception as exc:  # a broken model or package: report, never take the UI down
                self.done.emit(job.unit, job.number, None, f"{job.preprocessor} failed: {exc!r}")
            else:
                self.done.emit(job.unit, job.number, result, "")


class ControlPanel(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._units: list[ControlUnit] = []
        self._ids: dict[ControlUnit, int] = {}
        self._next_id = 0
        self._latest: dict[int, int] = {}  # unit id -> number of the job whose map to show
        self._shown: dict[int, int] = {}  # unit id -> number of the job whose map arrived
        self._size = (512, 512)
        self._canvas_image: Callable[[], Image.Image | None] | None = None
        self._thread = _PreviewThread(self)
        self._thread.done.connect(self._map_done)
        app = QCoreApplication.instance()
        if app is not None:  # a panel the window forgot to shut down still stops with the app
            app.aboutToQuit.connect(self.shutdown)

        self.add_button = QPushButton("Add unit")
        self.add_button.setToolTip("Add another ControlNet (several steer together)")
        self.add_button.clicked.connect(self.add_unit)
        self._units_layout = QVBoxLayout()
        self._units_layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._units_layout)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.add_unit()

    # ---- API for the window --------------------------------------------------------------------
    def specs(self) -> tuple[ControlSpec, ...]:
        """Every unit, disabled ones included, with its source image and settings."""
        return tuple(unit.spec() for unit in self._units)

    def set_specs(self, specs: Sequence[ControlSpec]) -> None:
        """Show these units (e.g. restored from an image's metadata); none gives one fresh unit."""
        for unit in list(self._units):
            self._remove(unit, emit=False)
        for spec in specs[:MAX_UNITS]:
            unit = self._add(emit=False)
            unit.set_spec(spec)
            self._request_map(unit)
        if not self._units:
            self._add(emit=False)
        self._sync_buttons()
        self.changed.emit()

    def set_canvas_image_provider(self, fn: Callable[[], Image.Image | None]) -> None:
        self._canvas_image = fn
        for unit in self._units:
            unit.set_canvas_image_provider(fn)

    def set_generation_size(self, width: int, height: int) -> None:
        """Maps are previewed at the size they will be generated at."""
        size = (int(width), int(height))
        if size == self._size:
            return
        self._size = size
        for unit in self._units:
            self._request_map(unit)

    def generation_size(self) -> tuple[int, int]:
        return self._size

    def units(self) -> list[ControlUnit]:
        return list(self._units)

    def shutdown(self) -> None:
        """Stop the preview thread; call before the window closes (waits for a running map)."""
        self._thread.stop()

    def busy(self) -> bool:
        """True while a map is being made or waits to be."""
        return any(n != self._shown.get(u) for u, n in self._latest.items())

    # ---- units -----------------------------------------------------------------------------------
    def add_unit(self) -> ControlUnit | None:
        if len(self._units) >= MAX_UNITS:
            return None
        unit = self._add(emit=True)
        self._sync_buttons()
        return unit

    def remove_unit(self, unit: ControlUnit) -> None:
        if len(self._units) > 1 and unit in self._units:
            self._remove(unit, emit=True)
            self._sync_buttons()

    def _add(self, emit: bool) -> ControlUnit:
        unit = ControlUnit(len(self._units) + 1)
        self._ids[unit] = self._next_id
        self._next_id += 1
        unit.set_canvas_image_provider(self._canvas_image)
        unit.changed.connect(self.changed)
        unit.map_needed.connect(lambda u=unit: self._request_map(u))
        unit.remove_requested.connect(lambda u=unit: self.remove_unit(u))
        self._units.append(unit)
        self._units_layout.addWidget(unit)
        if emit:
            self.changed.emit()
        return unit

    def _remove(self, unit: ControlUnit, emit: bool) -> None:
        uid = self._ids.pop(unit)
        self._latest.pop(uid, None)
        self._shown.pop(uid, None)
        self._units.remove(unit)
        self._units_layout.removeWidget(unit)
        unit.deleteLater()
        for number, other in enumerate(self._units, start=1):
            other.set_number(number)
        if emit:
            self.changed.emit()

    def _sync_buttons(self) -> None:
        self.add_button.setEnabled(len(self._units) < MAX_UNITS)
        for unit in self._units:
            unit.remove_button.setEnabled(len(self._units) > 1)

    # ---- maps ------------------------------------------------------------------------------------
    def _request_map(self, unit: ControlUnit) -> None:
        uid = self._ids.get(unit)
        image = unit.source()
        if uid is None or image is None:
            return
        number = self._latest.get(uid, 0) + 1
        self._latest[uid] = number
        unit.show_waiting()
        self._thread.submit(
            _Job(uid, number, image, unit.preprocessor_name(), self._size, unit.params())
        )

    def _map_done(self, uid: int, number: int, image: object, error: str) -> None:
        if self._latest.get(uid) != number:
            return  # the unit was removed, or its settings moved on since this job
        self._shown[uid] = number
        for unit, unit_id in self._ids.items():
            if unit_id == uid:
                unit.show_map(image if isinstance(image, Image.Image) else None, error)
