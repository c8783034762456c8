"""``python -m edgebert``: the same CLI as the ``edgebert`` command (e.g. from a worktree with PYTHONPATH)."""

from .cli import main

main()
