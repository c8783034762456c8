"""Wall and CPU seconds of a span of work, for the build's phase table.

CPU is what the machine spent for this process tree: user + system time of this process (every
thread: torch's intra-op pool, ONNX Runtime's, the check's job threads) plus that of its terminated,
waited-for descendants (``RUSAGE_CHILDREN``: measurement workers, QEMU, converters, and their own
reaped children). ``time.process_time()`` alone would miss the workers and QEMU, where an emulated
check spends nearly all of its CPU; ``RUSAGE_THREAD`` would miss torch's threads.

A child is counted when it is reaped, and the counters are process-wide: a span's CPU is everything
the process tree finished during it. The build's own steps reap what they start, but the emulated
jobs run in a background pool while the next model is exported and quantized, so a span that ran
beside them also holds their CPU; the build records that per span (``beside_emulation``) and the
report says so rather than splitting what it cannot measure apart.
"""

from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import dataclass
from typing import Iterator


def cpu_seconds() -> float:
    """User + system seconds of this process (all threads) and of its reaped descendants, so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Span:
    """Wall and CPU seconds of one measured span (filled when the span ends)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def measure() -> Iterator[Span]:
    """``with measure() as span: ...``: afterwards ``span.wall`` and ``span.cpu`` hold the span's seconds
    (also when the body raised)."""
    span = Span()
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    try:
        yield span
    finally:
        span.wall = time.perf_counter() - wall0
        span.cpu = cpu_seconds() - cpu0
