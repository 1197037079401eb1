"""Prompt and negative prompt, each with A1111's token count: "80/150" = 80 tokens in two chunks.

CLIP reads 75 tokens at a time; a longer prompt gets another 75-token chunk, nothing is cut
(studio.engine.prompts), so the counter shows the room the prompt's chunks give.

A prompt is at most StudioState.prompt.max_length characters: longer text (a paste of a whole
file) is cut there with a note under the box, since the state would refuse it and Generate would
silently use the previous prompt; a megabyte of text also takes Qt seconds to lay out.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from studio.engine.prompts.chunks import prompt_token_count
from studio.ui.state import StudioState

# 77 positions minus the start and end tokens: one chunk
TOKEN_LIMIT = 75
MAX_CHARS = StudioState.prompt.max_length
# a tokenizer's count is worth its cost near the first chunks; far beyond them the estimate says
# as much (a slow tokenizer takes ~0.1 s per 10 000 characters, on the UI thread)
EXACT_COUNT_CHARS = 2_000
_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Without a tokenizer: one token per word or punctuation mark (close for common English)."""
    return len(_WORDISH.findall(text))


def count_tokens(text: str, tokenizer: Any | None) -> tuple[int, int, bool]:
    """(tokens, room in the prompt's 75-token chunks, exact)."""
    if tokenizer is not None and text.strip() and len(text) <= EXACT_COUNT_CHARS:
        try:
            return (*prompt_token_count(text, tokenizer), True)
        except Exception:  # an odd tokenizer or prompt must not break typing
            pass
    n = estimate_tokens(text)
    return n, TOKEN_LIMIT * max(1, -(-n // TOKEN_LIMIT)), False


class PromptEdit(QWidget):
    """A multi-line text box with its token count below."""

    def __init__(
        self, placeholder: str, parent: QWidget | None = None, max_chars: int = MAX_CHARS
    ) -> None:
        super().__init__(parent)
        self.max_chars = max_chars
        self.cut_note = ""  # said under the box after text beyond max_chars was cut
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setTabChangesFocus(True)
        self.counter = QLabel()
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addWidget(self.edit)
        layout.addWidget(self.counter)
        self._tokenizer: Any | None = None
        # counting with a real tokenizer costs ~1 ms; wait for a pause in typing
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.update_count)
        # connected before any binding: the state only ever sees text within the limit
        self.edit.textChanged.connect(self._enforce_limit)
        self.edit.textChanged.connect(self._timer.start)
        self.update_count()

    def set_tokenizer(self, tokenizer: Any | None) -> None:
        self._tokenizer = tokenizer
        self.update_count()

    def token_count(self) -> int:
        return count_tokens(self.edit.toPlainText(), self._tokenizer)[0]

    def update_count(self) -> None:
        n, room, exact = count_tokens(self.edit.toPlainText(), self._tokenizer)
        label = f"{n}/{room}" + ("" if exact else " (estimate)")
        self.counter.setText(f"{self.cut_note} {label}" if self.cut_note else label)
        self.counter.setStyleSheet("color: #d04030;" if self.cut_note else "")
        self.counter.setToolTip(
            "Tokens / room in the prompt's 75-token chunks. A longer prompt gets another "
            "chunk: nothing is cut, and BREAK starts a new chunk."
        )

    def _enforce_limit(self) -> None:
        text = self.edit.toPlainText()
        if len(text) <= self.max_chars:
            if self.cut_note and len(text) < self.max_chars:
                self.cut_note = ""  # the user has edited since the cut
            return
        # Qt counts UTF-16 units: the position after the first max_chars characters
        keep = len(text[: self.max_chars].encode("utf-16-le")) // 2
        cursor = QTextCursor(self.edit.document())
        cursor.setPosition(keep)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        self.cut_note = (
            f"Cut to {self.max_chars:,} characters (it was {len(text):,}): "
            "a prompt may not be longer."
        )
        cursor.removeSelectedText()
        self.update_count()


class PromptPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = PromptEdit("Prompt: what to draw (Ctrl+Enter generates)")
        self.negative = PromptEdit("Negative prompt: what to steer away from")
        self.prompt.edit.setObjectName("prompt")
        self.negative.edit.setObjectName("negative_prompt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.prompt, 3)
        layout.addWidget(self.negative, 2)
        self.demo_hint: Any | None = None  # demo_words.DemoWordsHint, made on first use
        self._highlighter: Any | None = None

    def set_tokenizer(self, tokenizer: Any | None) -> None:
        self.prompt.set_tokenizer(tokenizer)
        self.negative.set_tokenizer(tokenizer)

    def set_demo_vocabulary(self, on: bool) -> None:
        """On the demo model: underline the words it never learnt, and say which it knows."""
        from studio.ui import demo_words

        if on and self._highlighter is None:
            if self.demo_hint is None:
                self.demo_hint = demo_words.DemoWordsHint()
                self.prompt.layout().insertWidget(1, self.demo_hint)  # under the text box
            self._highlighter = demo_words.UnknownWordHighlighter(
                self.prompt.edit.document(), demo_words.vocabulary()
            )
            self.prompt.edit.textChanged.connect(self._update_demo_hint)
            self._update_demo_hint()
        elif not on and self._highlighter is not None:
            self.prompt.edit.textChanged.disconnect(self._update_demo_hint)
            self._highlighter.setDocument(None)
            self._highlighter = None
            if self.demo_hint is not None:
                self.demo_hint.hide()

    def _update_demo_hint(self) -> None:
        if self.demo_hint is not None:
            self.demo_hint.update_for(self.prompt.edit.toPlainText())
