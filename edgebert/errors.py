"""Typed errors the CLI turns into one clear line and an exit code (2 usage, 1 runtime)."""


class EdgebertError(Exception):
    """A failure at run time that the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(EdgebertError):
    """Bad input from the user: a path, an option, a dataset (exit code 2)."""

    exit_code = 2


class ValidationError(EdgebertError):
    """An artifact does not reproduce its reference within tolerance (exit code 1)."""


# errno -> what the user can do about it (the cause itself comes from the OS error's strerror)
_MACHINE_FAULT_HINTS = {
    "ENOSPC": "free space there and rerun",
    "EDQUOT": "free space (disk quota) and rerun",
    "EROFS": "the location is read-only; choose a writable output location",
    "EACCES": "check the permissions of that location or choose another",
    "EPERM": "check the permissions of that location or choose another",
    "ENOENT": "a directory on the way does not exist and cannot be created there",
    "EISDIR": "a directory stands where a file should be; move it away",
    "ENOTDIR": "a file stands where a directory should be; move it away",
    "EEXIST": "something already exists there; move it away",
    "EMFILE": "too many open files; raise the limit (ulimit -n)",
}


def machine_fault(exc: OSError, where: object = None) -> str:
    """One line for an OS error at the CLI boundary: the path, the cause, what to do.

    ``where``: the command's output location, named when the error itself carries no path (a write()
    that hits a full disk reports no file name).
    """
    import errno as _errno

    path = exc.filename if exc.filename is not None else where
    name = _errno.errorcode.get(exc.errno or 0, "")
    cause = exc.strerror or str(exc) or type(exc).__name__
    hint = _MACHINE_FAULT_HINTS.get(name)
    target = f"{path}{' -> ' + str(exc.filename2) if exc.filename2 else ''}: " if path is not None else ""
    return f"{target}{cause}{'; ' + hint if hint else ''}"


def os_error_in(exc: BaseException) -> OSError | None:
    """The OS error behind ``exc`` (itself, or a cause/context libraries wrapped it in), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
