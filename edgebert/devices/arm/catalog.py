"""The emulated CPU catalog: one :class:`CpuModel` per ARM device edgebert can emulate.

Why a module of its own: the device registry, the installer (which captures each model's
``/proc/cpuinfo``) and the environment check all need the list, and none of them should import
the others to get it. Standard library only.

Adding a CPU model is one :class:`CpuModel` entry in ``CPU_MODELS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuModel:
    """One emulated CPU: what QEMU calls it, what it stands for, what its int8 kernels can use."""

    name: str                 # device name (``--device``)
    qemu_cpu: str             # ``qemu-aarch64 -cpu`` model
    isa: str                  # architecture level
    features: tuple[str, ...]  # ISA features that change int8/fp32 kernel choice
    stands_for: str           # the real-world device class
    cores: int                # cores of the typical device (for reference; see ``threads``)
    counting: bool = True     # the counting QEMU (built by `devices setup`) emulates it
    threads: int = 1          # default runtime threads: 1, the only setting with exact instruction counts

    @property
    def dotprod(self) -> bool:
        return "dotprod" in self.features


CPU_MODELS: tuple[CpuModel, ...] = (
    CpuModel("cortex-a53", "cortex-a53", "Armv8.0-A", ("neon",),
             "low-end phones and the Raspberry Pi 3 (in-order, no dot product)", 4),
    CpuModel("cortex-a55", "cortex-a55", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "efficiency cores of most phones since 2018; low-end phones (in-order)", 4),
    CpuModel("cortex-a72", "cortex-a72", "Armv8.0-A", ("neon",),
             "the Raspberry Pi 4 and 2016-era phone big cores (no dot product)", 4),
    CpuModel("cortex-a76", "cortex-a76", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "Pixel-class phone big cores (2019-2021) and the Raspberry Pi 5", 4),
    CpuModel("cortex-a710", "cortex-a710", "Armv9.0-A", ("neon", "fp16", "dotprod", "i8mm", "bf16", "sve2"),
             "2022 flagship phone big cores (int8 matrix multiply, SVE2)", 4),
    CpuModel("neoverse-n1", "neoverse-n1", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "AWS Graviton2 and Ampere Altra servers", 64),
)
