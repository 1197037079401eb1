"""`studio-gui IMAGE…` opens the image with its settings offered; a second launch forwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.ui.app import open_files
from studio.ui.single_instance import claim_or_forward, send_to_running, server_name

REPO = Path(__file__).resolve().parents[2]
A1111 = (
    "a lighthouse at dusk\nNegative prompt: fog\n"
    "Steps: 7, Sampler: Euler, CFG scale: 5.5, Seed: 1234, Size: 64x64"
)


def image_with_settings(path: Path, colour: str = "red") -> Path:
    info = PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", (64, 64), colour).save(path, pnginfo=info)
    return path


def test_opening_an_image_shows_it_and_offers_its_settings(qtbot, make_window, tmp_path):
    window = make_window(wait_loaded=False)
    path = image_with_settings(tmp_path / "old.png")
    with qtbot.waitSignal(window.session.notice_changed, timeout=30_000):
        assert open_files(window, [path])
    assert window.canvas.image().getpixel((10, 10)) == (255, 0, 0)
    notice = window.session.notice
    assert notice.action_label == "Restore settings" and "old.png" in window.banner.text()
    window.session.accept_notice(notice)  # the banner's button
    s = window.session.state
    assert (s.prompt, s.negative_prompt, s.steps, s.cfg_scale, s.seed) == (
        "a lighthouse at dusk",
        "fog",
        7,
        5.5,
        1234,
    )


def test_an_unreadable_file_is_an_error_in_the_window(qtbot, make_window, tmp_path):
    window = make_window(wait_loaded=False)
    (tmp_path / "notes.png").write_text("not an image")
    assert not open_files(window, [tmp_path / "notes.png"])
    assert "notes.png" in window.session.error


def test_with_nobody_listening_the_first_instance_gets_the_server(qtbot, tmp_path):
    name = server_name(str(tmp_path))
    assert not send_to_running(name, [tmp_path / "a.png"], timeout_ms=200)
    server = claim_or_forward(name, [])
    assert server is not None and server.server.isListening()
    server.close()


def test_a_second_launch_hands_its_file_to_the_running_window_and_exits(
    qtbot, make_window, tmp_path
):
    window = make_window(wait_loaded=False)
    config = tmp_path / "second-config"
    server = claim_or_forward(server_name(str(config)), [])
    assert server is not None
    server.files_received.connect(lambda files: open_files(window, files))
    path = image_with_settings(tmp_path / "forwarded.png", "blue")

    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    cmd = [sys.executable, "-m", "studio.ui.app", "--config-dir", str(config), str(path)]
    second = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with qtbot.waitSignal(server.files_received, timeout=120_000) as received:
            pass
        assert received.args == [[path]]
        qtbot.waitUntil(lambda: second.poll() is not None, timeout=60_000)
    finally:
        if second.poll() is None:
            second.kill()
        out, err = second.communicate()
        server.close()
    assert second.returncode == 0, err[-2000:]
    assert "handed 1 file(s) to the window already open" in out
    assert window.canvas.image().getpixel((5, 5)) == (0, 0, 255)
