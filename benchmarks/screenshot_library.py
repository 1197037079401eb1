"""Render the real window offscreen with the model library open: docs/screenshot-library.png.

An A1111-like install of tiny models of each kind (SD 1.x, SD 1.x inpainting, SD 2.x and SDXL
checkpoints, a LoRA, an embedding, a VAE, a ControlNet, a damaged file and a pickle) plus the
shipped demo model and ControlNets; one image made with the demo gives its row a thumbnail.

    python benchmarks/screenshot_library.py [--out docs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tiny_install(root: Path) -> None:
    from tests.engine.test_library import write_library
    from tests.ldm_layout import write_tiny_single_file

    write_library(root / "models")
    for family, name in (("sd1-inpaint", "tiny-inpaint"), ("sd2", "tiny-sd2"), ("sdxl", "tiny-xl")):
        made = write_tiny_single_file(family, root / "build" / family)
        made.path.rename(root / "models" / "Stable-diffusion" / f"{name}.safetensors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--size", default="1600x780", help="window size")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="screenshot-library-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # not the user's library cache
    tiny_install(work / "webui")

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from studio.paths import DEMO_MODEL
    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("Diffusion Studio")
    window = MainWindow(config_dir=work / "cfg", output_dir=work / "out", model="demo")
    session, panel = window.session, window.library
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    loop = QEventLoop()

    def wait(signal, until) -> None:
        signal.connect(loop.quit)
        while not until():
            QTimer.singleShot(600_000, loop.quit)
            loop.exec()
        signal.disconnect(loop.quit)

    wait(session.loaded_model_changed, lambda: session.loaded_model or session.error)
    if session.loaded_model is None:
        raise SystemExit(f"model failed to load: {session.error}")
    s = session.state
    s.prompt, s.steps, s.seed = "a large red circle left of a small blue square", 12, 7
    s.width = s.height = session.loaded_model.info.native_size
    jobs = session.generate()
    if not jobs:
        raise SystemExit(session.error)
    wait(session.job_done, lambda: jobs[0].state.name not in ("queued", "running"))

    dock = panel.parentWidget()
    dock.show()
    library = panel.library
    library.use_install(work / "webui")
    library.add_folder(DEMO_MODEL.parent)
    wait(library.scanning_changed, lambda: library.scans >= 1 and not library.scanning)
    window.resizeDocks([dock], [760], Qt.Orientation.Horizontal)
    panel.tree.setCurrentItem(
        panel.item_for(work / "webui/models/Stable-diffusion/tiny-xl.safetensors")
    )
    app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "screenshot-library.png"
    dock.grab().save(str(target))
    print(f"wrote {target}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
