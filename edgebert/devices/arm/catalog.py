"""The emulated CPU catalog: one :class:`CpuModel` per ARM device edgebert can emulate.

Why a module of its own: the device registry, the installer (which captures each model's
``/proc/cpuinfo``) and the environment check all need the list, and none of them should import
the others to get it. Standard library only.

Adding a CPU model is one :class:`CpuModel` entry in ``CPU_MODELS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """How an estimate in ms is made for this core: which llvm-mca model stands for it, at what clock.

    ``why`` says why that scheduling model (LLVM 19 has no A76/A72/A710 model of their own; see
    docs/emulated-arm.md "Estimated latency"); ``error_band_pct`` is the estimator's error band for this kind of core
    (the x86 check measures the out-of-order case; in-order and borrowed models are declared wider).
    """

    mca_cpu: str              # llvm-mca -mcpu
    reference_device: str     # the named device whose clock the estimate is at
    clock_ghz: float
    dram_gbps: float          # practical single-core DRAM bandwidth: the memory floor of an inference
    error_band_pct: float
    why: str


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
    timing: Timing | None = None  # the cycle model's stand-in and reference clock (estimated ms)

    @property
    def dotprod(self) -> bool:
        return "dotprod" in self.features


# The x86 check (benchmarks/bench_latency_estimate.py, docs/emulated-arm.md) measured the cycle model on an out-of-order
# core with its own model at -42% to +17% (median |error| 15%, 8 cases, quiet machine; lowest on short inputs,
# where framework code llvm-mca costs as L1-resident steady-state loops weighs most); the bands below contain
# that, and are wider where nothing here could measure the model.
OOO_BAND = 50.0        # an out-of-order core with its own (or its derivative's) model
IN_ORDER_BAND = 60.0   # llvm-mca's in-order A53/A55 models are the weakest (LLVM issue 213238, docs/emulated-arm.md)
BORROWED_BAND = 60.0   # an out-of-order core costed by an older or newer core's model

CPU_MODELS: tuple[CpuModel, ...] = (
    CpuModel("cortex-a53", "cortex-a53", "Armv8.0-A", ("neon",),
             "low-end phones and the Raspberry Pi 3 (in-order, no dot product)", 4,
             timing=Timing("cortex-a53", "Raspberry Pi 3", 1.2, 2.0, IN_ORDER_BAND,
                           "LLVM's own in-order Cortex-A53 model")),
    CpuModel("cortex-a55", "cortex-a55", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "efficiency cores of most phones since 2018; low-end phones (in-order)", 4,
             timing=Timing("cortex-a55", "a phone's A55 efficiency cluster", 1.8, 4.0, IN_ORDER_BAND,
                           "LLVM's own in-order Cortex-A55 model (under-costs 128-bit loads)")),
    CpuModel("cortex-a72", "cortex-a72", "Armv8.0-A", ("neon",),
             "the Raspberry Pi 4 and 2016-era phone big cores (no dot product)", 4,
             timing=Timing("cortex-a57", "Raspberry Pi 4", 1.8, 5.5, BORROWED_BAND,
                           "LLVM has no A72 model (-mcpu=cortex-a72 uses the Cortex-A57 one); the A57 model "
                           "costs vector FMLA at latency 10 (A72: 7)")),
    CpuModel("cortex-a76", "cortex-a76", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "Pixel-class phone big cores (2019-2021) and the Raspberry Pi 5", 4,
             timing=Timing("neoverse-n1", "Raspberry Pi 5", 2.4, 9.0, OOO_BAND,
                           "LLVM 19 has no A76 model (-mcpu=cortex-a76 uses the A57 one, ~1.7x slow on "
                           "SDOT loops); Neoverse-N1 is an A76 derivative with the same core pipeline")),
    CpuModel("cortex-a710", "cortex-a710", "Armv9.0-A", ("neon", "fp16", "dotprod", "i8mm", "bf16", "sve2"),
             "2022 flagship phone big cores (int8 matrix multiply, SVE2)", 4,
             timing=Timing("neoverse-n2", "a phone's A710 cluster (Snapdragon 8 Gen 1)", 2.5, 10.0, BORROWED_BAND,
                           "Neoverse-N2 is the A710's server sibling (LLVM's A710 CPU uses it); LLVM 19's N2 "
                           "model keeps a false dependency on post-indexed loads that can double a kernel")),
    CpuModel("neoverse-n1", "neoverse-n1", "Armv8.2-A", ("neon", "fp16", "dotprod"),
             "AWS Graviton2 and Ampere Altra servers", 64,
             timing=Timing("neoverse-n1", "AWS Graviton2", 2.5, 20.0, OOO_BAND, "LLVM's own Neoverse-N1 model")),
)
