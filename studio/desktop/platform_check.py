"""Before Qt starts: can its X11 platform plugin load? If not, name the missing libraries.

Without them `QApplication()` aborts the process (SIGABRT): no Python code runs after it, and
Qt's own message names one library at best. `ldd` on the plugin lists every one that is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname -> (Debian/Ubuntu package, Fedora package)
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames `ldd` could not resolve, in its order, each once."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def install_hint(missing: list[str]) -> str:
    """What to tell the user: the libraries, then the install commands."""
    known = [PACKAGES[m] for m in missing if m in PACKAGES]
    unknown = [m for m in missing if m not in PACKAGES]
    lines = [
        "Qt cannot start on this X11 desktop: these system libraries are missing: "
        + ", ".join(missing)
        + "."
    ]
    if known:
        debian = " ".join(dict.fromkeys(d for d, _ in known))
        fedora = " ".join(dict.fromkeys(f for _, f in known))
        lines.append(f"  Debian/Ubuntu: sudo apt install {debian}")
        lines.append(f"  Fedora:        sudo dnf install {fedora}")
    if unknown:
        lines.append(
            f"  {', '.join(unknown)}: find the package with `apt-file search` or `dnf provides`."
        )
    return "\n".join(lines)


def uses_xcb(env: dict[str, str] | os._Environ[str]) -> bool:
    """Whether Qt will pick its X11 plugin (it prefers Wayland in a Wayland session)."""
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland")


def xcb_plugin() -> Path | None:
    spec = importlib.util.find_spec("PySide6")  # finds the package without loading Qt
    if spec is None or spec.origin is None:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def check(env: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """None when Qt can start (or this check does not apply); else what to tell the user."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or not uses_xcb(env):
        return None
    plugin, ldd = xcb_plugin(), shutil.which("ldd")
    if plugin is None or ldd is None:
        return None  # nothing to check with: let Qt try
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    missing = missing_libraries(done.stdout)
    if missing:
        return install_hint(missing)
    if not env.get("DISPLAY") and not env.get("QT_QPA_PLATFORM"):
        return (
            "No display to show the window on ($DISPLAY is not set): start the app from a "
            "desktop session."
        )
    return None
