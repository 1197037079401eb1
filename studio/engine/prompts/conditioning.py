"""Each model call's conditioning for one request, and the UNet wrapper that applies it.

A plain prompt becomes `prompt_embeds` for the pipeline and nothing else changes. A prompt with
`AND`, a sub-prompt weight, editing or alternation, or a negative prompt of another length
than the prompt, needs more than diffusers' one `[uncond; cond]` batch; then, while the
pipeline runs, the UNet's forward is wrapped so that each call:
- takes the conditionings for this call from the schedule (the pipeline's own prompt
  embeddings are placeholders; the step callback moves `call` on);
- runs the UNet once per distinct length (uncond and cond of different lengths separately,
  as A1111 does by default instead of padding);
- returns `[uncond; uncond + Σ wᵢ·(condᵢ − uncond)]`, so that the pipeline's CFG gives A1111's
  Composable Diffusion: `uncond + Σ wᵢ·cfg·(condᵢ − uncond)`.
ControlNet residuals are computed by the pipeline from the placeholders, which the callback
keeps equal to this call's uncond and first sub-prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from studio.engine.prompts.encoder import Encoded, PromptEncoder, pad_to_same_length
from studio.engine.prompts.schedule import prompt_schedule, split_and, text_for_call


@dataclass
class CallConditioning:
    uncond: Encoded
    conds: list[tuple[Encoded, float]]  # per AND part, all padded to one length


class PromptConditioning:
    def __init__(
        self,
        encoder: PromptEncoder,
        prompt: str,
        negative_prompt: str,
        steps: int,
        zero_empty_negative: bool = False,
    ):
        self.encoder = encoder
        self.parts = [(prompt_schedule(text, steps), w) for text, w in split_and(prompt)]
        # AND is plain text in the negative prompt, as in A1111
        self.negative = prompt_schedule(negative_prompt, steps)
        self.zero_empty_negative = zero_empty_negative

    def _uncond(self, text: str) -> Encoded:
        if self.zero_empty_negative and text == "":
            return self.encoder.zeros_like_empty()
        return self.encoder.encode(text)

    def at(self, call: int) -> CallConditioning:
        """The conditioning of the pipeline's `call`-th UNet evaluation (0-based)."""
        conds = [(self.encoder.encode(text_for_call(s, call)), w) for s, w in self.parts]
        padded = pad_to_same_length([c.embeds for c, _ in conds])
        conds = [
            (Encoded(embeds, c.pooled, c.token_count), w)
            for embeds, (c, w) in zip(padded, conds, strict=True)
        ]
        return CallConditioning(self._uncond(text_for_call(self.negative, call)), conds)

    @property
    def is_plain(self) -> bool:
        """True when the pipeline's own `[uncond; cond]` batch is exactly right."""
        if len(self.parts) != 1 or self.parts[0][1] != 1.0:
            return False
        if len(self.parts[0][0]) != 1 or len(self.negative) != 1:
            return False
        first = self.at(0)
        return first.uncond.embeds.shape == first.conds[0][0].embeds.shape

    def pipeline_inputs(self, call: int = 0) -> dict[str, torch.Tensor]:
        """`prompt_embeds` and friends for the pipeline: exact when plain, else placeholders."""
        now = self.at(call)
        cond, uncond = pad_to_same_length([now.conds[0][0].embeds, now.uncond.embeds])
        inputs = {"prompt_embeds": cond, "negative_prompt_embeds": uncond}
        if now.uncond.pooled is not None:
            inputs["pooled_prompt_embeds"] = now.conds[0][0].pooled
            inputs["negative_pooled_prompt_embeds"] = now.uncond.pooled
        return inputs


