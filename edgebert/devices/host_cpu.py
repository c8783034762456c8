"""This machine's CPU as its kernels see it: the model name and the ISA flags that pick int8/fp32 kernels.

Why one module: two things depend on the host CPU and must read it the same way. The desktop
device's fingerprint (``Desktop.info``: a build reuses cached latency and accuracy only on the same
CPU, so a CI cache restored on another runner is measured again) and the ONNX int8 recipe's
``reduce_range`` choice (``quantize/host_isa.py``: VNNI or not). Linux ``/proc/cpuinfo`` is the
source; elsewhere (or when it cannot be read) the model falls back to ``platform.processor()`` and
no flags. Standard library only (the device registry imports it).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

#: Flags that change which kernels ONNX Runtime / XNNPACK / LiteRT run (others, e.g. ``ht`` or
#: ``pni``, do not; ``cpu MHz`` and ``bogomips`` vary run to run and are never read).
KERNEL_FLAGS = (
    # x86
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_vnni_int8", "amx_tile", "amx_int8", "amx_bf16",
    "amx_fp16",
    # aarch64
    "asimd", "asimdhp", "asimddp", "fphp", "i8mm", "bf16", "sve", "sve2", "svei8mm", "svebf16", "sme",
)
_MODEL_KEYS = ("model name", "Model name", "Hardware")  # x86; some ARM kernels; older ARM boards
_ARM_ID_KEYS = ("CPU implementer", "CPU part", "CPU variant", "CPU revision")


@dataclass(frozen=True)
class HostCpu:
    """``machine`` (``platform.machine()``), ``models`` (distinct per-processor model names, in order),
    ``flags`` (every ISA flag of the first processor)."""

    machine: str
    models: tuple[str, ...]
    flags: frozenset[str]

    @property
    def model(self) -> str:
        return " + ".join(self.models) or "unknown"

    @property
    def kernel_isa(self) -> tuple[str, ...]:
        """The flags in :data:`KERNEL_FLAGS` this CPU has, sorted."""
        return tuple(sorted(f for f in KERNEL_FLAGS if f in self.flags))

    def fingerprint(self) -> dict[str, Any]:
        """What a cached measurement depends on: machine, model, kernel-relevant flags."""
        return {"machine": self.machine, "model": self.model, "isa": list(self.kernel_isa)}


def _processors(text: str) -> list[dict[str, str]]:
    """``key: value`` blocks of a cpuinfo text (blank lines separate processors)."""
    blocks, current = [], {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip() and current:
                blocks.append(current)
                current = {}
            continue
        current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _model(block: dict[str, str]) -> str | None:
    for key in _MODEL_KEYS:
        if block.get(key):
            return block[key]
    ids = [f"{k.split()[-1]} {block[k]}" for k in _ARM_ID_KEYS if block.get(k)]  # aarch64: no model name
    return "ARM " + ", ".join(ids) if ids else None


def parse(text: str, machine: str | None = None) -> HostCpu:
    """A :class:`HostCpu` from a Linux ``/proc/cpuinfo`` text (x86 ``flags``, aarch64 ``Features``)."""
    blocks = _processors(text)
    models: list[str] = []
    for block in blocks:
        name = _model(block)
        if name and name not in models:
            models.append(name)
    first = next((b for b in blocks if "flags" in b or "Features" in b), {})
    flags = frozenset((first.get("flags") or first.get("Features") or "").split())
    return HostCpu(machine or platform.machine(), tuple(models), flags)


def read(path: Path = CPUINFO, machine: str | None = None) -> HostCpu:
    """The CPU described by ``path``; with no readable file, ``platform.processor()`` and no flags."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    cpu = parse(text, machine)
    if not cpu.models and platform.processor():
        cpu = HostCpu(cpu.machine, (platform.processor(),), cpu.flags)
    return cpu


@functools.lru_cache(maxsize=1)
def host() -> HostCpu:
    """This machine's CPU (read once per process)."""
    return read()
