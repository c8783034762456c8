"""Held-out accuracy of a PyTorch classifier: the reference every exported artifact is compared with."""

from __future__ import annotations

import torch

from ..cores import rebalance


def evaluate(model, tokenizer, data, batch_size: int = 64, max_length: int = 128) -> float:
    """Plain PyTorch accuracy (the reference the exported artifacts are compared against)."""
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            rebalance()  # torch's threads follow the background emulated jobs (cores.py)
            enc = tokenizer(list(data.texts[start:start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1)
            correct += int((pred == torch.tensor(data.labels[start:start + batch_size])).sum())
    return correct / len(data)
