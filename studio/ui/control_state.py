"""ControlNet units as model objects: each unit's settings, source image and control map.

Widgets (control_unit.py, control_panel.py) bind to these and never decide anything themselves;
the session makes the maps on its background thread when a unit says its map is stale.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import shiboken6
from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.engine.control_params import PARAMS
from studio.engine.models import resolve_controlnet
from studio.engine.request import ControlSpec
from studio.paths import DEMO_CONTROLNETS
from studio.ui.properties import Property
from studio.ui.worker import BackgroundTask

MAX_UNITS = 4  # each unit is a whole ControlNet in memory and in every step
# the demo ControlNet that suits each preprocessor (lineart maps look like edge maps)
DEMO_FOR = {
    "canny": "demo-canny",
    "lineart": "demo-canny",
    "depth": "demo-depth",
    "pose": "demo-pose",
}
CanvasImage = Callable[[], Image.Image | None]


def demo_controlnets() -> list[str]:
    """The demo ControlNet refs installed beside the demo model."""
    names = ("canny", "depth", "pose")
    return [f"demo-{n}" for n in names if (DEMO_CONTROLNETS / n / "config.json").is_file()]


def default_params(preprocessor: str) -> dict[str, float]:
    return {p.name: float(p.default) for p in PARAMS.get(preprocessor, ())}


class ControlUnitState(QObject):
    model_changed = Signal(str)
    preprocessor_changed = Signal(str)
    params_changed = Signal(dict)
    weight_changed = Signal(float)
    guidance_start_changed = Signal(float)
    guidance_end_changed = Signal(float)
    enabled_changed = Signal(bool)
    image_changed = Signal(Image.Image)
    control_map_changed = Signal(Image.Image)
    map_pending_changed = Signal(bool)
    problem_changed = Signal(str)
    number_changed = Signal(int)
    map_stale = Signal()  # source, preprocessor or its settings changed

    model = Property("", str)
    preprocessor = Property("canny", str)
    params = Property({}, dict)
    weight = Property(1.0, float)  # controlnet_conditioning_scale
    guidance_start = Property(0.0, float)  # fraction of the steps
    guidance_end = Property(1.0, float)
    enabled = Property(False, bool)
    image = Property(None, Image.Image)  # the source the map is made from
    control_map = Property(None, Image.Image)  # the latest map made, None while none is
    map_pending = Property(False, bool)
    problem = Property("", str)  # what keeps this unit from working, for the user
    number = Property(1, int)  # its place in the list, from 1

    _ids = itertools.count()

    def __init__(self, canvas_image: CanvasImage | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.id = next(self._ids)
        self._canvas_image = canvas_image
        self._model_problem = ""
        self._map_problem = ""
        self._map_number = 0  # increases with every map requested; only the latest is shown
        self.params = default_params("canny")
        self.set_model(DEMO_FOR["canny"] if DEMO_FOR["canny"] in demo_controlnets() else "")
        self.enabled_changed.connect(lambda _: self._show_problem())

    # ---- the spec ------------------------------------------------------------------------
    def to_spec(self) -> ControlSpec:
        return ControlSpec(
            model=self.model,
            image=self.image,
            preprocessor=self.preprocessor,
            weight=self.weight,
            guidance_start=self.guidance_start,
            guidance_end=self.guidance_end,
            enabled=self.enabled,
            params=tuple(self.params.items()),
        )

    def apply_spec(self, spec: ControlSpec) -> None:
        self.set_model(spec.model)
        self.preprocessor = spec.preprocessor if spec.preprocessor in PARAMS else "none"
        self.params = {**default_params(self.preprocessor), **dict(spec.params)}
        self.weight = float(spec.weight)
        self.guidance_end = 1.0  # so any start < end pair can be set without a push
        self.guidance_start = float(spec.guidance_start)
        self.guidance_end = float(spec.guidance_end)
        self.set_source(spec.image)
        self.enabled = spec.enabled

    # ---- settings, kept consistent here rather than in the widgets ------------------------
    def set_model(self, ref: str) -> None:
        self.model = ref.strip()
        problem = ""
        if not self.model:
            problem = "Choose a ControlNet: a demo, a folder, a .safetensors file or a hub id."
        else:
            try:
                resolve_controlnet(self.model)  # reads config / header only
            except ValueError as exc:
                problem = str(exc)
        self._model_problem = problem
        self._show_problem()

    def set_preprocessor(self, name: str) -> None:
        if name == self.preprocessor:
            return
        self.preprocessor = name
        self.params = default_params(name)
        # follow with the matching demo ControlNet, unless the user chose another (a depth
        # ControlNet fed pose maps would only mislead: no matching demo, no model)
        wanted = DEMO_FOR.get(name)
        if wanted is not None and (not self.model or self.model in DEMO_FOR.values()):
            self.set_model(wanted if wanted in demo_controlnets() else "")
        self._stale()

    def set_param(self, name: str, value: float) -> None:
        params = {**self.params, name: float(value)}
        low, high = params.get("low_threshold"), params.get("high_threshold")
        if low is not None and high is not None and low > high:
            # Canny's hysteresis needs low <= high: push the other threshold along
            params["high_threshold" if name == "low_threshold" else "low_threshold"] = value
        if params != self.params:
            self.params = params
            self._stale()

    def set_guidance_start(self, value: float) -> None:
        value = min(value, 0.99)
        self.guidance_start = value
        if value >= self.guidance_end:  # start < end: push the end later
            self.guidance_end = round(value + 0.01, 4)

    def set_guidance_end(self, value: float) -> None:
        value = max(value, 0.01)
        self.guidance_end = value
        if value <= self.guidance_start:
            self.guidance_start = round(value - 0.01, 4)

    # ---- source image and map ---------------------------------------------------------------
    def use_canvas_image(self) -> None:
        image = self._canvas_image() if self._canvas_image is not None else None
        if image is None:
            self.report_map_problem("The canvas has no image yet: open, paste or generate one.")
            return
        self.take_image(image)

    def take_image(self, image: Image.Image) -> None:
        """A new source image from the user: it also switches the unit on."""
        self.set_source(image.copy())
        self.enabled = True

    def set_source(self, image: Image.Image | None) -> None:
        self.image = image
        self.control_map = None
        self._stale()

    def begin_map(self) -> int:
        """A map is being made; returns its number for `finish_map`."""
        self._map_number += 1
        self.map_pending = True
        return self._map_number

    def finish_map(self, number: int, image: Image.Image | None, error: str) -> None:
        if number != self._map_number:
            return  # the settings moved on since this map was asked for
        self.map_pending = False
        self.control_map = image
        self.report_map_problem(error)

    def report_map_problem(self, text: str) -> None:
        self._map_problem = text
        self._show_problem()

    def _stale(self) -> None:
        self._map_problem = ""
        self._show_problem()
        if self.image is not None:
            self.map_stale.emit()

    def _show_problem(self) -> None:
        # a missing model only matters for a unit in use; a preprocessing problem always shows
        problems = [self._model_problem if self.enabled else "", self._map_problem]
        self.problem = "\n".join(p for p in problems if p)


class ControlList(QObject):
    """The session's ControlNet units, in order; at least one, at most MAX_UNITS.

    Stale maps are remade through `run_in_background` (the session's background thread); without
    it (widget tests) units show no maps.
    """

    units_changed = Signal()

    def __init__(
        self,
        canvas_image: CanvasImage | None = None,
        run_in_background: Callable[[BackgroundTask], None] | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._canvas_image = canvas_image
        self._run_in_background = run_in_background
        self._units: list[ControlUnitState] = []
        self.size = (512, 512)  # maps are made at the size they will be generated at
        self._append()

    def units(self) -> list[ControlUnitState]:
        return list(self._units)

    def specs(self) -> tuple[ControlSpec, ...]:
        """Every unit, disabled ones included."""
        return tuple(u.to_spec() for u in self._units)

    def add(self) -> ControlUnitState | None:
        if len(self._units) >= MAX_UNITS:
            return None
        unit = self._append()
        self.units_changed.emit()
        return unit

    def remove(self, unit: ControlUnitState) -> None:
        if len(self._units) > 1 and unit in self._units:
            self._units.remove(unit)
            unit.deleteLater()
            self._renumber()
            self.units_changed.emit()

    def set_specs(self, specs: Sequence[ControlSpec]) -> None:
        """Show these units (e.g. restored from an image); none gives one fresh unit."""
        for unit in self._units:
            unit.deleteLater()
        self._units = []
        for spec in specs[:MAX_UNITS]:
            self._append().apply_spec(spec)
        if not self._units:
            self._append()
        self.units_changed.emit()

    def set_size(self, width: int, height: int) -> None:
        if (width, height) != self.size:
            self.size = (width, height)
            for unit in self._units:
                self._make_map(unit)

    def _append(self) -> ControlUnitState:
        unit = ControlUnitState(self._canvas_image, self)
        unit.map_stale.connect(lambda u=unit: self._make_map(u))
        self._units.append(unit)
        self._renumber()
        return unit

    def _make_map(self, unit: ControlUnitState) -> None:
        image, name, params, size = unit.image, unit.preprocessor, dict(unit.params), self.size
        if image is None or self._run_in_background is None:
            return

        def make() -> Image.Image:
            from studio.engine.control import preprocess  # cv2 and co. load here, off the UI thread

            return preprocess(image, name, size, params)

        def finish(image: Image.Image | None, error: str) -> None:
            if shiboken6.isValid(unit):  # not removed meanwhile
                unit.finish_map(number, image, error)

        number = unit.begin_map()
        self._run_in_background(
            BackgroundTask(
                f"map:{unit.id}", make, lambda im: finish(im, ""), lambda err: finish(None, err)
            )
        )

    def _renumber(self) -> None:
        for number, unit in enumerate(self._units, start=1):
            unit.number = number
