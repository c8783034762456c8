"""The executed blocks the counting plugin recorded (``blocks=FILE``), merged, and the hot ones.

Why apart from the cycle model: reading, merging and cutting are plain bookkeeping that must be exactly
right (the estimate is sum(executions x cycles)), and they are tested without any tool.

QEMU translation blocks are not CFG basic blocks: the same code can be translated more than once
(after a flush, or when a jump lands inside an earlier block), so blocks are merged by their bytes:
the same instructions cost the same cycles wherever they sit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOT_CUT = 0.99  # the hot blocks: the fewest that hold at least this share of the executed instructions


@dataclass(frozen=True)
class Block:
    insns: tuple[str, ...]   # each instruction's bytes, hex, in memory order
    executions: int

    @property
    def instructions(self) -> int:
        return self.executions * len(self.insns)


@dataclass(frozen=True)
class Recorded:
    blocks: tuple[Block, ...]   # merged by bytes, most instructions first
    lost: int                   # blocks the plugin could not record (out of memory): 0 normally

    @property
    def instructions(self) -> int:
        return sum(b.instructions for b in self.blocks)


def read_blocks(path: Path, inference: int) -> Recorded:
    """The blocks of marked inference ``inference`` (the plugin's ``b``/``x``/``e`` lines)."""
    defs: dict[str, tuple[str, ...]] = {}
    runs: dict[tuple[str, ...], int] = {}
    lost, seen = 0, False
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "b" and len(parts) >= 3:
                defs[parts[1]] = tuple(parts[3].split(",")) if len(parts) > 3 else ()
            elif parts[0] == "x" and len(parts) == 4 and int(parts[1]) == inference:
                insns = defs[parts[2]]
                runs[insns] = runs.get(insns, 0) + int(parts[3])
            elif parts[0] == "e" and len(parts) >= 2 and int(parts[1]) == inference:
                seen = True
                lost = int(parts[2].partition("=")[2]) if len(parts) > 2 else 0
    if not seen:
        raise ValueError(f"{path}: no blocks recorded for marked inference {inference}")
    blocks = sorted((Block(k, v) for k, v in runs.items() if k), key=lambda b: (-b.instructions, b.insns))
    return Recorded(tuple(blocks), lost)


def hot(blocks: tuple[Block, ...], cut: float = HOT_CUT) -> tuple[Block, ...]:
    """The most-executed blocks (by instructions) until they hold ``cut`` of all of them."""
    total = sum(b.instructions for b in blocks)
    out, covered = [], 0
    for b in sorted(blocks, key=lambda b: -b.instructions):
        if covered >= cut * total:
            break
        out.append(b)
        covered += b.instructions
    return tuple(out)
