"""Known dependency noise (torchao's CUDA .so lines, torch's _pytree Enum deprecation) is silenced by the
CLI, exactly: a real `edgebert export --format tflite` (litert-torch, torchao) in a subprocess has a clean
stderr, and other records of the same loggers still get through."""

from __future__ import annotations

import enum
import logging
import subprocess
import sys

from edgebert import noise
from support import save_tiny_hf_dir

NOISE = ("_pytree", "register_constant", "_C_cutlass", "_C_mxfp8", "Failed to load")


def test_export_tflite_stderr_has_no_known_dependency_noise(tmp_path):
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    proc = subprocess.run([sys.executable, "-m", "edgebert.cli", "export", str(src), "-o", str(tmp_path / "out"),
                           "--format", "tflite", "--seq-len", "32"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "model.tflite" in proc.stdout
    noisy = [ln for ln in proc.stderr.splitlines() if any(word in ln for word in NOISE)]
    assert not noisy, noisy
    assert "Exporting to TFLite" in proc.stderr  # our own progress lines still reach stderr


class _Kind(enum.Enum):
    A = 1


def test_filters_drop_only_the_known_messages(caplog):
    noise.install()
    noise.install()  # idempotent: one filter per logger
    assert all(sum(isinstance(f, cls) for f in logging.getLogger(name).filters) == 1
               for name, cls in noise.FILTERS.items())
    torchao, pytree = logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")
    with caplog.at_level(logging.WARNING):
        torchao.warning("Failed to load /x/site-packages/torchao/_C_cutlass_90a.abi3.so: Could not load this library")
        pytree.warning("%s is an Enum subclass and is now natively supported by torch.compile as an opaque value "
                       "type. Calling register_constant() on Enum subclasses is deprecated and will be an error "
                       "in a future release.", _Kind)
        torchao.warning("Failed to load config.json: not found")                 # not a torchao .so: kept
        torchao.warning("something else torchao says")                           # kept
        pytree.warning("%s cannot be registered as a pytree", _Kind)             # kept
        logging.getLogger("edgebert").warning("_pytree register_constant _C_cutlass")  # ours: kept
    assert [r.getMessage() for r in caplog.records] == [
        "Failed to load config.json: not found", "something else torchao says",
        f"{_Kind} cannot be registered as a pytree", "_pytree register_constant _C_cutlass"]
