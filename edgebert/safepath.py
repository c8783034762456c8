"""Paths named by an artifact directory are untrusted: keep them inside it, and remove only what edgebert made.

Artifact directories travel between CI jobs, caches and pull requests, so ``manifest.json`` may have
been written by someone else. A path it names must be a plain relative path that stays inside the
directory after symlinks are resolved (``resolve_inside``), and a file is removed only when edgebert
can prove it made it: listed, inside, a regular file, matching its recorded sha256 (``remove_made_file``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .fsutil import sha256_file

MAX_PATH_CHARS = 1024


class UnsafePath(ValueError):
    """A manifest path that could reach outside its directory (the message says why, in a few words)."""


def lexical_problem(value: object) -> str | None:
    """Why ``value`` is not a plain relative path, without touching the file system (None if it is)."""
    if not isinstance(value, str):
        return f"must be a relative path (a string), not {'null' if value is None else type(value).__name__}"
    if not value or value.strip() != value:
        return "must be a non-empty relative path without surrounding spaces"
    if len(value) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if "\x00" in value or "\\" in value:
        return "contains a NUL byte or a backslash"
    try:
        os.fsencode(value)
    except UnicodeError:
        return "is not encodable as a file name"
    pure = PurePosixPath(value)
    if pure.is_absolute():
        return "is an absolute path (must be relative to the artifact directory)"
    if ".." in pure.parts:
        return "contains '..' (must stay inside the artifact directory)"
    if not pure.parts or pure.parts == (".",):
        return "names the artifact directory itself"
    return None


def resolve_inside(directory: str | os.PathLike, value: object) -> Path:
    """``directory / value`` when it is a relative path that stays inside ``directory`` after resolving
    symlinks (the file need not exist); ``UnsafePath`` otherwise."""
    problem = lexical_problem(value)
    if problem:
        raise UnsafePath(problem)
    try:
        root = Path(directory).resolve()
        target = (root / str(value)).resolve()
    except RuntimeError:
        raise UnsafePath("is a symlink loop") from None
    except (OSError, ValueError) as exc:
        raise UnsafePath(f"cannot be resolved ({type(exc).__name__})") from None
    if target == root:
        raise UnsafePath("resolves to the artifact directory itself")
    if not target.is_relative_to(root):
        raise UnsafePath("leaves the artifact directory through a symlink")
    return Path(directory) / str(value)


@dataclass(frozen=True)
class Removal:
    """What ``remove_made_file`` did with one recorded path: removed it, found nothing, or kept it (and why)."""

    path: str
    outcome: str          # "removed" | "absent" | "kept"
    reason: str = ""

    def describe(self) -> str:
        return f"{self.path}: {self.reason}" if self.reason else f"{self.path}: {self.outcome}"


def remove_made_file(directory: str | os.PathLike, value: object, sha256: object) -> Removal:
    """Remove ``directory/value`` only if edgebert provably made it: inside the directory, a regular
    file (edgebert never makes symlinks) and matching the ``sha256`` recorded when it was made."""
    shown = value if isinstance(value, str) else repr(value)
    try:
        path = resolve_inside(directory, value)
    except UnsafePath as exc:
        return Removal(shown, "kept", f"left alone: the path {exc}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Removal(shown, "absent")
    except OSError as exc:
        return Removal(shown, "kept", f"left alone: cannot inspect it ({exc.strerror})")
    if stat.S_ISLNK(st.st_mode):
        return Removal(shown, "kept", "left alone: a symlink, not a file edgebert made")
    if not stat.S_ISREG(st.st_mode):
        return Removal(shown, "kept", "left alone: not a regular file")
    if not isinstance(sha256, str) or not sha256:
        return Removal(shown, "kept", "left alone: no sha256 recorded, so not provably edgebert's")
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return Removal(shown, "kept", f"left alone: cannot read it ({exc.strerror})")
    if actual != sha256:
        return Removal(shown, "kept", "left alone: changed since edgebert recorded it (sha256 differs)")
    path.unlink()
    return Removal(shown, "removed")


def is_own_dir(directory: str | os.PathLike, value: object) -> bool:
    """A real directory (not a symlink) at the relative path ``value`` inside ``directory``."""
    try:
        path = resolve_inside(directory, value)
    except UnsafePath:
        return False
    return path.is_dir() and not path.is_symlink()
