"""The model library's observable state: the folders, what a scan found, the model in use.

Scans and hashing run on the session's background thread (studio.engine.library caches each file
by path, size and mtime, so reopening is instant); the folders are saved with the settings. The
library panel binds to this and to nothing else.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.engine.library import LibraryEntry, standard_folders
from studio.engine.request import DEMO_MODEL_REF
from studio.paths import DEMO_MODEL
from studio.ui.addon_actions import AddonActions
from studio.ui.jobs import Job
from studio.ui.properties import Property
from studio.ui.session import Session, model_name
from studio.ui.worker import BackgroundTask, LoadedModel

# what a user needs to know before choosing a model while another loads
LOAD_NOTE = (
    "A load cannot be stopped once it has started: a model chosen now waits until {name} has "
    "finished loading, then loads. Cancel (Esc) stops generation jobs, not loads."
)


def model_path(ref: str) -> str:
    """A model ref as the library lists it: the demo's folder, or the real path."""
    if ref == DEMO_MODEL_REF:
        return str(DEMO_MODEL)
    return os.path.realpath(os.path.expanduser(ref)) if ref else ""


def same_path(a: str, b: str) -> bool:
    return bool(a and b) and (a == b or model_path(a) == model_path(b))


class LibraryState(QObject):
    entries_changed = Signal(list)
    folders_changed = Signal(list)
    status_changed = Signal(str)
    scanning_changed = Signal(bool)
    loading_changed = Signal(str)
    in_use_changed = Signal(str)
    last_images_changed = Signal(dict)

    entries = Property([], list)  # LibraryEntry, sorted by kind and name
    folders = Property([], list)  # the model folders, as saved in the settings
    status = Property("", str)  # one line: what was found, or what is being done
    scanning = Property(False, bool)
    loading = Property("", str)  # the model being loaded at the user's request; "" when none
    in_use = Property("", str)  # the model chosen for generation (state.model)
    last_images = Property({}, dict)  # {model path: the newest image made with it}

    def __init__(
        self,
        session: Session,
        cache_file: Path | None = None,  # tests and the CLI use the user cache's default
        images_file: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent or session)
        self.session = session
        self._cache_file = cache_file
        self._images_file = images_file
        self._scan_id = 0  # results of a scan older than the latest are dropped
        self.scans = 0  # how many scans finished (tests wait on it)
        self.folders = list(session.settings.model_folders)
        self.in_use = session.state.model
        self.addons = AddonActions(session.state)
        session.state.model_changed.connect(self._model_chosen)
        session.loaded_model_changed.connect(self._model_loaded)
        session.error_changed.connect(lambda text: text and self._load_ended())
        session.result_ready.connect(self._image_made)

    # ---- folders --------------------------------------------------------------------------------
    def add_folder(self, folder: str | Path) -> bool:
        folder = str(Path(folder).expanduser())
        if not folder or any(same_path(folder, f) for f in self.folders):
            return False
        self._set_folders([*self.folders, folder])
        return True

    def remove_folder(self, folder: str) -> None:
        if folder in self.folders:
            self._set_folders([f for f in self.folders if f != folder])

    def use_install(self, root: str | Path) -> list[Path]:
        """Add the model folders of an A1111 or ComfyUI install; the ones found are returned."""
        found = standard_folders(root)
        new = [str(f) for f in found if not any(same_path(str(f), g) for g in self.folders)]
        if new:
            self._set_folders([*self.folders, *new])
        if not found:
            self.status = f"No A1111 or ComfyUI model folders in {root}."
        return found

    def reload_folders(self) -> None:
        """Take the folders from the settings (the settings dialog may have changed them)."""
        folders = list(self.session.settings.model_folders)
        if folders != self.folders or self._scan_id == 0:
            self.folders = folders
            self.rescan()

    def _set_folders(self, folders: list[str]) -> None:
        self.folders = folders
        self.session.settings.model_folders = list(folders)
        self.session.save_settings()
        self.rescan()

    # ---- scanning -------------------------------------------------------------------------------
    def rescan(self) -> None:
        from studio.engine.library import last_images, scan

        self._scan_id += 1
        scan_id, folders = self._scan_id, list(self.folders)
        cache, images = self._cache_file, self._images_file
        if not folders:
            self.entries = []
            self.status = "No model folders yet: add one, or use your A1111 / ComfyUI folders."
            return
        self.scanning = True
        self.status = f"Scanning {len(folders)} folder(s)…"
        self.session.run_in_background(
            BackgroundTask(
                "library:scan",
                lambda: (scan(folders, cache), last_images(images)),
                lambda found: self._scanned(scan_id, *found),
                lambda error: self._failed(scan_id, error),
            )
        )

    def _scanned(self, scan_id: int, entries: list, images: dict) -> None:
        if scan_id != self._scan_id:
            return
        self.last_images = images
        self.entries = entries
        self.scans += 1
        self.status = self._summary()
        self._hash_next(scan_id)

    def _hash_next(self, scan_id: int) -> None:
        """Hash one checkpoint per task: a dropped image's metadata waits for one file at most."""
        to_hash = [e for e in self.entries if e.hashable and not e.short_hash]
        if not to_hash:
            self.scanning = False
            self.status = self._summary()
            return
        from studio.engine.library import add_hashes

        entry, cache = to_hash[0], self._cache_file
        self.status = self._summary() + f" Hashing {len(to_hash)} checkpoint(s)…"
        self.session.run_in_background(
            BackgroundTask(
                "library:hash",
                lambda: add_hashes([entry], cache)[0],
                lambda hashed: self._hashed(scan_id, entry, hashed),
                lambda error: self._failed(scan_id, error),
            )
        )

    def _hashed(self, scan_id: int, old: LibraryEntry, new: LibraryEntry) -> None:
        if scan_id != self._scan_id:
            return
        if not new.short_hash:  # unreadable now: shown without a hash, not hashed forever
            new = replace(new, short_hash="?")
        self.entries = [new if e is old else e for e in self.entries]
        self._hash_next(scan_id)

    def _failed(self, scan_id: int, error: str) -> None:
        if scan_id == self._scan_id:
            self.scanning = False
            self.status = f"The scan failed: {error}"

    def _summary(self) -> str:
        usable = [e for e in self.entries if e.usable]
        bad = len(self.entries) - len(usable)
        text = f"{len(usable)} model file(s) in {len(self.folders)} folder(s)."
        return text + (f" {bad} cannot be used (see Unusable)." if bad else "")

    # ---- choosing and loading -------------------------------------------------------------------
    def is_in_use(self, entry: LibraryEntry) -> bool:
        if entry.kind != "checkpoint":
            return self.addons.is_in_use(entry)
        return same_path(entry.path, self.in_use)

    def choose(self, entry: LibraryEntry) -> bool:
        """Load a checkpoint (in the background; progress shows in the status bar); apply or
        remove a LoRA, embedding or VAE (studio.ui.addon_actions)."""
        if not entry.usable:
            return False
        if entry.kind in ("lora", "embedding", "vae"):
            self.session.status_message.emit(self.addons.use(entry))
            self.in_use_changed.emit(self.in_use)  # the panel redraws its in-use marks
            return True
        if entry.kind != "checkpoint" or self.is_in_use(entry):
            return False
        if self.loading:  # the worker loads one model at a time: this one waits its turn
            self.session.status_message.emit(
                f"{entry.name} will load after {model_name(self.loading)} has finished loading"
            )
        self.loading = entry.path
        self.session.load_model(entry.path)
        return True

    def load_note(self) -> str:
        return LOAD_NOTE.format(name=model_name(self.loading)) if self.loading else ""

    def _model_chosen(self, ref: str) -> None:
        self.in_use = ref

    def _model_loaded(self, loaded: LoadedModel | None) -> None:
        if loaded is None or same_path(loaded.ref, self.loading):
            self._load_ended()

    def _load_ended(self) -> None:
        self.loading = ""

    # ---- thumbnails: the newest image made with each model --------------------------------------
    def last_image(self, entry: LibraryEntry) -> str:
        path = self.last_images.get(model_path(entry.path), "")
        return path if path and Path(path).is_file() else ""

    def _image_made(self, job: Job) -> None:
        if not job.paths:
            return
        from studio.engine.library import remember_image

        model = model_path(job.request.model)
        image, index = job.paths[0], self._images_file
        self.last_images = {**self.last_images, model: str(image)}
        remember = BackgroundTask(
            f"library:image:{model}", lambda: remember_image(model, image, index), lambda _: None
        )
        self.session.run_in_background(remember)  # a small JSON write, off the UI thread
