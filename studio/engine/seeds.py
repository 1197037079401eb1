"""Seeds: 64-bit signed integers, drawn in A1111's 32-bit range when the user asks for random.

No torch here: the GUI and the CLI resolve seeds before the engine is imported.
"""

from __future__ import annotations

import random

# seeds travel through Qt signals as "qlonglong" and into torch.Generator.manual_seed: int64.
# torch's CPU generator (mt19937) only uses a seed's low 32 bits, so s and s + 2**32 give the
# same noise; the full seed is still what is checked, saved and shown.
MAX_SEED = 2**63 - 1
# a random seed stays in A1111's range, so it can be typed into A1111 and gives the same noise
MAX_RANDOM_SEED = 2**32 - 1
RANDOM_SEED = -1  # what the user types for "draw one"


def draw_seed() -> int:
    """A fresh random seed in [0, 2**32 - 1]."""
    return random.randint(0, MAX_RANDOM_SEED)


def resolve_seed(seed: int) -> int:
    """The seed to use: a fresh one for -1, else `seed` itself. Any other negative number is
    refused: -5 is more likely a typo than a wish for a random seed."""
    if seed == RANDOM_SEED:
        return draw_seed()
    if isinstance(seed, int) and not isinstance(seed, bool) and seed < 0:
        raise ValueError(
            f"Seed must be -1 (a random seed) or between 0 and {MAX_SEED}, not {seed}."
        )
    return seed
