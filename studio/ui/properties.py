"""Observable properties for the UI's model objects, and two-way binding of widgets to them.

A model class declares `steps = Property(20, int, persist=True)` beside its signal
`steps_changed = Signal(int)` (Qt only collects signals declared in the class body). Setting the
property emits the signal when the value really changes; `bind` keeps a widget and a property in
step. `persist=True` marks what `studio.ui.persistence` saves between sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image
from PySide6.QtCore import QObject
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


class Property:
    """A typed property that emits `<name>_changed(value)` when its value really changes."""

    def __init__(
        self,
        default: Any,
        kind: type | tuple[type, ...] = object,
        persist: bool = False,
        limits: tuple[float, float] | None = None,
        choices: tuple[Any, ...] | None = None,
        max_length: int | None = None,
    ) -> None:
        self.default = default
        self.kind = kind
        self.persist = persist
        self.limits = limits  # (lowest, highest) a number may take
        self.choices = choices  # the only values it may take (a combo box's items)
        self.max_length = max_length  # the longest text it may hold, in characters
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        value = self.checked(value)
        old = obj.__dict__.get(self.name, self.default)
        # images compare by identity: comparing pixels on every set would be slow and pointless
        if old is value or (not isinstance(value, Image.Image) and _same(old, value)):
            return
        obj.__dict__[self.name] = value
        getattr(obj, f"{self.name}_changed").emit(value)

    def checked(self, value: Any) -> Any:
        """The value as stored; TypeError for the wrong type, ValueError for one it may not take."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an int beyond any float
                raise ValueError(f"{self.name} cannot be {_shown(value)}") from None
        if value is None and self.default is None:  # only what starts empty may be emptied
            return value
        wrong_bool = isinstance(value, bool) and self.kind in (int, float)
        if wrong_bool or not isinstance(value, self.kind):
            raise TypeError(
                f"{self.name} takes {_kind_name(self.kind)}, not {type(value).__name__}"
            )
        # NaN fails every comparison, so it is refused here like a number out of range
        if self.limits is not None and not self.limits[0] <= value <= self.limits[1]:
            low, high = self.limits
            raise ValueError(f"{self.name} must be between {low} and {high}, not {_shown(value)}")
        if self.choices is not None and value not in self.choices:
            known = (
                f"one of {', '.join(map(str, self.choices))}"
                if len(self.choices) <= 6
                else "one the studio knows"
            )
            raise ValueError(f"{self.name} {_shown(value)} is not {known}")
        if isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                raise ValueError(
                    f"{self.name} is {len(value):,} characters long, "
                    f"more than the {self.max_length:,} it may hold"
                )
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: no file or widget could take them
                raise ValueError(f"{self.name} holds characters that are not text") from None
        return value


def _shown(value: Any) -> str:
    """A value short enough for a message: huge numbers and long texts are summarised."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a {value.bit_length()}-bit number"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _same(old: Any, new: Any) -> bool:
    try:
        return bool(old == new) and type(old) is type(new)
    except ValueError:  # numpy arrays and the like: treat as changed
        return False


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def properties(obj: object) -> Iterator[Property]:
    """The Property descriptors of an object's class, base classes included, in declaration order."""
    seen: set[str] = set()
    for cls in reversed(type(obj).__mro__):
        for name, attr in vars(cls).items():
            if isinstance(attr, Property) and name not in seen:
                seen.add(name)
                yield attr


# ---- binding widgets to properties ------------------------------------------------------------
def bind(
    model: QObject,
    name: str,
    widget: QWidget,
    to_widget: Callable[[Any], Any] | None = None,
    from_widget: Callable[[Any], Any] | None = None,
) -> None:
    """Two-way binding: the widget shows the property, and edits in the widget set it."""
    to_w = to_widget or (lambda v: v)
    from_w = from_widget or (lambda v: v)
    getter, setter, signal = _accessors(widget)
    changed = getattr(model, f"{name}_changed")

    def push(value: Any) -> None:
        shown = to_w(value)
        if getter() != shown:  # avoid resetting the cursor of a widget being typed in
            setter(shown)

    def pull(*_: Any) -> None:
        try:
            setattr(model, name, from_w(getter()))
        except (TypeError, ValueError):
            pass  # half-typed input: the model keeps its last good value

    changed.connect(push)
    signal.connect(pull)
    push(getattr(model, name))


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
    value_changed = getattr(widget, "value_changed", None)  # our own value widgets
    if value_changed is not None:
        return widget.value, widget.set_value, value_changed
    raise TypeError(f"cannot bind a {type(widget).__name__}")
