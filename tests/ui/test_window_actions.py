"""Window actions around a generation: preview source, shortcuts, history, export, models, settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from studio.ui.images import qimage_to_pil
from studio.ui.jobs import JobState
from studio.ui.settings_dialog import SettingsDialog


def _generate(qtbot, window):
    with qtbot.waitSignal(window.session.job_done, timeout=60_000) as blocker:
        assert window.session.generate(), window.banner.text()
    return blocker.args[0]


def test_preview_source_switches_between_x0_and_xt(qtbot, make_window):
    window = make_window()
    window.session.state.seed = 3
    previews: dict[str, list[np.ndarray]] = {"x0": [], "xt": []}
    for source, button in (("x0", window.insight.preview_x0), ("xt", window.insight.preview_xt)):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert window.session.state.preview_source == source
        window.session.preview_ready.connect(lambda u, s=source: previews[s].append(u.preview))
        job = _generate(qtbot, window)
        window.session.preview_ready.disconnect()
        assert job.preview_source == source and job.state is JobState.done
    assert previews["x0"] and previews["xt"]  # step 1's preview always comes
    # same seed, same final image; but the step-1 previews show different things
    first, second = (Image.open(p) for p in sorted(make_window.output_dir.rglob("*.png")))
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert not np.array_equal(previews["x0"][0], previews["xt"][0])


def test_ctrl_enter_in_the_prompt_generates_instead_of_a_new_line(qtbot, make_window):
    window = make_window()
    with qtbot.waitSignal(window.session.job_done, timeout=60_000):
        qtbot.keyClick(
            window.prompts.prompt.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier
        )
    assert "\n" not in window.session.state.prompt
    assert len(list(make_window.output_dir.rglob("*.png"))) == 1


def test_closing_the_window_mid_run_cancels_and_stops_the_thread(qtbot, make_window):
    window = make_window()
    window.session.state.steps = 500
    jobs = window.session.generate() + window.session.generate()
    qtbot.waitUntil(lambda: window.status.progress.value() >= 1, timeout=30_000)
    window.close()
    assert not window.session.worker.is_running()
    assert jobs[0].cancel.is_set() and jobs[1].state is JobState.cancelled
    assert list(make_window.output_dir.rglob("*.png")) == []


def test_history_actions_reuse_send_copy_and_save_as(qtbot, make_window, tmp_path: Path):
    window = make_window()
    state = window.session.state
    state.prompt, state.seed = "history item", 5_000_000_000  # past 32 bits
    job = _generate(qtbot, window)
    path = job.paths[0]
    assert window.gallery.current_path() == path
    qtbot.waitUntil(window.gallery.reuse_seed.isEnabled)  # once its metadata has been read

    state.prompt, state.seed = "something else", -1
    window.gallery.reuse_seed.click()
    assert state.seed == 5_000_000_000 and state.prompt == "something else"
    with qtbot.waitSignal(window.session.restored):
        window.gallery.reuse_settings.click()
    assert state.prompt == "history item"

    window.canvas.set_image(Image.new("RGB", (64, 64), (0, 0, 0)))
    window.gallery.to_canvas.click()
    assert np.array_equal(
        np.asarray(window.canvas.image()), np.asarray(Image.open(path).convert("RGB"))
    )

    assert window.copy_image()
    copied = qimage_to_pil(QApplication.clipboard().image()).convert("RGB")
    assert np.array_equal(np.asarray(copied), np.asarray(Image.open(path).convert("RGB")))

    out = window.save_as(path, tmp_path / "exported")  # no suffix: PNG
    assert out == tmp_path / "exported.png"
    (tmp_path / "a-file").write_text("")
    assert window.save_as(path, tmp_path / "a-file" / "x.png") is None  # a file is no folder
    assert "Could not save" in window.banner.text()


def test_adding_a_model_loads_it_remembers_it_and_sizes_follow(
    qtbot, make_window, tiny_model, tmp_path
):
    window = make_window()
    other = tmp_path / "models" / "another-tiny"
    shutil.copytree(tiny_model, other)
    window.session.state.width = window.session.state.height = 128
    window.session.load_model(str(other))
    qtbot.waitUntil(lambda: window.session.loaded_model.ref == str(other), timeout=60_000)
    assert window.params.model.currentData() == str(other)
    assert (window.session.state.width, window.session.state.height) == (
        64,
        64,
    )  # the model's native size
    assert "another-tiny" in window.status.model_label.text()
    window.close()
    again = make_window(model=None)
    assert again.session.known_models == [str(other)]
    assert again.params.model.findData(str(other)) >= 0
    assert again.session.state.model == str(other)


def test_settings_dialog_changes_output_folder_and_preview_interval(qtbot, make_window, tmp_path):
    window = make_window()
    dialog = SettingsDialog(window.session.settings, window.session.state, window)
    qtbot.addWidget(dialog)
    new_out = tmp_path / "elsewhere"
    dialog.output_dir.setText(str(new_out))
    dialog.preview_every.setValue(0)  # no previews
    dialog.image_format.setCurrentText("webp")
    window.apply_settings_dialog(dialog)
    assert window.session.output_dir() == new_out and window.session.state.preview_every == 0

    previews: list[object] = []
    window.session.preview_ready.connect(previews.append)
    job = _generate(qtbot, window)
    assert previews == [] and job.state is JobState.done
    assert job.paths[0].suffix == ".webp" and job.paths[0].is_relative_to(new_out)


def test_an_image_opened_on_the_canvas_offers_its_settings_without_overwriting(qtbot, make_window):
    window = make_window()
    window.session.state.prompt, window.session.state.seed = "from the file", 55
    job = _generate(qtbot, window)
    window.session.state.prompt, window.session.state.seed = "typed by hand", -1

    assert window.open_image(job.paths[0])
    qtbot.waitUntil(lambda: "carries generation settings" in window.banner.text())
    assert window.session.state.prompt == "typed by hand"  # nothing overwritten
    with qtbot.waitSignal(window.session.restored):
        window.banner.action.click()
    assert (window.session.state.prompt, window.session.state.seed) == ("from the file", 55)
    assert "Restored" in window.banner.text()


def test_delete_edits_text_in_the_prompt_and_removes_jobs_in_the_queue(qtbot, make_window):
    window = make_window(wait_loaded=False)  # jobs stay queued while the engine starts
    window.activateWindow()  # focus-dependent shortcuts need an active window
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    edit = window.prompts.prompt.edit
    edit.setFocus()
    edit.setPlainText("abc")
    qtbot.keyClick(edit, Qt.Key.Key_Delete)  # the cursor is at the start
    assert window.session.state.prompt == "bc"

    jobs = window.session.generate() + window.session.generate()
    assert jobs[1] in window.session.queue.pending()  # only one job runs at a time
    window.queue_view.queue_list.setFocus()
    window.queue_view.queue_list.setCurrentRow(window.queue_view.queue_list.count() - 1)
    qtbot.keyClick(window.queue_view.queue_list, Qt.Key.Key_Delete)
    assert jobs[1].state is JobState.cancelled and window.session.state.prompt == "bc"
    qtbot.waitUntil(lambda: not window.session.queue.is_busy(), timeout=60_000)


def test_img2img_keeps_the_sent_input_until_the_user_opens_another_image(
    qtbot, make_window, tmp_path
):
    window = make_window()
    first = Image.new("RGB", (64, 64), (200, 30, 30))
    window.canvas.set_image(first)
    window.canvas.send_to_img2img_requested.emit()
    assert window.session.state.mode == "img2img" and window.session.state.init_image is not None
    job = _generate(qtbot, window)
    assert np.array_equal(np.asarray(job.request.init_image), np.asarray(first))
    job = _generate(qtbot, window)  # the result is on the canvas now; the input stays the same
    assert np.array_equal(np.asarray(job.request.init_image), np.asarray(first))

    other = tmp_path / "other.png"
    Image.new("RGB", (64, 64), (10, 200, 10)).save(other)
    assert window.open_image(other)
    assert window.session.state.init_image is None
    job = _generate(qtbot, window)
    assert np.array_equal(np.asarray(job.request.init_image), np.asarray(Image.open(other)))
