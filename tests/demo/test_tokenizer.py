from __future__ import annotations

from pathlib import Path

import pytest

from studio.demo import world
from studio.demo.tokenizer import build_tokenizer_files, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return load_tokenizer(build_tokenizer_files(tmp_path_factory.mktemp("tok")))


def test_every_caption_word_is_one_token(tokenizer):
    for seed in range(300):
        cap = world.make_scene(seed).caption
        ids = tokenizer(cap).input_ids
        words = cap.replace(",", " ,").split()
        assert len(ids) == len(words) + 2, tokenizer.convert_ids_to_tokens(ids)


def test_unknown_words_and_empty_prompts_do_not_fail(tokenizer):
    ids = tokenizer("A zebra in Paris!! 日本 🙂", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tokenizer.bos_token_id
    empty = tokenizer("", padding="max_length", max_length=77).input_ids
    assert empty[:2] == [tokenizer.bos_token_id, tokenizer.eos_token_id]
    long = tokenizer("red " * 200, truncation=True, max_length=77).input_ids
    assert len(long) == 77


def test_shipped_tokenizer_matches_the_world():
    from studio.paths import DEMO_MODEL

    shipped = load_tokenizer(Path(DEMO_MODEL) / "tokenizer")
    assert shipped.model_max_length == 77
    ids = shipped("a large red circle on the left, on a blue background").input_ids
    assert len(ids) == 14
