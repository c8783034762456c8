"""The build's own threads while emulated jobs run beside it: the cores they leave, no more.

Why: torch's intra-op pool spin-waits at every operator's barrier. When its threads share the cores
with busy QEMU processes (the second model is trained, exported and quantized while the first
model's emulated checks run), a descheduled thread keeps its siblings spinning: on 2 cores beside two
busy QEMU processes, 40 distillation steps of the grouped SqueezeBERT took 24.8 s wall and 30.7 CPU
seconds with torch's 2 threads, 24.2 s and 18.1 CPU seconds with one (alone: 8.2 s / 16.3 CPU-s with 2,
15.4 s with 1). The spun seconds are taken from the emulated jobs. So a step that starts with
emulated jobs in the background runs torch on ``usable cores - emulated jobs`` threads (at least 1),
and gets its thread count back afterwards; ONNX Runtime sessions the step makes for itself (static
calibration) ask ``budget()`` for theirs. Measured latency never runs here (it runs alone, after the
emulated jobs, in fresh worker processes with their stated thread count).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset), else the count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def threads_beside(emulated_jobs: int, cores: int | None = None) -> int:
    """Torch threads for work that shares ``cores`` with ``emulated_jobs`` busy emulator processes."""
    return max(1, (usable_cores() if cores is None else cores) - max(0, int(emulated_jobs)))


_BUDGET: list[int] = []  # the innermost cap in force (a stack: blocks may nest)


def budget() -> int | None:
    """The thread count work in this process should use now; None: no cap (the runtime's default)."""
    return _BUDGET[-1] if _BUDGET else None


@contextlib.contextmanager
def beside_emulation(busy: bool, emulated_jobs: int) -> Iterator[int | None]:
    """Within the block, torch uses ``threads_beside(emulated_jobs)`` threads when ``busy`` and it had
    more (and ``budget()`` says so); yields the count set (None: left alone), restores torch's after."""
    if not busy:
        yield None
        return
    import torch

    before = torch.get_num_threads()
    cap = threads_beside(emulated_jobs)
    if cap >= before:
        yield None
        return
    torch.set_num_threads(cap)
    _BUDGET.append(cap)
    try:
        yield cap
    finally:
        _BUDGET.pop()
        torch.set_num_threads(before)