class ConditionedUNet:
    """While entered, the UNet evaluates each conditioning of the current call (see module doc)."""

    def __init__(self, pipe: Any, conditioning: PromptConditioning, batch_size: int):
        self.pipe = pipe
        self.unet = pipe.unet
        self.conditioning = conditioning
        self.batch_size = batch_size
        self.call = 0
        self._forward = None

    def __enter__(self) -> ConditionedUNet:
        self._forward = self.unet.forward
        self.unet.forward = self.forward  # an instance attribute: nn.Module.__call__ finds it
        return self

    def __exit__(self, *exc: object) -> None:
        del self.unet.forward

    # ---- the step callback: the next call's conditioning, and the placeholders for ControlNet
    def advance(self, pipe: Any, index: int, tensors: dict[str, Any]) -> dict[str, Any]:
        self.call = index + 1
        inputs = self.conditioning.pipeline_inputs(self.call)
        cfg = pipe.do_classifier_free_guidance
        if "prompt_embeds" in tensors:
            tensors["prompt_embeds"] = self._batch(
                inputs["negative_prompt_embeds"], inputs["prompt_embeds"], cfg
            )
        if "add_text_embeds" in tensors and "pooled_prompt_embeds" in inputs:
            tensors["add_text_embeds"] = self._batch(
                inputs["negative_pooled_prompt_embeds"], inputs["pooled_prompt_embeds"], cfg
            )
        return tensors

    def _batch(self, uncond: torch.Tensor, cond: torch.Tensor, cfg: bool) -> torch.Tensor:
        rows = [uncond, cond] if cfg else [cond]
        return torch.cat([r.expand(self.batch_size, *r.shape[1:]) for r in rows])

    # ---- the wrapped forward
    def forward(self, sample: torch.Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        return_dict = kwargs.pop("return_dict", True)
        kwargs.pop("encoder_hidden_states", None)  # a placeholder: ours come from the schedule
        now = self.conditioning.at(self.call)
        n, b = sample.shape[0], self.batch_size
        cfg = n == 2 * b
        cond_rows = slice(b, 2 * b) if cfg else slice(0, b)
        uncond_rows = slice(0, b) if cfg else cond_rows  # without CFG: the same latents
        groups = [(uncond_rows, now.uncond)] + [(cond_rows, c) for c, _ in now.conds]
        outputs = self._run_grouped(groups, sample, timestep, args, kwargs, n)

        uncond = outputs[0]
        combined = uncond.clone()
        for out, (_, weight) in zip(outputs[1:], now.conds, strict=True):
            combined += weight * (out - uncond)
        result = torch.cat([uncond, combined]) if cfg else combined
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=result)
        return (result,)

    def _run_grouped(
        self,
        groups: list[tuple[slice, Encoded]],
        sample: torch.Tensor,
        timestep: Any,
        args: tuple,
        kwargs: dict[str, Any],
        n: int,
    ) -> list[torch.Tensor]:
        """One UNet call per distinct conditioning length; outputs in the order of `groups`."""
        by_length: dict[int, list[int]] = {}
        for i, (_, encoded) in enumerate(groups):
            by_length.setdefault(encoded.embeds.shape[1], []).append(i)
        outputs: list[torch.Tensor | None] = [None] * len(groups)
        b = self.batch_size
        for members in by_length.values():
            picked = [groups[i] for i in members]
            batch = _cat([_rows(sample, rows, n) for rows, _ in picked])
            step = _cat([_rows(timestep, rows, n) for rows, _ in picked])
            extra = _cat([_rows(kwargs, rows, n) for rows, _ in picked])
            embeds = torch.cat([e.embeds.expand(b, -1, -1) for _, e in picked])
            added = extra.get("added_cond_kwargs")
            if added and "text_embeds" in added and picked[0][1].pooled is not None:
                pooled = torch.cat([e.pooled.expand(b, -1) for _, e in picked])
                extra["added_cond_kwargs"] = {**added, "text_embeds": pooled}
            out = self._forward(
                batch, step, *args, encoder_hidden_states=embeds, return_dict=False, **extra
            )[0]
            for k, i in enumerate(members):
                outputs[i] = out[k * b : (k + 1) * b]
        return outputs  # type: ignore[return-value]


def _rows(value: Any, rows: slice, n: int) -> Any:
    """The rows of every per-sample tensor in `value` (tensors of other shapes pass through)."""
    if isinstance(value, torch.Tensor):
        return value[rows] if value.dim() > 0 and value.shape[0] == n else value
    if isinstance(value, (list, tuple)):
        return type(value)(_rows(v, rows, n) for v in value)
    if isinstance(value, dict):
        return {k: _rows(v, rows, n) for k, v in value.items()}
    return value


def _cat(values: list[Any]) -> Any:
    """The inverse of `_rows` for several groups: per-sample tensors joined along the batch."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        same = all(v is first for v in values)  # shared (e.g. a scalar timestep): keep one
        return first if same or first.dim() == 0 else torch.cat(values)
    if isinstance(first, (list, tuple)):
        return type(first)(_cat(list(parts)) for parts in zip(*values, strict=True))
    if isinstance(first, dict):
        return {k: _cat([v[k] for v in values]) for k in first}
    return first
