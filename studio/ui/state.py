"""StudioState: what the generation widgets show, as observable properties.

Each property `x` has a signal `x_changed`; widgets are bound to properties with `bind`, so the
window, the restore-from-image code and the settings all talk to the state, never to widgets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
    QSpinBox,
    QWidget,
)

from studio.engine.request import DEMO_MODEL_REF, ControlSpec, GenerationRequest, ScheduleOptions
from studio.settings import LastValues

MAX_SEED = 2**32 - 1


class Observable:
    """A typed property that emits `<name>_changed(value)` when its value really changes."""

    def __init__(self, default: Any, kind: type | tuple[type, ...] = object) -> None:
        self.default = default
        self.kind = kind
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is not None and not isinstance(value, self.kind):
            raise TypeError(f"{self.name} takes {self.kind}, not {type(value).__name__}")
        old = obj.__dict__.get(self.name, self.default)
        if old is value or (not isinstance(value, Image.Image) and old == value):
            return
        obj.__dict__[self.name] = value
        getattr(obj, f"{self.name}_changed").emit(value)


class StudioState(QObject):
    model_changed = Signal(str)
    prompt_changed = Signal(str)
    negative_prompt_changed = Signal(str)
    sampler_changed = Signal(str)
    schedule_type_changed = Signal(str)
    steps_changed = Signal(int)
    cfg_scale_changed = Signal(float)
    seed_changed = Signal(object)  # seeds exceed a C int
    last_seed_changed = Signal(object)
    width_changed = Signal(int)
    height_changed = Signal(int)
    batch_count_changed = Signal(int)
    batch_size_changed = Signal(int)
    strength_changed = Signal(float)
    mode_changed = Signal(str)
    preview_source_changed = Signal(str)
    preview_every_changed = Signal(int)
    init_image_changed = Signal(object)

    model = Observable(DEMO_MODEL_REF, str)
    prompt = Observable("", str)
    negative_prompt = Observable("", str)
    sampler = Observable("DPM++ 2M Karras", str)
    schedule_type = Observable("Automatic", str)
    steps = Observable(20, int)
    cfg_scale = Observable(7.0, float)
    seed = Observable(-1, int)  # -1: a new random seed for every Generate
    last_seed = Observable(-1, int)
    width = Observable(128, int)
    height = Observable(128, int)
    batch_count = Observable(1, int)  # jobs queued per Generate
    batch_size = Observable(1, int)  # images per job
    strength = Observable(0.75, float)
    mode = Observable("txt2img", str)
    preview_source = Observable("x0", str)
    preview_every = Observable(1, int)
    init_image = Observable(None, Image.Image)  # the image sent to img2img / inpaint

    # ---- settings <-> state --------------------------------------------------------------
    def load_last(self, last: LastValues) -> None:
        for f in fields(LastValues):
            try:
                setattr(self, f.name, getattr(last, f.name))
            except TypeError:
                pass  # a value of the wrong type leaves the property as it was

    def to_last(self) -> LastValues:
        return LastValues(**{f.name: getattr(self, f.name) for f in fields(LastValues)})

    # ---- request <-> state ---------------------------------------------------------------
    def requests(
        self,
        init_image: Image.Image | None = None,
        mask: Image.Image | None = None,
        controls: tuple[ControlSpec, ...] = (),
        mask_blur: int = 4,
    ) -> list[GenerationRequest]:
        """One request per batch; a seed of -1 draws one random seed for the whole Generate."""
        from studio.engine.samplers import karras_of

        seed = random.randint(0, MAX_SEED) if self.seed < 0 else self.seed
        base = GenerationRequest(
            mode=self.mode,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            sampler=self.sampler,
            schedule=ScheduleOptions(karras=karras_of(self.schedule_type)),
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            seed=seed,
            width=self.width,
            height=self.height,
            batch_size=self.batch_size,
            strength=self.strength,
            init_image=init_image if self.mode != "txt2img" else None,
            mask=mask if self.mode == "inpaint" else None,
            controls=tuple(controls),
            mask_blur=mask_blur,
        )
        # A1111's convention: batch k starts at seed + k * batch_size, so every image differs
        return [
            base.with_(seed=(seed + k * self.batch_size) % (MAX_SEED + 1))
            for k in range(self.batch_count)
        ]

    def apply_request(self, request: GenerationRequest) -> list[str]:
        """Show a request's settings in the widgets; returns the names that were applied."""
        from studio.engine.samplers import SAMPLERS, schedule_type_of

        applied = []
        values: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "steps": request.steps,
            "cfg_scale": request.cfg_scale,
            "seed": request.seed,
            "width": request.width,
            "height": request.height,
        }
        if request.sampler in SAMPLERS:
            values["sampler"] = request.sampler
            values["schedule_type"] = schedule_type_of(request.schedule)
        for name, value in values.items():
            setattr(self, name, value)
            applied.append(name)
        return applied


# ---- binding widgets to properties ------------------------------------------------------------
def bind(
    state: QObject,
    name: str,
    widget: QWidget,
    to_widget: Callable[[Any], Any] | None = None,
    from_widget: Callable[[Any], Any] | None = None,
) -> None:
    """Two-way binding: the widget shows the property, and edits in the widget set it."""
    to_w = to_widget or (lambda v: v)
    from_w = from_widget or (lambda v: v)
    getter, setter, signal = _accessors(widget)
    changed = getattr(state, f"{name}_changed")

    def push(value: Any) -> None:
        shown = to_w(value)
        if getter() != shown:  # avoid resetting the cursor of a widget being typed in
            setter(shown)

    def pull(*_: Any) -> None:
        try:
            setattr(state, name, from_w(getter()))
        except (TypeError, ValueError):
            pass  # half-typed input: the state keeps its last good value

    changed.connect(push)
    signal.connect(pull)
    push(getattr(state, name))


def _accessors(widget: QWidget) -> tuple[Callable[[], Any], Callable[[Any], None], Any]:
    if isinstance(widget, QPlainTextEdit):
        return widget.toPlainText, widget.setPlainText, widget.textChanged
    if isinstance(widget, QLineEdit):
        return widget.text, widget.setText, widget.textChanged
    if isinstance(widget, (QSpinBox, QDoubleSpinBox, QSlider)):
        return widget.value, widget.setValue, widget.valueChanged
    if isinstance(widget, QComboBox):
        return widget.currentText, widget.setCurrentText, widget.currentTextChanged
    if isinstance(widget, QAbstractButton):
        return widget.isChecked, widget.setChecked, widget.toggled
    raise TypeError(f"cannot bind a {type(widget).__name__}")
