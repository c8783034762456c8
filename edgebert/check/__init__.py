"""Check every artifact on every requested device: accuracy, agreement with fp32, latency, memory, size."""

from .runner import CheckSettings, check, load_data  # noqa: F401
