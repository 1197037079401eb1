"""The status bar: what the engine is doing, the job's progress, the device and the model."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from studio.ui.progress import Progress
from studio.ui.session import Session
from studio.ui.worker import LoadedModel


class StudioStatusBar(QStatusBar):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(210)  # "step 12/20, 3.4 it/s" on one line
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.device_label = QLabel("device: …")
        self.model_label = QLabel()
        self.load_label = QLabel()
        self.addWidget(self.load_label, 1)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.model_label)

        session.progress_changed.connect(self._show_progress)
        session.load_status_changed.connect(self.load_label.setText)
        session.model_status_changed.connect(self.model_label.setText)
        session.loaded_model_changed.connect(self._show_device)
        session.status_message.connect(lambda text: self.showMessage(text, 6000))
        self._show_progress(session.progress)
        self.load_label.setText(session.load_status)
        self.model_label.setText(session.model_status)

    def _show_progress(self, p: Progress) -> None:
        self.progress.setRange(0, max(1, p.maximum))
        self.progress.setValue(p.value)
        self.progress.setFormat(p.text)

    def _show_device(self, loaded: LoadedModel | None) -> None:
        if loaded is not None:
            self.device_label.setText(f"{loaded.device} · {loaded.dtype}")
