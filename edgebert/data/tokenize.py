"""Tokenization to the fixed-shape int64 arrays every runtime is fed."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def encode(tokenizer, texts: Sequence[str], seq_len: int, pad_to_max: bool = True) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64), truncated to ``seq_len``.

    With ``pad_to_max`` every row is padded to ``seq_len`` (fixed-shape runtimes need that);
    otherwise to the longest text of the batch.
    """
    enc = tokenizer(
        list(texts),
        padding="max_length" if pad_to_max else "longest",
        truncation=True,
        max_length=seq_len,
        return_tensors="np",
    )
    return {
        "input_ids": enc["input_ids"].astype(np.int64),
        "attention_mask": enc["attention_mask"].astype(np.int64),
    }


def batches(tokenizer, texts: Sequence[str], seq_len: int, batch_size: int,
            pad_to_max: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Encode ``texts`` lazily, one batch at a time (memory stays flat with dataset size)."""
    for start in range(0, len(texts), batch_size):
        yield encode(tokenizer, texts[start:start + batch_size], seq_len, pad_to_max)
