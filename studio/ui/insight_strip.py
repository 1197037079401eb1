"""The strip under the canvas: what the live preview shows, and where the job is in its schedule."""

from __future__ import annotations

from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QVBoxLayout, QWidget

from studio.ui.properties import bind
from studio.ui.schedule_plot import SchedulePlot
from studio.ui.session import Session


class InsightStrip(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview_x0 = QRadioButton("x̂₀ (predicted clean image)")
        self.preview_xt = QRadioButton("xₜ (noisy latent)")
        self.preview_x0.setToolTip("Preview the model's current guess of the final image")
        self.preview_xt.setToolTip("Preview the noisy latent the sampler is holding at this step")
        group = QButtonGroup(self)
        group.addButton(self.preview_x0)
        group.addButton(self.preview_xt)
        self.schedule_plot = SchedulePlot()
        self.schedule_plot.setFixedHeight(100)
        radios = QVBoxLayout()
        radios.addWidget(QLabel("Preview shows"))
        radios.addWidget(self.preview_x0)
        radios.addWidget(self.preview_xt)
        radios.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(radios)
        layout.addWidget(self.schedule_plot, 1)

        state = session.state
        bind(state, "preview_source", self.preview_xt, lambda v: v == "xt", _x0_or_xt)
        self.preview_x0.setChecked(state.preview_source == "x0")
        session.schedule_ready.connect(self.schedule_plot.set_curve)
        session.progress_changed.connect(lambda p: self.schedule_plot.set_step(p.value))


def _x0_or_xt(xt_checked: bool) -> str:
    return "xt" if xt_checked else "x0"
