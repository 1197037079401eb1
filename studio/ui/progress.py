"""A job's progress as the status bar shows it: step, total and the measured rate."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    value: int = 0
    maximum: int = 1
    text: str = "idle"
    job_id: int = 0


class StepRate:
    """Steps per second from the first step seen: the first step includes warm-up, not speed."""

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None  # (first step seen, its time)

    def start(self, job_id: int, steps: int) -> Progress:
        self._first = None
        return Progress(0, max(1, steps), f"job #{job_id}: starting", job_id)

    def step(self, job_id: int, step: int, total: int) -> Progress:
        now = time.perf_counter()
        if self._first is None:
            self._first = (step, now)
        first, t0 = self._first
        rate = (step - first) / (now - t0) if now > t0 and step > first else 0.0
        rate_text = f", {rate:.1f} it/s" if rate > 0 else ""
        return Progress(step, total, f"step {step}/{total}{rate_text}", job_id)
