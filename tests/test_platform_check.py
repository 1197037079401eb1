"""Before Qt starts: missing X11 libraries are named with their packages, and the app exits 1."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.desktop import platform_check

# what `ldd libqxcb.so` prints on a desktop without two of xcb's helper libraries
FAKE_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd6b1f5000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x7f1)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x7f2)
\tlibweird-thing.so.3 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f3)
"""


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


def test_ldd_output_gives_each_missing_library_once() -> None:
    assert platform_check.missing_libraries(FAKE_LDD) == [
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libweird-thing.so.3",
    ]
    assert platform_check.missing_libraries(FAKE_LDD.replace("not found", "/lib/x.so")) == []


def test_the_hint_names_debian_and_fedora_packages() -> None:
    hint = platform_check.install_hint(platform_check.missing_libraries(FAKE_LDD))
    lines = hint.splitlines()
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libweird-thing.so.3" in lines[0]
    assert lines[1].split(":", 1)[1].split() == [
        "sudo",
        "apt",
        "install",
        "libxcb-cursor0",
        "libxcb-icccm4",
    ]
    assert lines[2].split(":", 1)[1].split()[3:] == ["xcb-util-cursor", "xcb-util-wm"]
    assert "libweird-thing.so.3" in lines[3] and "apt-file search" in lines[3]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 check is Linux-only")
def test_check_runs_ldd_on_the_xcb_plugin_and_reports(monkeypatch) -> None:
    ran: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, FAKE_LDD, "")

    monkeypatch.setattr(platform_check, "xcb_plugin", lambda: Path("/qt/libqxcb.so"))
    monkeypatch.setattr(platform_check.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(platform_check.subprocess, "run", fake_run)
    message = platform_check.check({"DISPLAY": ":0"})
    assert ran == [["/usr/bin/ldd", "/qt/libqxcb.so"]]
    assert message is not None and "sudo apt install libxcb-cursor0 libxcb-icccm4" in message
    # not the X11 plugin: nothing to check
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "wayland"}):
        assert platform_check.check(env) is None
    wayland = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    assert platform_check.check(wayland) is None
    assert len(ran) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PySide6 ships xcb on Linux")
def test_the_real_plugin_is_found_in_pyside6() -> None:
    plugin = platform_check.xcb_plugin()
    assert plugin is not None, "PySide6's wheel ships plugins/platforms/libqxcb.so on Linux"
    assert plugin.name == "libqxcb.so" and plugin.is_file()


def test_studio_gui_prints_the_hint_and_exits_1_before_qt(monkeypatch, capsys) -> None:
    from studio.ui import app

    hint = platform_check.install_hint(["libxcb-cursor.so.0"])
    monkeypatch.setattr(platform_check, "check", lambda env=None: hint)
    assert app.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("studio-gui: Qt cannot start") and "libxcb-cursor0" in err
