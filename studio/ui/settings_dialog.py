"""The settings dialog: output folder, image format, live previews, model folders, memory."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.engine.memory import POLICIES, POLICY_LABELS
from studio.settings import Settings
from studio.ui.state import PREVIEW_SOURCES as SOURCE_VALUES
from studio.ui.state import StudioState

FORMATS = ("png", "jpeg", "webp")
_SOURCE_LABELS = {"x0": "Predicted clean image x̂₀", "xt": "Noisy latent xₜ"}
# one entry per value the state takes
PREVIEW_SOURCES = tuple((_SOURCE_LABELS.get(v, v), v) for v in SOURCE_VALUES)


class SettingsDialog(QDialog):
    """Edits a copy of the values; `apply_to(settings, state)` writes them back after Accept."""

    def __init__(
        self, settings: Settings, state: StudioState, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout()

        self.output_dir = QLineEdit(str(settings.output_path()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_output)
        row = QHBoxLayout()
        row.addWidget(self.output_dir)
        row.addWidget(browse)
        form.addRow("Output folder", row)

        self.image_format = QComboBox()
        self.image_format.addItems(FORMATS)
        # the settings accept what the writer does: "jpg" is shown as "jpeg"
        shown = "jpeg" if settings.image_format == "jpg" else settings.image_format
        self.image_format.setCurrentIndex(max(0, self.image_format.findText(shown)))
        self.image_format.setToolTip("Format of auto-saved images; all three keep the settings")
        form.addRow("Auto-save format", self.image_format)

        low, high = StudioState.preview_every.limits
        self.preview_every = QSpinBox(minimum=int(low), maximum=int(high))
        self.preview_every.setValue(state.preview_every)
        self.preview_every.setSpecialValueText("off")
        self.preview_every.setSuffix(" steps")
        self.preview_every.setToolTip("Show the image being made every N steps (0 = no previews)")
        form.addRow("Live preview every", self.preview_every)

        self.preview_source = QComboBox()
        for label, value in PREVIEW_SOURCES:
            self.preview_source.addItem(label, value)
        self.preview_source.setCurrentIndex(
            max(0, self.preview_source.findData(state.preview_source))
        )
        form.addRow("Preview shows", self.preview_source)

        self.model_folders = QListWidget()
        self.model_folders.addItems(settings.model_folders)
        add = QPushButton("Add folder…")
        remove = QPushButton("Remove")
        add.clicked.connect(self._add_folder)
        remove.clicked.connect(lambda: self.model_folders.takeItem(self.model_folders.currentRow()))
        buttons_row = QHBoxLayout()
        buttons_row.addWidget(add)
        buttons_row.addWidget(remove)
        folders = QVBoxLayout()
        folders.addWidget(self.model_folders)
        folders.addLayout(buttons_row)
        form.addRow("Model folders", folders)
        self.allow_downloads = QCheckBox("Download hub models that are not on this computer")
        self.allow_downloads.setChecked(settings.allow_downloads)
        self.allow_downloads.setToolTip(
            "Off: the studio never goes online; a hub id must already be in the Hugging Face cache"
        )
        form.addRow("Network", self.allow_downloads)

        self.memory_policy = QComboBox()
        for value in POLICIES:
            self.memory_policy.addItem(POLICY_LABELS[value], value)
        self.memory_policy.setCurrentIndex(
            max(0, self.memory_policy.findData(settings.memory_policy))
        )
        self.memory_policy.setToolTip(
            "Where the model's weights live on a GPU. Automatic keeps the whole model on the GPU "
            "when it fits, else offloads it to the CPU model by model, or layer by layer"
        )
        self.vae_tiling = QCheckBox("VAE tiling (large images on small GPUs)")
        self.vae_tiling.setChecked(settings.vae_tiling)
        memory = QVBoxLayout()
        memory.addWidget(self.memory_policy)
        memory.addWidget(self.vae_tiling)
        form.addRow("Memory", memory)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def apply_to(self, settings: Settings, state: StudioState) -> None:
        """Output folder, format and model folders go to the settings, previews to the state."""
        settings.image_format = self.image_format.currentText()
        settings.allow_downloads = self.allow_downloads.isChecked()
        settings.memory_policy = self.memory_policy.currentData()
        settings.vae_tiling = self.vae_tiling.isChecked()
        state.preview_every = self.preview_every.value()
        state.preview_source = self.preview_source.currentData()
        settings.model_folders = [
            self.model_folders.item(i).text() for i in range(self.model_folders.count())
        ]

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if folder:
            self.output_dir.setText(folder)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of models")
        if folder:
            self.model_folders.addItem(folder)
