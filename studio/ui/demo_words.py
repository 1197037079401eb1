"""On the demo model: underline the prompt's words it never learnt, and say which words it knows.

The demo model was trained on captions of about fifty words (studio.demo.world.vocabulary):
"a photo of a cat on a sofa" silently gives random shapes. Marking the unknown words as the user
types says why.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QSyntaxHighlighter, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import QLabel, QWidget

_WORD = re.compile(r"[^\W\d_]+")
# A1111 syntax, not words: LoRA/embedding tags, BREAK/AND, schedule brackets keep their words
_TAG = re.compile(r"<[^>]*>")
_KEYWORDS = {"BREAK", "AND"}
# words every caption has: knowing only these is knowing nothing
_FILLER = {"a", "an", "and", "the", "of", "with", "in", "on", "at", "to", "its", "image"}
EXAMPLE = "a big red circle on a blue background"


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    from studio.demo.world import vocabulary as words

    return frozenset(words())


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, length, word) for each word outside A1111 tags, keywords left out."""
    masked = _TAG.sub(lambda m: " " * len(m.group()), text)
    return [
        (m.start(), len(m.group()), m.group())
        for m in _WORD.finditer(masked)
        if m.group() not in _KEYWORDS
    ]


def unknown_words(text: str, known: frozenset[str] | None = None) -> list[str]:
    known = vocabulary() if known is None else known
    return list(dict.fromkeys(w.lower() for _, _, w in word_spans(text) if w.lower() not in known))


def known_summary() -> str:
    from studio.demo import world

    def words(table: dict[str, tuple[str, ...]]) -> str:
        return ", ".join(sorted({p for phrases in table.values() for p in phrases}))

    return (
        f"colours: {', '.join(world.COLOURS)}; shapes: {', '.join(world.SHAPES)}; "
        f"sizes: {words(world.SIZE_WORDS)}; positions: {words(world.POSITION_PHRASES)}; "
        f"figures: stick figure, person; poses: {words(world.POSE_PHRASES)}; "
        "backgrounds: on a … background"
    )


def known_short() -> str:
    from studio.demo import world

    return (
        f"It knows colours ({', '.join(world.COLOURS)}), shapes ({', '.join(world.SHAPES)}), "
        "sizes, positions, stick figures and poses (hover for every word)."
    )


def hint_text(text: str, known: frozenset[str] | None = None) -> str:
    """What the line under the prompt says (empty for an empty prompt)."""
    known = vocabulary() if known is None else known
    spans = word_spans(text)
    if not spans:
        return ""
    unknown = unknown_words(text, known)
    meaningful = [w.lower() for _, _, w in spans if w.lower() in known - _FILLER]
    if not meaningful:
        return (
            "The demo model knows none of these words: it will draw random shapes. "
            f"Try a simple scene, e.g. “{EXAMPLE}”. {known_short()}"
        )
    if unknown:
        return (
            f"The demo model never learnt the underlined words: {', '.join(unknown)}. "
            + known_short()
        )
    return ""


class UnknownWordHighlighter(QSyntaxHighlighter):
    """A red wavy underline under each word outside the vocabulary."""

    def __init__(self, document: QTextDocument, known: frozenset[str]) -> None:
        super().__init__(document)
        self.known = known
        self.format = QTextCharFormat()
        self.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self.format.setUnderlineColor(QColor("#d04030"))
        self.format.setToolTip("The demo model never learnt this word")

    def highlightBlock(self, text: str) -> None:  # noqa: N802
        for start, length, word in word_spans(text):
            if word.lower() not in self.known:
                self.setFormat(start, length, self.format)


class DemoWordsHint(QLabel):
    """The line under the prompt box; its tooltip lists every word the demo model knows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setStyleSheet("color: #b05a00;")
        self.setToolTip("Words the demo model knows — " + known_summary())
        self.hide()

    def update_for(self, text: str) -> None:
        hint = hint_text(text)
        self.setText(hint)
        self.setVisible(bool(hint))


def install_demo_words(window: Any) -> None:
    """Turn the marking on while the demo model is loaded (main window's prompt panel)."""
    from studio.engine.request import DEMO_MODEL_REF

    def loaded(model: Any) -> None:
        window.prompts.set_demo_vocabulary(model is not None and model.ref == DEMO_MODEL_REF)

    window.session.loaded_model_changed.connect(loaded)
    loaded(window.session.loaded_model)
