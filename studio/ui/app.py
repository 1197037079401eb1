"""`studio-gui`: create the QApplication, show the window at once, run, shut down cleanly.

Nothing here imports torch: the window is on screen before the worker thread starts importing the
engine and loading the model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

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
    parser.add_argument("image", nargs="?", type=Path, help="an image to open on the canvas")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="show the window, print when it was shown (wall clock), then quit (packaging checks)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from studio.paths import RESOURCES
    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Diffusion Studio")
    app.setOrganizationName("DiffusionStudio")
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
    if args.image is not None:
        QTimer.singleShot(0, lambda: window.open_image(args.image))
    app.aboutToQuit.connect(window.session.shutdown)  # closing by the window manager stops it too
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
