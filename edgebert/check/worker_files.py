"""The files a check exchanges with the measurement worker (protocol in ``devices/worker.py``):
the inputs it writes and the logits it reads back, checked against the model's label count.

Shared by the native jobs (``runner.py``) and the emulated ones (``emulated.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import Manifest


def label2id(manifest: Manifest) -> dict[str, int]:
    """The model's label name -> id, from label2id or else from id2label."""
    model = manifest.model
    if model.get("label2id"):
        return {str(k): int(v) for k, v in model["label2id"].items()}
    return {str(v): int(k) for k, v in model.get("id2label", {}).items()}


def write_inputs(path: Path, ids: np.ndarray, mask: np.ndarray, lat_ids: np.ndarray, lat_mask: np.ndarray) -> Path:
    """The worker's inputs.npz (protocol in ``devices/worker.py``)."""
    np.savez(path, input_ids=ids, attention_mask=mask, latency_input_ids=lat_ids, latency_attention_mask=lat_mask)
    return path


def read_logits(path: str | Path, n: int, manifest: Manifest) -> np.ndarray | str:
    """The worker's logits ``[n, num_labels]``, or one line saying what is wrong with them."""
    num_labels = int(manifest.model.get("num_labels") or len(label2id(manifest)))
    with np.load(path) as z:
        logits = np.asarray(z["logits"], dtype=np.float32)
    if logits.shape != (n, num_labels) and not (n == 0 and logits.size == 0):
        return f"logits have shape {list(logits.shape)}; expected [{n}, {num_labels}] (n_samples, num_labels)"
    return logits
