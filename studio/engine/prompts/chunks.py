"""A weighted prompt as CLIP token chunks, the way A1111 cuts them (`sd_hijack_clip.tokenize_line`).

CLIP reads 77 tokens at a time: a start token, 75 tokens of text and an end token. A longer
prompt is cut into 75-token chunks, each encoded on its own and then concatenated, so nothing
is ever truncated. When a chunk fills up and its last comma lies within `comma_backtrack`
tokens of the end, the words after that comma move to the next chunk, so a phrase is not cut
in two. `BREAK` ends a chunk early. Tokenizer-only: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.engine.prompts.attention import parse_attention

if TYPE_CHECKING:
    from studio.engine.addons.embeddings import EmbeddingVocab

CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20  # A1111's `comma_padding_backtrack` default


# A1111 puts id 0 where an embedding's vectors go; the encoder overwrites their embeddings
EMBEDDING_PLACEHOLDER = 0


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)  # 77 ids once closed
    multipliers: list[float] = field(default_factory=list)
    # (offset in `tokens`, vectors [n, width]) of each embedding; offsets count the start token
    fixes: list[tuple[int, Any]] = field(default_factory=list)


@dataclass
class TokenizedPrompt:
    chunks: list[Chunk]
    token_count: int  # what A1111's counter shows: 75 per full chunk plus the last chunk's

    @property
    def capacity(self) -> int:
        return CHUNK_LENGTH * len(self.chunks)


def comma_token(tokenizer: Any) -> int | None:
    return tokenizer.get_vocab().get(",</w>")


def tokenize_prompt(
    text: str,
    tokenizer: Any,
    comma_backtrack: int = COMMA_BACKTRACK,
    embeddings: EmbeddingVocab | None = None,
) -> TokenizedPrompt:
    """`embeddings`: textual inversions whose names in the text become their vectors."""
    spans = parse_attention(text)
    ids = tokenizer(
        [span.text for span in spans], truncation=False, add_special_tokens=False, verbose=False
    )["input_ids"]
    builder = _ChunkBuilder(tokenizer, comma_backtrack)
    for span, span_ids in zip(spans, ids, strict=True):
        if span.is_break:
            builder.close()
            continue
        position = 0
        while position < len(span_ids):
            found = embeddings.match(span_ids, position) if embeddings else None
            if found is not None:
                name_length, vectors = found
                builder.add_embedding(vectors, span.weight)
                position += name_length
                continue
            builder.add(span_ids[position], span.weight)
            position += 1
    return builder.finish()


class _ChunkBuilder:
    def __init__(self, tokenizer: Any, comma_backtrack: int):
        self.start = tokenizer.bos_token_id
        self.end = tokenizer.eos_token_id
        # OpenCLIP tokenizers (SD 2.x, SDXL's second encoder) pad with 0 after the end token
        pad = tokenizer.pad_token_id
        self.pad = self.end if pad is None else pad
        self.comma = comma_token(tokenizer)
        self.backtrack = comma_backtrack
        self.chunks: list[Chunk] = []
        self.chunk = Chunk()
        self.last_comma = -1
        self.token_count = 0

    def add(self, token: int, weight: float) -> None:
        chunk = self.chunk
        if token == self.comma:
            self.last_comma = len(chunk.tokens)
        elif (
            self.backtrack
            and len(chunk.tokens) == CHUNK_LENGTH
            and self.last_comma != -1
            and len(chunk.tokens) - self.last_comma <= self.backtrack
        ):
            # the words after the last comma move to the next chunk (embeddings among them too)
            cut = self.last_comma + 1
            moved_tokens, moved_weights = chunk.tokens[cut:], chunk.multipliers[cut:]
            moved_fixes = [(o - cut, v) for o, v in chunk.fixes if o >= cut]
            chunk.fixes = [(o, v) for o, v in chunk.fixes if o < cut]
            del chunk.tokens[cut:], chunk.multipliers[cut:]
            self.close()
            self.chunk.tokens, self.chunk.multipliers = moved_tokens, moved_weights
            self.chunk.fixes = moved_fixes
        if len(self.chunk.tokens) == CHUNK_LENGTH:
            self.close()
        self.chunk.tokens.append(token)
        self.chunk.multipliers.append(weight)

    def add_embedding(self, vectors: Any, weight: float) -> None:
        """One placeholder per vector; an embedding that does not fit starts the next chunk."""
        count = int(vectors.shape[0])
        if len(self.chunk.tokens) + count > CHUNK_LENGTH:
            self.close()
        self.chunk.fixes.append((len(self.chunk.tokens), vectors))
        self.chunk.tokens += [EMBEDDING_PLACEHOLDER] * count
        self.chunk.multipliers += [weight] * count

    def close(self, is_last: bool = False) -> None:
        chunk = self.chunk
        self.token_count += len(chunk.tokens) if is_last else CHUNK_LENGTH
        padding = CHUNK_LENGTH - len(chunk.tokens)
        chunk.tokens = [self.start, *chunk.tokens, self.end] + [self.pad] * padding
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0] + [1.0] * padding
        chunk.fixes = [(offset + 1, vectors) for offset, vectors in chunk.fixes]
        self.chunks.append(chunk)
        self.chunk = Chunk()
        self.last_comma = -1

    def finish(self) -> TokenizedPrompt:
        if self.chunk.tokens or not self.chunks:
            self.close(is_last=True)
        return TokenizedPrompt(self.chunks, self.token_count)


def prompt_token_count(text: str, tokenizer: Any) -> tuple[int, int]:
    """(tokens, room) as A1111's counter shows them, "80/150": the longest of the prompt's
    AND parts and edited versions, and the room its 75-token chunks give."""
    from studio.engine.addons.tags import strip_lora_tags
    from studio.engine.prompts.schedule import prompt_schedule, split_and

    text = strip_lora_tags(text)  # LoRA tags are not read by the text encoder
    # the texts a prompt can become; a fraction in [a:b:0.35] needs enough steps to switch
    texts = {t for part, _ in split_and(text) for _, t in prompt_schedule(part, 100)}
    count = max(tokenize_prompt(t, tokenizer).token_count for t in texts)
    return count, CHUNK_LENGTH * max(1, -(-count // CHUNK_LENGTH))


def token_counter_text(text: str, tokenizer: Any) -> str:
    count, room = prompt_token_count(text, tokenizer)
    return f"{count}/{room}"
