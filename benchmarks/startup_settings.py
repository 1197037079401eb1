"""Time opening the main window with hostile settings (issue 11): a huge prompt, huge numbers.

Not a test: run it by hand and compare before/after a change.

    python benchmarks/startup_settings.py                  # 1 MB prompt, window shown and painted
    python benchmarks/startup_settings.py --kb 100 --profile   # cProfile of the window's creation

The window is created as `studio-gui` creates it (no worker started), offscreen unless
QT_QPA_PLATFORM says otherwise, and one event-loop turn is run so the first paint is included.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # QT_QPA_PLATFORM=xcb: a real display
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_settings(config_dir: Path, prompt_kb: int, one_word: bool) -> None:
    from studio.settings import Settings, save

    settings = Settings()
    unit = "x" if one_word else "a red cube on a table, "
    words = (unit * (prompt_kb * 1024 // len(unit) + 1))[: prompt_kb * 1024]
    settings.last = {"prompt": words, "negative_prompt": words, "steps": 20}
    save(settings, config_dir / "settings.json")


def open_window(config_dir: Path, out: Path) -> tuple[float, object]:
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    t0 = time.perf_counter()
    window = MainWindow(config_dir=config_dir, output_dir=out, model="demo", start_worker=False)
    window.show()
    app.processEvents()  # the first paint
    elapsed = time.perf_counter() - t0
    return elapsed, window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=1024, help="prompt size in KiB (default 1024)")
    parser.add_argument("--one-word", action="store_true", help="a prompt without spaces")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_settings(work / "cfg", args.kb, args.one_word)
        size = (work / "cfg" / "settings.json").stat().st_size
        # warm the imports first so the figure is the window, not Python's import system
        from studio.ui.main_window import MainWindow  # noqa: F401

        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        elapsed, window = open_window(work / "cfg", work / "out")
        if profiler:
            profiler.disable()
        session = window.session  # type: ignore[attr-defined]
        shown = len(session.state.prompt)
        print(
            json.dumps(
                {
                    "settings_bytes": size,
                    "prompt_chars_in_settings": args.kb * 1024,
                    "prompt_chars_in_state": shown,
                    "window_open_s": round(elapsed, 3),
                    "message": session.error,
                }
            )
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        window.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
