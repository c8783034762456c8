"""Check every artifact on every requested device: accuracy, agreement with fp32, latency, memory, size."""

from .runner import REPORT_NAME, CheckSettings, check, load_data  # noqa: F401
