"""How responsive is the window, and how long from launch and from Generate to an image?
A benchmark, not a test. Figures:

1. launch -> window shown: `studio-gui --smoke-test` in a fresh process, timed from just before
   the process is spawned to the first event-loop turn after show() (interpreter start included).
2. event-loop stall, per phase: a 5 ms QTimer heartbeat on the UI thread of the real window; a
   tick's lateness is its gap to the previous tick minus 5 ms (how long the UI could not run).
   Each gap is charged to the phase in which the tick was due:
   - engine start: `session.start()` -> the worker's `ready` (it imports the engine: torch);
   - model load: `ready` -> the model is loaded and shown (`model_loading` -> `model_loaded`
     is the status bar's "loaded in");
   - generation: `generate()` -> the job's image is listed in the gallery (+100 ms).
3. launch -> first image: from just before the window module is imported and the window built,
   through engine start and model load (Generate is pressed as soon as the model is shown) to
   the first image listed in the gallery.
4. the hops of each job, in ms after `generate()`: the worker's `job_started` (sent, then seen
   on the UI thread), the first step, the last step, the image file on disk (the ctime of the
   published file: the worker saves it before it sends `job_finished`), `job_finished` sent,
   seen on the UI thread, and the gallery listing the file (`gallery.paths()`).

Goals (issue 4): stall < 100 ms while a model loads, < 50 ms while generating; window < 1.5 s.

    python benchmarks/ui_stall.py                  # the demo model, or the tiny model if it is absent
    python benchmarks/ui_stall.py --model PATH --steps 30 --size 512 --launch-runs 0
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
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # QT_QPA_PLATFORM=xcb: a real display
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Slot  # noqa: E402

TICK_MS = 5
SETTLE_S = 0.1  # after the gallery lists the image: its handlers' stalls still count
PAUSE_S = 0.3  # between window.show() and session.start(): the first paint is not the engine's
PHASES = ("window shown", "engine start", "model load", "generation")
HOPS = (  # (key, label), in the order they happen
    ("job_started", "job_started sent (worker)"),
    ("job_started@ui", "job_started seen (UI)"),
    ("step", "first step sent"),
    ("step@ui", "first step seen (UI)"),
    ("last_step", "last step sent"),
    ("file", "file on disk"),
    ("job_finished", "job_finished sent"),
    ("job_finished@ui", "job_finished seen (UI)"),
    ("gallery", "gallery lists it"),
)


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


class Heartbeat:
    """A 5 ms timer on the UI thread; every tick keeps (when it was due, when it ran)."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float]] = []
        self._last = 0.0
        self._timer = QTimer(interval=TICK_MS)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self.on_tick: list[Any] = []

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append((self._last + TICK_MS / 1000, now))
        self._last = now
        for f in self.on_tick:
            f()

    def lateness(self, start: float, end: float) -> list[tuple[float, float]]:
        """(due time, lateness in ms) of the ticks due in [start, end)."""
        return [(due, (ran - due) * 1000) for due, ran in self.ticks if start <= due < end]


class Marks:
    """perf_counter times of named events, per job (0: engine and model), first one wins."""

    def __init__(self) -> None:
        self.t: dict[tuple[int, str], float] = {}

    def set(self, job: int, name: str, at: float | None = None) -> None:
        self.t.setdefault((job, name), time.perf_counter() if at is None else at)

    def get(self, job: int, name: str) -> float | None:
        return self.t.get((job, name))


