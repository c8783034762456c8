"""edgebert: take a DistilBERT or SqueezeBERT text classifier to edge runtimes, and prove it still works."""

import os as _os

# ONNX Runtime 1.32 starts a telemetry thread at import that resolves and contacts Microsoft's event
# collector: network at run time, and in an emulated worker a thread whose work lands inside the
# instruction counts. Off unless the user set the variable themselves.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
