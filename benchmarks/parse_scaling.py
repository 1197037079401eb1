"""How A1111 text parsing scales: each text shape timed at n and 4n characters (a script, not a test).

    python benchmarks/parse_scaling.py [--size 262144] [--repeats 3] [--no-reference]

Linear time gives a ratio near 4, quadratic near 16. Each shape is parsed with read_a1111_text
(what dropping or selecting an image runs). The reference rows time A1111's own regex
(re_param.findall, which this app used before) on colon-less text at a small n, to show the
quadratic case the parser replaced; it would take minutes at the full size.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.engine.metadata import read_a1111_text  # noqa: E402

A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SETTINGS = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "

# name -> the repeating unit; the text is the unit repeated to n characters
SHAPES = {
    "colon-less text": "a long caption without any colon ",
    "one word run": "a",
    "whitespace": " \t \tx",
    "many key: value pairs": "Key: value, ",
    "long quoted values": 'Key: "a, b: c \\" d", ',
    "unclosed quotes": 'k: "\\',
    "colons only": ":",
}


def text_of(unit: str, n: int) -> str:
    body = (unit * (n // len(unit) + 1))[:n]
    return f"a prompt\nNegative prompt: blur\n{SETTINGS}{body}"


def best_time(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row(name: str, n: int, t1: float, t4: float) -> str:
    ratio = t4 / t1 if t1 > 0 else float("inf")
    verdict = "linear" if ratio < 8 else "QUADRATIC"
    return f"{name:<24} {n:>9} {t1 * 1000:>10.1f} {t4 * 1000:>10.1f} {ratio:>7.1f}  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 * 1024, help="n, in characters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip A1111's regex")
    args = parser.parse_args()

    n = args.size
    print(f"{'shape':<24} {'n':>9} {'t(n) ms':>10} {'t(4n) ms':>10} {'ratio':>7}")
    for name, unit in SHAPES.items():
        small, large = text_of(unit, n), text_of(unit, 4 * n)
        t1 = best_time(lambda text=small: read_a1111_text(text), args.repeats)
        t4 = best_time(lambda text=large: read_a1111_text(text), args.repeats)
        print(row(name, n, t1, t4))
    if not args.no_reference:
        small_n = 2048
        unit = SHAPES["colon-less text"]
        small, large = text_of(unit, small_n), text_of(unit, 4 * small_n)
        t1 = best_time(lambda: A1111_PARAM.findall(small), 1)
        t4 = best_time(lambda: A1111_PARAM.findall(large), 1)
        print(row("reference: A1111 regex", small_n, t1, t4))


if __name__ == "__main__":
    main()
