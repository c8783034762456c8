"""What a setup step left on disk, recorded so that a damaged or partial environment is never used.

Each step's stamp records its directories' content: a quick digest of every file's relative path and
size (checked before every use: a truncated, missing or extra file changes it, at the cost of a
directory walk) and a full sha256 digest of the bytes (checked by every setup run, which rebuilds a
step whose content no longer matches). Python's bytecode caches are left out: the emulated Python
writes ``__pycache__`` into the wheels' directory on first import. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

SKIP_DIRS = ("__pycache__",)


def _files(root: Path, dirs: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for top in dirs:
        base = root / top
        if base.is_symlink() or not base.is_dir():
            yield top, base  # recorded as missing (or not a directory) below
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                if not name.endswith(".pyc"):
                    path = Path(dirpath) / name
                    yield path.relative_to(root).as_posix(), path


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size if path.is_symlink() or path.is_file() else -1
    except OSError:
        return -1


def quick_digest(root: Path, dirs: tuple[str, ...]) -> str:
    """sha256 over (relative path, size) of every file under ``dirs``: cheap enough for every use."""
    h = hashlib.sha256()
    for rel, path in _files(root, dirs):
        h.update(f"{rel}\0{_size(path)}\n".encode())
    return h.hexdigest()


def full_digest(root: Path, dirs: tuple[str, ...]) -> str:
    """sha256 over (relative path, sha256 of the bytes) of every file under ``dirs``."""
    h = hashlib.sha256()
    for rel, path in _files(root, dirs):
        if path.is_symlink():
            body = "link:" + os.readlink(path)
        elif path.is_file():
            fh = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    fh.update(block)
            body = fh.hexdigest()
        else:
            body = "missing"
        h.update(f"{rel}\0{body}\n".encode())
    return h.hexdigest()


def record(root: Path, dirs: tuple[str, ...]) -> dict[str, Any]:
    """The ``content`` entry of a step's stamp."""
    return {"dirs": list(dirs), "quick": quick_digest(root, dirs), "sha256": full_digest(root, dirs)}


def problem(root: Path, stamp: dict[str, Any] | None, full: bool = False) -> str | None:
    """Why a step's recorded content no longer matches the disk (None: it matches, or nothing was recorded:
    a stamp from an edgebert before content records, which setup completes on its next run)."""
    content = (stamp or {}).get("content")
    if not isinstance(content, dict) or not content.get("dirs"):
        return None
    dirs = tuple(content["dirs"])
    if quick_digest(root, dirs) != content.get("quick"):
        return f"files under {', '.join(dirs)} were changed, truncated, added or removed since setup"
    if full and full_digest(root, dirs) != content.get("sha256"):
        return f"file contents under {', '.join(dirs)} changed since setup (sha256 mismatch)"
    return None
