"""Atomic writes and hashing: no command ever leaves a half-written artifact behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``final``; rename it over ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a completed temp directory into place (replacing ``final``), with normal permissions.

    Only a real directory is replaced: a symlink or a file at ``final`` is refused (FileExistsError),
    so the tree removed is never one reached through a link. Callers check that ``final`` is theirs.
    """
    import shutil

    tmp, final = Path(tmp), Path(final)
    os.chmod(tmp, 0o777 & ~current_umask())
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise FileExistsError(f"{final}: not a directory; refusing to replace it")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """The edgebert cache: ``$EDGEBERT_CACHE`` or the user's cache dir (XDG)."""
    env = os.environ.get("EDGEBERT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebert"
