"""Seeds are int64, random ones A1111-sized; a batch count continues the seeds without wrapping."""

from __future__ import annotations

import random
import re

import pytest

from studio.engine.batch import MAX_BATCH_COUNT, expand_batch
from studio.engine.checks import MAX_BATCH, check_request
from studio.engine.request import GenerationRequest
from studio.engine.seeds import MAX_SEED, draw_seed, resolve_seed


def test_max_seed_is_the_largest_int64():
    assert MAX_SEED == 2**63 - 1


def test_resolve_seed_draws_for_minus_one_only():
    assert resolve_seed(0) == 0
    assert resolve_seed(5_000_000_000) == 5_000_000_000
    assert resolve_seed(MAX_SEED) == MAX_SEED
    random.seed(1)
    drawn = {resolve_seed(-1) for _ in range(50)}
    assert all(0 <= s <= 2**32 - 1 for s in drawn)
    assert len(drawn) > 45  # fresh each time, not a fixed fallback
    with pytest.raises(ValueError, match="Seed must be -1"):
        resolve_seed(-7)  # only -1 means random


def test_draw_seed_stays_in_a1111s_range():
    random.seed(2)
    assert all(0 <= draw_seed() <= 2**32 - 1 for _ in range(1000))


def test_expand_batch_continues_seeds_past_32_bits_without_wrapping():
    base = GenerationRequest(prompt="x", seed=2**32 - 1, batch_size=2)
    jobs = expand_batch(base, 3)
    assert [j.seed for j in jobs] == [2**32 - 1, 2**32 + 1, 2**32 + 3]
    assert all(j.with_(seed=base.seed) == base for j in jobs)  # only the seed changes


def test_expand_batch_of_one_is_the_request_itself():
    base = GenerationRequest(prompt="x", seed=9)
    assert expand_batch(base, 1) == [base]


def test_expand_batch_may_end_exactly_at_max_seed():
    jobs = expand_batch(GenerationRequest(seed=MAX_SEED - 5, batch_size=2), 3)
    assert [j.seed for j in jobs] == [MAX_SEED - 5, MAX_SEED - 3, MAX_SEED - 1]
    for job in jobs:
        check_request(job)  # every job's last image, seed + 1, still fits


def test_expand_batch_refuses_seeds_past_max_seed():
    with pytest.raises(ValueError, match=f"at most {MAX_SEED - 5}"):
        expand_batch(GenerationRequest(seed=MAX_SEED - 4, batch_size=2), 3)
    with pytest.raises(ValueError, match="largest seed"):
        expand_batch(GenerationRequest(seed=MAX_SEED, batch_size=1), 2)


@pytest.mark.parametrize("count", [0, -1, MAX_BATCH_COUNT + 1, 1.5, True])
def test_expand_batch_refuses_a_bad_count(count):
    with pytest.raises(ValueError, match="Batch count"):
        expand_batch(GenerationRequest(seed=1), count)


def test_expand_batch_needs_a_resolved_seed():
    # -1 must be drawn once for the whole Generate, not turned into -1, 0, 1...
    with pytest.raises(ValueError, match="Seed must be resolved"):
        expand_batch(GenerationRequest(seed=-1), 3)


def test_check_request_accepts_every_int64_seed_a_batch_can_use():
    check_request(GenerationRequest(seed=0))
    check_request(GenerationRequest(seed=5_000_000_000))
    check_request(GenerationRequest(seed=MAX_SEED, batch_size=1))
    check_request(GenerationRequest(seed=MAX_SEED - 1, batch_size=2))
    check_request(GenerationRequest(seed=MAX_SEED - MAX_BATCH + 1, batch_size=MAX_BATCH))


def test_check_request_refuses_a_batch_that_would_pass_max_seed():
    message = f"Seed must be between 0 and {MAX_SEED - 1} for a batch of 2"
    with pytest.raises(ValueError, match=re.escape(message)):
        check_request(GenerationRequest(seed=MAX_SEED, batch_size=2))


@pytest.mark.parametrize("seed", [MAX_SEED + 1, 2**64, -1])
def test_check_request_refuses_seeds_outside_int64(seed):
    with pytest.raises(ValueError, match=re.escape(f"Seed must be between 0 and {MAX_SEED}")):
        check_request(GenerationRequest(seed=seed))
