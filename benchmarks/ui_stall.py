"""How responsive is the window? Two figures (a benchmark, not a test):

1. launch -> window shown: `studio-gui --smoke-test` in a fresh process, timed from just before
   the process is spawned to the first event-loop turn after show() (interpreter start included).
2. event-loop stall: a 5 ms QTimer in the real window measures how late each tick fires while the
   worker loads the model and runs a generation; max and p99 lateness are printed.

Goals (issue 4): stall max < 50 ms, window < 1.5 s.

    python benchmarks/ui_stall.py                  # the demo model, or the tiny model if it is absent
    python benchmarks/ui_stall.py --model PATH --steps 30 --size 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICK_MS = 5


def launch_to_shown(runs: int, work: Path) -> list[float]:
    times = []
    for k in range(runs):
        cfg = work / f"launch-cfg-{k}"
        start = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "studio.ui.app", "--smoke-test", "--config-dir", str(cfg),
             "--output-dir", str(work / "launch-out")],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        line = next((ln for ln in done.stdout.splitlines() if "wall" in ln), "")
        if done.returncode != 0 or not line:
            raise SystemExit(f"--smoke-test failed:\n{done.stdout}\n{done.stderr}")
        times.append(float(line.rsplit("wall", 1)[1]) - start)
    return times


class StallMeter:
    """Lateness of a 5 ms timer: how long the event loop could not run it on time."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.samples: list[float] = []
        self._last = 0.0
        self._timer = QTimer(interval=TICK_MS)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.samples.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return list(self.samples)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now


def summary(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name}: no samples"
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{name}: {len(ms)} ticks, max {max(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"median {statistics.median(ms):.2f} ms"
    )


def _set_threads(n: int) -> None:
    import torch  # already imported by the worker when `ready` fires

    torch.set_num_threads(n)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="default: the demo model, else a tiny random model")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=0, help="default: the model's native size")
    parser.add_argument("--jobs", type=int, default=2, help="generations to measure")
    parser.add_argument("--launch-runs", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--preview-every", type=int, default=1, help="0: no live previews")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ui-stall-"))
    launches = launch_to_shown(args.launch_runs, work)
    print(
        f"launch -> window shown: best {min(launches):.2f} s, "
        f"median {statistics.median(launches):.2f} s over {len(launches)} runs"
    )

    from studio.paths import DEMO_MODEL

    model = args.model
    if model is None:
        if (DEMO_MODEL / "model_index.json").is_file():
            model = "demo"
        else:
            # built in another process, so this one imports torch only in the worker, as the app does
            model = str(work / "tiny-sd")
            code = (
                "from pathlib import Path; from tests.tiny_models import save_tiny_pipeline; "
                f"save_tiny_pipeline(Path({model!r}))"
            )
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
            print("the demo model is absent: using a tiny random model")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("Diffusion Studio")
    from studio.ui.main_window import MainWindow

    meter = StallMeter()
    window = MainWindow(config_dir=work / "cfg", output_dir=work / "out", device=args.device, model=model,
                        start_worker=False)  # fmt: skip
    window.show()
    if args.threads:
        window.worker.worker.ready.connect(lambda: _set_threads(args.threads))
    loop = QEventLoop()

    def wait(signal, timeout_s: float = 600) -> None:
        signal.connect(loop.quit)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        signal.disconnect(loop.quit)

    # engine start (torch import) and model load in the background
    meter.start()
    window.worker.start()
    while window.loaded is None:
        wait(window.worker.worker.model_loaded, 600)
        if window.loaded is None and window.banner.isVisible():
            raise SystemExit(f"model failed to load: {window.banner.text()}")
    load_ms = meter.stop()
    info = window.loaded.info
    size = args.size or info.native_size
    state = window.state
    state.prompt, state.steps, state.width, state.height = (
        "a red house by a lake",
        args.steps,
        size,
        size,
    )
    state.seed = 1
    state.sampler = "Euler"
    state.preview_every = args.preview_every

    stalls: list[float] = []
    elapsed = []
    for _ in range(args.jobs):
        meter.start()
        jobs = window.generate()
        if not jobs:
            raise SystemExit(window.banner.text())
        wait(window.job_done)
        stalls += meter.stop()
        job = jobs[0]
        if job.result is None:
            raise SystemExit(f"job failed: {job.error}")
        elapsed.append(job.result.elapsed_s)
    window.close()

    print(f"model {info.name} ({info.native_size}px) on {window.loaded.device}; {size}x{size}, "
          f"{args.steps} steps, preview every {args.preview_every}; generation {statistics.median(elapsed):.2f} s")  # fmt: skip
    print(summary("stall during engine start + model load", load_ms))
    print(summary("stall during generation", stalls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
