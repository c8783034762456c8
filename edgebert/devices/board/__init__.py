"""Real ARM boards over SSH as devices (``--device ssh://USER@HOST[:PORT]``, ``ssh:ALIAS``, or named in a build config).

- ``transport.py``: ``ssh``/``scp`` subprocesses with the user's ssh config, BatchMode and a connect timeout.
- ``probe.py``: what the board is (architecture, cores from part numbers, clusters, Python, glibc).
- ``provision.py``: the runtimes (host's exact versions, aarch64 wheels downloaded on the host) and the
  worker, installed into a board directory edgebert owns, reused while their hash matches.
- ``device.py``: :class:`BoardDevice`: runs the shared worker there and reads results back as data.
"""

from .device import BoardDevice  # noqa: F401
from .transport import BoardError, SshTarget  # noqa: F401
