"""A1111's emphasis syntax: which words of a prompt weigh how much.

`(word)` ×1.1, `[word]` ÷1.1, `(word:1.3)` ×1.3; brackets nest and multiply, a bracket left
open applies to the end of the prompt, `\\(` is a literal bracket, and `BREAK` (a whole word,
outside any bracket) ends the current 75-token chunk. Same results as A1111's
`prompt_parser.parse_prompt_attention`, in time linear in the prompt's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK = "BREAK"
BREAK_WEIGHT = -1.0  # the marker A1111 uses for a chunk break in the parsed list

# deeper nesting than this is refused: every open bracket costs a pass over the text inside it
MAX_NESTING = 64

_TOKENS = re.compile(
    r"""
    \\[()\[\]\\]                    # an escaped bracket or backslash: literal
    | \\                            # a lone backslash: dropped, as A1111 does
    | [(\[]                         # an opening bracket
    | :\s*([+-]?[.\d]+)\s*\)        # ":1.3)" closes a round bracket with that weight
    | [)\]]                         # a closing bracket
    | [^\\()\[\]:]+                 # plain text
    | :                             # a colon that closes nothing is text
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


class PromptError(ValueError):
    """A prompt this app cannot read; the message says what to change."""


@dataclass
class Span:
    text: str
    weight: float

    @property
    def is_break(self) -> bool:
        return self.text == BREAK and self.weight == BREAK_WEIGHT


def parse_attention(text: str) -> list[Span]:
    """The prompt as runs of text with one weight each (equal neighbours merged)."""
    spans: list[Span] = []
    round_opens: list[int] = []  # where in `spans` each open bracket started
    square_opens: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        for span in spans[start:]:
            span.weight *= factor

    for match in _TOKENS.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            spans.append(Span(token[1:], 1.0))
        elif token in "([":
            (round_opens if token == "(" else square_opens).append(len(spans))
            if len(round_opens) + len(square_opens) > MAX_NESTING:
                raise PromptError(
                    f"The prompt nests brackets more than {MAX_NESTING} deep; "
                    "close some brackets or escape them as \\( and \\[."
                )
        elif weight is not None and round_opens and _is_number(weight):
            multiply_from(round_opens.pop(), float(weight))
        elif token == ")" and round_opens:
            multiply_from(round_opens.pop(), ROUND)
        elif token == "]" and square_opens:
            multiply_from(square_opens.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i > 0:
                    spans.append(Span(BREAK, BREAK_WEIGHT))
                spans.append(Span(part, 1.0))

    for start in round_opens:  # brackets left open apply to the end
        multiply_from(start, ROUND)
    for start in square_opens:
        multiply_from(start, SQUARE)
    return _merge_equal_neighbours(spans) or [Span("", 1.0)]


def _is_number(text: str) -> bool:
    # "1.2.3" matches the weight pattern but is no number: A1111 crashes, we read it as text
    try:
        float(text)
    except ValueError:
        return False
    return True


def _merge_equal_neighbours(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        if merged and merged[-1].weight == span.weight:
            merged[-1].text += span.text
        else:
            merged.append(span)
    return merged
