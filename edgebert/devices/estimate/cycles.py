"""Cycles of one recorded inference on one core model: sum(executions x cycles per execution) + the rest.

The hot blocks (``blocks.hot``: >= 99% of the executed instructions) are disassembled and costed by
llvm-mca (``mca.py``). Everything the model does not cost (the blocks below the cut, instructions the
disassembler or the scheduling model rejected) is charged at the costed blocks' mean cycles per
instruction, and its share is stated (``modeled_share``), so nothing executed is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from .blocks import HOT_CUT, Recorded, hot
from .mca import LlvmTools, Target, block_cycles, disassemble


def cycles(recorded: Recorded, total_instructions: int, tools: LlvmTools, target: Target,
           cut: float = HOT_CUT) -> dict[str, Any]:
    """The cycle breakdown of ``recorded`` (one inference) on ``target``'s scheduling model.

    ``total_instructions``: the counter's instructions of the same inference (the recorded blocks must
    add up to it; their difference is stated as ``unrecorded_instructions``).
    """
    start = time.perf_counter()
    hot_blocks = hot(recorded.blocks, cut)
    unique = sorted({i for b in hot_blocks for i in b.insns})
    asm = dict(zip(unique, disassemble(tools, target, unique)))
    regions = {f"b{k}": [line for i in b.insns for line in asm[i]] for k, b in enumerate(hot_blocks)}
    costed = block_cycles(tools, target, {k: v for k, v in regions.items() if v})
    modeled_cycles = modeled_insns = 0.0
    dropped = 0
    for k, b in enumerate(hot_blocks):
        got = costed.get(f"b{k}")
        if got is None:
            continue
        per_exec, kept = got
        modeled_cycles += b.executions * per_exec
        modeled_insns += b.instructions
        dropped += b.executions * (len(b.insns) - kept)
    if not modeled_insns:
        raise ValueError(f"llvm-mca -mcpu={target.mcpu} costed none of the {len(hot_blocks)} hot blocks")
    cpi = modeled_cycles / modeled_insns
    rest = max(0, total_instructions - int(modeled_insns))
    total = modeled_cycles + rest * cpi
    return {
        "cycles": round(total), "modeled_cycles": round(modeled_cycles), "rest_cycles": round(rest * cpi),
        "cpi_modeled": round(cpi, 4), "hot_cut": cut, "blocks": len(recorded.blocks),
        "hot_blocks": len(hot_blocks), "costed_blocks": len(costed),
        "hot_share": round(sum(b.instructions for b in hot_blocks) / max(1, recorded.instructions), 5),
        "modeled_share": round(modeled_insns / max(1, total_instructions), 5),
        "skipped_instructions": int(dropped),  # in costed blocks: undecodable or without scheduling data
        "unrecorded_instructions": int(total_instructions - recorded.instructions),
        "lost_blocks": recorded.lost, "mcpu": target.mcpu, "triple": target.triple,
        "seconds": round(time.perf_counter() - start, 2),
    }
