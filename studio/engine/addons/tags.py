"""A1111's extra-network tags in a prompt: `<lora:name>`, `<lora:name:weight>`,
`<lora:name:te_weight:unet_weight>` (also `<lyco:...>`). Torch-free.

The tags stay in the saved prompt (A1111 does the same); they are cut out of the text the
encoder reads (`strip_lora_tags`), and each names a LoRA with its weights for the whole job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# A1111's extra_networks.re_extra_net, for the LoRA kinds only
_TAG = re.compile(r"<(lora|lyco):([^>]+)>", re.IGNORECASE)
MAX_LORA_WEIGHT = 10.0


@dataclass(frozen=True)
class LoraTag:
    name: str
    te_weight: float = 1.0  # text encoder(s)
    unet_weight: float | None = None  # None: as te_weight

    def __post_init__(self) -> None:
        if self.unet_weight is None:
            object.__setattr__(self, "unet_weight", self.te_weight)

    def text(self) -> str:
        def num(w: float) -> str:
            return f"{w:g}"

        if self.te_weight == self.unet_weight:
            return f"<lora:{self.name}:{num(self.te_weight)}>"
        return f"<lora:{self.name}:{num(self.te_weight)}:{num(self.unet_weight)}>"


def _weight(text: str, tag: str) -> float:
    try:
        value = float(text.split("=", 1)[-1])  # A1111 also accepts te=0.5, unet=0.5
    except ValueError:
        raise ValueError(
            f"The weight in {tag} is not a number; write e.g. <lora:name:0.8>."
        ) from None
    if not math.isfinite(value) or abs(value) > MAX_LORA_WEIGHT:
        raise ValueError(
            f"The weight in {tag} must be between -{MAX_LORA_WEIGHT:g} and {MAX_LORA_WEIGHT:g}."
        )
    return value


def lora_tags(*texts: str) -> list[LoraTag]:
    """The LoRAs the texts name, in order; a LoRA named twice keeps its last weights."""
    found: dict[str, LoraTag] = {}
    for text in texts:
        for match in _TAG.finditer(text):
            tag = match.group(0)
            args = [a.strip() for a in match.group(2).split(":")]
            name = args[0]
            if not name:
                raise ValueError(f"{tag} names no LoRA; write <lora:name:weight>.")
            te = _weight(args[1], tag) if len(args) > 1 and args[1] else 1.0
            unet = _weight(args[2], tag) if len(args) > 2 and args[2] else te
            found.pop(name, None)
            found[name] = LoraTag(name, te, unet)
    return list(found.values())


def strip_lora_tags(text: str) -> str:
    """The text the encoder reads: every LoRA tag removed, as A1111 does."""
    return _TAG.sub("", text)


def set_lora_tag(text: str, tag: LoraTag | None, name: str) -> str:
    """`text` with the LoRA `name`'s tags replaced by `tag` (None: removed); appended if absent."""
    out: list[str] = []
    placed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal placed
        if match.group(2).split(":")[0].strip() != name:
            return match.group(0)
        if tag is None or placed:
            return ""
        placed = True
        return tag.text()

    result = _TAG.sub(replace, text)
    if tag is not None and not placed:
        out = [result.rstrip(), tag.text()]
        return " ".join(s for s in out if s)
    return re.sub(r"[ \t]{2,}", " ", result).strip() if tag is None else result
