"""The model library panel (a dock): checkpoints, LoRAs, embeddings, VAEs and ControlNets in the
user's model folders, searchable by name; choosing a checkpoint loads it. Its folders are managed
here too, with a one-click "use my A1111 / ComfyUI folders". Bound to the LibraryState only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.engine.library import KIND_NAMES, LibraryEntry, human_size
from studio.ui.library_state import LibraryState
from studio.ui.session import Session

COLUMNS = ("Name", "Family", "Prediction", "Native", "Precision", "File", "Hash")
ENTRY_ROLE = Qt.ItemDataRole.UserRole
KIND_ROLE = Qt.ItemDataRole.UserRole + 1
WIDTHS = (190, 130, 70, 60, 70, 70, 90)
THUMB = 40
IN_USE = "● "  # marks the model in use
# "probe": an SD 2.x file that does not say; a one-step probe of its UNet decides at load
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "probe": "probe"}


class LibraryPanel(QWidget):
    def __init__(self, library: LibraryState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self._icons: dict[str, QIcon] = {}  # image path -> thumbnail

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search models by name")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setIconSize(QSize(THUMB, THUMB))
        self.tree.setUniformRowHeights(False)
        self.tree.setRootIsDecorated(True)
        for column, width in enumerate(WIDTHS):  # a long "unusable" reason must not set them
            self.tree.setColumnWidth(column, width)
        self.tree.setToolTip(
            "Double-click a checkpoint to load it; a LoRA, embedding or VAE to use it "
            "(again to stop); an LCM-LoRA switches fast mode on and off"
        )
        self.load_button = QPushButton("Load checkpoint")
        self.load_button.setEnabled(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.note = QLabel()  # what "cancel" does while a model loads
        self.note.setWordWrap(True)
        self.note.setObjectName("load_note")
        self.note.hide()

        self.folder_list = QListWidget()
        self.folder_list.setMaximumHeight(96)
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.install_button = QPushButton("Use my A1111 / ComfyUI folders…")
        self.install_button.setToolTip(
            "Choose the A1111 (stable-diffusion-webui) or ComfyUI folder: its checkpoint, LoRA, "
            "embedding, VAE and ControlNet folders are added"
        )
        self.rescan_button = QPushButton("Rescan")
        folders = QGroupBox("Model folders")
        fl = QVBoxLayout(folders)
        fl.addWidget(self.folder_list)
        row = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.rescan_button):
            row.addWidget(button)
        fl.addLayout(row)
        fl.addWidget(self.install_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.load_button)
        layout.addWidget(self.note)
        layout.addWidget(self.status)
        layout.addWidget(folders)

        self.search.textChanged.connect(lambda _: self._rebuild())
        self.tree.itemActivated.connect(lambda item, _col: self._choose(item))
        self.tree.currentItemChanged.connect(lambda *_: self._sync_load_button())
        self.load_button.clicked.connect(lambda: self._choose(self.tree.currentItem()))
        self.add_button.clicked.connect(self._add_dialog)
        self.remove_button.clicked.connect(self._remove_selected)
        self.install_button.clicked.connect(self._install_dialog)
        self.rescan_button.clicked.connect(library.rescan)
        for signal in (library.entries_changed, library.in_use_changed, library.loading_changed):
            signal.connect(lambda *_: self._rebuild())
        library.scanning_changed.connect(lambda *_: self._rebuild())
        library.last_images_changed.connect(lambda *_: self._rebuild())
        library.folders_changed.connect(self._show_folders)
        library.status_changed.connect(self.status.setText)
        library.loading_changed.connect(self._show_note)
        self._show_folders(library.folders)
        self.status.setText(library.status)
        self._rebuild()

    # ---- what tests and the window read -------------------------------------------------------
    def rows(self, kind: str) -> list[tuple[str, ...]]:
        """The visible rows of one kind, as the columns show them."""
        group = self._group(kind)
        if group is None:
            return []
        return [
            tuple(group.child(i).text(c) for c in range(len(COLUMNS)))
            for i in range(group.childCount())
        ]

    def item_for(self, path: str | Path) -> QTreeWidgetItem | None:
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            for i in range(group.childCount()):
                entry = group.child(i).data(0, ENTRY_ROLE)
                if entry is not None and entry.path == str(path):
                    return group.child(i)
        return None

    def showEvent(self, event: object) -> None:  # noqa: N802
        super().showEvent(event)
        # the first look starts the scan (cached: instant next time); later looks pick up folders
        # changed in the settings dialog
        self.library.reload_folders()

    # ---- the list ----------------------------------------------------------------------------
    def _group(self, kind: str) -> QTreeWidgetItem | None:
        for g in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(g).data(0, KIND_ROLE) == kind:
                return self.tree.topLevelItem(g)
        return None

    def _rebuild(self) -> None:
        current = self.tree.currentItem()
        selected = current.data(0, ENTRY_ROLE) if current is not None else None
        words = self.search.text().lower().split()
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for entry in self.library.entries:
            if not all(w in entry.name.lower() for w in words):
                continue
            if entry.kind not in groups:
                group = QTreeWidgetItem([KIND_NAMES.get(entry.kind, entry.kind)])
                group.setData(0, KIND_ROLE, entry.kind)
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.tree.addTopLevelItem(group)
                groups[entry.kind] = group
            item = self._item(entry)
            groups[entry.kind].addChild(item)
            item.setFirstColumnSpanned(not entry.usable)
            if selected is not None and entry.path == selected.path:
                self.tree.setCurrentItem(item)
        for group in groups.values():
            group.setText(0, f"{group.text(0)} ({group.childCount()})")
            group.setExpanded(True)
        self._sync_load_button()

    def _item(self, entry: LibraryEntry) -> QTreeWidgetItem:
        lib = self.library
        name = entry.name
        if lib.is_in_use(entry):
            name = IN_USE + name
        elif lib.loading and entry.path == lib.loading:
            name += " (loading…)"
        if not entry.usable:
            # one line across the columns (see _rebuild): the reason is what matters here
            reason = entry.error.removeprefix(Path(entry.path).name + " ")
            texts = [f"{name}: {reason}", entry.error, "", "", "", human_size(entry.size), ""]
        else:
            family = entry.family_name + (f" {entry.variant}" if entry.variant else "")
            waiting = entry.hashable and not entry.short_hash and lib.scanning
            texts = [
                name,
                family,
                PREDICTIONS.get(entry.prediction, entry.prediction),
                f"{entry.native_size}px" if entry.native_size else "",
                entry.precision,
                human_size(entry.size),
                entry.short_hash or ("…" if waiting else ""),
            ]
        item = QTreeWidgetItem(texts)
        item.setData(0, ENTRY_ROLE, entry)
        item.setToolTip(0, entry.path + (f"\n{entry.error}" if entry.error else ""))
        item.setToolTip(1, entry.error or entry.family_name)
        if lib.is_in_use(entry):
            font = QFont(item.font(0))
            font.setBold(True)
            item.setFont(0, font)
            item.setToolTip(0, f"In use: {entry.path}")
        if entry.kind == "checkpoint":
            image = lib.last_image(entry)
            if image:
                item.setIcon(0, self._icon(image))
        if not entry.usable:
            item.setForeground(0, Qt.GlobalColor.darkRed)
        return item

    def _icon(self, image: str) -> QIcon:
        if image not in self._icons:
            from studio.ui.gallery import load_thumbnail

            self._icons[image] = QIcon(load_thumbnail(Path(image), THUMB))
        return self._icons[image]

    def _sync_load_button(self) -> None:
        item = self.tree.currentItem()
        entry = item.data(0, ENTRY_ROLE) if item is not None else None
        kind = entry.kind if entry is not None and entry.usable else ""
        in_use = bool(kind) and self.library.is_in_use(entry)
        label = {"checkpoint": "Load checkpoint", "vae": "Use this VAE"}.get(kind, "Add to prompt")
        if kind in ("lora", "embedding", "vae") and in_use:
            label = "Stop using it" if kind == "vae" else "Remove from prompt"
        self.load_button.setText(label)
        usable = kind in ("lora", "embedding", "vae") or (kind == "checkpoint" and not in_use)
        self.load_button.setEnabled(usable)

    def _choose(self, item: QTreeWidgetItem | None) -> None:
        entry = item.data(0, ENTRY_ROLE) if item is not None else None
        if entry is not None:
            self.library.choose(entry)

    def _show_note(self, loading: str) -> None:
        self.note.setText(self.library.load_note())
        self.note.setVisible(bool(loading))

    # ---- folders -----------------------------------------------------------------------------
    def _show_folders(self, folders: list[str]) -> None:
        self.folder_list.clear()
        self.folder_list.addItems(folders)

    def _add_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of models")
        if folder:
            self.library.add_folder(folder)

    def _remove_selected(self) -> None:
        item = self.folder_list.currentItem()
        if item is not None:
            self.library.remove_folder(item.text())

    def _install_dialog(self) -> None:
        title = "Your A1111 (stable-diffusion-webui) or ComfyUI folder"
        root = QFileDialog.getExistingDirectory(self, title)
        if root:
            self.library.use_install(root)


def add_library_dock(window: QMainWindow, session: Session) -> LibraryPanel:
    """The library as a dock on the window's right, hidden until View > Model library."""
    panel = LibraryPanel(LibraryState(session), window)
    dock = QDockWidget("Model library", window)
    dock.setObjectName("model_library")  # saveState() remembers where the user put it
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    toggle = dock.toggleViewAction()
    toggle.setShortcut(QKeySequence("Ctrl+Shift+L"))
    window.menuBar().addMenu("&View").addAction(toggle)
    return panel
