"""Silence known, harmless log lines of dependencies, matched exactly, so a command's stderr shows ours.

Importing transformers (its torchao quantizer) or litert-torch imports torchao 0.18, which logs
``Failed to load .../torchao/_C_cutlass_90a.abi3.so`` (and ``_C_mxfp8``: CUDA kernels, absent on a CPU
build) on the ``torchao`` logger, and calls ``register_constant`` on Enum classes, for which torch 2.13's
``torch.utils._pytree`` logger warns ``<enum ...> is an Enum subclass ... register_constant() ... deprecated``.
Neither is actionable for an edgebert user. Each filter sits on that one logger and drops only records
matching its message; anything else those loggers say still gets through, and our own warnings are
untouched.
"""

from __future__ import annotations

import enum
import logging
import re

#: torchao/__init__.py: ``logger.warning(f"Failed to load {file}: {e}")`` for its optional ``_C*.so`` files.
_TORCHAO_SO = re.compile(r"Failed to load \S*torchao/_C[^/\s]*\.so: ")
#: torch/utils/_pytree.py: ``log.warning("%s is an Enum subclass ... register_constant() ... deprecated ...", cls)``.
_PYTREE_ENUM = "is an Enum subclass and is now natively supported by torch.compile"


class _TorchaoSoFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and _TORCHAO_SO.match(record.getMessage()))


class _PytreeEnumFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        args = record.args if isinstance(record.args, tuple) else ()
        is_enum = bool(args) and isinstance(args[0], type) and issubclass(args[0], enum.Enum)
        return not (isinstance(msg, str) and _PYTREE_ENUM in msg and "register_constant()" in msg and is_enum)


#: logger name -> filter for its one known message.
FILTERS = {"torchao": _TorchaoSoFilter, "torch.utils._pytree": _PytreeEnumFilter}


def install() -> None:
    """Attach the filters (idempotent); call before the dependencies are imported."""
    for name, cls in FILTERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())
