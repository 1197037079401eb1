"""One ControlNet unit's widgets, bound to a ControlUnitState: model, preprocessor and its
settings, source image and map, strength. The unit state decides; these widgets only show it.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageFilter
from PySide6.QtCore import QMimeData, Qt
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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.control_params import PARAMS, Param
from studio.engine.images import is_image_path, open_dialog_filter, open_image
from studio.engine.request import PREPROCESSORS
from studio.ui.control_state import ControlList, ControlUnitState, demo_controlnets
from studio.ui.images import pil_to_qimage, qimage_to_pil
from studio.ui.properties import bind
from studio.ui.value_slider import ValueSlider, fractions

THUMB = 128  # pixels a side of the source and map thumbnails
BROWSE_FOLDER = "__browse_folder__"
BROWSE_FILE = "__browse_file__"
SOURCE_HINT = "Source image:\nopen, drop, or\nuse the canvas"
PARAM_LABELS = {
    "low_threshold": "Low threshold",
    "high_threshold": "High threshold",
    "gaussian_sigma": "Blur sigma",
    "intensity_threshold": "Ink threshold",
    "resolution": "Resolution",
    "min_visibility": "Min. visibility",
}


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


class ControlUnit(QFrame):
    def __init__(
        self, unit: ControlUnitState, units: ControlList, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.unit = unit
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAcceptDrops(True)
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
        self.open_button = QPushButton("Open…")
        self.source_label = self._thumb(SOURCE_HINT)
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

        self.weight = ValueSlider(fractions(0, 2, 0.05), 1.0, lambda v: f"{v:.2f}")
        self.weight.setToolTip(
            "How strongly the control map steers (controlnet_conditioning_scale)"
        )
        self.start = ValueSlider(fractions(0, 1, 0.01), 0.0, lambda v: f"{v:.2f}")
        self.start.setToolTip("Fraction of the steps after which the ControlNet starts to act")
        self.end = ValueSlider(fractions(0, 1, 0.01), 1.0, lambda v: f"{v:.2f}")
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
        self._bind(units)

    def _bind(self, units: ControlList) -> None:
        u = self.unit
        bind(u, "enabled", self.enabled)
        bind(u, "weight", self.weight)
        # start < end is kept by the unit: both sliders follow it
        u.guidance_start_changed.connect(self.start.set_value)
        u.guidance_end_changed.connect(self.end.set_value)
        self.start.set_value(u.guidance_start)
        self.end.set_value(u.guidance_end)
        self.start.value_changed.connect(lambda v: self._set_window(self.start, v, True))
        self.end.value_changed.connect(lambda v: self._set_window(self.end, v, False))
        u.number_changed.connect(self._show_number)
        u.model_changed.connect(self._show_model)
        u.preprocessor_changed.connect(self._show_preprocessor)
        u.params_changed.connect(self._show_params)
        u.image_changed.connect(self._show_source)
        u.control_map_changed.connect(lambda _: self._show_map())
        u.map_pending_changed.connect(lambda _: self._show_map())
        u.problem_changed.connect(self._show_problem)
        self._show_number(u.number)
        self._show_model(u.model)
        self._show_preprocessor(u.preprocessor)
        self._show_source(u.image)
        self._show_map()
        self._show_problem(u.problem)

        self.remove_button.clicked.connect(lambda: units.remove(u))
        self.model.activated.connect(self._on_model_activated)
        self.model.lineEdit().editingFinished.connect(self._on_model_edited)
        self.preprocessor.currentIndexChanged.connect(
            lambda: u.set_preprocessor(str(self.preprocessor.currentData()))
        )
        self.use_canvas_button.clicked.connect(u.use_canvas_image)
        self.open_button.clicked.connect(self._open_dialog)

    def _set_window(self, slider: ValueSlider, value: float, start: bool) -> None:
        (self.unit.set_guidance_start if start else self.unit.set_guidance_end)(value)
        kept = self.unit.guidance_start if start else self.unit.guidance_end
        if slider.value() != kept:  # the unit kept another value (start < end): show that one
            slider.set_value(kept)

    # ---- showing the unit ---------------------------------------------------------------
    def _show_number(self, number: int) -> None:
        self.title.setText(f"<b>ControlNet {number}</b>")

    def _show_model(self, ref: str) -> None:
        if ref and self.model.findText(ref) < 0:
            self.model.insertItem(self.model.findData(BROWSE_FOLDER) - 1, ref, ref)
        if self.model.currentText() != ref:
            self.model.setEditText(ref)

    def _show_preprocessor(self, name: str) -> None:
        index = max(self.preprocessor.findData(name), 0)
        if index != self.preprocessor.currentIndex():
            self.preprocessor.blockSignals(True)
            self.preprocessor.setCurrentIndex(index)
            self.preprocessor.blockSignals(False)
        self._build_param_sliders(name)

    def _build_param_sliders(self, name: str) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_sliders = {}
        for param in PARAMS.get(name, ()):
            auto = param.name == "resolution"
            slider = ValueSlider(
                slider_values(param),
                self.unit.params.get(param.name, param.default),
                (lambda v: "auto" if v == 0 else f"{v:g}") if auto else (lambda v: f"{v:g}"),
            )
            slider.value_changed.connect(lambda v, n=param.name: self.unit.set_param(n, v))
            self.params_form.addRow(PARAM_LABELS.get(param.name, param.name), slider)
            self.param_sliders[param.name] = slider

    def _show_params(self, params: dict[str, float]) -> None:
        if set(params) != set(self.param_sliders):
            self._build_param_sliders(self.unit.preprocessor)
            return
        for name, slider in self.param_sliders.items():
            if slider.value() != params[name]:
                slider.set_value(params[name])  # its echo sets the same value: no change

    def _show_source(self, image: Image.Image | None) -> None:
        if image is None:
            self.source_label.clear()
            self.source_label.setText(SOURCE_HINT)
        else:
            self.source_label.setPixmap(_thumbnail(image))

    def _show_map(self) -> None:
        image = self.unit.control_map
        if image is not None:
            self.map_label.setPixmap(_thumbnail(image, bold=True))
            return
        self.map_label.clear()
        if self.unit.map_pending:
            self.map_label.setText("Preprocessing…")
        else:
            self.map_label.setText("No map" if self.unit.image is not None else "Control map")

    def _show_problem(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def message_text(self) -> str:
        return self.message.text()

    # ---- model choice ------------------------------------------------------------------------
    def _on_model_activated(self, index: int) -> None:
        action = self.model.itemData(index)
        if action not in (BROWSE_FOLDER, BROWSE_FILE):
            self.unit.set_model(self.model.currentText())
            return
        self.model.setEditText(self.unit.model)  # not the action's text, whatever happens next
        if action == BROWSE_FOLDER:
            path = QFileDialog.getExistingDirectory(self, "A ControlNet folder (diffusers)")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "A ControlNet file", "", "Safetensors (*.safetensors)"
            )
        if path:
            self.unit.set_model(path)

    def _on_model_edited(self) -> None:
        if self.model.currentText().strip() != self.unit.model:
            self.unit.set_model(self.model.currentText())

    # ---- source image -------------------------------------------------------------------------
    def load_file(self, path: str | Path) -> None:
        try:
            image = open_image(path)
        except ValueError as exc:
            self.unit.report_map_problem(str(exc))
            return
        self.unit.take_image(image)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "A control source image", "", open_dialog_filter()
        )
        if path:
            self.load_file(path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        if _dropped_file(mime) is not None or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        path = _dropped_file(mime)
        if path is not None:
            self.load_file(path)
        elif mime.hasImage() and not QImage(mime.imageData()).isNull():
            self.unit.take_image(qimage_to_pil(QImage(mime.imageData())))
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
        if url.isLocalFile() and is_image_path(url.toLocalFile()):
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
