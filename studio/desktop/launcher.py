"""`studio install-desktop`: a launcher in the user's own menu that starts *this* environment's app.

Linux: a freedesktop entry in $XDG_DATA_HOME/applications with the absolute path of this
environment's `studio-gui` (a virtual environment's bin folder is not on the desktop's PATH), and
the icon in the hicolor sizes. Windows and macOS: pyshortcuts (Start menu / Applications).
Nothing is written outside the user's data folder; installing twice gives the same files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from studio.paths import RESOURCES

APP_ID = "diffusion-studio"
ICON_SIZES = (48, 64, 128, 256, 512)
MIME_TYPES = ("image/png", "image/jpeg", "image/webp")
ICON_SOURCE = RESOURCES / "icons" / "studio.png"


@dataclass
class Outcome:
    written: list[Path] = field(default_factory=list)  # or removed, for --uninstall
    notes: list[str] = field(default_factory=list)


def data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME", "")
    return Path(env) if env and Path(env).is_absolute() else Path.home() / ".local" / "share"


def gui_executable() -> Path:
    """The absolute path of this environment's `studio-gui` (next to its Python first)."""
    name = "studio-gui.exe" if sys.platform == "win32" else "studio-gui"
    bin_dir = Path(sys.executable).parent
    candidates = [bin_dir / name, bin_dir / "Scripts" / name]
    found = shutil.which("studio-gui", path=str(bin_dir))
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
    raise ValueError(
        f"studio-gui is not installed next to this Python ({bin_dir}): "
        "run `pip install -e .` in this environment first."
    )


def desktop_entry(exec_path: Path) -> str:
    exe = str(exec_path)
    if any(c in exe for c in ' \t"`$\\'):  # the spec's quoting for the Exec key
        exe = '"' + "".join("\\" + c if c in '"`$\\' else c for c in exe) + '"'
        exe = exe.replace("\\", "\\\\")  # and the general escape of a string value
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Name=Diffusion Studio",
            "GenericName=Image Generator",
            "Comment=Generate, inpaint and control images with Stable Diffusion models",
            f"Exec={exe} %F",
            f"TryExec={exec_path}",
            f"Icon={APP_ID}",
            "Terminal=false",
            "Categories=Graphics;2DGraphics;RasterGraphics;",
            "MimeType=" + "".join(f"{m};" for m in MIME_TYPES),
            "StartupWMClass=DiffusionStudio",
            "",
        ]
    )


def linux_paths(home: Path) -> list[Path]:
    """Every file the Linux install writes, the launcher first."""
    icons = home / "icons" / "hicolor"
    return [home / "applications" / f"{APP_ID}.desktop"] + [
        icons / f"{n}x{n}" / "apps" / f"{APP_ID}.png" for n in ICON_SIZES
    ]


def install(home: Path | None = None, exec_path: Path | None = None, tools: bool = True) -> Outcome:
    if not sys.platform.startswith("linux"):
        return _install_shortcut(exec_path or gui_executable())
    home = home or data_home()
    exec_path = exec_path or gui_executable()
    out = Outcome()
    launcher, *icons = linux_paths(home)
    _write_atomic(launcher, desktop_entry(exec_path).encode())
    out.written.append(launcher)
    from PIL import Image

    with Image.open(ICON_SOURCE, formats=["PNG"]) as src:  # our own PNG; never another plugin
        source = src.convert("RGBA")
    for size, path in zip(ICON_SIZES, icons, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        source.resize((size, size), Image.Resampling.LANCZOS).save(tmp, format="PNG")
        os.replace(tmp, path)
        out.written.append(path)
    if tools:
        out.notes += _refresh_caches(home)
    return out


def uninstall(home: Path | None = None, tools: bool = True) -> Outcome:
    if not sys.platform.startswith("linux"):
        return _uninstall_shortcut()
    home = home or data_home()
    out = Outcome()
    for path in linux_paths(home):
        if path.exists():
            path.unlink()
            out.written.append(path)
    if tools:
        out.notes += _refresh_caches(home)
    _prune(home)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _refresh_caches(home: Path) -> list[str]:
    """Tell the desktop about the change with its own tools, when they are installed."""
    notes = []
    commands = [
        ("update-desktop-database", [str(home / "applications")]),
        ("xdg-icon-resource", ["forceupdate", "--mode", "user"]),
    ]
    for tool, args in commands:
        exe = shutil.which(tool)
        if exe is None:
            notes.append(f"{tool} is not installed: the menu updates at the next login.")
            continue
        try:
            subprocess.run([exe, *args], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            notes.append(f"{tool} failed: {e}")
    return notes


def _prune(home: Path) -> None:
    """Remove caches and folders left with nothing of anyone's in them (ours are gone)."""
    apps = home / "applications"
    if apps.is_dir() and not any(apps.glob("*.desktop")):
        (apps / "mimeinfo.cache").unlink(missing_ok=True)
    hicolor = home / "icons" / "hicolor"
    if hicolor.is_dir() and not any(p.is_file() for p in hicolor.glob("*/*/*")):
        (hicolor / "icon-theme.cache").unlink(missing_ok=True)
    folders = [p.parent for p in linux_paths(home)]
    folders += [p.parent for p in folders] + [hicolor, hicolor.parent]
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # only if empty
        except OSError:
            pass


def _pyshortcuts() -> object:
    try:
        import pyshortcuts
    except ImportError as e:
        raise ValueError(
            "a launcher on this system needs pyshortcuts: `pip install pyshortcuts`."
        ) from e
    return pyshortcuts


def _install_shortcut(exec_path: Path) -> Outcome:
    ps = _pyshortcuts()
    icon = ICON_SOURCE.with_suffix(".ico" if sys.platform == "win32" else ".icns")
    made = ps.make_shortcut(  # type: ignore[attr-defined]
        str(exec_path),
        name="Diffusion Studio",
        description="Diffusion Studio",
        icon=str(icon) if icon.is_file() else None,
        terminal=False,
        desktop=sys.platform == "darwin",  # macOS has no Start menu
        startmenu=sys.platform == "win32",
        executable=str(exec_path),
        noexe=True,
    )
    folder = getattr(made, "startmenu_dir", "") or getattr(made, "desktop_dir", "")
    return Outcome([Path(folder) / getattr(made, "target", "Diffusion Studio")], [])


def _uninstall_shortcut() -> Outcome:
    raise ValueError(
        "--uninstall is not supported on this OS yet: delete 'Diffusion Studio' from the "
        "Start menu / Applications folder."
    )
