"""Emulated ARM CPUs under QEMU user mode, one registered device per CPU model.

- ``catalog.py``: the CPU models (names, QEMU ``-cpu`` names, ISA features, which ones can be counted).
- ``environment.py``: the finished environment's paths and what a run needs from it (guest env, the
  counting QEMU's command line, reading the plugin's counts).
- ``device.py``: :class:`ArmDevice` per catalog entry, and its instruction counter.
- ``setup.py`` / ``qemu_build.py``: ``edgebert devices setup`` (the installer and its self-check).

Importing the package registers the devices (the registry imports it on first use); the installer
is imported only by the commands that install.
"""

from .catalog import CPU_MODELS, CpuModel  # noqa: F401
from .device import ArmDevice, class_fields  # noqa: F401
