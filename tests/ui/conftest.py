from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QThread


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, outputs and caches of every UI test live under tmp_path, never in the real home."""
    home = tmp_path / "home"
    for name, sub in (
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_PICTURES_DIR", "Pictures"),
    ):
        folder = home / sub
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(folder))
    return home


@pytest.fixture(autouse=True)
def no_qthread_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves a QThread running (napari's check): every start is recorded."""
    started: list[QThread] = []
    original = QThread.start

    def start(self: QThread, *args: object) -> None:
        started.append(self)
        original(self, *args)

    monkeypatch.setattr(QThread, "start", start)
    yield
    running = [t.objectName() or repr(t) for t in started if shiboken6.isValid(t) and t.isRunning()]
    for t in started:  # stop them anyway, so one failure does not cascade into the next tests
        if shiboken6.isValid(t) and t.isRunning():
            t.quit()
            t.wait(10_000)
    assert not running, f"QThreads left running after the test: {running}"


@pytest.fixture(scope="session", autouse=True)
def modest_torch_threads() -> None:
    import torch

    torch.set_num_threads(
        1
    )  # on a shared CPU more threads thrash: 3 tiny steps 10 s instead of 0.1 s


def write_settings(config_dir: Path, **last: object) -> None:
    """A settings file as a previous session would have left it."""
    from studio.settings import Settings, save

    settings = Settings()
    settings.last.update(last)
    save(settings, config_dir / "settings.json")
    json.loads((config_dir / "settings.json").read_text())  # it must be valid


@pytest.fixture
def session(qtbot, tmp_path: Path) -> Iterator[object]:
    """A session without a window and without a started engine: for widgets bound to it."""
    from studio.ui.session import Session

    s = Session(config_dir=tmp_path / "config", output_dir=tmp_path / "out", device="cpu")
    yield s
    s.shutdown()


@pytest.fixture
def make_window(qtbot, tmp_path: Path, tiny_model: Path) -> Iterator[Callable[..., object]]:
    """Open the real main window on the tiny model (64x64, 3 Euler steps), outputs in tmp_path.

    `wait_loaded=True` returns once the worker reports the model loaded.
    """
    from studio.ui.main_window import MainWindow

    config_dir = tmp_path / "config"
    output_dir = tmp_path / "out"
    opened: list[MainWindow] = []

    def make(wait_loaded: bool = True, fresh: bool = True, **kwargs: object) -> MainWindow:
        if fresh and not (config_dir / "settings.json").exists():
            write_settings(
                config_dir,
                model=str(tiny_model),
                steps=3,
                width=64,
                height=64,
                sampler="Euler",
                prompt="a red cube",
                seed=-1,
            )
        kwargs.setdefault("model", str(tiny_model))
        window = MainWindow(config_dir=config_dir, output_dir=output_dir, device="cpu", **kwargs)
        qtbot.addWidget(window)
        opened.append(window)
        window.show()
        if wait_loaded:
            # the window's own slot records the load, so a fast load cannot be missed
            qtbot.waitUntil(lambda: window.session.loaded_model is not None, timeout=60_000)
        return window

    make.config_dir = config_dir  # type: ignore[attr-defined]
    make.output_dir = output_dir  # type: ignore[attr-defined]
    yield make
    for window in opened:
        if shiboken6.isValid(window) and (
            window.session.worker.is_running() or window.session.background.isRunning()
        ):
            window.close()
