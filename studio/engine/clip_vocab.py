"""Turn CLIP's original BPE file into the Hugging Face ``vocab.json`` + ``merges.txt`` pair.

The shipped tokenizer files in ``resources/configs/clip-tokenizer/`` were made with this module.
The source is ``bpe_simple_vocab_16e6.txt.gz`` from OpenAI's CLIP (MIT licence), which the
``open-clip-torch`` wheel also carries as ``open_clip/bpe_simple_vocab_16e6.txt.gz``; the project
does not depend on open-clip-torch, it only needs that one file once. To regenerate::

    pip download open-clip-torch --no-deps -d /tmp/oc
    unzip -j /tmp/oc/open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python -m studio.engine.clip_vocab /tmp/oc/bpe_simple_vocab_16e6.txt.gz \
        resources/configs/clip-tokenizer

The ids follow CLIP's ``SimpleTokenizer`` (and so the HF files published with
``openai/clip-vit-large-patch14``): the 256 byte tokens in ``bytes_to_unicode`` order, the same
256 with ``</w>``, one token per merge (the file's first 49152 - 256 - 2 merge lines after its
 header line), then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407): 49408 ids.
Standard library only (no torch, no transformers).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2  # 48894, as in CLIP's SimpleTokenizer
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def read_merges(bpe_gz: Path) -> list[tuple[str, str]]:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    # the first line is a header, skipped as CLIP does (in this file it reads
    # '"bpe_simple_vocab_16e6.txt#version: 0.2', a leftover of how it was written)
    if "#version" not in lines[0]:
        raise ValueError(f"{bpe_gz}: expected a '#version' header line, got {lines[0][:40]!r}")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    if len(merges) != N_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{bpe_gz}: expected {N_MERGES} merge pairs after the header")
    return merges  # type: ignore[return-value]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    tokens = list(bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m) for m in merges]
    tokens += [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"expected {VOCAB_SIZE} distinct tokens, got {len(vocab)}")
    return vocab


def write_clip_vocab(bpe_gz: Path | str, out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` for the CLIP BPE file ``bpe_gz`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = read_merges(Path(bpe_gz))
    vocab = build_vocab(merges)
    vocab_path = out / "vocab.json"
    merges_path = out / "merges.txt"
    vocab_path.write_text(
        json.dumps(vocab, ensure_ascii=False, separators=(",", ":")),
        encoding="utf-8",
        newline="\n",
    )
    merges_path.write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        encoding="utf-8",
        newline="\n",
    )
    return vocab_path, merges_path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m studio.engine.clip_vocab BPE_GZ OUT_DIR", file=sys.stderr)
        return 2
    for path in write_clip_vocab(args[0], args[1]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
