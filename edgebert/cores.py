"""The build's own threads while emulated jobs run beside it: the cores they leave, no more.

Why: torch's intra-op pool spin-waits at every operator's barrier. When its threads share the cores
with busy QEMU processes (the second model is trained, exported and quantized while the first
model's emulated checks run), a descheduled thread keeps its siblings spinning: on 2 cores beside two
busy QEMU processes, 40 distillation steps of the grouped SqueezeBERT took 24.8 s wall and 30.7 CPU
seconds with torch's 2 threads, 24.2 s and 18.1 CPU seconds with one (alone: 8.2 s / 16.3 CPU-s with 2,
15.4 s with 1). The spun seconds are taken from the emulated jobs. So the build's steps run torch on
``usable cores - emulated jobs running`` threads (at least 1, at most its usual count), looked at again
during long training loops (``rebalance``: when the background pool drains, the cores come back; a
cap fixed at the start kept the grouped SqueezeBERT's distillation on one thread after the pool had
drained), and get the usual count back afterwards; ONNX Runtime sessions a step makes for itself (static calibration) ask
``budget()`` for theirs. Measured latency never runs here (it runs alone, after the
emulated jobs, in fresh worker processes with their stated thread count).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset), else the count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def threads_beside(emulated_jobs: int, cores: int | None = None) -> int:
    """Torch threads for work that shares ``cores`` with ``emulated_jobs`` busy emulator processes."""
    return max(1, (usable_cores() if cores is None else cores) - max(0, int(emulated_jobs)))


#: REBALANCE_EVERY: seconds between two looks at the background jobs (``rebalance``, called per training step).
REBALANCE_EVERY = 2.0


@dataclass
class Share:
    """One ``beside_emulation`` block: torch's usual thread count, the count now, every count it used."""

    running: Callable[[], int]  # emulated jobs running now
    usual: int                  # torch's threads before the block: never more than that
    threads: int                # torch's threads now
    used: set[int] = field(default_factory=set)
    looked: float = 0.0

    def wanted(self) -> int:
        return min(self.usual, threads_beside(self.running()))

    @property
    def capped(self) -> bool:
        return any(n < self.usual for n in self.used)

    def describe(self) -> list[int] | None:
        """The counts used, ascending, for the build's records; None when never capped."""
        return sorted(self.used) if self.capped else None


_SHARES: list[Share] = []  # the innermost block in force (a stack: blocks may nest)


def budget() -> int | None:
    """The thread count work in this process should use now; None: no cap (the runtime's default)."""
    return _SHARES[-1].threads if _SHARES and _SHARES[-1].threads < _SHARES[-1].usual else None


def rebalance() -> None:
    """In a ``beside_emulation`` block, at most every ``REBALANCE_EVERY`` s: torch's threads follow the
    emulated jobs running now (a long training gets the cores back when the background pool drains).
    Call it from the thread that runs torch (OpenMP's thread count is that thread's own setting)."""
    if not _SHARES:
        return
    share = _SHARES[-1]
    now = time.monotonic()
    if now - share.looked < REBALANCE_EVERY:
        return
    share.looked = now
    wanted = share.wanted()
    if wanted != share.threads:
        import torch

        torch.set_num_threads(wanted)
        share.threads = wanted
        share.used.add(wanted)


@contextlib.contextmanager
def beside_emulation(running: Callable[[], int]) -> Iterator[Share]:
    """Within the block torch uses ``threads_beside(running())`` threads (never more than it had), looked
    at on entry and by ``rebalance``; ``budget()`` says so to sessions made meanwhile. Torch's own count
    comes back afterwards. Yields the block's :class:`Share` (``describe()`` once it ended)."""
    if not running():  # nothing beside this block: jobs are submitted between steps, or by the export step once
        #              it wrote an fp32 file (then the rest of it, one converter on one core, keeps torch's count)
        yield Share(running, 0, 0)
        return
    import torch

    usual = torch.get_num_threads()
    share = Share(running, usual, usual, looked=time.monotonic())
    share.threads = share.wanted()
    share.used.add(share.threads)
    if share.threads != usual:
        torch.set_num_threads(share.threads)
    _SHARES.append(share)
    try:
        yield share
    finally:
        _SHARES.pop()
        if torch.get_num_threads() != usual:
            torch.set_num_threads(usual)
