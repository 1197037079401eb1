"""The smaller widgets: token counts, size presets and checks, the schedule plot, the gallery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from studio.engine.request import GenerationRequest
from studio.ui.images import qimage_to_numpy
from studio.ui.params_panel import ParamsPanel, size_presets
from studio.ui.prompt_panel import TOKEN_LIMIT, PromptEdit, estimate_tokens
from studio.ui.schedule_plot import SchedulePlot


def test_opening_the_window_imports_no_torch_nor_cv2() -> None:
    # the window must show before torch loads: only the worker threads may import it
    code = (
        "import sys; from PySide6.QtWidgets import QApplication; "
        "app = QApplication(['-platform', 'offscreen']); "
        "import studio.ui.app, studio.ui.main_window; "
        "w = studio.ui.main_window.MainWindow(start_worker=False); w.show(); app.processEvents(); "
        "heavy = ('torch', 'diffusers', 'transformers', 'cv2', 'controlnet_aux', 'mediapipe'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "w.close(); assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_app_entry_point_shows_the_window_and_quits(tmp_path: Path) -> None:
    config = tmp_path / "config"
    done = subprocess.run(
        [sys.executable, "-m", "studio.ui.app", "--smoke-test", "--config-dir", str(config),
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "window shown after" in done.stdout
    assert (config / "settings.json").is_file()  # closing saved the settings


def test_token_count_uses_the_tokenizer_when_there_is_one(qtbot, tmp_path: Path) -> None:
    from tests.tiny_models import tiny_tokenizer

    edit = PromptEdit("prompt")
    qtbot.addWidget(edit)
    edit.edit.setPlainText("a red cube, shiny")
    edit.update_count()
    assert estimate_tokens("a red cube, shiny") == 5
    assert edit.counter.text() == f"5/{TOKEN_LIMIT} (estimate)"

    edit.set_tokenizer(tiny_tokenizer(tmp_path / "tok"))  # one token per character
    assert edit.counter.text() == f"{len('aredcube,shiny')}/{TOKEN_LIMIT}"

    # past 75 tokens another chunk opens: A1111's "80/150", and nothing is cut
    edit.edit.setPlainText("x" * 80)
    qtbot.waitUntil(lambda: edit.counter.text() == "80/150", timeout=2000)  # after the debounce
    edit.edit.setPlainText("abc BREAK de")  # BREAK fills the first chunk: 75 + 2
    qtbot.waitUntil(lambda: edit.counter.text() == "77/150", timeout=2000)
    edit.edit.setPlainText("ab AND [cdefg:h:0.5]")  # the longest AND part and edited version
    qtbot.waitUntil(lambda: edit.counter.text() == "5/75", timeout=2000)


def test_size_presets_follow_the_model_family_and_sizes_are_checked(qtbot, session) -> None:
    assert (512, 512) in size_presets("sd1", 512)
    assert (768, 768) == size_presets("sd2", 768)[0]
    assert (1024, 1024) == size_presets("sdxl", 1024)[0]
    assert size_presets("small", 128)[0] == (128, 128)

    state = session.state
    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    panel.set_family("sd1", 512)
    panel.size_preset.setCurrentIndex(panel.size_preset.findData("512x768"))
    panel.size_preset.activated.emit(panel.size_preset.currentIndex())
    assert (state.width, state.height) == (512, 768)

    panel.width_box.setValue(500)
    assert state.width == 500 and not panel.size_note.isHidden()
    assert "multiples of 8" in panel.size_note.text()
    assert panel.size_preset.currentText() == "Custom"
    panel.width_box.setValue(512)
    assert panel.size_note.isHidden()


def test_seed_dice_and_reuse_last(qtbot, session) -> None:
    state = session.state
    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    state.seed = 5
    assert not panel.reuse_seed.isEnabled()
    state.last_seed = 2**33
    qtbot.mouseClick(panel.reuse_seed, Qt.MouseButton.LeftButton)
    assert state.seed == 2**33 and panel.seed.text() == str(2**33)
    qtbot.mouseClick(panel.dice, Qt.MouseButton.LeftButton)
    assert state.seed == -1


def test_model_picker_adds_models_and_asks_for_more(qtbot, session) -> None:
    state = session.state
    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    asked: list[str] = []
    panel.add_model_requested.connect(asked.append)
    session.load_model("/models/my-model")
    assert panel.model.currentText() == "my-model"
    assert session.known_models == ["/models/my-model"]
    panel.model.activated.emit(panel.model.findData("__add_folder__"))
    assert asked == ["folder"] and panel.model.currentData() == "/models/my-model"
    panel.model.activated.emit(0)
    assert state.model == "demo"


def _curve():
    from studio.engine.samplers import schedule_curve

    config = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
    }
    return schedule_curve(config, GenerationRequest(sampler="Euler", steps=5))


def _red_pixels(widget) -> int:
    rgb = qimage_to_numpy(widget.grab().toImage())
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(((r > 180) & (g < 110) & (b < 100)).sum())


def test_schedule_plot_draws_the_curve_and_marks_the_current_step(qtbot) -> None:
    plot = SchedulePlot()
    qtbot.addWidget(plot)
    plot.resize(240, 110)
    curve = _curve()
    assert np.all(np.diff(curve.log_snr) < 0)  # signal falls as t grows
    plot.set_curve(curve)
    assert plot.current_timestep() is None and _red_pixels(plot) == 0

    plot.set_step(1)
    first = plot.current_timestep()
    assert first == curve.sampling_timesteps[0]
    assert _red_pixels(plot) > 10
    plot.set_step(5)
    assert plot.current_timestep() == curve.sampling_timesteps[-1] < first


def test_gallery_lists_the_folder_and_shows_metadata(qtbot, tmp_path: Path) -> None:
    from studio.engine.metadata import write_image
    from studio.ui.gallery import Gallery

    folder = tmp_path / "out"
    (folder / "day").mkdir(parents=True)
    for seed in (1, 2):
        request = GenerationRequest(prompt=f"picture {seed}", seed=seed, width=64, height=64)
        write_image(
            folder / "day" / f"{seed}.png",
            Image.new("RGB", (64, 64), (seed * 50, 0, 0)),
            request,
            model_name="tiny",
            model_hash="abc",
        )
    (folder / "notes.txt").write_text("not an image")

    from studio.ui.worker import BackgroundThread

    background = BackgroundThread()
    gallery = Gallery(background.submit)
    qtbot.addWidget(gallery)
    gallery.load_folder(folder)
    qtbot.waitUntil(lambda: not gallery.is_loading(), timeout=5000)
    assert sorted(p.name for p in gallery.paths()) == ["1.png", "2.png"]

    seeds: list[int] = []
    gallery.reuse_seed_requested.connect(seeds.append)
    with qtbot.waitSignal(gallery.metadata_shown):  # read on the background thread
        gallery.select(folder / "day" / "2.png")
    assert "picture 2" in gallery.metadata.toPlainText()
    gallery.reuse_seed.click()
    assert seeds == [2]

    new = folder / "day" / "3.png"
    Image.new("RGB", (64, 64)).save(new)  # no settings inside
    with qtbot.waitSignal(gallery.metadata_shown):
        gallery.add_results([new])
    assert gallery.paths()[0] == new and gallery.current_path() == new
    assert "No generation settings" in gallery.metadata.toPlainText()
    assert not gallery.reuse_settings.isEnabled()
    background.stop()
