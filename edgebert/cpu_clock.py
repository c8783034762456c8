"""Wall and CPU seconds of a span of work, for the build's phase table.

CPU is what the machine spent for this process tree: user + system time of this process (every
thread: torch's intra-op pool, ONNX Runtime's, the check's job threads), of its terminated, waited-for
descendants (``RUSAGE_CHILDREN``: measurement workers, QEMU, converters, and their own reaped children),
and of its live children so far (``/proc``: a pooled worker lives through many jobs, and counted only
when reaped its whole life would land in the span that happened to end it). ``time.process_time()``
alone would miss the workers and QEMU, where an emulated check spends nearly all of its CPU;
``RUSAGE_THREAD`` would miss torch's threads.

The counters are process-wide: a span's CPU is everything the process tree spent during it. The build's
own steps run one at a time, but the emulated jobs run in a background pool while the next model is
exported and quantized, so a span that ran beside them also holds their CPU; the build records that per
span (``beside_emulation``) and the report says so rather than splitting what it cannot measure apart.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator


def cpu_seconds() -> float:
    """User + system seconds of this process (all threads), of its reaped descendants and of its live
    children (with what they reaped), so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + live_children_seconds()


def live_children_seconds() -> float:
    """CPU seconds of this process's live children and of the children they reaped (``/proc``; 0 where
    there is no ``/proc``). A child that ends between the two reads is missed or counted twice for that
    one read: at most one child's CPU, once."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in live_children():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile: RUSAGE_CHILDREN has it once it is reaped
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def live_children() -> list[int]:
    """Process ids of this process's live (or not yet reaped) children."""
    pids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{os.getpid()}/task").iterdir())
    except OSError:
        return pids
    for task in tasks:  # a child belongs to the thread that started it
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return pids


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
