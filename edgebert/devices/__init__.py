"""Device and runtime registries, and the measurement worker every device runs.

- ``registry.py``: :class:`Device` (how to start the worker's Python; format -> runtime) and the
  registered devices (``desktop`` now; emulated ARM CPUs later, each one class).
- ``runtimes.py``: :class:`~edgebert.devices.runtimes.Runtime` (load, run) and the registered runtimes
  (``onnxruntime`` now; LiteRT later). Imported only by the worker.
- ``worker.py``: the one measurement loop and its file protocol (documented there).
- ``arm/``: the emulated ARM CPUs (catalog, run-time environment, devices, ``devices setup``).
- ``board/``: real ARM boards over SSH (``ssh://USER@HOST[:PORT]``, ``ssh:ALIAS``, named boards).
- ``host_cpu.py``: this machine's CPU model and kernel ISA flags (desktop fingerprint, ``reduce_range``).

Standard library only at import time: the worker may be started as ``python -m edgebert.devices.worker``.
"""

from .registry import (BOARD_PREFIX, WORKER_FILE, Desktop, Device, SessionPool, define_board, get, is_board,  # noqa: F401
                       names)
