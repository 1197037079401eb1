"""Batch count: one Generate (or `studio generate --batch-count`) becomes several jobs.

A1111's convention: job k starts at seed + k * batch_size, so no two images share a seed and
any image can be made again alone from its own seed. Torch-free, shared by the CLI and the GUI.
"""

from __future__ import annotations

from studio.engine.request import GenerationRequest
from studio.engine.seeds import MAX_SEED

MAX_BATCH_COUNT = 100  # jobs per Generate, as A1111 allows


def expand_batch(request: GenerationRequest, batch_count: int) -> list[GenerationRequest]:
    """The `batch_count` jobs of one Generate: job k is `request` with seed + k * batch_size.

    The seed must already be resolved (see seeds.resolve_seed). Seeds never wrap around: a batch
    whose last image would need a seed above MAX_SEED raises ValueError.
    """
    if isinstance(batch_count, bool) or not isinstance(batch_count, int):
        raise ValueError(f"Batch count must be a whole number, not {batch_count!r}.")
    if not 1 <= batch_count <= MAX_BATCH_COUNT:
        raise ValueError(
            f"Batch count must be between 1 and {MAX_BATCH_COUNT} (it is {batch_count})."
        )
    seed, size = request.seed, request.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"Batch size must be a whole number of at least 1, not {size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        # a random seed (-1) is drawn once for the whole Generate, before expanding
        raise ValueError(f"Seed must be resolved to a number from 0 up first, not {seed!r}.")
    images = batch_count * size
    last = seed + images - 1
    if last > MAX_SEED:
        raise ValueError(
            f"Seed {seed} is too large for {batch_count} x {size} images: the last would need "
            f"seed {last}, above the largest seed {MAX_SEED}; use a seed of at most "
            f"{MAX_SEED - images + 1}."
        )
    return [request.with_(seed=seed + k * size) for k in range(batch_count)]