class SessionApi(QObject):
    """Everything this benchmark touches in the window: the session API (studio.ui.session).

    Reports the worker's events to `marks` twice: when sent (a direct connection, run on the
    worker thread) and when the UI thread sees them (queued, after the session's own slot). Call
    it before the worker starts."""

    def __init__(self, window: Any, marks: Marks) -> None:
        super().__init__()
        self.window, self.session, self.marks = window, window.session, marks
        self.on_loaded_ui: list[Any] = []  # called on the UI thread once the model is shown
        self.on_failed_ui: list[Any] = []  # the model or the engine failed
        self.on_ready: list[Any] = []  # called on the worker thread
        message, session_slot = self.session.worker.message, self.session._on_message
        # the direct slot goes first, so that it stamps an event before the UI thread can see it
        message.disconnect(session_slot)
        message.connect(self._sent, Qt.ConnectionType.DirectConnection)
        message.connect(session_slot)
        message.connect(self._seen, Qt.ConnectionType.QueuedConnection)
        self.session.queue.job_done.connect(self._queue_done)  # first thing the session does
        self.job_done = self.session.job_done  # after the window has shown the outcome

    def start(self) -> None:
        self.session.start()

    def generate(self) -> list[Any]:
        return self.session.generate()

    @property
    def state(self) -> Any:
        return self.session.state

    @property
    def loaded(self) -> Any:
        return self.session.loaded_model

    def failure(self) -> str:
        return self.session.error or self.window.banner.text()

    @Slot(object)
    def _sent(self, m: Any) -> None:
        _sent(self.marks, m.event.value, m.job, m.paths, self.on_ready)

    @Slot(object)
    def _seen(self, m: Any) -> None:
        name = m.event.value
        self.marks.set(m.job.id if m.job is not None else 0, f"{name}@ui")
        if name == "model_loaded":
            for f in self.on_loaded_ui:
                f()
        elif name == "model_failed" or (name == "status" and "failed" in m.text):
            for f in self.on_failed_ui:
                f()

    def _queue_done(self, job: Any) -> None:
        self.marks.set(job.id, "job_finished@ui")


def _sent(marks: Marks, name: str, job: Any, paths: Any, on_ready: list[Any]) -> None:
    """A worker event, on the worker thread as it is sent."""
    now = time.perf_counter()
    key = job.id if job is not None else 0
    marks.set(key, name, now)
    if name == "step":
        marks.t[(key, "last_step")] = now
    elif name == "job_finished" and paths:
        # the worker published the file before sending this: its ctime, on this clock
        ctime = Path(paths[0]).stat().st_ctime_ns / 1e9
        marks.set(key, "file", ctime - time.time() + now)
    elif name == "ready":
        for f in on_ready:
            f()


def summary(name: str, late: list[tuple[float, float]], origin: float) -> str:
    if not late:
        return f"{name:>13}: no samples"
    ms = sorted(v for _, v in late)
    worst_at, worst = max(late, key=lambda dv: dv[1])
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return (
        f"{name:>13}: max stall {worst:6.1f} ms ({(worst_at - origin) * 1000:.0f} ms in), "
        f"p99 {p99:5.1f} ms, median {statistics.median(ms):.2f} ms, {len(ms)} ticks"
    )


