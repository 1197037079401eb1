"""Help → Keyboard shortcuts and About, and the first-run hint's clickable example prompts."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from studio.ui import help_menu
from studio.ui.demo_words import hint_text
from studio.ui.help_menu import EXAMPLE_PROMPTS, ShortcutsDialog, install_help


def demo_window(qtbot, tmp_path, **kwargs):
    from studio.ui.main_window import MainWindow

    window = MainWindow(
        config_dir=tmp_path / "config",
        output_dir=tmp_path / "out",
        device="cpu",
        start_worker=False,
        **kwargs,
    )
    qtbot.addWidget(window)
    install_help(window)
    window.show()
    return window


def test_the_example_prompts_are_all_words_the_demo_model_knows() -> None:
    for prompt in EXAMPLE_PROMPTS:
        assert hint_text(prompt) == "", prompt


def test_first_run_shows_three_examples_and_a_click_puts_one_in_the_prompt(qtbot, tmp_path):
    window = demo_window(qtbot, tmp_path, model="demo")
    hint = window.first_run_hint
    assert hint is not None and hint.isVisible()
    assert [label.text().count("<a href") for label in hint.examples] == [1, 1, 1]
    hint.examples[1].linkActivated.emit(EXAMPLE_PROMPTS[1])  # what a click on the link sends
    assert window.prompts.prompt.edit.toPlainText() == EXAMPLE_PROMPTS[1]
    assert window.session.state.prompt == EXAMPLE_PROMPTS[1]
    assert not hint.isVisible()


def test_no_hint_once_settings_exist(qtbot, tmp_path):
    from tests.ui.conftest import write_settings

    write_settings(tmp_path / "config", model="demo", prompt="a red ring")
    window = demo_window(qtbot, tmp_path)
    assert window.first_run_hint is None


def test_keyboard_shortcuts_lists_the_menus_actions(qtbot, tmp_path):
    window = demo_window(qtbot, tmp_path, model="demo")
    titles = [a.text() for a in window.help_menu.actions()]
    assert titles == ["Keyboard shortcuts", "About Diffusion Studio"]
    dialog = ShortcutsDialog(window)
    qtbot.addWidget(dialog)
    rows = {
        dialog.table.item(i, 0).text(): dialog.table.item(i, 1).text()
        for i in range(dialog.table.rowCount())
    }
    assert rows["Generate"] == "Ctrl+Return"
    assert rows["Random seed"] == "Ctrl+R"
    assert rows["Keyboard shortcuts"] == "Ctrl+/"
    assert rows["Cancel"] == "Esc" and rows["Brush"] == "B"  # the canvas's too


def test_about_gives_versions_and_device(qtbot, tmp_path, monkeypatch):
    import importlib.metadata

    window = demo_window(qtbot, tmp_path, model="demo")
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window.help_menu.actions()[1].trigger()
    text = shown[0]
    assert f"diffusers: {importlib.metadata.version('diffusers')}" in text
    assert "Qt / PySide6: 6." in text and "Python: 3." in text
    assert "Device: the model is still loading" in text
    assert help_menu.device_text(window.session) in text
