"""One ControlNet unit's widgets: model, preprocessor and its settings, source image and map, strength.

The unit holds its source image and its latest control map as PIL; the panel (control_panel.py)
runs the preprocessing off the UI thread and hands the map back through `show_map`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageFilter
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.control import PARAMS, Param
from studio.engine.models import resolve_controlnet
from studio.engine.request import PREPROCESSORS, ControlSpec
from studio.paths import DEMO_CONTROLNETS
from studio.ui.canvas import IMAGE_SUFFIXES, OPEN_FILTER, load_image_file
from studio.ui.images import pil_to_qimage, qimage_to_pil

THUMB = 128  # pixels a side of the source and map thumbnails
BROWSE_FOLDER = "__browse_folder__"
BROWSE_FILE = "__browse_file__"
# the demo ControlNet that suits each preprocessor (lineart maps look like edge maps)
DEMO_FOR = {
    "canny": "demo-canny",
    "lineart": "demo-canny",
    "depth": "demo-depth",
    "pose": "demo-pose",
}
PARAM_LABELS = {
    "low_threshold": "Low threshold",
    "high_threshold": "High threshold",
    "gaussian_sigma": "Blur sigma",
    "intensity_threshold": "Ink threshold",
    "resolution": "Resolution",
    "min_visibility": "Min. visibility",
}


def demo_controlnets() -> list[str]:
    """The demo ControlNet refs installed beside the demo model."""
    names = ("canny", "depth", "pose")
    return [f"demo-{n}" for n in names if (DEMO_CONTROLNETS / n / "config.json").is_file()]


def slider_values(param: Param) -> list[float]:
    """The values a slider offers for a preprocessor setting."""
    if param.name == "resolution":
        # the depth network sees multiples of its 14-px patches; 0 = automatic, below 28 is refused
        return [0.0, *(float(v) for v in range(28, int(param.maximum) + 1, 14))]
    span = param.maximum - param.minimum
    whole = all(float(v).is_integer() for v in (param.minimum, param.maximum, param.default))
    step = 1.0 if whole and span >= 20 else _nice_step(span / 100)
    values = [round(param.minimum + i * step, 4) for i in range(int(span / step + 1e-9) + 1)]
    return values if values[-1] == param.maximum else [*values, float(param.maximum)]


def _nice_step(raw: float) -> float:
    """The largest 1, 2 or 5 times a power of ten that is at most `raw` (0.195 -> 0.1)."""
    power = 10.0 ** math.floor(math.log10(raw))
    return max(m * power for m in (1, 2, 5) if m * power <= raw * (1 + 1e-9))


class ValueSlider(QWidget):
    """A horizontal slider over a list of float values, with the value shown beside it."""

    value_changed = Signal(float)

    def __init__(
        self,
        values: Sequence[float],
        value: float,
        text: Callable[[float], str] = lambda v: f"{v:g}",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._values = list(values)
        self._text = text
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, len(self._values) - 1)
        self.label = QLabel()
        self.label.setMinimumWidth(38)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self.set_value(value)
        self._moved(self.slider.value())

    def value(self) -> float:
        return self._values[self.slider.value()]

    def set_value(self, value: float) -> None:
        """Move to the offered value nearest to `value`."""
        nearest = min(range(len(self._values)), key=lambda i: abs(self._values[i] - value))
        self.slider.setValue(nearest)

    def _moved(self, index: int) -> None:
        self.label.setText(self._text(self._values[index]))
        self.value_changed.emit(self._values[index])


def _fraction(lo: float, hi: float, step: float) -> list[float]:
    return [round(lo + i * step, 4) for i in range(round((hi - lo) / step) + 1)]


class ControlUnit(QFrame):
    changed = Signal()  # anything that goes into the spec
    map_needed = Signal()  # source, preprocessor, or its settings changed: the map is stale
    remove_requested = Signal()

    def __init__(self, number: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAcceptDrops(True)
        self._image: Image.Image | None = None
        self._map: Image.Image | None = None
        self._canvas_image: Callable[[], Image.Image | None] | None = None
        self._model_problem = ""
        self._map_problem = ""
        self._last_model = ""
        self._building = False  # rebuilding setting sliders: no change signals meanwhile
        self.param_sliders: dict[str, ValueSlider] = {}

        # header: enable, title, remove
        self.enabled = QCheckBox()
        self.enabled.setToolTip("Use this unit when generating")
        self.title = QLabel()
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this unit")
        header = QHBoxLayout()
        header.addWidget(self.enabled)
        header.addWidget(self.title, 1)
        header.addWidget(self.remove_button)
        self.set_number(number)

        # model: the installed demos, a folder or a file, or a typed hub id
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.lineEdit().setPlaceholderText("ControlNet folder, .safetensors or hub id")
        self.model.setToolTip(
            "The ControlNet: a built-in demo, a diffusers folder, a .safetensors file, or a hub id "
            "(downloaded only when a network exists)"
        )
        for ref in demo_controlnets():
            self.model.addItem(ref, ref)
        self.model.insertSeparator(self.model.count())
        self.model.addItem("Browse folder…", BROWSE_FOLDER)
        self.model.addItem("Browse file…", BROWSE_FILE)

        self.preprocessor = QComboBox()
        for name in PREPROCESSORS:
            self.preprocessor.addItem(name, name)
        self.preprocessor.setToolTip(
            "How the source image becomes a control map; 'none' when it already is one "
            "(an edge, depth or pose map)"
        )
        self.params_form = QFormLayout()
        self.params_form.setContentsMargins(0, 0, 0, 0)

        # source image and its control map, side by side
        self.use_canvas_button = QPushButton("Use canvas image")
        self.use_canvas_button.setEnabled(False)
        self.open_button = QPushButton("Open…")
        self.source_label = self._thumb("Source image:\nopen, drop, or\nuse the canvas")
        self.map_label = self._thumb("Control map")
        images = QGridLayout()
        images.addWidget(self.source_label, 0, 0)
        images.addWidget(self.map_label, 0, 1)
        images.addWidget(self.use_canvas_button, 1, 0)
        images.addWidget(self.open_button, 1, 1)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b;")
        self.message.hide()

        self.weight = ValueSlider(_fraction(0, 2, 0.05), 1.0, lambda v: f"{v:.2f}")
        self.weight.setToolTip(
            "How strongly the control map steers (controlnet_conditioning_scale)"
        )
        self.start = ValueSlider(_fraction(0, 1, 0.01), 0.0, lambda v: f"{v:.2f}")
        self.start.setToolTip("Fraction of the steps after which the ControlNet starts to act")
        self.end = ValueSlider(_fraction(0, 1, 0.01), 1.0, lambda v: f"{v:.2f}")
        self.end.setToolTip("Fraction of the steps after which the ControlNet stops")

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Model", self.model)
        form.addRow("Preprocessor", self.preprocessor)
        strength = QFormLayout()
        strength.setContentsMargins(0, 0, 0, 0)
        strength.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        strength.addRow("Weight", self.weight)
        strength.addRow("Start", self.start)
        strength.addRow("End", self.end)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(form)
        layout.addLayout(self.params_form)
        layout.addLayout(images)
        layout.addWidget(self.message)
        layout.addLayout(strength)

        self._build_param_sliders("canny", {})
        self.set_model(DEMO_FOR["canny"] if DEMO_FOR["canny"] in demo_controlnets() else "")

        self.enabled.toggled.connect(self._on_enabled)
        self.remove_button.clicked.connect(self.remove_requested)
        self.model.activated.connect(self._on_model_activated)
        self.model.lineEdit().editingFinished.connect(self._on_model_edited)
        self.preprocessor.currentIndexChanged.connect(self._on_preprocessor)
        self.use_canvas_button.clicked.connect(self.use_canvas_image)
        self.open_button.clicked.connect(self._open_dialog)
        self.weight.value_changed.connect(self.changed)
        self.start.value_changed.connect(self._on_start)
        self.end.value_changed.connect(self._on_end)

    # ---- the spec ------------------------------------------------------------------------
    def spec(self) -> ControlSpec:
        return ControlSpec(
            model=self.model_ref(),
            image=self._image,
            preprocessor=self.preprocessor_name(),
            weight=self.weight.value(),
            guidance_start=self.start.value(),
            guidance_end=self.end.value(),
            enabled=self.enabled.isChecked(),
            params=tuple((name, s.value()) for name, s in self.param_sliders.items()),
        )

    def set_spec(self, spec: ControlSpec) -> None:
        self.blockSignals(True)
        try:
            self.set_model(spec.model)
            self._set_preprocessor(spec.preprocessor, dict(spec.params))
            self.weight.set_value(spec.weight)
            self.end.set_value(1.0)  # so any start < end pair can be set without a push
            self.start.set_value(spec.guidance_start)
            self.end.set_value(spec.guidance_end)
            self.set_source(spec.image)
            self.enabled.setChecked(spec.enabled)
        finally:
            self.blockSignals(False)
        self._check_model()

    def model_ref(self) -> str:
        return self.model.currentText().strip()

    def preprocessor_name(self) -> str:
        return str(self.preprocessor.currentData())

    def params(self) -> dict[str, float]:
        return {name: s.value() for name, s in self.param_sliders.items()}

    def source(self) -> Image.Image | None:
        return self._image

    def control_map(self) -> Image.Image | None:
        """The latest preprocessed map shown, or None while none is."""
        return self._map

    # ---- model -----------------------------------------------------------------------------
    def set_model(self, ref: str) -> None:
        ref = ref.strip()
        if ref and self.model.findText(ref) < 0:
            self.model.insertItem(self._first_action_row() - 1, ref, ref)
        self.model.setEditText(ref)
        self._last_model = ref
        self._check_model()

    def _first_action_row(self) -> int:
        return self.model.findData(BROWSE_FOLDER)

    def _on_model_activated(self, index: int) -> None:
        action = self.model.itemData(index)
        if action not in (BROWSE_FOLDER, BROWSE_FILE):
            self._model_chosen()
            return
        self.model.setEditText(self._last_model)  # not the action's text, whatever happens next
        if action == BROWSE_FOLDER:
            path = QFileDialog.getExistingDirectory(self, "A ControlNet folder (diffusers)")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "A ControlNet file", "", "Safetensors (*.safetensors)"
            )
        if path:
            self.set_model(path)
            self.changed.emit()

    def _on_model_edited(self) -> None:
        if self.model_ref() != self._last_model:
            self._model_chosen()

    def _model_chosen(self) -> None:
        self._last_model = self.model_ref()
        self._check_model()
        self.changed.emit()

    def _check_model(self) -> None:
        ref = self.model_ref()
        problem = ""
        if not ref:
            problem = "Choose a ControlNet: a demo, a folder, a .safetensors file or a hub id."
        else:
            try:
                resolve_controlnet(ref)  # reads config / header only
            except ValueError as exc:
                problem = str(exc)
        self._model_problem = problem
        self._show_message()

    # ---- preprocessor ------------------------------------------------------------------------
    def _on_preprocessor(self) -> None:
        name = self.preprocessor_name()
        self._build_param_sliders(name, {})
        # follow the preprocessor with the matching demo ControlNet, unless the user chose another
        # (a depth ControlNet fed pose maps would only mislead: no matching demo, no model)
        current = self.model_ref()
        wanted = DEMO_FOR.get(name)
        if wanted is not None and (not current or current in DEMO_FOR.values()):
            self.set_model(wanted if wanted in demo_controlnets() else "")
        self._source_or_settings_changed()

    def _set_preprocessor(self, name: str, params: dict[str, float]) -> None:
        self.preprocessor.blockSignals(True)
        index = self.preprocessor.findData(name)
        self.preprocessor.setCurrentIndex(max(index, 0))
        self.preprocessor.blockSignals(False)
        self._build_param_sliders(self.preprocessor_name(), params)

    def _build_param_sliders(self, name: str, values: dict[str, float]) -> None:
        self._building = True
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_sliders = {}
        for param in PARAMS.get(name, ()):
            text = (
                (lambda v: "auto" if v == 0 else f"{v:g}") if param.name == "resolution" else None
            )
            slider = ValueSlider(
                slider_values(param),
                values.get(param.name, param.default),
                text or (lambda v: f"{v:g}"),
            )
            slider.value_changed.connect(lambda _v, n=param.name: self._on_param(n))
            self.params_form.addRow(PARAM_LABELS.get(param.name, param.name), slider)
            self.param_sliders[param.name] = slider
        self._building = False

    def _on_param(self, name: str) -> None:
        if self._building:
            return
        low, high = (
            self.param_sliders.get("low_threshold"),
            self.param_sliders.get("high_threshold"),
        )
        if low is not None and high is not None and low.value() > high.value():
            # Canny's hysteresis needs low <= high: push the other threshold along
            if name == "low_threshold":
                high.set_value(low.value())
            else:
                low.set_value(high.value())
        self._source_or_settings_changed()

    # ---- guidance window ----------------------------------------------------------------------
    def _on_start(self, value: float) -> None:
        if value >= self.end.value():  # start < end: push the end later (or this back)
            if value >= 1.0:
                self.start.set_value(0.99)
            self.end.set_value(self.start.value() + 0.01)
        self.changed.emit()

    def _on_end(self, value: float) -> None:
        if value <= self.start.value():
            if value <= 0.0:
                self.end.set_value(0.01)
            self.start.set_value(self.end.value() - 0.01)
        self.changed.emit()

    # ---- source image -------------------------------------------------------------------------
    def set_canvas_image_provider(self, fn: Callable[[], Image.Image | None] | None) -> None:
        self._canvas_image = fn
        self.use_canvas_button.setEnabled(fn is not None)

    def use_canvas_image(self) -> None:
        image = self._canvas_image() if self._canvas_image is not None else None
        if image is None:
            self._map_problem = "The canvas has no image yet: open, paste or generate one."
            self._show_message()
            return
        self.take_image(image)

    def take_image(self, image: Image.Image) -> None:
        """A new source image from the user: it also switches the unit on."""
        self.set_source(image.copy())
        self.enabled.setChecked(True)

    def set_source(self, image: Image.Image | None) -> None:
        self._image = image
        self._map = None
        self.map_label.clear()
        self.map_label.setText("Control map")
        if image is None:
            self.source_label.clear()
            self.source_label.setText("Source image:\nopen, drop, or\nuse the canvas")
        else:
            self.source_label.setPixmap(_thumbnail(image))
        self._source_or_settings_changed()

    def load_file(self, path: str | Path) -> None:
        try:
            image = load_image_file(path)
        except ValueError as exc:
            self._map_problem = str(exc)
            self._show_message()
            return
        self.take_image(image)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A control source image", "", OPEN_FILTER)
        if path:
            self.load_file(path)

    def _source_or_settings_changed(self) -> None:
        self._map_problem = ""
        self._show_message()
        self.map_needed.emit()
        self.changed.emit()

    # ---- map and messages ---------------------------------------------------------------------
    def show_map(self, image: Image.Image | None, error: str) -> None:
        self._map = image
        if image is None:
            self.map_label.clear()
            self.map_label.setText("No map")
        else:
            self.map_label.setPixmap(_thumbnail(image, bold=True))
        self._map_problem = error
        self._show_message()

    def show_waiting(self) -> None:
        if self._map is None:
            self.map_label.setText("Preprocessing…")

    def message_text(self) -> str:
        return self.message.text()

    def _show_message(self) -> None:
        # a missing model only matters for a unit in use; a preprocessing problem always shows
        problems = [self._map_problem]
        if self.enabled.isChecked():
            problems.insert(0, self._model_problem)
        text = "\n".join(p for p in problems if p)
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _on_enabled(self) -> None:
        self._show_message()
        self.changed.emit()

    def set_number(self, number: int) -> None:
        self.title.setText(f"<b>ControlNet {number}</b>")

    # ---- drops ----------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if _dropped_file(mime) is not None or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        path = _dropped_file(mime)
        if path is not None:
            self.load_file(path)
        elif mime.hasImage() and not QImage(mime.imageData()).isNull():
            self.take_image(qimage_to_pil(QImage(mime.imageData())))
        else:
            event.ignore()
            return
        event.acceptProposedAction()

    @staticmethod
    def _thumb(text: str) -> QLabel:
        label = QLabel(text)
        label.setFixedSize(THUMB, THUMB)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setFrameShape(QFrame.Shape.Box)
        label.setStyleSheet("color: palette(mid);")
        return label


def _dropped_file(mime: QMimeData) -> str | None:
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and url.toLocalFile().lower().endswith(IMAGE_SUFFIXES):
            return url.toLocalFile()
    return None


def _thumbnail(image: Image.Image, bold: bool = False) -> QPixmap:
    """The image fitted into a thumbnail; `bold` keeps 1-px map lines visible when shrinking."""
    side = THUMB - 4
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale >= 1:  # small maps (the demo model's 128 px) grow with crisp pixels
        return QPixmap.fromImage(pil_to_qimage(image.resize(size, Image.Resampling.NEAREST)))
    if bold and scale < 0.7:
        image = image.filter(ImageFilter.MaxFilter(2 * round(0.5 / scale) + 1))
    return QPixmap.fromImage(pil_to_qimage(image.resize(size, Image.Resampling.LANCZOS)))
