"""Prompt and negative prompt, each with a token count against CLIP's 75-token window."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

# 77 positions minus the start and end tokens
TOKEN_LIMIT = 75
_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Without a tokenizer: one token per word or punctuation mark (close for common English)."""
    return len(_WORDISH.findall(text))


def count_tokens(text: str, tokenizer: Any | None) -> int:
    if tokenizer is None or not text.strip():
        return estimate_tokens(text)
    try:
        ids = tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"]
    except Exception:  # an odd tokenizer must not break typing
        return estimate_tokens(text)
    return len(ids)


class PromptEdit(QWidget):
    """A multi-line text box with its token count below."""

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.edit.textChanged.connect(self._timer.start)
        self.update_count()

    def set_tokenizer(self, tokenizer: Any | None) -> None:
        self._tokenizer = tokenizer
        self.update_count()

    def token_count(self) -> int:
        return count_tokens(self.edit.toPlainText(), self._tokenizer)

    def update_count(self) -> None:
        n = self.token_count()
        exact = self._tokenizer is not None
        self.counter.setText(f"{n}/{TOKEN_LIMIT}" + ("" if exact else " (estimate)"))
        over = n > TOKEN_LIMIT
        self.counter.setStyleSheet("color: #d04030;" if over else "")
        self.counter.setToolTip(
            "Over the 75-token window: the text model does not see the rest."
            if over
            else "Tokens of the prompt in the text model's 75-token window."
        )


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

    def set_tokenizer(self, tokenizer: Any | None) -> None:
        self.prompt.set_tokenizer(tokenizer)
        self.negative.set_tokenizer(tokenizer)
