"""`studio install-desktop`, `studio doctor` and the quiet log: in temporary HOME/XDG folders."""

from __future__ import annotations

import configparser
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from studio import cli
from studio.desktop import launcher, logs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for name, sub in (
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_PICTURES_DIR", "Pictures"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))
    return home


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def exec_program(entry: configparser.SectionProxy) -> Path:
    command = entry["Exec"]
    assert command.endswith(" %F")
    program = command[: -len(" %F")]
    if program.startswith('"'):
        program = program[1:-1].replace("\\\\", "\\").replace('\\"', '"')
    return Path(program)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launcher")
def test_install_writes_a_launcher_whose_exec_is_this_environments_studio_gui(
    private_home: Path,
) -> None:
    data = private_home / ".local/share"
    assert cli.main(["install-desktop"]) == 0

    entry = read_entry(data / "applications" / "diffusion-studio.desktop")
    program = exec_program(entry)
    assert program.is_absolute() and program.is_file() and os.access(program, os.X_OK)
    assert program == launcher.gui_executable()
    assert entry["MimeType"] == "image/png;image/jpeg;image/webp;"
    assert entry["Icon"] == "diffusion-studio" and entry["Terminal"] == "false"
    for size in launcher.ICON_SIZES:
        icon = data / "icons/hicolor" / f"{size}x{size}" / "apps" / "diffusion-studio.png"
        with Image.open(icon) as im:
            assert im.size == (size, size) and im.format == "PNG"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launcher")
def test_the_launchers_exec_starts_the_app(private_home: Path) -> None:
    data = private_home / ".local/share"
    launcher.install(data, tools=False)
    program = exec_program(read_entry(data / "applications" / "diffusion-studio.desktop"))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [str(program), "--smoke-test", "--config-dir", str(private_home / "cfg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "window shown after" in done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launcher")
@pytest.mark.parametrize("program", ["/opt/studio env/bin/studio-gui", "/usr/bin/studio-gui"])
def test_desktop_file_validate_accepts_the_launcher(tmp_path: Path, program: str) -> None:
    path = tmp_path / "diffusion-studio.desktop"
    path.write_text(launcher.desktop_entry(Path(program)), encoding="utf-8")
    entry = read_entry(path)
    # the keys the freedesktop spec requires of an application, on every machine...
    assert entry["Type"] == "Application" and entry["Name"]
    assert entry["MimeType"] == "image/png;image/jpeg;image/webp;"
    assert exec_program(entry) == Path(program)
    # ...and the reference validator's verdict where desktop-file-utils is installed
    validate = shutil.which("desktop-file-validate")
    if validate is not None:
        done = subprocess.run([validate, str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launcher")
def test_install_twice_is_idempotent_and_uninstall_removes_everything_written(
    private_home: Path,
) -> None:
    data = private_home / ".local/share"
    before = files_under(private_home)
    first = launcher.install(data)  # with the desktop's cache tools, where installed
    snapshot = {p: p.read_bytes() for p in first.written}
    second = launcher.install(data)
    assert second.written == first.written
    assert {p: p.read_bytes() for p in second.written} == snapshot
    assert all(p.is_relative_to(data) for p in first.written)

    assert cli.main(["install-desktop", "--uninstall"]) == 0
    assert files_under(private_home) == before
    assert not (data / "applications").exists() and not (data / "icons").exists()
    assert cli.main(["install-desktop", "--uninstall"]) == 0  # nothing left: still fine


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop launcher")
def test_uninstall_leaves_other_apps_launchers_and_icons(private_home: Path) -> None:
    data = private_home / ".local/share"
    other = data / "applications" / "other.desktop"
    other_icon = data / "icons/hicolor/48x48/apps/other.png"
    for path in (other, other_icon):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"theirs")
    launcher.install(data)
    launcher.uninstall(data)
    assert other.read_bytes() == b"theirs" and other_icon.read_bytes() == b"theirs"
    assert not (data / "applications" / "diffusion-studio.desktop").exists()
    assert not list(data.rglob("diffusion-studio*"))


def test_a_missing_studio_gui_is_a_one_line_error(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    assert cli.main(["install-desktop"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("studio: studio-gui is not installed") and err.count("\n") == 1


def test_doctor_names_each_part_and_what_is_wrong(tmp_path: Path, capsys, monkeypatch) -> None:
    from studio.desktop import doctor

    monkeypatch.setattr(doctor, "free_ram_gb", lambda: 1.5)
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    for name in ("Python", "torch", "GPU", "diffusers", "Qt platform", "Memory", "Output folder"):
        assert name in out
    assert "Demo model" in out and "Model folder" in out
    # 1.5 GB free is a problem, said under its line, and the exit code says so
    memory = out.splitlines().index(next(li for li in out.splitlines() if "Memory" in li))
    assert out.splitlines()[memory].startswith("!!")
    assert "under 4 GB free" in out.splitlines()[memory + 1]
    assert code == 1 and "problem(s) found" in out


def test_library_warnings_go_to_the_log_file_not_the_terminal(tmp_path: Path, capsys) -> None:
    log = tmp_path / "logs" / "studio.log"
    assert logs.setup(verbose=False, path=log) == log
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("`torch.jit.script` is deprecated", FutureWarning, stacklevel=1)
    logging.getLogger("studio.engine").warning("the studio's own warning")
    logging.getLogger("diffusers.x").info("library chatter")
    err = capsys.readouterr().err
    assert "torch.jit.script" not in err and "chatter" not in err
    assert "the studio's own warning" in err
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log.read_text(encoding="utf-8")
    assert "torch.jit.script" in text and "the studio's own warning" in text


def test_verbose_shows_library_warnings_in_the_terminal(tmp_path: Path, capsys) -> None:
    logs.setup(verbose=True, path=tmp_path / "studio.log")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("`torch.jit.script` is deprecated", FutureWarning, stacklevel=1)
    assert "torch.jit.script" in capsys.readouterr().err


def test_verbose_is_taken_before_and_after_the_command() -> None:
    parser = cli._parser()
    assert parser.parse_args(["-v", "samplers"]).verbose is True
    assert parser.parse_args(["samplers", "--verbose"]).verbose is True
    assert parser.parse_args(["samplers"]).verbose is False


def test_doctor_reports_cuda_vram_and_too_little_of_it(monkeypatch) -> None:
    import torch

    from studio.desktop import doctor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Test GPU")
    gpu = doctor.check_torch()[1]
    assert gpu.name == "GPU" and "Test GPU, 1.0 of 80.0 GB VRAM free" in gpu.found
    assert gpu.problem is not None and "under 2 GB of VRAM free" in gpu.problem
