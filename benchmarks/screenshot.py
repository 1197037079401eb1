"""Render the real window offscreen into docs/screenshot-*.png (for the README).

0. screenshot-progress.png: mid-generation, the live x̂0 preview and the marked schedule step.
1. screenshot-generate.png: after a txt2img generation (canvas, history, metadata, log-SNR plot).
2. screenshot-mask.png: a mask painted with mouse strokes over the generated image.
3. screenshot-inpaint.png: the inpainted result (mask overlay hidden).

    python benchmarks/screenshot.py                 # the demo model, or a tiny one if it is absent
    python benchmarks/screenshot.py --model PATH --prompt "..."
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tiny_model(work: Path) -> str:
    model = work / "tiny-sd"
    code = (
        "from pathlib import Path; from tests.tiny_models import save_tiny_pipeline; "
        f"save_tiny_pipeline(Path({str(model)!r}))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return str(model)


def paint_box(view, size: tuple[int, int], box: str, brush: int, qtest) -> None:
    """Zigzag strokes filling `box` (x0,y0,x1,y1 as fractions of the image), as a hand would."""
    from PySide6.QtCore import QPointF, Qt

    x0, y0, x1, y1 = (float(v) for v in box.split(","))
    w, h = size

    def at(fx: float, fy: float):
        return view.map_from_image(QPointF(fx * w, fy * h)).toPoint()

    rows = max(2, int((y1 - y0) * h / (brush * 0.6)))
    for r in range(rows + 1):
        fy = y0 + (y1 - y0) * r / rows
        qtest.mousePress(
            view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(x0, fy)
        )
        for k in range(1, 11):
            qtest.mouseMove(view, at(x0 + (x1 - x0) * k / 10, fy))
        qtest.mouseRelease(
            view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(x1, fy)
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="default: the demo model, else a tiny random model")
    parser.add_argument(
        "--prompt", default="a large red circle left of a small blue square, on a white background"
    )
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument(
        "--inpaint-prompt",
        default="a large green star left of a small blue square, on a white background",
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--mask-box", default="0.12,0.3,0.5,0.7", help="x0,y0,x1,y1 fractions")
    parser.add_argument("--size", default="1320x860", help="window size")
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from studio.paths import DEMO_MODEL

    work = Path(tempfile.mkdtemp(prefix="screenshot-"))
    model = args.model or (
        "demo" if (DEMO_MODEL / "model_index.json").is_file() else tiny_model(work)
    )
    app = QApplication.instance() or QApplication([])
    app.setApplicationName("Diffusion Studio")
    from studio.ui.main_window import MainWindow

    window = MainWindow(config_dir=work / "cfg", output_dir=work / "out", model=model)
    session = window.session
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    loop = QEventLoop()

    def wait(signal) -> None:
        signal.connect(loop.quit)
        QTimer.singleShot(600_000, loop.quit)
        loop.exec()
        signal.disconnect(loop.quit)

    while session.loaded_model is None:
        wait(session.loaded_model_changed)
        if session.loaded_model is None and session.error:
            raise SystemExit(f"model failed to load: {session.error}")
    info = session.loaded_model.info
    s = session.state
    s.prompt, s.negative_prompt = args.prompt, args.negative
    s.steps, s.seed, s.sampler = args.steps, args.seed, "DPM++ 2M Karras"
    s.width = s.height = info.native_size
    args.out.mkdir(parents=True, exist_ok=True)
    progress = args.out / "screenshot-progress.png"

    target = max(1, args.steps // 3)
    grabbed: list = []  # [(step, window pixmap)]: the first preview from `target` on, else the last

    def grab_mid_run(update) -> None:  # after the window has put the preview on the canvas
        # a third of the way: the live x̂0 preview, "step i/n, it/s" and the marked log-SNR step
        # (a slow machine skips some previews: then the first one after it, or the last before)
        if grabbed and grabbed[0][0] >= target:
            return
        grabbed[:] = [(update.step, window.grab())]

    session.preview_ready.connect(grab_mid_run)
    jobs = session.generate()
    if not jobs:
        raise SystemExit(session.error)
    wait(session.job_done)
    session.preview_ready.disconnect(grab_mid_run)
    if grabbed:
        grabbed[0][1].save(str(progress))
        print(f"wrote {progress} (step {grabbed[0][0]})")
    else:
        print(f"no preview was shown: {progress} not written")
    if jobs[0].error:
        raise SystemExit(jobs[0].error)
    app.processEvents()
    first = args.out / "screenshot-generate.png"
    window.grab().save(str(first))
    print(f"wrote {first}")

    # paint a mask with mouse strokes over a box of the image, then inpaint it
    brush = max(4, info.native_size // 8)
    window.canvas.set_brush_size(brush)
    paint_box(window.canvas.view, window.canvas.image().size, args.mask_box, brush, QTest)
    mask = window.canvas.mask_array()
    painted = 0 if mask is None else int((mask > 0).sum())
    window.canvas.send_to_inpaint_requested.emit()
    app.processEvents()
    masked = args.out / "screenshot-mask.png"
    window.grab().save(str(masked))
    print(f"wrote {masked} ({painted} mask pixels painted with the mouse)")
    s.prompt = args.inpaint_prompt
    s.strength = 0.9
    jobs = session.generate()
    if not jobs:
        raise SystemExit(session.error)
    wait(session.job_done)
    if jobs[0].error:
        raise SystemExit(jobs[0].error)
    window.canvas.set_mask_visible(False)  # the result itself, without the overlay
    app.processEvents()
    second = args.out / "screenshot-inpaint.png"
    window.grab().save(str(second))
    print(f"wrote {second}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