def _set_threads(n: int) -> None:
    import torch  # already imported by the worker when `ready` is sent

    torch.set_num_threads(n)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="default: the demo model, else a tiny random model")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=0, help="default: the model's native size")
    parser.add_argument("--jobs", type=int, default=2, help="generations to measure")
    parser.add_argument("--launch-runs", type=int, default=3, help="0: skip figure 1")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--preview-every", type=int, default=1, help="0: no live previews")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ui-stall-"))
    if args.launch_runs > 0:
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

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("Diffusion Studio")
    marks = Marks()
    beat = Heartbeat()
    loop = QEventLoop()
    t_launch = time.perf_counter()
    from studio.ui.main_window import MainWindow

    window = MainWindow(config_dir=work / "cfg", output_dir=work / "out", device=args.device, model=model,
                        start_worker=False)  # fmt: skip
    window.show()
    api = SessionApi(window, marks)
    t_built = time.perf_counter()
    if args.threads:
        api.on_ready.append(lambda: _set_threads(args.threads))

    jobs: list[Any] = []
    generations: list[tuple[float, float]] = []  # (generate() called, listed + settle)

    def generate() -> None:
        state = api.state
        size = args.size or api.loaded.info.native_size
        state.prompt, state.steps, state.width, state.height = (
            "a red house by a lake",
            args.steps,
            size,
            size,
        )
        state.seed, state.sampler, state.preview_every = 1, "Euler", args.preview_every
        t = time.perf_counter()
        queued = api.generate()
        if not queued:
            print(f"nothing queued: {api.failure()}")
            loop.quit()
            return
        marks.set(queued[0].id, "generate", t)
        jobs.append(queued[0])

    def listed() -> None:  # each tick and after each job: is the last image in the gallery?
        if not jobs or marks.get(jobs[-1].id, "gallery") is not None:
            return
        paths = jobs[-1].paths
        if paths and paths[0] in window.gallery.paths():
            marks.set(jobs[-1].id, "gallery")

    def job_done(job: Any) -> None:
        listed()
        if len(jobs) < args.jobs and job.result is not None:
            QTimer.singleShot(int(SETTLE_S * 3000), generate)  # idle a moment, then again
        else:
            QTimer.singleShot(int(SETTLE_S * 3000), loop.quit)

    beat.on_tick.append(listed)
    api.on_loaded_ui.append(generate)  # Generate as soon as the model is shown
    api.on_failed_ui.append(loop.quit)
    api.job_done.connect(job_done)

    # the window's first paint and folder scan, then engine start (torch), model load, the jobs
    t_start = 0.0

    def start() -> None:
        nonlocal t_start
        t_start = time.perf_counter()
        api.start()

    QTimer.singleShot(600_000, loop.quit)
    beat.start()
    QTimer.singleShot(int(PAUSE_S * 1000), start)
    loop.exec()
    beat.stop()
    if api.loaded is None:
        raise SystemExit(f"model failed to load: {api.failure()}")
    if not jobs or jobs[0].result is None:
        raise SystemExit(f"job failed: {jobs[0].error if jobs else api.failure()}")

    ready, loading = marks.get(0, "ready"), marks.get(0, "model_loading")
    loaded = marks.get(0, "model_loaded")
    first = jobs[0].id
    t_first_image = marks.get(first, "gallery") or marks.get(first, "job_finished@ui")
    loaded_model = api.loaded
    info = loaded_model.info
    size = args.size or info.native_size
    elapsed = [j.result.elapsed_s for j in jobs if j.result is not None]
    window.close()

    print(f"model {info.name} ({info.native_size}px) on {loaded_model.device}; {size}x{size}, "
          f"{args.steps} steps, preview every {args.preview_every}; generation {statistics.median(elapsed):.2f} s "
          f"(median of {len(elapsed)}); status bar 'loaded in' {loaded_model.load_s:.2f} s")  # fmt: skip

    def at(t: float | None) -> str:  # since launch, without the pause before the engine starts
        return f"{t - t_launch - (t >= t_start) * PAUSE_S:6.2f} s" if t is not None else "   n/a"

    print(
        f"launch -> first image: {at(t_first_image).strip()}  (window built {at(t_built).strip()}, "
        f"engine ready {at(ready).strip()}, model loaded {at(loaded).strip()}, "
        f"Generate {at(marks.get(first, 'generate')).strip()})"
    )
    print(
        f"engine start {(ready - t_start) * 1000:.0f} ms; model load (model_loading -> "
        f"model_loaded) {(loaded - loading) * 1000:.0f} ms"
    )

    for job in jobs:
        t_gen = marks.get(job.id, "generate")
        end = marks.get(job.id, "gallery") or marks.get(job.id, "job_finished@ui") or t_gen
        generations.append((t_gen, end + SETTLE_S))
    late = {
        "window shown": beat.lateness(0.0, t_start),
        "engine start": beat.lateness(t_start, ready),
        "model load": beat.lateness(ready, generations[0][0]),
        "generation": [s for g in generations for s in beat.lateness(*g)],
    }
    origins = {
        "window shown": t_built,
        "engine start": t_start,
        "model load": ready,
        "generation": generations[0][0],
    }
    print("UI-thread stall (lateness of a 5 ms heartbeat), per phase:")
    for name in PHASES:
        print("  " + summary(name, late[name], origins[name]))
    for k, g in enumerate(generations):
        print("  " + summary(f"job {k + 1}", beat.lateness(*g), g[0]))

    print("hops after generate(), ms: since generate() (+ since the previous hop)")
    print(f"  {'':28}" + "".join(f"{f'job {k + 1}':>18}" for k in range(len(jobs))))
    prev = {job.id: marks.get(job.id, "generate") for job in jobs}
    for key, label in HOPS:
        cells = []
        for job in jobs:
            t, t_gen = marks.get(job.id, key), marks.get(job.id, "generate")
            if t is None:
                cells.append(f"{'n/a':>18}")
                continue
            cells.append(f"{(t - t_gen) * 1000:>8.0f} {f'(+{(t - prev[job.id]) * 1000:.0f})':>9}")
            prev[job.id] = t
        print(f"  {label:28}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
