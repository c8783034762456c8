"""Devices: where the measurement worker runs, and which runtime it uses for each artifact format.

A device is one registered class (subclass :class:`Device` with a ``name``). It says how to start the
worker's Python (natively, or later under ``qemu-aarch64 -cpu MODEL``) and which runtime runs each
format. The worker (``worker.py``) and the runtimes (``runtimes.py``) are shared by all devices.

Standard library only here (plus edgebert.errors): ``python -m edgebert.devices.worker`` imports this
package, and the worker must stay free of heavy imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterator

from ..errors import UsageError
from . import host_cpu

WORKER_FILE = Path(__file__).with_name("worker.py")
_DEVICES: dict[str, type["Device"]] = {}


class Device:
    """Where artifacts are measured.

    - ``name`` / ``description``: what ``devices list`` and reports show.
    - ``emulated``: True when timings are emulator wall time, not device latency.
    - ``runtimes``: artifact format -> runtime name (a key of ``runtimes.py``'s registry).
    - ``timeout_s``: wall-clock limit for one worker run (one artifact).
    - ``default_threads``: runtime threads when ``check`` is not given ``--threads``.
    - ``counts_instructions``: True if :meth:`count_instructions` measures cost (emulated devices,
      whose wall time is not device latency).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    emulated: ClassVar[bool] = False
    runtimes: ClassVar[dict[str, str]] = {}
    timeout_s: ClassVar[float] = 3600.0
    default_threads: ClassVar[int] = 1
    counts_instructions: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _DEVICES[cls.name] = cls

    # --- what a device declares ---------------------------------------------------------------
    def runtime_for(self, fmt: str) -> str | None:
        """The runtime name this device uses for an artifact format; None if it cannot run it."""
        return self.runtimes.get(fmt)

    def formats(self) -> tuple[str, ...]:
        return tuple(self.runtimes)

    def python_command(self) -> list[str]:
        """The command that starts this device's Python (the worker file and request are appended)."""
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return dict(os.environ)

    def unavailable_reason(self) -> str | None:
        """None when the device can run now; otherwise one line saying what to set up."""
        return None

    def setup_missing(self) -> str | None:
        """What `edgebert devices setup` must still provide before a build measures everything here."""
        return self.unavailable_reason()

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "emulated": self.emulated,
                "runtimes": dict(self.runtimes), "default_threads": self.default_threads}

    def identity(self) -> dict[str, Any]:
        """What identifies this device in a build fingerprint (a board probes itself for it)."""
        return self.info()

    def record_fields(self, result: dict[str, Any] | None) -> dict[str, Any]:
        """Extra fields for every record of this device (a board: what it is, its clock state)."""
        return {}

    def wall_time_is_latency(self) -> bool:
        """False where the worker's timed runs are not device latency (a board that declares itself emulated)."""
        return not self.emulated

    def close(self) -> None:
        """Release what the device holds after a check (a board: its run directory there)."""

    def count_instructions(self, request: dict[str, Any], work: Path) -> dict[str, Any]:
        """Guest instructions per inference for ``request`` (see ``arm/device.py``); never raises."""
        return {"status": "unavailable", "error": f"device {self.name} does not count instructions"}

    # --- running the worker -------------------------------------------------------------------
    def run_worker(self, request: dict[str, Any], request_path: Path) -> dict[str, Any]:
        """Write ``request``, run the worker on this device, return its result dict (never raises).

        A worker that dies without writing its result (signal, timeout, bad interpreter) yields a
        ``failed`` result whose error says how it ended.
        """
        request_path = Path(request_path)
        request_path.write_text(json.dumps(request, indent=1), encoding="utf-8")
        result_path = Path(request["result"])
        if result_path.exists():
            result_path.unlink()
        reason = self.unavailable_reason()
        if reason:
            return _failed(request, f"device {self.name} unavailable: {reason}")
        cmd = [*self.python_command(), str(WORKER_FILE), str(request_path)]
        try:
            proc = subprocess.run(cmd, env=self.worker_env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return _failed(request, f"worker timed out after {self.timeout_s:.0f}s")
        except OSError as exc:
            return _failed(request, f"cannot start the worker ({cmd[0]}): {exc.strerror or exc}")
        if result_path.is_file():
            try:
                return json.loads(result_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                pass
        return _failed(request, _how_it_ended(proc))


    def session(self) -> "WorkerSession":
        """One long-lived worker (``worker.py --serve``) for several requests on this device."""
        return WorkerSession(self)


class WorkerSession:
    """A worker process that serves requests one after another (context manager; never raises on run).

    Used where start-up is expensive: under QEMU, starting Python and loading a model costs 1-3 s of
    emulation per process, and an emulated check runs several passes on the same artifact.
    """

    def __init__(self, device: Device):
        self.device = device
        self.proc: subprocess.Popen | None = None
        self.stderr_path: Path | None = None

    def __enter__(self) -> "WorkerSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, work: Path) -> str | None:
        reason = self.device.unavailable_reason()
        if reason:
            return f"device {self.device.name} unavailable: {reason}"
        import tempfile

        fd, name = tempfile.mkstemp(prefix="worker-", suffix=".stderr", dir=work)
        self.stderr_path = Path(name)
        cmd = [*self.device.python_command(), str(WORKER_FILE), "--serve"]
        try:
            self.proc = subprocess.Popen(cmd, env=self.device.worker_env(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=fd, text=True, bufsize=1)
        except OSError as exc:
            return f"cannot start the worker ({cmd[0]}): {exc.strerror or exc}"
        finally:
            os.close(fd)
        return None

    def run(self, request: dict[str, Any], request_path: Path) -> dict[str, Any]:
        """Like :meth:`Device.run_worker`, in this session's process (started on first use)."""
        request_path = Path(request_path)
        request_path.write_text(json.dumps(request, indent=1), encoding="utf-8")
        result_path = Path(request["result"])
        result_path.unlink(missing_ok=True)
        if self.proc is None or self.proc.poll() is not None:
            problem = self._start(request_path.parent)
            if problem:
                return _failed(request, problem)
        proc = self.proc
        status, timed_out = self._exchange(str(request_path))
        if status and result_path.is_file():
            try:
                return json.loads(result_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                pass
        if status.startswith("error "):
            return _failed(request, f"worker could not read the request: {status[6:]}")
        proc.kill()
        proc.wait()
        self.proc = None
        if timed_out:
            return _failed(request, f"worker timed out after {self.device.timeout_s:.0f}s")
        tail = ""
        if self.stderr_path and self.stderr_path.is_file():
            lines = [ln.strip() for ln in self.stderr_path.read_text(errors="replace").splitlines() if ln.strip()]
            tail = lines[-1][:300] if lines else ""
        return _failed(request, _how_it_ended(subprocess.CompletedProcess([], proc.returncode, "", tail)))

    def _exchange(self, line: str) -> tuple[str, bool]:
        """Send one line to the started worker and read its status line; (status, timed out). The worker is
        killed when it does not answer within the device's timeout ("" is then the status)."""
        import threading

        proc = self.proc
        assert proc is not None
        timer = threading.Timer(self.device.timeout_s, proc.kill)
        timer.start()
        try:
            proc.stdin.write(f"{line}\n")
            proc.stdin.flush()
            status = proc.stdout.readline().strip()
        except (BrokenPipeError, OSError):
            status = ""
        finally:
            timed_out = not timer.is_alive() and proc.poll() is not None
            timer.cancel()
        return status, timed_out

    def release(self) -> None:
        """Drop the model the worker holds; the process stays for the next job (``SessionPool``). A worker
        that does not answer ``ok`` in time is ended."""
        from .worker import RELEASE

        if self.proc is None or self.proc.poll() is not None:
            return
        if self._exchange(RELEASE)[0] != "ok":
            self.close()

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class SessionPool:
    """Started workers of one device, lent to one job at a time and kept, without their model, for the next.

    Why: under QEMU a new worker spends 1.3-1.9 s of emulation starting Python and importing numpy and the
    runtime (measured under QEMU 10, cortex-a53) before its first request; an emulated check runs an
    accuracy job per artifact. At most ``keep`` idle workers stay (each holds ~100 MB of imported
    runtime); ``close`` ends them."""

    def __init__(self, device: Device, keep: int = 1):
        import threading

        self.device, self.keep = device, int(keep)
        self._idle: list[WorkerSession] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def lend(self) -> Iterator[WorkerSession]:
        with self._lock:
            session = self._idle.pop() if self._idle else WorkerSession(self.device)
        try:
            yield session
        finally:
            session.release()
            with self._lock:
                keep = session.proc is not None and not self._closed and len(self._idle) < self.keep
                if keep:
                    self._idle.append(session)
            if not keep:
                session.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for session in idle:
            session.close()


def _failed(request: dict[str, Any], error: str) -> dict[str, Any]:
    return {"protocol": request.get("protocol"), "status": "failed", "error": error,
            "runtime": {"name": request.get("runtime"), "version": None, "settings": {}},
            "threads": request.get("threads")}


def _how_it_ended(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        try:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            how = f"killed by signal {-proc.returncode}"
    else:
        how = f"exited with status {proc.returncode}"
    lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
    tail = f": {lines[-1][:300]}" if lines else ""
    return f"worker {how} without a result{tail}"


def names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_DEVICES)


BOARD_PREFIX = "ssh:"                      # ``ssh://USER@HOST[:PORT]`` or ``ssh:ALIAS``: a real board
_BOARDS: dict[str, dict[str, Any]] = {}     # boards named in a build config: name -> address and options
_BOARD_INSTANCES: dict[str, "Device"] = {}  # one instance per board (it remembers its probe and provisioning)


def get(name: str) -> Device:
    """The device called ``name``: a registered class, a board named by :func:`define_board`, or a board
    address (``ssh://...``/``ssh:ALIAS``). A board is one instance per name: its connection state is shared."""
    _load_plugins()
    if name in _DEVICES:
        return _DEVICES[name]()
    if name in _BOARDS or name.startswith(BOARD_PREFIX):
        if name not in _BOARD_INSTANCES:
            from .board import BoardDevice

            options = _BOARDS.get(name, {"address": name})
            _BOARD_INSTANCES[name] = BoardDevice(name, **options)
        return _BOARD_INSTANCES[name]
    raise UsageError(f"unknown device {name!r}; available: {', '.join(names())}, or a board: "
                     f"ssh://USER@HOST[:PORT] or ssh:ALIAS")


def define_board(name: str, address: str, **options: Any) -> None:
    """Name a board (a build config's ``[devices.boards.NAME]``); checks the address at once (UsageError)."""
    from .board import SshTarget

    _load_plugins()
    if name in _DEVICES or name.startswith(BOARD_PREFIX):
        raise UsageError(f"board name {name!r} is taken by a device or looks like an address; choose another")
    SshTarget.parse(address, options.get("ssh_config"))
    entry = {"address": address, **options}
    if _BOARDS.get(name) != entry:
        _BOARD_INSTANCES.pop(name, None)
    _BOARDS[name] = entry


def is_board(name: str) -> bool:
    return name in _BOARDS or name.startswith(BOARD_PREFIX)


_PLUGIN_MODULES = ("arm",)  # device modules registered on first use (they may import more than the stdlib)


def _load_plugins() -> None:
    import importlib

    for module in _PLUGIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")


class Desktop(Device):
    """This machine, natively, with the Python that runs edgebert."""

    name = "desktop"
    description = f"this machine, native {platform.machine()} (not emulated)"
    runtimes = {"onnx": "onnxruntime", "tflite": "litert"}
    cpuinfo: ClassVar[Path] = host_cpu.CPUINFO  # where the host CPU is read (tests point it at a file)

    def info(self) -> dict[str, Any]:
        """With the CPU model and its kernel ISA flags: a build's cached latency/accuracy records are
        reused only on the same CPU (``pipeline/runner.py`` fingerprints this), not on another CI runner."""
        return {**super().info(), "cpu": host_cpu.read(self.cpuinfo).fingerprint()}

    def python_command(self) -> list[str]:
        return [sys.executable]
