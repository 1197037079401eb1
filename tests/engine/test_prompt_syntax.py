"""The A1111 prompt language, text side: emphasis, BREAK, editing, alternation and AND.

Expected values are A1111's own documented results (the doctests of `modules/prompt_parser.py`
in stable-diffusion-webui), not what our writer produces.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.engine.prompts.attention import MAX_NESTING, PromptError, Span, parse_attention
from studio.engine.prompts.schedule import prompt_schedule, split_and, text_for_call


def spans(text: str) -> list[list]:
    return [[s.text, s.weight] for s in parse_attention(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [["normal text", 1.0]]),
        ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
        ("(unbalanced", [["unbalanced", 1.1]]),
        ("\\(literal\\]", [["(literal]", 1.0]]),
        ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ["a ", 1.0],
                ["house", 1.5730000000000004],
                [" ", 1.1],
                ["on", 1.0],
                [" a ", 1.1],
                ["hill", 0.55],
                [", sun, ", 1.1],
                ["sky", 1.4641000000000006],
                [".", 1.1],
            ],
        ),
        ("[x]", [["x", 1 / 1.1]]),
        ("(x:1.0)", [["x", 1.0]]),
        ("a BREAK b", [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]),
        ("", [["", 1.0]]),
    ],
)
def test_emphasis_matches_a1111(text, expected):
    assert spans(text) == expected


def test_break_ends_a_chunk_only_outside_brackets_as_in_a1111():
    assert Span("BREAK", -1.0) in parse_attention("a BREAK b")
    # inside brackets A1111 weighs the marker like any text, so it is no longer a break
    assert not any(s.is_break for s in parse_attention("(a BREAK b)"))
    assert not any(s.is_break for s in parse_attention("BREAKING news"))


def test_a_malformed_weight_is_text_not_a_crash():
    assert "".join(s.text for s in parse_attention("(a:1.2.3)")) == "a:1.2.3)"


def test_nesting_beyond_the_limit_is_refused_with_a_message():
    parse_attention("(" * MAX_NESTING + "x")
    with pytest.raises(PromptError, match="nests brackets"):
        parse_attention("(" * (MAX_NESTING + 1) + "x")


def g(prompt: str) -> list[list]:
    return [[step, text] for step, text in prompt_schedule(prompt, 10)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("test", [[10, "test"]]),
        ("a [b:3]", [[3, "a "], [10, "a b"]]),
        ("a [b: 3]", [[3, "a "], [10, "a b"]]),
        ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
        ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
        ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
        ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
        ("a [unbalanced", [[10, "a [unbalanced"]]),
        ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
        ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
        ("[a|(b:1.1)]", [[s, "a" if s % 2 else "(b:1.1)"] for s in range(1, 11)]),
        ("[fe|]male", [[s, "female" if s % 2 else "male"] for s in range(1, 11)]),
        ("[fe|||]male", [[s, "female" if s % 4 == 1 else "male"] for s in range(1, 11)]),
        ("a|b", [[10, "a|b"]]),  # "|" outside an alternation: the prompt is read as written
    ],
)
def test_editing_and_alternation_match_a1111(prompt, expected):
    assert g(prompt) == expected


def test_edge_fractions_give_one_side_for_the_whole_run():
    assert g("[blue:red:0.0]") == [[10, "red"]]
    assert g("[blue:red:1.0]") == [[10, "blue"]]
    assert g("[blue:red:0.5]") == [[5, "blue"], [10, "red"]]


def test_model_call_k_uses_the_first_entry_ending_at_or_after_k():
    schedule = prompt_schedule("[blue:red:0.5]", 10)
    assert [text_for_call(schedule, k) for k in (0, 5, 6, 9)] == ["blue", "blue", "red", "red"]


def test_and_splits_whole_words_with_weights():
    assert split_and("a cat AND a dog:0.6") == [("a cat", 1.0), (" a dog", 0.6)]
    assert split_and("a cat AND a dog : 1.5 ") == [("a cat", 1.0), (" a dog", 1.5)]
    assert split_and("SANDY beach") == [("SANDY beach", 1.0)]
    assert split_and("ratio a:b") == [("ratio a:b", 1.0)]


# any text at all: only the documented error, and the schedule always covers every step
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab ()[]:|\\.,0123456789BREAKAND\n")), max_size=60))
def test_any_prompt_parses_or_gives_the_documented_error(text):
    try:
        parse_attention(text)
    except PromptError:
        pass
    schedule = prompt_schedule(text, 7)
    assert schedule[-1][0] == 7
    assert [step for step, _ in schedule] == sorted({step for step, _ in schedule})
    assert split_and(text)
