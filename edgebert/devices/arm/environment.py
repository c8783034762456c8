"""What an emulated-ARM run needs at run time: the environment's paths and how to start a guest.

Why apart from the installer (``setup.py``): every ``check`` on an ARM device reads these paths,
builds the guest's environment and the counting QEMU's command line, and reads the counts the plugin
wrote, while only ``edgebert devices setup`` downloads and builds. Standard library only (plus
edgebert's cache location).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fsutil import cache_dir

PYTHON = "python3.11"
MARKER_SYSCALL = 0x4542  # "EB": not a Linux syscall; the worker marks inference boundaries with it
INSTRUCTION_CLASSES = ("dotprod", "i8mm", "sve", "fp_fma", "simd_other", "scalar")


@dataclass(frozen=True)
class ArmEnv:
    """Paths of the emulated-ARM environment (``root`` defaults to ``cache_dir()/arm``)."""

    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / PYTHON

    @property
    def qemu(self) -> Path:
        return self.root / "qemu" / "qemu-aarch64"

    def counting_root(self, which: str) -> Path:
        """``qemu72``: bookworm's QEMU 7.2 (fetched); ``qemu10``: QEMU 10 built from source (on demand)."""
        return self.root / ("qemu-plugin" if which == "qemu72" else "qemu-plugin10")

    def counting_qemu(self, cpu: str) -> str | None:
        """Which counting QEMU counts ``cpu``: 7.2 where it has the model (counts do not depend on
        whether the QEMU 10 build was made), else the QEMU 10 build; None if neither is set up."""
        for which, step, cpus_key in (("qemu72", "plugin-qemu", "plugin_qemu72_cpus"),
                                      ("qemu10", "plugin-qemu10", "plugin_qemu_cpus")):
            stamp = self.stamp(step)
            if stamp and cpu in stamp.get("info", {}).get(cpus_key, []) and \
                    (self.counting_root(which) / "libinsn_count.so").exists():
                return which
        return None

    def counting_version(self, cpu: str) -> str | None:
        which = self.counting_qemu(cpu)
        key = {"qemu72": "plugin_qemu72_version", "qemu10": "plugin_qemu_version"}.get(which or "")
        return self.info().get(key) if key else None

    @property
    def llvm(self) -> Path:
        """llvm-mca and llvm-mc (Debian's llvm-19, unpacked) with their libraries: the cycle model."""
        return self.root / "llvm"

    def llvm_missing(self) -> str | None:
        """None when the cycle model's tools are set up; else why not."""
        if self.stamp("llvm") is None or not (self.llvm / "bin" / "llvm-mca").exists():
            return "the cycle model (Debian's llvm-mca) is not set up; run `edgebert devices setup`"
        return self.damaged("llvm")

    def prefix(self, cpu: str) -> Path:
        return self.root / "prefix" / cpu

    @property
    def stamps(self) -> Path:
        return self.root / "stamps"

    def stamp(self, step: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.stamps / f"{step}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def info(self) -> dict[str, Any]:
        """What setup recorded (versions, QEMU builds), for reports; {} if not set up."""
        out = {}
        for step in ("wheels", "qemu", "plugin-qemu", "plugin-qemu10", "llvm"):
            stamp = self.stamp(step) or {}
            out.update(stamp.get("info", {}))
        return out

    def missing(self) -> str | None:
        """None when the accuracy environment (sysroot, wheels, QEMU 10) is ready; else why not."""
        for step, path in (("sysroot", self.python), ("wheels", self.site), ("qemu", self.qemu)):
            if self.stamp(step) is None or not path.exists():
                return f"the emulated-ARM environment is not set up ({step} missing in {self.root}); " \
                       f"run `edgebert devices setup`"
        return self.damaged("sysroot", "wheels", "qemu")

    def damaged(self, *steps: str) -> str | None:
        """Why one of ``steps`` no longer has the content its stamp recorded (checked once per process)."""
        for step in steps:
            stamp = self.stamp(step)
            problem = _content_problem(str(self.root), step, json.dumps((stamp or {}).get("content"), sort_keys=True))
            if problem:
                return (f"the emulated-ARM environment is damaged ({step}: {problem}); run `edgebert devices setup` "
                        f"to rebuild it")
        return None

    def counting_missing(self, cpu: str) -> str | None:
        """None when instructions can be counted on ``cpu``; else why not."""
        if self.counting_qemu(cpu) is None:
            if self.stamp("plugin-qemu") is None:
                return "the plugin-capable QEMU is not set up; run `edgebert devices setup`"
            return (f"QEMU 7.2 (the only Debian user-mode build that loads plugins) has no {cpu} model and "
                    f"the QEMU 10 counting build is not set up; run `edgebert devices setup`")
        if not (self.prefix(cpu) / "proc" / "cpuinfo").is_file():
            return f"no captured /proc/cpuinfo for {cpu}; run `edgebert devices setup`"
        step = "plugin-qemu" if self.counting_qemu(cpu) == "qemu72" else "plugin-qemu10"
        built = ((self.stamp(step) or {}).get("key") or {}).get("source_sha")
        if built != counter_digest():
            return ("the instruction counter was compiled from an older insn_count.c (it cannot record executed "
                    "blocks); run `edgebert devices setup`")
        return self.damaged(step, "prefixes")


@functools.lru_cache(maxsize=None)
def _content_problem(root: str, step: str, recorded: str) -> str | None:
    """The quick content check of one step, once per process and recorded content (a directory walk)."""
    from . import content

    return content.problem(Path(root), {"content": json.loads(recorded)})


COUNTER_SOURCE = Path(__file__).resolve().parents[1] / "qemu" / "insn_count.c"


def counter_digest() -> str:
    """The counter source's digest, as setup records it in the plugin steps' keys (``source_sha``)."""
    from ...fsutil import sha256_file

    return sha256_file(COUNTER_SOURCE)[:16]


def default_env() -> ArmEnv:
    return ArmEnv(cache_dir() / "arm")


def guest_env(env: ArmEnv) -> dict[str, str]:
    """Environment of an emulated Python: only what it needs (no host PYTHONPATH, venv, ...)."""
    keep = {k: os.environ[k] for k in ("HOME", "TMPDIR", "LANG", "TERM") if k in os.environ}
    return {**keep, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(env.site), "PYTHONNOUSERSITE": "1",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "ORT_DISABLE_TELEMETRY": "1"}  # no network, and no second thread inside the counts


def plugin_command(env: ArmEnv, cpu: str, counts: Path, blocks: Path | None = None) -> list[str]:
    """``qemu-aarch64 -plugin ... -cpu CPU -L prefix/CPU python3.11`` (the plugin-capable QEMU with the counter).

    ``blocks``: also record the executed blocks there (the cycle model's input; ``qemu/insn_count.c``).

    Started with address-space randomisation off (``setarch -R``, when present) so that memory
    layout, and with it allocator paths and alignment-dependent kernel paths, repeat across runs.
    """
    norandom = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    root = env.counting_root(env.counting_qemu(cpu) or "qemu72")
    return [*norandom, str(root / "qemu-aarch64"), "-plugin",
            f"{root / 'libinsn_count.so'},out={counts},nr={MARKER_SYSCALL}" + (f",blocks={blocks}" if blocks else ""),
            "-cpu", cpu, "-L", str(env.prefix(cpu)), str(env.python)]


def plugin_host_env(env: ArmEnv, cpu: str) -> dict[str, str]:
    """Host libraries of the plugin QEMU, and a fixed hash seed (dict/set layouts repeat across runs)."""
    root = env.counting_root(env.counting_qemu(cpu) or "qemu72")
    return {"LD_LIBRARY_PATH": str(root / "lib"), "PYTHONHASHSEED": "0"}


def read_counts(path: Path) -> list[tuple[int, int]]:
    """(inference index, instructions) lines the plugin wrote, in order."""
    return [(i, total) for i, total, _ in read_class_counts(path)]


def read_class_counts(path: Path) -> list[tuple[int, int, dict[str, int]]]:
    """(inference index, instructions, {class: instructions}) per marked inference, in order.

    Lines are ``i total dotprod=.. i8mm=.. ...`` (see ``qemu/insn_count.c`` for the classes); a line
    without classes (an older counter) gives an empty dict.
    """
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            classes = {}
            for field in parts[2:]:
                name, _, value = field.partition("=")
                if name in INSTRUCTION_CLASSES and value.isdigit():
                    classes[name] = int(value)
            rows.append((int(parts[0]), int(parts[1]), classes))
    return rows
