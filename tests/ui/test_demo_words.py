"""On the demo model the prompt's unknown words are underlined and the known ones are named."""

from __future__ import annotations

from PySide6.QtGui import QTextCharFormat

from studio.ui.demo_words import hint_text, unknown_words, vocabulary
from studio.ui.prompt_panel import PromptPanel


def underlined_words(panel: PromptPanel) -> list[str]:
    """The words the highlighter marked, read back from the text layout."""
    block = panel.prompt.edit.document().firstBlock()
    text = block.text()
    wave = QTextCharFormat.UnderlineStyle.WaveUnderline
    return [
        text[r.start : r.start + r.length]
        for r in block.layout().formats()
        if r.format.underlineStyle() == wave
    ]


def test_unknown_words_ignore_case_tags_and_keywords() -> None:
    assert "red" in vocabulary() and "cat" not in vocabulary()
    text = "A Photo of a <lora:film:0.8> RED cat BREAK on a (sofa:1.2)"
    assert unknown_words(text) == ["photo", "cat", "sofa"]


def test_a_prompt_with_no_known_words_gets_a_short_note() -> None:
    note = hint_text("a photo of a cat sitting on a sofa")
    assert note.startswith("The demo model knows none of these words")
    assert "red" in note and "circle" in note  # and says what it does know
    assert hint_text("") == ""
    assert hint_text("a big red circle on a blue background") == ""


def test_the_demo_model_marks_words_it_never_learnt(qtbot) -> None:
    panel = PromptPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_demo_vocabulary(True)
    panel.prompt.edit.setPlainText("a red cat on a blue sofa")
    assert underlined_words(panel) == ["cat", "sofa"]
    assert panel.demo_hint.isVisible()
    assert "cat, sofa" in panel.demo_hint.text()
    assert "purple" in panel.demo_hint.toolTip() and "waving" in panel.demo_hint.toolTip()

    panel.prompt.edit.setPlainText("a small green star at the top")
    assert underlined_words(panel) == [] and not panel.demo_hint.isVisible()

    # another model: no marks, no hint
    panel.prompt.edit.setPlainText("a red cat")
    panel.set_demo_vocabulary(False)
    panel.prompt.edit.setPlainText("a red cat on a sofa")
    assert underlined_words(panel) == [] and not panel.demo_hint.isVisible()


def test_the_window_turns_the_marking_on_for_the_demo_model(qtbot, tmp_path) -> None:
    from studio.ui.demo_words import install_demo_words
    from studio.ui.main_window import MainWindow

    window = MainWindow(config_dir=tmp_path / "c", output_dir=tmp_path / "o", model="demo")
    qtbot.addWidget(window)
    install_demo_words(window)
    window.session.state.prompt = "a cat"
    qtbot.waitUntil(lambda: window.session.loaded_model is not None, timeout=120_000)
    assert window.session.loaded_model.ref == "demo"
    assert underlined_words(window.prompts) == ["cat"]
    window.close()
