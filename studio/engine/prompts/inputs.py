"""What one request's prompts hand to a diffusers pipeline: embeddings, a UNet wrapper, a callback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from studio.engine.addons.embeddings import Embedding
from studio.engine.prompts.conditioning import ConditionedUNet, PromptConditioning
from studio.engine.prompts.encoder import PromptEncoder

StepCallback = Callable[[Any, int, Any, dict], dict]


class RequestPrompts:
    """Encode the request's prompt and negative prompt for `pipe` (call inside inference_mode)."""

    def __init__(
        self,
        pipe: Any,
        prompt: str,
        negative_prompt: str,
        steps: int,
        batch_size: int,
        family: str,
        clip_skip: int = 1,
        embeddings: Sequence[Embedding] = (),
    ):
        encoder = PromptEncoder(pipe, family, clip_skip, embeddings)
        # A1111 counts a second-order sampler's two model calls per step as two steps
        schedule_steps = steps * max(1, int(getattr(pipe.scheduler, "order", 1)))
        self.conditioning = PromptConditioning(
            encoder, prompt, negative_prompt, schedule_steps, zero_empty_negative=encoder.sdxl
        )
        self.unet = (
            None
            if self.conditioning.is_plain
            else ConditionedUNet(pipe, self.conditioning, batch_size)
        )

    @property
    def pipeline_inputs(self) -> dict[str, Any]:
        return self.conditioning.pipeline_inputs(0)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        if self.unet is None:
            yield
            return
        with self.unet:
            yield

    def tensor_inputs(self, pipe: Any, wanted: list[str]) -> list[str]:
        """The callback's tensor names: `wanted`, plus the embeddings the schedule replaces."""
        if self.unet is None:
            return wanted
        extra = [
            n for n in ("prompt_embeds", "add_text_embeds") if n in pipe._callback_tensor_inputs
        ]
        return [*wanted, *extra]

    def callback(self, then: StepCallback) -> StepCallback:
        if self.unet is None:
            return then
        unet = self.unet

        def step_end(pipe: Any, index: int, timestep: Any, tensors: dict) -> dict:
            return then(pipe, index, timestep, unet.advance(pipe, index, tensors))

        return step_end
