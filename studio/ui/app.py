"""`studio-gui`: create the QApplication, show the window at once, run, shut down cleanly.

Nothing here imports torch: the window is on screen before the worker thread starts importing the
engine and loading the model. Before Qt starts, its platform libraries are checked (a missing one
aborts the process inside QApplication); a second launch hands its files to the running window.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

_LAUNCHED = time.perf_counter()  # as early as this module is imported: the launch clock


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="studio-gui", description="Diffusion Studio")
    parser.add_argument(
        "--config-dir", type=Path, help="where settings.json lives (default: user config dir)"
    )
    parser.add_argument(
        "--output-dir", type=Path, help="where images are saved (overrides the settings)"
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest available)")
    parser.add_argument(
        "--model", help="model to load instead of the last one: 'demo', a folder or a file"
    )
    parser.add_argument(
        "images", nargs="*", type=Path, help="images to open (the first goes on the canvas)"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="library warnings in the terminal too"
    )
    parser.add_argument(
        "--new-instance", action="store_true", help="do not hand the files to a running window"
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="show the window, print when it was shown (wall clock), then quit (packaging checks)",
    )
    return parser.parse_args(argv)


def open_files(window: Any, files: list[Path]) -> bool:
    """Show the first image on the canvas (its settings offered by the banner); raise the window."""
    if window.isMinimized():
        window.showNormal()
    window.raise_()
    window.activateWindow()
    if not files:
        return False
    opened = window.open_image(files[0])
    if opened and len(files) > 1:
        window.status.showMessage(
            f"Opened {files[0].name}; {len(files) - 1} more file(s) not opened", 8000
        )
    return opened


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from studio.desktop import logs, platform_check

    logs.setup(verbose=args.verbose)
    problem = platform_check.check()
    if problem is not None:
        print(f"studio-gui: {problem}", file=sys.stderr)
        return 1

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from studio.paths import RESOURCES

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Diffusion Studio")
    app.setOrganizationName("DiffusionStudio")
    app.setDesktopFileName("diffusion-studio")  # Wayland matches the window to the launcher
    # no style is forced: Qt 6.5+ follows the system's light/dark scheme
    files = [f.absolute() for f in args.images]
    server = None
    if not args.smoke_test and not args.new_instance:
        from studio.ui.single_instance import claim_or_forward, server_name

        server = claim_or_forward(server_name(str(args.config_dir or "")), files)
        if server is None:
            print(f"studio-gui: handed {len(files)} file(s) to the window already open")
            return 0

    from studio.ui.help_menu import install_help
    from studio.ui.main_window import MainWindow

    icon = RESOURCES / "icons" / "studio.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(
        config_dir=args.config_dir,
        output_dir=args.output_dir,
        device=args.device,
        model=args.model,
        start_worker=False,
    )
    install_help(window)
    if server is not None:
        server.setParent(window)
        server.files_received.connect(lambda received: open_files(window, received))
    window.show()
    shown_s = time.perf_counter() - _LAUNCHED
    logging.getLogger("studio.ui").info("window shown %.2f s after launch", shown_s)
    if args.smoke_test:
        # after the first paint: report and close (the worker never starts)
        def report() -> None:
            print(
                f"window shown after {time.perf_counter() - _LAUNCHED:.3f} s; wall {time.time():.6f}"
            )
            window.close()

        QTimer.singleShot(0, report)
        return app.exec()
    # start the engine once the window has painted
    QTimer.singleShot(0, window.session.start)
    if files:
        QTimer.singleShot(0, lambda: open_files(window, files))
    app.aboutToQuit.connect(window.session.shutdown)  # closing by the window manager stops it too
    if server is not None:
        app.aboutToQuit.connect(server.close)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
