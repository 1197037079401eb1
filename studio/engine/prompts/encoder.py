"""Prompt text -> embeddings, as A1111 makes them: chunked, weighted, with clip skip.

Each 77-token chunk is encoded on its own and the chunks are concatenated (77·k tokens).
Weights multiply the token embeddings and the chunk's mean is then restored (A1111's
"Original" emphasis). For a plain prompt of at most 75 tokens every step is an exact no-op, so
the embeddings are bit-identical to diffusers' own `encode_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from studio.engine.addons.embeddings import Embedding, EmbeddingVocab, embedding_vocab
from studio.engine.prompts.chunks import Chunk, tokenize_prompt


@dataclass
class Encoded:
    embeds: torch.Tensor  # (1, 77·chunks, dim)
    pooled: torch.Tensor | None  # (1, dim): SDXL's pooled text embedding, from the first chunk
    token_count: int


class PromptEncoder:
    """Encodes prompts with a pipeline's text encoder(s): one for SD 1.x/2.x, two for SDXL."""

    def __init__(
        self, pipe: Any, family: str, clip_skip: int = 1, embeddings: Sequence[Embedding] = ()
    ):
        pairs = [
            (getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)),
            (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None)),
        ]
        self.encoders = [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]
        if not self.encoders:
            raise ValueError("This model has no text encoder, so it cannot read a prompt.")
        self.sdxl = family == "sdxl" or getattr(pipe, "text_encoder_2", None) is not None
        # A1111 applies clip skip to SD 1.x only: SD 2.x ignores it and SDXL unless asked
        self.clip_skip = clip_skip if family in ("sd1", "small") else 1
        # each encoder reads the embeddings' vectors of its own width (SDXL: clip_l, clip_g)
        self.vocabs: list[EmbeddingVocab | None] = [
            embedding_vocab(embeddings, tok, _token_width(enc)) if embeddings else None
            for tok, enc in self.encoders
        ]
        self._cache: dict[str, Encoded] = {}

    def encode(self, text: str) -> Encoded:
        if text not in self._cache:
            self._cache[text] = self._encode(text)
        return self._cache[text]

    def zeros_like_empty(self) -> Encoded:
        """SDXL's empty negative prompt: zero embeddings, as A1111 and SDXL's training use."""
        empty = self.encode("")
        pooled = None if empty.pooled is None else torch.zeros_like(empty.pooled)
        return Encoded(torch.zeros_like(empty.embeds), pooled, 0)

    def _encode(self, text: str) -> Encoded:
        per_encoder: list[torch.Tensor] = []
        pooled = None
        token_count = 0
        for (tokenizer, text_encoder), vocab in zip(self.encoders, self.vocabs, strict=True):
            tokenized = tokenize_prompt(text, tokenizer, embeddings=vocab)
            token_count = max(token_count, tokenized.token_count)
            chunks = []
            for i, chunk in enumerate(tokenized.chunks):
                z, chunk_pooled = self._encode_chunk(chunk, text_encoder)
                chunks.append(_emphasise(z, chunk.multipliers))
                if i == 0 and chunk_pooled is not None:
                    pooled = chunk_pooled  # taken before emphasis, from the first chunk
            per_encoder.append(torch.cat(chunks, dim=1))
        if len({t.shape[1] for t in per_encoder}) > 1:  # tokenizers that disagree: pad the short
            longest = max(t.shape[1] for t in per_encoder)
            per_encoder = [_pad_repeating_last(t, longest) for t in per_encoder]
        return Encoded(torch.cat(per_encoder, dim=-1), pooled if self.sdxl else None, token_count)

    def _encode_chunk(
        self, chunk: Chunk, text_encoder: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not chunk.fixes:
            return self._run_encoder(chunk, text_encoder)

        # textual inversion: the embeddings' vectors replace their placeholders' token vectors
        def put_vectors(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            for offset, vectors in chunk.fixes:
                output[:, offset : offset + vectors.shape[0]] = vectors.to(output)
            return output

        hook = text_encoder.get_input_embeddings().register_forward_hook(put_vectors)
        try:
            return self._run_encoder(chunk, text_encoder)
        finally:
            hook.remove()

    def _run_encoder(
        self, chunk: Chunk, text_encoder: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids = torch.tensor([chunk.tokens], dtype=torch.long, device=text_encoder.device)
        if self.sdxl:
            # SDXL reads both encoders' penultimate layer without the final LayerNorm
            out = text_encoder(ids, output_hidden_states=True)
            pooled = out.text_embeds if hasattr(out, "text_embeds") else None
            return out.hidden_states[-2], pooled
        if self.clip_skip > 1:
            # A1111's clip skip N reads layer -N and applies the final LayerNorm (diffusers' N-1)
            out = text_encoder(ids, output_hidden_states=True)
            hidden = out.hidden_states[-self.clip_skip]
            # transformers 5 dropped the `text_model` level that diffusers still reaches through
            text_model = getattr(text_encoder, "text_model", text_encoder)
            return text_model.final_layer_norm(hidden), None
        return text_encoder(ids)[0], None


def _token_width(text_encoder: Any) -> int:
    return int(text_encoder.get_input_embeddings().weight.shape[-1])


def _emphasise(z: torch.Tensor, multipliers: list[float]) -> torch.Tensor:
    """Scale each token's embedding by its weight, then restore the chunk's original mean."""
    if all(m == 1.0 for m in multipliers):
        return z  # what A1111's arithmetic gives too, without 0/0 on a zero-mean chunk
    weights = torch.tensor(multipliers, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    original_mean = z.mean()
    weighted = z * weights.expand(z.shape)
    ratio = original_mean / weighted.mean()
    if not torch.isfinite(ratio):  # a chunk with no mean to restore: keep the scaled tokens
        return weighted
    return weighted * ratio


def _pad_repeating_last(t: torch.Tensor, length: int) -> torch.Tensor:
    # A1111's stack_conds: a shorter conditioning repeats its last token vector
    if t.shape[1] == length:
        return t
    return torch.cat([t, t[:, -1:].expand(-1, length - t.shape[1], -1)], dim=1)


def pad_to_same_length(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    longest = max(t.shape[1] for t in tensors)
    return [_pad_repeating_last(t, longest) for t in tensors]
