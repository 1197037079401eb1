"""The main window end to end on the tiny model: generate, previews, cancel, queue, errors, restore."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QTextCursor

from studio.engine.metadata import read_settings
from studio.ui.jobs import JobState
from studio.ui.worker import WorkerEvent, WorkerMessage


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".jpg", ".webp"))


def _generate(qtbot, window, timeout: int = 60_000):
    with qtbot.waitSignal(window.session.job_done, timeout=timeout) as blocker:
        jobs = window.session.generate()
        assert jobs, window.banner.text()
    return blocker.args[0]


def test_generate_end_to_end_saves_image_with_metadata_and_shows_previews_first(qtbot, make_window):
    window = make_window()
    events: list[str] = []
    window.session.preview_ready.connect(lambda update: events.append(f"preview {update.step}"))
    window.session.job_done.connect(lambda job: events.append("final"))
    window.session.state.negative_prompt = "blurry"
    window.prompts.prompt.edit.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(window.prompts.prompt.edit, ", on a table")  # through the widget
    assert window.session.state.prompt == "a red cube, on a table"

    with qtbot.waitSignal(window.session.job_done, timeout=60_000) as blocker:
        qtbot.mouseClick(window.queue_view.generate_button, Qt.MouseButton.LeftButton)
    job = blocker.args[0]

    assert job.state is JobState.done, job.error
    files = _images(make_window.output_dir)
    assert files == job.paths and len(files) == 1
    meta = read_settings(files[0])
    assert meta.request.prompt == "a red cube, on a table"
    assert meta.request.negative_prompt == "blurry"
    assert (meta.request.steps, meta.request.width, meta.request.sampler) == (3, 64, "Euler")
    # the canvas shows the saved image, pixel for pixel
    shown = np.asarray(window.canvas.image())
    assert np.array_equal(shown, np.asarray(Image.open(files[0]).convert("RGB")))
    # previews arrived before the final image (the engine thins them out past its time budget)
    assert events[0] == "preview 1" and events[-1] == "final"
    assert events.count("final") == 1 and len(events) >= 2
    assert window.status.progress.value() == window.status.progress.maximum()
    # the history lists it and its metadata panel shows the prompt
    assert window.gallery.paths() == files
    # its metadata is read on the background thread
    qtbot.waitUntil(lambda: "a red cube, on a table" in window.gallery.metadata.toPlainText())
    assert window.session.state.last_seed == meta.request.seed
    # the log-SNR plot got this job's schedule and marks its last step
    assert window.insight.schedule_plot.current_timestep() is not None
    assert window.status.progress.format().startswith("done in")


def test_cancel_mid_run_saves_nothing_and_the_next_job_runs(qtbot, make_window):
    window = make_window()
    window.session.state.steps = 20
    worker = window.session.worker.worker
    steps_seen: list[int] = []

    def cancel_on_first_step(message: WorkerMessage) -> None:
        # runs in the worker thread, inside the step callback: deterministic "mid-run"
        if message.event is WorkerEvent.step:
            steps_seen.append(message.update.step)
            if message.update.step == 1:
                message.job.cancel.set()  # what the Cancel button does, from another thread

    worker.message.connect(cancel_on_first_step, Qt.ConnectionType.DirectConnection)
    job = _generate(qtbot, window)
    worker.message.disconnect(cancel_on_first_step)

    assert job.state is JobState.cancelled
    assert job.result.cancelled and job.result.images == []
    assert max(steps_seen) <= 2  # it stopped within a step of the cancel
    assert _images(make_window.output_dir) == []

    window.session.state.steps = 3
    job = _generate(qtbot, window)
    assert job.state is JobState.done
    assert len(_images(make_window.output_dir)) == 1


def test_cancel_button_and_escape_cancel_the_running_job(qtbot, make_window):
    window = make_window()
    window.session.state.steps = 200
    with qtbot.waitSignal(window.session.job_done, timeout=60_000) as blocker:
        window.session.generate()
        qtbot.waitUntil(lambda: window.status.progress.value() >= 1, timeout=30_000)
        assert window.queue_view.cancel_button.isEnabled()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert blocker.args[0].state is JobState.cancelled
    assert window.status.progress.value() < 200


def test_a_queue_of_three_jobs_runs_in_order(qtbot, make_window):
    window = make_window()
    window.session.state.seed = 100
    window.session.state.batch_count = 3
    done: list[int] = []
    window.session.job_done.connect(lambda job: done.append(job.id))
    jobs = window.session.generate()
    assert [j.request.seed for j in jobs] == [100, 101, 102]
    assert window.queue_view.queue_list.count() == 3  # one running or queued, the rest pending
    qtbot.waitUntil(lambda: len(done) == 3, timeout=90_000)

    assert done == [j.id for j in jobs]
    assert all(j.state is JobState.done for j in jobs)
    seeds = sorted(read_settings(p).request.seed for p in _images(make_window.output_dir))
    assert seeds == [100, 101, 102]
    assert window.queue_view.queue_list.count() == 0


def test_removing_a_pending_job_skips_it(qtbot, make_window):
    window = make_window()
    window.session.state.seed = 7
    window.session.state.batch_count = 3
    started: list[int] = []
    window.session.worker.message.connect(
        lambda m: started.append(m.job.id) if m.event is WorkerEvent.job_started else None
    )
    done: list[int] = []
    window.session.job_done.connect(lambda job: done.append(job.id))
    first, second, third = window.session.generate()
    assert second in window.session.queue.pending()

    # select the second job in the queue list and remove it, as a user would
    rows = [
        window.queue_view.queue_list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(window.queue_view.queue_list.count())
    ]
    window.queue_view.queue_list.setCurrentRow(rows.index(second.id))
    window.queue_view.remove_button.click()

    assert second.state is JobState.cancelled
    assert second not in window.session.queue.pending()
    qtbot.waitUntil(lambda: third.state is JobState.done, timeout=90_000)
    assert started == [first.id, third.id]
    seeds = sorted(read_settings(p).request.seed for p in _images(make_window.output_dir))
    assert seeds == [7, 9]


def test_an_exception_in_the_pipeline_is_shown_and_the_next_job_runs(
    qtbot, make_window, monkeypatch
):
    import studio.engine.generate as engine_generate

    window = make_window()
    real_generate = engine_generate.generate
    calls = {"n": 0}

    def failing_once(request, cache, on_step=None, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:

            def boom(update):  # raise from inside the running pipeline, at its first step
                raise RuntimeError("simulated failure inside the UNet")

            return real_generate(request, cache, on_step=boom, **kwargs)
        return real_generate(request, cache, on_step=on_step, **kwargs)

    monkeypatch.setattr(engine_generate, "generate", failing_once)
    job = _generate(qtbot, window)
    assert job.state is JobState.failed
    assert "simulated failure inside the UNet" in window.banner.text()
    assert window.banner.isVisible()
    assert _images(make_window.output_dir) == []

    job = _generate(qtbot, window)
    assert job.state is JobState.done
    assert not window.banner.isVisible()  # Generate clears the old error
    assert len(_images(make_window.output_dir)) == 1


def test_a_corrupt_model_folder_fails_that_job_only(qtbot, make_window, tiny_model, tmp_path):
    window = make_window()
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file at all")
    window.session.state.model = str(broken)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=60_000)
    assert "broken-model" in window.banner.text()
    assert window.session.loaded_model is None and "not loaded" in window.status.load_label.text()

    job = _generate(qtbot, window)
    assert job.state is JobState.failed

    window.session.state.model = str(tiny_model)  # choosing the good model again loads it
    qtbot.waitUntil(lambda: window.session.loaded_model is not None, timeout=60_000)
    assert "ready" in window.status.load_label.text()
    window.session.state.width = window.session.state.height = 64
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error


def test_invalid_settings_show_inline_and_queue_nothing(qtbot, make_window):
    window = make_window()
    window.session.state.width = 100  # not a multiple of 8
    assert window.session.generate() == []
    assert "multiple of 8" in window.banner.text()
    assert window.params.size_note.isVisible()
    assert window.session.queue.pending() == [] and window.session.queue.current is None

    window.session.state.width = 64
    window.session.state.mode = "inpaint"  # no image, no mask
    assert window.session.generate() == []
    assert "image" in window.banner.text()


def test_window_shows_before_the_model_is_loaded(qtbot, make_window):
    window = make_window(wait_loaded=False)
    # the window is up and says so while the worker loads in the background
    assert window.isVisible()
    assert window.session.loaded_model is None
    assert window.status.load_label.text().startswith(("Loading", "Starting"))
    assert window.prompts.prompt.counter.text().endswith("(estimate)")  # no tokenizer yet
    jobs = window.session.generate()  # queued now, runs once the engine is up
    assert len(jobs) == 1
    qtbot.waitUntil(lambda: window.session.loaded_model is not None, timeout=60_000)
    assert "ready" in window.status.load_label.text()
    assert "cpu" in window.status.device_label.text()
    # the model's own tokenizer counts now (the tiny one has a token per character)
    assert window.prompts.prompt.counter.text() == f"{len('aredcube')}/75"
    qtbot.waitUntil(lambda: jobs[0].state is JobState.done, timeout=60_000)


def _drop(qtbot, window, path: Path) -> None:
    """Drop a file on the window and wait until its settings were read (off the UI thread)."""
    with qtbot.waitSignal(window.session.restored, timeout=30_000):
        _drop_event(window, path)


def _drop_event(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(
        window.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(window.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_dropping_an_exported_image_restores_its_settings(qtbot, make_window, tmp_path, suffix):
    window = make_window()
    s = window.session.state
    s.prompt, s.negative_prompt = "a lighthouse at dusk", "fog"
    s.sampler, s.schedule_type, s.steps, s.cfg_scale, s.seed = "DDIM", "Automatic", 2, 5.5, 1234
    s.width, s.height = 64, 80
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error
    exported = window.save_as(job.paths[0], tmp_path / f"exported{suffix}")
    assert exported is not None and exported.exists()

    # change everything, then drop the exported file on the window
    s.prompt, s.negative_prompt, s.sampler, s.steps, s.cfg_scale, s.seed = (
        "x",
        "y",
        "Euler",
        9,
        2.0,
        -1,
    )
    s.width, s.height = 128, 128
    _drop(qtbot, window, exported)

    assert (s.prompt, s.negative_prompt, s.sampler) == ("a lighthouse at dusk", "fog", "DDIM")
    assert (s.steps, s.cfg_scale, s.seed, s.width, s.height) == (2, 5.5, 1234, 64, 80)
    # and the widgets show it
    assert window.prompts.prompt.edit.toPlainText() == "a lighthouse at dusk"
    assert window.prompts.negative.edit.toPlainText() == "fog"
    assert window.params.sampler.currentText() == "DDIM"
    assert window.params.steps.value() == 2
    assert window.params.cfg.value() == 5.5
    assert window.params.seed.text() == "1234"
    assert (window.params.width_box.value(), window.params.height_box.value()) == (64, 80)
    assert "Restored" in window.banner.text()


def test_dropping_an_a1111_image_reports_what_it_could_not_restore(qtbot, make_window, tmp_path):
    from PIL.PngImagePlugin import PngInfo

    window = make_window()
    info = PngInfo()
    info.add_text(
        "parameters",
        "a castle\nNegative prompt: ugly\nSteps: 12, Sampler: DPM++ 2M, Schedule type: Karras, "
        "CFG scale: 6, Seed: 42, Size: 512x768, Model hash: abc123, Model: someModel, "
        "Hires upscale: 2, Hires upscaler: Latent",
    )
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    _drop(qtbot, window, path)
    s = window.session.state
    assert (s.prompt, s.negative_prompt, s.steps, s.cfg_scale, s.seed) == (
        "a castle",
        "ugly",
        12,
        6.0,
        42,
    )
    assert (s.sampler, s.width, s.height) == ("DPM++ 2M Karras", 512, 768)
    text = window.banner.text()
    assert "Could not restore" in text and "Hires upscale" in text and "someModel" in text


def test_dropping_a_file_without_settings_says_so(qtbot, make_window, tmp_path):
    window = make_window()
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    before = window.session.state.prompt
    _drop(qtbot, window, path)
    assert window.session.state.prompt == before
    assert "no generation settings" in window.banner.text()


def test_settings_survive_a_restart(qtbot, make_window, tiny_model):
    window = make_window()
    s = window.session.state
    s.prompt, s.negative_prompt, s.steps, s.seed, s.cfg_scale = (
        "kept prompt",
        "kept negative",
        7,
        99,
        3.5,
    )
    s.width, s.height, s.sampler, s.batch_count = 72, 64, "UniPC", 2
    s.preview_source = "xt"
    window.resize(window.width(), 650)  # the offscreen screen is 800x800: stay inside it
    window.close()
    assert not window.session.worker.is_running()

    again = make_window(model=None)
    t = again.session.state
    assert (t.prompt, t.negative_prompt, t.steps, t.seed, t.cfg_scale) == (
        "kept prompt",
        "kept negative",
        7,
        99,
        3.5,
    )
    assert (t.width, t.height, t.sampler, t.batch_count, t.preview_source) == (
        72,
        64,
        "UniPC",
        2,
        "xt",
    )
    assert t.model == str(tiny_model)
    assert again.insight.preview_xt.isChecked()
    assert again.height() == 650


def test_a_corrupt_settings_file_falls_back_to_defaults_and_is_kept_aside(qtbot, make_window):
    config = make_window.config_dir
    config.mkdir(parents=True)
    (config / "settings.json").write_text("{ this is not json")
    window = make_window(fresh=False)
    assert "settings file could not be read" in window.banner.text()
    aside = list(config.glob("settings.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ this is not json"
    assert window.session.state.steps == 20 and window.session.state.prompt == ""  # the defaults
    window.close()
    # the next start reads the fresh file written on close, with no complaint
    again = make_window(fresh=False)
    assert not again.banner.isVisible()


def test_inpainting_a_mouse_painted_mask_changes_only_masked_pixels(qtbot, make_window):
    window = make_window()
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    window.canvas.set_image(original)
    window.canvas.set_feather(2)
    window.canvas.set_brush_size(10)
    view = window.canvas.view

    def at(x: float, y: float):
        p = view.map_from_image(QPointF(x, y))
        return p.toPoint()

    # one stroke across the middle of the image, painted with the mouse
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at(16, 32))
    for x in range(18, 49, 2):
        qtbot.mouseMove(view, at(x, 32))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=at(48, 32))
    mask = window.canvas.mask_array()
    assert mask is not None and mask[32, 32] == 255 and mask[5, 5] == 0

    window.canvas.send_to_inpaint_requested.emit()
    assert window.session.state.mode == "inpaint"
    window.session.state.strength = 1.0
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error
    assert job.request.mask_blur == 2

    result = np.asarray(Image.open(job.paths[0]).convert("RGB")).astype(int)
    before = np.asarray(original).astype(int)
    # away from the painted area (beyond the Gaussian feather, sigma 2 px) not one pixel changed
    near = np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(17))) > 0
    assert (~near).sum() > 64 * 64 // 2
    assert np.array_equal(result[~near], before[~near])
    assert np.abs(result[mask == 255] - before[mask == 255]).mean() > 5  # and inside it did
    assert np.array_equal(np.asarray(window.canvas.image()), result)  # shown over the original


def test_the_default_demo_model_generates_through_the_window(qtbot, make_window):
    # the model a new user gets: no model argument, no settings file
    window = make_window(model="demo", fresh=False)
    assert (
        window.session.loaded_model.info.name == "demo"
        and window.session.loaded_model.info.native_size == 128
    )
    assert window.params.size_preset.currentText() == "128 × 128"
    window.session.state.prompt = "a large red circle on the left, on a white background"
    window.session.state.steps, window.session.state.seed = 2, 1
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error
    image = Image.open(job.paths[0])
    assert image.size == (128, 128)
    assert read_settings(job.paths[0]).request.model == "demo"


def test_a_seed_past_32_bits_gives_the_same_pixels_through_window_cli_gallery_and_restart(
    qtbot, make_window, tiny_model, tmp_path
):
    from studio.cli import main as cli

    seed = 5_000_000_003  # past 2**32: a C int or a modulo would change it
    window = make_window()
    window.params.seed.setText(str(seed))  # typed into the field
    assert window.session.state.seed == seed
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error
    first = np.asarray(Image.open(job.paths[0]))
    assert read_settings(job.paths[0]).request.seed == seed

    # the CLI, with the same settings
    code = cli(
        ["generate", "-m", str(tiny_model), "-p", "a red cube", "-s", "Euler", "--steps", "3"]
        + ["--seed", str(seed), "--outdir", str(tmp_path / "cli"), "-q"]
    )
    assert code == 0
    (cli_path,) = _images(tmp_path / "cli")
    assert np.array_equal(np.asarray(Image.open(cli_path)), first)

    # the gallery's "Reuse seed"
    window.session.state.seed = -1
    qtbot.waitUntil(window.gallery.reuse_seed.isEnabled)
    window.gallery.reuse_seed.click()
    assert window.session.state.seed == seed
    assert np.array_equal(np.asarray(Image.open(_generate(qtbot, window).paths[0])), first)

    # a settings save and load
    window.close()
    again = make_window(model=None)
    assert again.session.state.seed == seed and again.params.seed.text() == str(seed)
    assert np.array_equal(np.asarray(Image.open(_generate(qtbot, again).paths[0])), first)


def test_a_lora_chosen_as_the_model_is_named_and_the_loaded_model_stays(
    qtbot, make_window, tmp_path
):
    from safetensors.numpy import save_file

    window = make_window()
    lora = tmp_path / "add-detail.safetensors"
    save_file(
        {"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": np.zeros((4, 8))}, str(lora)
    )
    loaded = window.session.loaded_model
    window.session.load_model(str(lora))
    qtbot.waitUntil(lambda: "is a LoRA" in window.banner.text(), timeout=60_000)
    assert window.session.loaded_model is loaded  # refused before any weights moved
    assert window.session.state.model == loaded.ref
    assert window.params.model.currentData() == loaded.ref
    job = _generate(qtbot, window)
    assert job.state is JobState.done, job.error
