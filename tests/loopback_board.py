"""A real OpenSSH server on 127.0.0.1 that stands in for an ARM board (tests only).

Debian's ``sshd`` runs in the foreground on a free port with a throw-away host key, key-only login and
its own ``authorized_keys``; the client side is an ssh config file (``-F``, through
``EDGEBERT_SSH_CONFIG``) with a ``known_hosts`` holding that host key and ``StrictHostKeyChecking yes``:
nothing about host keys is relaxed. ``SetEnv`` gives the login ``EDGEBERT_BOARD_PYTHON``, the board's Python
(the login shell's own start-up files may reorder ``PATH``): by default the emulated-ARM environment's aarch64 Python under ``qemu-aarch64 -cpu
cortex-a76`` (so the probe reads the emulated core's cpuinfo), or the host's Python ("an x86_64
board"), or nothing ("no python3"); the board declares itself emulated with EDGEBERT_BOARD_EMULATED.
The server is bounded in time (``timeout``) and stopped by :meth:`LoopbackBoard.stop`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def missing() -> str | None:
    """Why a loopback board cannot run here (None when it can)."""
    for tool in (SSHD, "ssh", "scp", "ssh-keygen", "timeout"):
        if shutil.which(tool) is None:
            return f"{tool} not found: install Debian's openssh-server and openssh-client (.ci/run does)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackBoard:
    """``python``: "emulated" (aarch64 under QEMU; needs ``arm_env``), "host" (x86_64 board) or "none"."""

    def __init__(self, root: Path, python: str = "emulated", arm_env=None, cpu: str = "cortex-a76",
                 lifetime_s: int = 900):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = _free_port()
        self.board_dir = self.root / "board-home"
        self.proc: subprocess.Popen | None = None
        keys = self.root / "keys"
        keys.mkdir(exist_ok=True)
        for name in ("host", "client", "stranger"):
            if not (keys / name).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
        (self.root / "authorized_keys").write_text((keys / "client.pub").read_text())
        os.chmod(self.root / "authorized_keys", 0o600)
        host_pub = (keys / "host.pub").read_text().split()
        (self.root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        wrapper = bin_dir / "python3"
        wrapper.unlink(missing_ok=True)
        env_line = f"EDGEBERT_BOARD_DIR={self.board_dir} EDGEBERT_BOARD_PYTHON={wrapper}"
        if python == "emulated":
            wrapper.write_text(f"#!/bin/sh\nexec {arm_env.qemu} -cpu {cpu} -L {arm_env.sysroot} "
                               f"{arm_env.python} \"$@\"\n")
            env_line += f" EDGEBERT_BOARD_EMULATED=qemu-aarch64-cpu-{cpu}"
        elif python == "host":
            wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
        if wrapper.exists():
            wrapper.chmod(0o755)
        self.lifetime_s = lifetime_s
        (self.root / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {keys / 'host'}",
            f"PidFile {self.root / 'sshd.pid'}", f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "Subsystem sftp internal-sftp", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            f"SetEnv PATH={bin_dir}:/usr/bin:/bin {env_line}", "LogLevel ERROR", ""]))
        self.write_client_config("client")

    @property
    def address(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    def write_client_config(self, key: str = "client", port: int | None = None) -> Path:
        """The client's ssh config: alias ``board``, this key, the known_hosts, strict host-key checking."""
        common = [f"  IdentityFile {self.root / 'keys' / key}", "  IdentitiesOnly yes",
                  f"  UserKnownHostsFile {self.root / 'known_hosts'}", "  StrictHostKeyChecking yes",
                  "  GlobalKnownHostsFile /dev/null"]
        self.ssh_config.write_text("\n".join([
            "Host board", "  HostName 127.0.0.1", f"  Port {port or self.port}", f"  User {self.user}", *common,
            "Host *", *common, ""]))
        return self.ssh_config

    def start(self) -> "LoopbackBoard":
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation dir Debian's sshd wants
        log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen(["timeout", str(self.lifetime_s), SSHD, "-D", "-e", "-f",
                                      str(self.root / "sshd_config")], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not listen within 15 s")

    def sshd_pid(self) -> int | None:
        try:
            return int((self.root / "sshd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def sessions(self) -> list[int]:
        """Pids of this server's per-connection sshd processes (children of the listening one)."""
        pid = self.sshd_pid()
        return children(pid) if pid else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in self.sessions():  # sessions this server started, then the server
                for p in [*descendants(pid), pid]:
                    _kill(p)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "LoopbackBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        out += [child, *descendants(child)]
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
