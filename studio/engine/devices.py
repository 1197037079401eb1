"""check_device: a device name the user gave, checked before any model work.

torch names many device types and fails deep inside loading on one it has no support for
("Found no NVIDIA driver"); here each failure is one line that says what to use instead.
"""

from __future__ import annotations

import re

DEVICE_HELP = "cpu, cuda, cuda:N or mps"


def check_device(name: str | None) -> str | None:
    """`name` normalised ("CUDA" -> "cuda"), or None for "the best available"; raises ValueError
    when it is unknown or when this machine cannot use it."""
    if name is None or not name.strip():
        return None
    text = name.strip().lower()
    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d{1,3}))?", text)
    if m is None:
        raise ValueError(
            f"Unknown device {name!r}: use {DEVICE_HELP}, or leave the device out to use the "
            "best available."
        )
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        return text
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "No CUDA GPU can be used on this machine (no NVIDIA GPU or driver, or torch "
                "was built without CUDA); use cpu, or leave the device out."
            )
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ValueError(
                f"There is no GPU {text}: this machine has {count} (cuda:0 to cuda:{count - 1})."
            )
        return text
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ValueError(
            "Apple's MPS device is not available on this machine; use cpu, or leave the device out."
        )
    return text
