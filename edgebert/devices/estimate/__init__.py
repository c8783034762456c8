"""Estimated milliseconds from an emulated run: a cycle model over the blocks that really executed.

- ``blocks.py``: the plugin's executed-block record, merged by bytes; the hot blocks (>= 99%).
- ``mca.py``: llvm-mc (bytes -> assembly) and llvm-mca (assembly -> cycles per block) on a target.
- ``cycles.py``: sum(executions x cycles) over the hot blocks + the rest at their mean CPI.

Architecture-neutral: the emulated ARM devices use it with an ARM core's scheduling model
(``devices/arm/catalog.py`` says which model stands for which core), and
``benchmarks/bench_latency_estimate.py`` with the x86 host's own model, to check it against native runs.
"""

from .blocks import HOT_CUT, Block, Recorded, hot, read_blocks  # noqa: F401
from .cycles import cycles  # noqa: F401
from .mca import LlvmTools, McaError, Target  # noqa: F401
