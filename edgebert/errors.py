"""Typed errors the CLI turns into one clear line and an exit code (2 usage, 1 runtime)."""


class EdgebertError(Exception):
    """A failure at run time that the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(EdgebertError):
    """Bad input from the user: a path, an option, a dataset (exit code 2)."""

    exit_code = 2


class ValidationError(EdgebertError):
    """An artifact does not reproduce its reference within tolerance (exit code 1)."""
