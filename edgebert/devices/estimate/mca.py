"""llvm-mc and llvm-mca as a cycle model: instruction bytes -> assembly -> cycles per block execution.

Why a module of its own: the emulated ARM devices (A64 blocks, an ARM core's scheduling model) and the
x86 check of the estimator (``benchmarks/bench_latency_estimate.py``: x86 blocks, the host core's model)
run the same two tools the same way; only the triple, the ``-mcpu`` and the features differ.

- ``llvm-mc --disassemble``: each instruction's bytes, then a marker instruction, so the output lines
  between two markers are exactly that instruction's (none when it cannot be decoded: it is left out of
  its block's cycles and counted).
- ``llvm-mca``: every block is one code region (``# LLVM-MCA-BEGIN``/``END``) of one run; a region's
  "Total Cycles" / "Iterations" is the block's steady-state cost per execution (the block repeated
  back to back: right for loop bodies, which is where the time of an inference goes).
  ``-skip-unsupported-instructions=any`` (LLVM >= 19) drops instructions the scheduling model has no
  data for instead of failing the whole run; they are counted too.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ITERATIONS = 100          # llvm-mca iterations per region (its default): the steady state of a block
TIMEOUT_S = 600.0


class McaError(RuntimeError):
    """llvm-mc / llvm-mca failed (one line)."""


@dataclass(frozen=True)
class LlvmTools:
    """``root/bin/llvm-mca``, ``root/bin/llvm-mc`` and ``root/lib`` (set up by ``edgebert devices setup``)."""

    root: Path

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(self.root / "lib"), "LC_ALL": "C"}

    def run(self, tool: str, args: list[str], stdin: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([str(self.root / "bin" / tool), *args], input=stdin, capture_output=True,
                                  text=True, env=self._env(), timeout=TIMEOUT_S)
        except FileNotFoundError:
            raise McaError(f"{tool} not found in {self.root / 'bin'}; run `edgebert devices setup`") from None
        except subprocess.TimeoutExpired:
            raise McaError(f"{tool} timed out after {TIMEOUT_S:.0f}s") from None

    def version(self) -> str:
        proc = self.run("llvm-mca", ["--version"], "")
        m = re.search(r"LLVM version (\S+)", proc.stdout + proc.stderr)
        if proc.returncode != 0 or not m:
            raise McaError(f"llvm-mca --version failed: {(proc.stderr or proc.stdout).strip()[:200]}")
        return m.group(1)


@dataclass(frozen=True)
class Target:
    """What the code is and which core model costs it."""

    triple: str               # "aarch64" | "x86_64"
    mcpu: str                 # llvm-mca -mcpu (the scheduling model)
    mattr: str = ""           # features the disassembler and parser must accept (not the cost model)


# Between every two instructions a marker the code never contains, so each instruction's output lines
# are known exactly (x86: QEMU 7.2 reports some instructions' bytes cut short or merged with the next).
MARKERS = {"x86_64": ("49bfefcdab9078563412", "movabsq\t$1311768467294899695, %r15"),
           "aarch64": ("efbe0000", "udf\t#48879")}
COMMENT = {"x86_64": "#", "aarch64": "//"}  # llvm-mc's comment token per target (AArch64 immediates use #)


def disassemble(tools: LlvmTools, target: Target, insns: list[str]) -> list[list[str]]:
    """Assembly lines of each instruction (hex bytes in memory order): usually one, none if undecodable."""
    if not insns:
        return []
    marker, marker_asm = MARKERS[target.triple]

    def group(h: str) -> str:
        return "[" + " ".join(f"0x{h[i:i + 2]}" for i in range(0, len(h), 2)) + "]"

    lines = "".join(f"{group(h)}\n{group(marker)}\n" for h in insns)
    args = ["--disassemble", f"-triple={target.triple}"] + ([f"-mattr={target.mattr}"] if target.mattr else [])
    proc = tools.run("llvm-mc", args, lines)
    out: list[list[str]] = [[]]
    for ln in proc.stdout.splitlines():
        text = ln.split(COMMENT[target.triple])[0].strip()
        if not text or text.startswith((".text", ".section")):
            continue
        if text == marker_asm:
            out.append([])
        else:
            out[-1].append(text)
    if len(out) != len(insns) + 1 or out[-1]:
        raise McaError(f"llvm-mc -triple={target.triple}: {len(out) - 1} markers for {len(insns)} instructions: "
                       f"{proc.stderr.strip()[:200]}")
    return out[:-1]


_REGION = re.compile(r"\[\d+\] Code Region - (\S+)")
_ITER = re.compile(r"^Iterations:\s+(\d+)", re.M)
_CYCLES = re.compile(r"^Total Cycles:\s+(\d+)", re.M)
_INSNS = re.compile(r"^Instructions:\s+(\d+)", re.M)


def block_cycles(tools: LlvmTools, target: Target, blocks: dict[str, list[str]]) -> dict[str, tuple[float, int]]:
    """Per block name: (cycles per execution, instructions the model kept per execution).

    ``blocks``: name -> its instructions' assembly. One llvm-mca run for all of them. A block the model
    keeps no instruction of is absent from the result.
    """
    if not blocks:
        return {}
    src = []
    for name, asm in blocks.items():
        src += [f"# LLVM-MCA-BEGIN {name}", *asm, "# LLVM-MCA-END"]
    args = [f"-mtriple={target.triple}", f"-mcpu={target.mcpu}", f"-iterations={ITERATIONS}",
            "-skip-unsupported-instructions=any", "-instruction-info=false", "-resource-pressure=false"]
    if target.mattr:
        args.append(f"-mattr={target.mattr}")
    proc = tools.run("llvm-mca", args, "\n".join(src) + "\n")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines() or ["?"]
        raise McaError(f"llvm-mca -mcpu={target.mcpu} failed: {lines[0].strip()[:300]}")
    out: dict[str, tuple[float, int]] = {}
    parts = _REGION.split(proc.stdout)
    for name, body in zip(parts[1::2], parts[2::2]):
        it, cyc, ins = _ITER.search(body), _CYCLES.search(body), _INSNS.search(body)
        if it and cyc and ins and int(it.group(1)) > 0 and int(ins.group(1)) > 0:
            n = int(it.group(1))
            out[name] = (int(cyc.group(1)) / n, int(ins.group(1)) // n)
    return out
