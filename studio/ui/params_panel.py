"""The generation parameters: model, sampler, schedule, steps, CFG, seed, size, batch, strength, mode.

Every widget is bound to a StudioState property; this panel holds no values of its own.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.engine.request import DEMO_MODEL_REF, MODES, RNG_SOURCES
from studio.engine.samplers import SAMPLERS, SCHEDULE_TYPES
from studio.ui.properties import bind
from studio.ui.session import Session, round8
from studio.ui.state import StudioState
from studio.ui.worker import LoadedModel

ADD_FOLDER = "__add_folder__"
ADD_FILE = "__add_file__"
MAX_SIDE = int(StudioState.width.limits[1])


def _limits(name: str) -> dict[str, int]:
    """A spin box's range: what the state's property may hold, so every value can be shown."""
    low, high = getattr(StudioState, name).limits
    return {"minimum": int(low), "maximum": int(high)}


def size_presets(family: str, native: int) -> list[tuple[int, int]]:
    """Sizes that suit a model family: its native square and the usual portrait/landscape shapes."""
    if family == "sdxl":
        return [
            (1024, 1024),
            (896, 1152),
            (1152, 896),
            (832, 1216),
            (1216, 832),
            (768, 1344),
            (1344, 768),
        ]
    if family == "sd2":
        return [(768, 768), (640, 960), (960, 640), (576, 1024), (1024, 576), (512, 512)]
    if family == "sd1":
        return [(512, 512), (512, 768), (768, 512), (448, 640), (640, 448), (640, 640)]
    n = native
    return [(n, n), (n, round8(n * 1.5)), (round8(n * 1.5), n), (round8(n * 2), round8(n * 2))]


def model_label(ref: str) -> str:
    if ref == DEMO_MODEL_REF:
        return "Demo model (built in)"
    return Path(ref).name or ref


class ParamsPanel(QWidget):
    add_model_requested = Signal(str)  # "folder" or "file": the window opens the dialog

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.state = state = session.state
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        # model picker: refs in item data, two actions at the end
        self.model = QComboBox()
        self.model.setObjectName("model")
        self.model.setToolTip(
            "The model that generates. Add a diffusers folder or a .safetensors file."
        )
        self.model.addItem(model_label(DEMO_MODEL_REF), DEMO_MODEL_REF)
        self.model.insertSeparator(1)
        self.model.addItem("Add model folder…", ADD_FOLDER)
        self.model.addItem("Add model file…", ADD_FILE)
        self.model.activated.connect(self._model_activated)
        state.model_changed.connect(self._show_model)
        form.addRow("Model", self.model)

        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip(
            "txt2img from noise; img2img from the canvas image; inpaint the masked area"
        )
        bind(state, "mode", self.mode)
        form.addRow("Mode", self.mode)

        self.sampler = QComboBox()
        self.sampler.addItems(SAMPLERS)
        bind(state, "sampler", self.sampler)
        form.addRow("Sampler", self.sampler)

        self.schedule_type = QComboBox()
        self.schedule_type.addItems(SCHEDULE_TYPES)
        self.schedule_type.setToolTip(
            "Automatic: what the sampler's name says; Karras or uniform sigmas"
        )
        bind(state, "schedule_type", self.schedule_type)
        form.addRow("Schedule", self.schedule_type)

        self.steps = QSpinBox(**_limits("steps"))
        bind(state, "steps", self.steps)
        form.addRow("Steps", self.steps)

        self.cfg = QDoubleSpinBox(**_limits("cfg_scale"), singleStep=0.5, decimals=1)
        self.cfg.setToolTip("Classifier-free guidance: how strongly the prompt steers (1 = off)")
        bind(state, "cfg_scale", self.cfg)
        form.addRow("CFG scale", self.cfg)

        self.clip_skip = QSpinBox(**_limits("clip_skip"))
        self.clip_skip.setToolTip("A1111's clip skip: 2 reads the text encoder's penultimate layer")
        bind(state, "clip_skip", self.clip_skip)
        self.rng = QComboBox()
        self.rng.addItems(RNG_SOURCES)
        self.rng.setToolTip(
            "Where noise comes from: CPU (the same everywhere), GPU (A1111's default; "
            "emulated by NV without CUDA), NV (CUDA's numbers on any machine)"
        )
        bind(state, "rng", self.rng)
        self.ensd = QSpinBox(**_limits("ensd"))
        self.ensd.setToolTip("Eta noise seed delta (A1111's ENSD): sampler noise from seed + ENSD")
        bind(state, "ensd", self.ensd)
        form.addRow(
            "Clip skip",
            _row(self.clip_skip, QLabel("RNG"), self.rng, QLabel("ENSD"), self.ensd),
        )

        # seed: a line edit, since seeds go beyond a spin box's 32-bit int
        self.seed = QLineEdit()
        self.seed.setObjectName("seed")
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"-1|-|\d{0,19}")))
        self.seed.setToolTip("-1: a new random seed each time")
        bind(state, "seed", self.seed, to_widget=str, from_widget=int)
        self.seed.editingFinished.connect(lambda: self.seed.setText(str(state.seed)))
        self.dice = QToolButton(text="⚄")
        self.dice.setToolTip("Random seed (-1)")
        self.dice.clicked.connect(lambda: setattr(state, "seed", -1))
        self.reuse_seed = QToolButton(text="♻")
        self.reuse_seed.setToolTip("Reuse the last seed")
        self.reuse_seed.clicked.connect(session.reuse_last_seed)
        state.last_seed_changed.connect(lambda s: self.reuse_seed.setEnabled(s >= 0))
        self.reuse_seed.setEnabled(state.last_seed >= 0)
        form.addRow("Seed", _row(self.seed, self.dice, self.reuse_seed))

        # size: presets per family plus free entry
        self.size_preset = QComboBox()
        self.size_preset.setToolTip(
            "Sizes that suit the model; far from its native size images break"
        )
        self.size_preset.activated.connect(self._preset_chosen)
        self.width_box = QSpinBox(**_limits("width"), singleStep=8)
        self.height_box = QSpinBox(**_limits("height"), singleStep=8)
        self.width_box.setObjectName("width")
        self.height_box.setObjectName("height")
        bind(state, "width", self.width_box)
        bind(state, "height", self.height_box)
        swap = QToolButton(text="⇄")
        swap.setToolTip("Swap width and height")
        swap.clicked.connect(self._swap)
        self.size_note = QLabel()
        self.size_note.setStyleSheet("color: #d04030;")
        self.size_note.hide()
        state.width_changed.connect(self._check_size)
        state.height_changed.connect(self._check_size)
        form.addRow("Size", self.size_preset)
        form.addRow("", _row(self.width_box, QLabel("×"), self.height_box, swap))
        form.addRow("", self.size_note)
        self.set_family("small", 128)

        self.batch_count = QSpinBox(**_limits("batch_count"))
        self.batch_count.setToolTip("Jobs queued per Generate (each with the next seeds)")
        self.batch_size = QSpinBox(**_limits("batch_size"))
        self.batch_size.setToolTip("Images per job, made together")
        bind(state, "batch_count", self.batch_count)
        bind(state, "batch_size", self.batch_size)
        form.addRow(
            "Batch", _row(QLabel("count"), self.batch_count, QLabel("size"), self.batch_size)
        )

        self.strength = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=100)
        self.strength_label = QLabel()
        self.strength.setToolTip("img2img / inpaint: how much of the image is repainted (1 = all)")
        bind(
            state,
            "strength",
            self.strength,
            to_widget=lambda v: round(v * 100),
            from_widget=lambda v: v / 100,
        )
        state.strength_changed.connect(lambda v: self.strength_label.setText(f"{v:.2f}"))
        self.strength_label.setText(f"{state.strength:.2f}")
        form.addRow("Strength", _row(self.strength, self.strength_label))
        state.mode_changed.connect(self._mode_changed)
        self._mode_changed(state.mode)
        for ref in session.known_models:
            self.add_model(ref)
        session.known_models_changed.connect(lambda refs: [self.add_model(r) for r in refs])
        session.loaded_model_changed.connect(self._model_loaded)
        self._show_model(state.model)

    # ---- model picker --------------------------------------------------------------------
    def add_model(self, ref: str) -> None:
        if self.model.findData(ref) < 0:
            self.model.insertItem(self.model.count() - 3, model_label(ref), ref)
            self.model.setItemData(self.model.findData(ref), ref, Qt.ItemDataRole.ToolTipRole)

    def _show_model(self, ref: str) -> None:
        self.add_model(ref)
        self.model.setCurrentIndex(self.model.findData(ref))

    def _model_activated(self, index: int) -> None:
        ref = self.model.itemData(index)
        if ref in (ADD_FOLDER, ADD_FILE):
            self._show_model(self.state.model)  # the dialog result, if any, changes the state
            self.add_model_requested.emit("folder" if ref == ADD_FOLDER else "file")
        elif ref:
            self.session.load_model(ref)

    def _model_loaded(self, loaded: LoadedModel | None) -> None:
        if loaded is not None:
            self.set_family(loaded.info.family, loaded.info.native_size)

    # ---- size ------------------------------------------------------------------------------
    def set_family(self, family: str, native: int) -> None:
        self.size_preset.clear()
        self.size_preset.addItem("Custom", None)
        for w, h in size_presets(family, native):
            self.size_preset.addItem(f"{w} × {h}", f"{w}x{h}")
        self._check_size()

    def _preset_chosen(self, index: int) -> None:
        size = self.size_preset.itemData(index)
        if size:
            w, h = size.split("x")
            self.state.width, self.state.height = int(w), int(h)

    def _swap(self) -> None:
        self.state.width, self.state.height = self.state.height, self.state.width

    def _check_size(self, *_: int) -> None:
        w, h = self.state.width, self.state.height
        bad = [f"{name} {v}" for name, v in (("width", w), ("height", h)) if v % 8]
        self.size_note.setText(f"Must be multiples of 8: {', '.join(bad)}" if bad else "")
        self.size_note.setVisible(bool(bad))
        index = self.size_preset.findData(f"{w}x{h}")
        self.size_preset.setCurrentIndex(max(index, 0))

    # ---- misc ------------------------------------------------------------------------------
    def _mode_changed(self, mode: str) -> None:
        self.strength.setEnabled(mode != "txt2img")


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return box
