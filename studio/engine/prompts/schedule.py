"""A1111's prompt editing and alternation, and Composable Diffusion's AND.

- `[from:to:when]` reads `from` while step <= when, then `to`; `[to:when]` and `[from::when]`
  add or remove text. `when` with a "." is a fraction of the steps, otherwise a step number.
- `[a|b|c]` alternates: step s reads the ((s - 1) mod n)-th option.
- `a cat AND a dog:0.6` is two prompts, each with its own weight.

Same grammar and results as A1111's `prompt_parser` (whose lark grammar accepts `|` only inside
an alternation): a prompt that does not parse is used as it is, for every step. The parser
is a packrat recursive descent, linear in the prompt's length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_WHITESPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_LITERAL_CHARS = "[]():"
_AND = re.compile(r"\bAND\b")
_AND_WEIGHT = re.compile(r"\s*[-+]?(?:\d+\.?|\d*\.\d+)\s*")

MAX_DEPTH = 64  # nesting deeper than this does not parse: the prompt is then read literally


@dataclass(frozen=True)
class Scheduled:
    before: tuple  # nodes; empty for `[to:when]`
    after: tuple
    when: str  # as written: "." makes it a fraction of the steps


@dataclass(frozen=True)
class Alternate:
    options: tuple[tuple, ...]


# a parsed prompt is a tuple of nodes: str (kept as written) | Scheduled | Alternate
Nodes = tuple


class _NoParse(Exception):
    pass


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.memo: dict[int, tuple[Nodes, int]] = {}

    def start(self) -> Nodes:
        nodes: list = []
        pos = 0
        while pos < len(self.text):
            part, end = self.prompt(pos, 0)
            if end > pos:
                nodes.extend(part)
                pos = end
                continue
            # one stray bracket or colon at a time: the next one may open a construct
            if (
                self.text[pos] not in _LITERAL_CHARS
            ):  # "|" outside an alternation, or a "\\" at the end
                raise _NoParse
            nodes.append(self.text[pos])
            pos += 1
        return tuple(nodes)

    def prompt(self, pos: int, depth: int) -> tuple[Nodes, int]:
        """The longest run of plain text, whitespace and bracketed constructs at `pos`."""
        if pos in self.memo:
            return self.memo[pos]
        start = pos
        nodes: list = []
        while pos < len(self.text):
            match = _PLAIN.match(self.text, pos) or _WHITESPACE.match(self.text, pos)
            if match:
                nodes.append(match.group(0))
                pos = match.end()
                continue
            construct = self.bracketed(pos, depth + 1) if self.text[pos] in "([" else None
            if construct is None:
                break
            node, pos = construct
            nodes.extend(node) if isinstance(node, tuple) else nodes.append(node)
        self.memo[start] = (tuple(nodes), pos)
        return self.memo[start]

    def bracketed(self, pos: int, depth: int) -> tuple[object, int] | None:
        if depth > MAX_DEPTH:
            raise _NoParse
        text = self.text
        inner, end = self.prompt(pos + 1, depth)
        if text[pos] == "(":
            # emphasis stays as text: the attention parser reads it after scheduling
            if text.startswith(")", end):
                return ("(", *inner, ")"), end + 1
            if text.startswith(":", end):
                second, close = self.prompt(end + 1, depth)
                if text.startswith(")", close):
                    return ("(", *inner, ":", *second, ")"), close + 1
            return None
        if text.startswith("]", end):
            return ("[", *inner, "]"), end + 1
        if text.startswith(":", end):
            return self._scheduled(inner, end + 1, depth)
        if text.startswith("|", end):
            return self._alternate(inner, end, depth)
        return None

    def _scheduled(self, first: Nodes, pos: int, depth: int) -> tuple[object, int] | None:
        when = self._when(pos)
        if when is not None:  # [to:when]
            return Scheduled((), first, when[0]), when[1]
        second, end = self.prompt(pos, depth)
        if self.text.startswith(":", end):
            when = self._when(end + 1)
            if when is not None:  # [from:to:when]
                return Scheduled(first, second, when[0]), when[1]
        return None

    def _when(self, pos: int) -> tuple[str, int] | None:
        """`NUMBER]` with optional whitespace around the number."""
        space = _WHITESPACE.match(self.text, pos)
        pos = space.end() if space else pos
        number = _NUMBER.match(self.text, pos)
        if number is None:
            return None
        end = number.end()
        space = _WHITESPACE.match(self.text, end)
        end = space.end() if space else end
        if not self.text.startswith("]", end):
            return None
        return number.group(0), end + 1

    def _alternate(self, first: Nodes, pos: int, depth: int) -> tuple[object, int] | None:
        options = [first]
        while self.text.startswith("|", pos):
            option, pos = self.prompt(pos + 1, depth)
            options.append(option)
        if not self.text.startswith("]", pos):
            return None
        return Alternate(tuple(options)), pos + 1


def parse_schedule(prompt: str) -> Nodes | None:
    """The prompt's tree, or None when it does not parse (then it is read literally)."""
    try:
        return _Parser(prompt).start()
    except (_NoParse, RecursionError):
        return None


def _step_of(when: str, steps: int) -> int:
    value = float(when) * steps if "." in when else float(when)
    if math.isinf(value):  # "1e999": as large or as small as a step can be
        return steps if value > 0 else -1
    return min(steps, int(value))


def _switch_steps(nodes: Nodes, steps: int, found: set[int]) -> None:
    for node in nodes:
        if isinstance(node, Scheduled):
            step = _step_of(node.when, steps)
            if step >= 1:
                found.add(step)
            _switch_steps(node.before, steps, found)
            _switch_steps(node.after, steps, found)
        elif isinstance(node, Alternate):
            found.update(range(1, steps + 1))
            for option in node.options:
                _switch_steps(option, steps, found)


def _text_at(nodes: Nodes, step: int, steps: int) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Scheduled):
            branch = node.before if step <= _step_of(node.when, steps) else node.after
            out.append(_text_at(branch, step, steps))
        else:
            out.append(_text_at(node.options[(step - 1) % len(node.options)], step, steps))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """[(last step, text)]: the text to use up to and including each step (1-based), in order.

    A sampler's k-th model call (0-based) uses the first entry whose step is >= k, as A1111's
    `reconstruct_cond_batch` does.
    """
    nodes = parse_schedule(prompt)
    if nodes is None:
        return [(steps, prompt)]
    found = {steps}
    _switch_steps(nodes, steps, found)
    return [(step, _text_at(nodes, step, steps)) for step in sorted(found)]


def text_for_call(schedule: list[tuple[int, str]], call: int) -> str:
    for last_step, text in schedule:
        if call <= last_step:
            return text
    return schedule[-1][1]


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Composable Diffusion: the sub-prompts around each whole-word AND, with their `:weight`."""
    parts: list[tuple[str, float]] = []
    for part in _AND.split(prompt):
        head, colon, tail = part.rpartition(":")
        if colon and _AND_WEIGHT.fullmatch(tail):
            parts.append((head.rstrip(), float(tail)))
        else:
            parts.append((part.rstrip(), 1.0))
    return parts
