"""SSH transport to a board: plain ``ssh``/``scp`` subprocesses, one line per failure.

Why plain OpenSSH: it honours the user's ``~/.ssh/config`` (aliases, ports, jump hosts, identity files),
their agent and their host-key policy for free. edgebert adds only what an unattended run needs:
``BatchMode=yes`` (never a password or host-key prompt: an unknown host key fails, it is never
accepted silently) and a connect timeout. ``ssh_config`` (or ``$EDGEBERT_SSH_CONFIG``) selects another
config file with ``-F``; nothing else about host keys is ever passed.

Addresses: ``ssh://USER@HOST[:PORT]`` or ``ssh:ALIAS`` (a ``Host`` of the ssh config).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError

CONNECT_TIMEOUT_S = 15
SSH_CONFIG_ENV = "EDGEBERT_SSH_CONFIG"
_URL = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])"
                  r"(?::(?P<port>[0-9]{1,5}))?/?$")
_ALIAS = re.compile(r"^ssh:(?P<alias>[A-Za-z0-9._-]+)$")


class BoardError(Exception):
    """A board operation failed; ``str()`` is one line saying what and why."""


@dataclass(frozen=True)
class SshTarget:
    """Where a board is: a host (alias or name), optional user and port, optional ssh config file."""

    address: str                 # as the user wrote it (``ssh://...`` or ``ssh:alias``)
    host: str
    user: str | None = None
    port: int | None = None
    ssh_config: Path | None = None

    @classmethod
    def parse(cls, address: str, ssh_config: str | os.PathLike | None = None) -> "SshTarget":
        """A target from ``ssh://USER@HOST[:PORT]`` or ``ssh:ALIAS``; a UsageError for anything else."""
        config = ssh_config or os.environ.get(SSH_CONFIG_ENV) or None
        config_path = Path(config).expanduser() if config else None
        if config_path is not None and not config_path.is_file():
            raise UsageError(f"ssh config {config_path} not found (device {address})")
        m = _URL.match(address)
        if m:
            port = int(m["port"]) if m["port"] else None
            if port is not None and not 0 < port < 65536:
                raise UsageError(f"device {address!r}: port {port} is not 1-65535")
            return cls(address, m["host"].strip("[]"), m["user"], port, config_path)
        m = _ALIAS.match(address)
        if m:
            return cls(address, m["alias"], None, None, config_path)
        raise UsageError(f"device {address!r} is not a board address: use ssh://USER@HOST[:PORT] or ssh:ALIAS "
                         f"(a Host of your ssh config)")

    def options(self) -> list[str]:
        """Options every ssh/scp call gets: config file, no prompts, a connect timeout."""
        opts = ["-F", str(self.ssh_config)] if self.ssh_config else []
        return [*opts, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


class Transport:
    """Runs commands on the board and copies files to and from it (never raises anything but BoardError)."""

    def __init__(self, target: SshTarget):
        self.target = target

    def _ssh(self) -> list[str]:
        port = ["-p", str(self.target.port)] if self.target.port else []
        return ["ssh", *self.target.options(), *port, "-T", self.target.destination]

    def run(self, command: str, what: str, stdin: bytes | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a POSIX shell ``command`` on the board; BoardError (one line) when ssh or ``check`` fails."""
        proc = self._call([*self._ssh(), command], what, stdin, timeout)
        if proc.returncode == 255:
            raise BoardError(f"{what}: {_ssh_reason(proc.stderr, self.target)}")
        if check and proc.returncode != 0:
            raise BoardError(f"{what}: {_last_line(proc.stderr) or f'exit status {proc.returncode}'}")
        return proc

    def push(self, local: list[Path], remote_dir: str, what: str, timeout: float = 1800) -> None:
        """Copy local files into ``remote_dir`` (which must exist) on the board."""
        port = ["-P", str(self.target.port)] if self.target.port else []
        cmd = ["scp", "-q", *self.target.options(), *port, *map(str, local),
               f"{self.target.destination}:{remote_dir}/"]
        proc = self._call(cmd, what, None, timeout)
        if proc.returncode != 0:
            raise BoardError(f"{what}: {_ssh_reason(proc.stderr, self.target)}")

    def read(self, remote: str, what: str, timeout: float = 600) -> bytes:
        """The bytes of one remote file (``cat`` over ssh): data only, the caller parses it."""
        return self.run(f"cat {shlex.quote(remote)}", what, timeout=timeout).stdout

    def _call(self, cmd: list[str], what: str, stdin: bytes | None, timeout: float) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise BoardError(f"{what}: {cmd[0]} not found on this machine; install an OpenSSH client") from None
        except subprocess.TimeoutExpired:
            raise BoardError(f"{what}: no answer from {self.target.address} within {timeout:.0f}s") from None


def _last_line(stderr: bytes | str) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Warning: Permanently")]
    return lines[-1][:300] if lines else ""


def _ssh_reason(stderr: bytes, target: SshTarget) -> str:
    """ssh's own last line, with what to do for the common cases."""
    line = _last_line(stderr)
    low = line.lower()
    if "permission denied" in low:
        return (f"authentication to {target.address} failed ({line}): add your key to the board's "
                f"authorized_keys or your agent (edgebert runs ssh with BatchMode, no password prompts)")
    if "host key verification failed" in low or "no matching host key" in low or "remote host identification" in low:
        return (f"host key of {target.address} not trusted ({line}): connect once with `ssh` and check the key, "
                f"or add it to your known_hosts; edgebert never skips the check")
    if "connection refused" in low or "timed out" in low or "no route" in low or "could not resolve" in low \
            or "name or service not known" in low:
        return f"{target.address} unreachable ({line})"
    if "closed" in low or "broken pipe" in low or "reset" in low or "lost" in low or not line:
        return f"connection to {target.address} lost ({line or 'ssh exited with status 255'})"
    return line
