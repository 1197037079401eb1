"""What every reader of another tool's JSON shares: fields taken with their types checked, the
rest kept as unmapped, and the request built with the defaults that stood in named."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from studio.engine.metadata.comfyui_names import comfy_sampler, describe_unavailable
from studio.engine.metadata.recipe import _typed
from studio.engine.metadata.result import ReadResult
from studio.engine.request import GenerationRequest, ScheduleOptions

# request fields whose default must never pass for a value the image names
NAMED_FIELDS = ("model", "sampler", "width", "height")


def _number(value: Any, want: type) -> Any:
    """An int or float, also from a numeric string (several tools write numbers as text)."""
    if isinstance(value, str):
        try:
            value = want(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return _typed(value, want, "")


@dataclass
class Fields:
    source: str
    req: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    model_hash: str | None = None

    def keep(self, key: str, value: Any) -> None:
        """Seen, not used: listed as unmapped (unless empty)."""
        if value in (None, "", [], {}):
            return
        self.unmapped[key] = value if isinstance(value, str) else json.dumps(value)[:200]

    def take(self, name: str, key: str, value: Any, want: type) -> None:
        try:
            self.req[name] = (
                value if want is str and isinstance(value, str) else _number(value, want)
            )
        except ValueError:
            self.keep(key, value)

    def sampler(self, key: str, name: Any, scheduler: Any) -> None:
        """A ComfyUI-style sampler_name and scheduler (Fooocus, NovelAI without the k_)."""
        if not isinstance(name, str):
            self.keep(key, name)
            return
        resolved, why = comfy_sampler(name, scheduler if isinstance(scheduler, str) else None)
        if resolved is None:
            self.unmapped[key] = describe_unavailable(name)
            if why is None and isinstance(scheduler, str):
                self.unmapped["scheduler"] = scheduler  # goes with the sampler we cannot run
            self.warnings.append(f"Sampler {name!r} is not available here.")
        else:
            self.req["sampler"], self.schedule["karras"] = resolved
        if why is not None:
            self.unmapped["scheduler"] = f"{scheduler} ({why})"
            self.warnings.append(f"Scheduler {scheduler!r}: {why}; the sampler's own is used.")

    def result(self, named: tuple[str, ...] = NAMED_FIELDS) -> ReadResult:
        """The request; `named` are the fields this format always names."""
        substituted = [f for f in named if f not in self.req]
        if substituted:
            self.warnings.append(
                "Not usable from the image, our defaults shown: " + ", ".join(substituted) + "."
            )
        request = GenerationRequest(**self.req, schedule=ScheduleOptions(**self.schedule))
        return ReadResult(
            request=request,
            source=self.source,
            unmapped=self.unmapped,
            warnings=self.warnings,
            image_seed=request.seed,
            model_name=self.req.get("model"),
            model_hash=self.model_hash,
            substituted=substituted,
        )
