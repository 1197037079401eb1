"""A CLIP BPE tokenizer over the demo world's vocabulary (vocab.json + merges.txt).

Every word of the caption grammar becomes one token; any other text still tokenizes, into
byte-level pieces, so unknown words never fail.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from studio.demo.world import vocabulary
from studio.engine.clip_vocab import BOS, EOS, bytes_to_unicode

MAX_LENGTH = 77


def _train_merges(words: list[str]) -> list[tuple[str, str]]:
    # Plain BPE until every word is a single symbol; ties broken by the pair itself.
    segs = [[*w[:-1], w[-1] + "</w>"] for w in words]
    merges: list[tuple[str, str]] = []
    while any(len(s) > 1 for s in segs):
        counts: Counter[tuple[str, str]] = Counter()
        for s in segs:
            counts.update(zip(s, s[1:], strict=False))
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        joined = pair[0] + pair[1]
        for k, s in enumerate(segs):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == pair:
                    out.append(joined)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[k] = out
    return merges


def build_tokenizer_files(folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = list(bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base]
    merges = _train_merges(vocabulary())
    for a, b in merges:
        tokens.append(a + b)
    tokens += [BOS, EOS]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return folder


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
