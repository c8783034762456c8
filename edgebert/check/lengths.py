"""Fixed-shape artifacts checked at another ``--seq-len``: which length really runs, said out loud.

A TFLite artifact has one signature per fixed length (manifest ``fixed_shape.seq_lens``). Checked at
``--seq-len S``, its latency input runs on the smallest signature that holds S (padded), or the longest
one when none does: then texts longer than it are cut. Silently, the report would state S for a run at
another length and compare it with ONNX latencies at S; :func:`mismatches` finds those artifacts so
that ``check`` warns once, notes it in the report and records the length that ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..devices.litert import signature_length
from ..manifest import Manifest


@dataclass(frozen=True)
class Mismatch:
    """A fixed-shape artifact whose latency runs at ``ran`` tokens instead of the requested ``seq_len``."""

    artifact: str
    seq_len: int            # requested (--seq-len)
    ran: int                # the signature length the latency input runs at
    cut: int                # examples longer than the artifact's longest signature (their text is cut)


def fixed_lengths(record: dict) -> tuple[int, ...]:
    """The artifact's fixed sequence lengths (empty: any length)."""
    fixed = record.get("fixed_shape") or {}
    lengths = fixed.get("seq_lens") or ([fixed["seq_len"]] if fixed.get("seq_len") else [])
    return tuple(sorted(int(n) for n in lengths))


def mismatches(manifest: Manifest, seq_len: int, mask: np.ndarray) -> list[Mismatch]:
    """Every artifact whose latency would not run at ``seq_len``, with how many examples it cuts."""
    real = mask.sum(axis=1) if len(mask) else np.zeros(0, np.int64)
    found = []
    for name, rec in manifest.artifacts.items():
        lengths = fixed_lengths(rec)
        if not lengths:
            continue
        ran = signature_length(lengths, seq_len)
        if ran != seq_len:
            found.append(Mismatch(name, int(seq_len), ran, int(np.sum(real > lengths[-1]))))
    return found


def describe(found: list[Mismatch], n: int) -> str:
    """One line for the progress output and the report's dataset notes."""
    parts = []
    for ran in sorted({m.ran for m in found}):
        group = [m for m in found if m.ran == ran]
        how = "padded up" if ran > group[0].seq_len else f"cut; {group[0].cut} of {n} texts cut to {ran} tokens"
        parts.append(f"{', '.join(m.artifact for m in group)} at {ran} ({how})")
    return (f"--seq-len {found[0].seq_len} differs from the fixed length of {'; '.join(parts)}: their latency "
            f"is recorded at the length that ran and is not comparable with {found[0].seq_len}-token latencies")
