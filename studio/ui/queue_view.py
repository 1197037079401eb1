"""Generate and Cancel, and the list of running and queued jobs, bound to the session."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.session import Session

JOB_ID_ROLE = Qt.ItemDataRole.UserRole


class QueueView(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.generate_button.setMinimumHeight(34)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running job (Esc)")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 3)
        buttons.addWidget(self.cancel_button, 1)

        self.queue_list = QListWidget()
        self.queue_list.setMaximumHeight(110)
        self.queue_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.queue_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.queue_list.setToolTip("Running and queued jobs; Delete removes a queued one")
        self.remove_button = QPushButton("Remove queued")
        self.remove_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Queue"))
        layout.addWidget(self.queue_list)
        layout.addWidget(self.remove_button)

        self.generate_button.clicked.connect(session.generate)
        self.cancel_button.clicked.connect(session.cancel)
        self.remove_button.clicked.connect(self.remove_selected)
        self.queue_list.currentItemChanged.connect(lambda *_: self._sync_remove())
        session.queue.changed.connect(self._refresh)

    def remove_selected(self) -> None:
        item = self.queue_list.currentItem()
        if item is not None and item.data(JOB_ID_ROLE) is not None:
            self.session.remove_job(item.data(JOB_ID_ROLE))

    def _refresh(self) -> None:
        queue = self.session.queue
        self.queue_list.clear()
        current = queue.current
        if current is not None:
            item = QListWidgetItem(f"▶ {current.label()}")
            item.setToolTip(current.request.prompt)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            self.queue_list.addItem(item)
        for job in queue.pending():
            item = QListWidgetItem(f"  {job.label()}")
            item.setToolTip(job.request.prompt)
            item.setData(JOB_ID_ROLE, job.id)
            self.queue_list.addItem(item)
        self.cancel_button.setEnabled(current is not None)
        waiting = len(queue.pending())
        self.generate_button.setText(f"Generate  ({waiting} queued)" if waiting else "Generate")
        self._sync_remove()

    def _sync_remove(self) -> None:
        item = self.queue_list.currentItem()
        self.remove_button.setEnabled(item is not None and item.data(JOB_ID_ROLE) is not None)
