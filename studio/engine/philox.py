"""Philox4x32-10 and Box–Muller on the CPU: the normal noise CUDA's torch.randn makes.

A1111's "NV" random source (`modules/rng_philox.py`) draws noise this way so that images made on
an NVIDIA GPU can be made again on any machine. The counter-based generator is Random123's
Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11);
the counter layout and the Box–Muller mapping are those of cuRAND's `curand_normal`, as torch
uses it. numpy only, vectorised over every number of one draw.
"""

from __future__ import annotations

import numpy as np

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))  # round multipliers
PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))  # Weyl key increments
ROUNDS = 10

# cuRAND's constants, rounded to float32 as CUDA holds them
_TWO_POW32_INV = float(np.float32(2.3283064e-10))
_TWO_POW32_INV_2PI = float(np.float32(2.3283064e-10 * 6.2831855))


def _mulhilo(a: np.ndarray, multiplier: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    product = a.astype(np.uint64) * multiplier
    return (product >> np.uint64(32)).astype(np.uint32), product.astype(np.uint32)


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = ROUNDS) -> np.ndarray:
    """counter: (4, n) uint32, key: (2, n) uint32 -> (4, n) uint32 random words."""
    c = [counter[i].copy() for i in range(4)]
    k0, k1 = key[0].copy(), key[1].copy()
    with np.errstate(over="ignore"):  # the key schedule wraps around 2**32 by design
        for r in range(rounds):
            if r:
                k0 += PHILOX_W[0]
                k1 += PHILOX_W[1]
            hi0, lo0 = _mulhilo(c[0], PHILOX_M[0])
            hi1, lo1 = _mulhilo(c[2], PHILOX_M[1])
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return np.stack(c)


def box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two uint32 words -> one standard normal number, as cuRAND maps them."""
    u = x * _TWO_POW32_INV + _TWO_POW32_INV / 2
    v = y * _TWO_POW32_INV_2PI + _TWO_POW32_INV_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """One image's generator: each `randn` call is one draw, numbered by `offset`."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if n >= 2**32:
            raise ValueError("One draw of NV noise holds at most 2**32 numbers.")
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset  # the draw's number...
        counter[2] = np.arange(n, dtype=np.uint32)  # ...and each number's place in it
        self.offset += 1
        seed = np.uint64(self.seed % 2**64)
        key = np.empty((2, n), dtype=np.uint32)
        key[0] = np.uint32(seed & np.uint64(0xFFFFFFFF))  # the 64-bit seed, low word first
        key[1] = np.uint32(seed >> np.uint64(32))
        words = philox4x32(counter, key)
        return box_muller(words[0], words[1]).reshape(shape)
