"""Render the real window offscreen into docs/screenshot-*.png (for the README).

1. screenshot-generate.png: after a txt2img generation (canvas, history, metadata, log-SNR plot).
2. screenshot-inpaint.png: a mask painted with mouse strokes on the canvas, sent to inpaint,
   and the inpainted result.

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="default: the demo model, else a tiny random model")
    parser.add_argument("--prompt", default="a red house with a blue roof by a lake, sunny day")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--size", default="1320x860", help="window size")
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QPoint, QPointF, Qt, QTimer
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
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    loop = QEventLoop()

    def wait(signal) -> None:
        signal.connect(loop.quit)
        QTimer.singleShot(600_000, loop.quit)
        loop.exec()
        signal.disconnect(loop.quit)

    while window.loaded is None:
        wait(window.worker.worker.model_loaded)
    info = window.loaded.info
    s = window.state
    s.prompt, s.negative_prompt = args.prompt, "blurry, low quality"
    s.steps, s.seed, s.sampler = args.steps, args.seed, "DPM++ 2M Karras"
    s.width = s.height = info.native_size
    jobs = window.generate()
    if not jobs:
        raise SystemExit(window.banner.text())
    wait(window.job_done)
    if jobs[0].error:
        raise SystemExit(jobs[0].error)
    args.out.mkdir(parents=True, exist_ok=True)
    app.processEvents()
    first = args.out / "screenshot-generate.png"
    window.grab().save(str(first))
    print(f"wrote {first}")

    # paint a mask with the mouse over the middle of the image, then inpaint it
    view = window.canvas.view
    window.canvas.set_brush_size(max(4, info.native_size // 8))
    image_w, image_h = window.canvas.image().size
    centre = view.map_from_image(QPointF(image_w / 2, image_h / 2))
    c = QPoint(round(centre.x()), round(centre.y()))
    scale = view.scale()
    reach = round(image_w * scale * 0.18)
    QTest.mousePress(
        view,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        c - QPoint(reach, reach // 2),
    )
    for k in range(1, 21):
        p = c + QPoint(-reach + k * reach // 10, -reach // 2 + (k % 4) * reach // 6)
        QTest.mouseMove(view, p)
    QTest.mouseRelease(
        view,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        c + QPoint(reach, reach // 2),
    )
    mask = window.canvas.mask_array()
    painted = 0 if mask is None else int((mask > 0).sum())
    window.canvas.send_to_inpaint_requested.emit()
    s.prompt = args.prompt.replace("red house", "green tree")
    s.strength = 0.9
    jobs = window.generate()
    if jobs:
        wait(window.job_done)
    app.processEvents()
    second = args.out / "screenshot-inpaint.png"
    window.grab().save(str(second))
    print(f"wrote {second} ({painted} mask pixels painted)")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
