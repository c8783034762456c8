"""A real ARM board over SSH as a device: the same worker and runtimes as the desktop, run on the board.

``check --device ssh://USER@HOST[:PORT]`` (or ``ssh:ALIAS``, or a board named in a build config)
gives a :class:`BoardDevice`. On first use it probes the board (``probe.py``) and provisions it
(``provision.py``); each worker run then pushes the artifact (once, by content) and the inputs,
runs ``worker.py`` there with the board's Python, and reads the result back as JSON (data only) and
the logits as ``.npz``. Around each run it reads the clock governors, current frequencies and thermal
zones (plain ``cat`` of sysfs; parsed as data).

Failures stay local: an unreachable board or a failed provisioning is remembered and fails every
record of that board with the same one line, at once; a connection dropped during one run fails that
record (the next run connects again). Nothing is written into the artifact directory here.

A board whose Python runs under an emulator (the test board: ``qemu-aarch64`` behind ``python3``)
declares it with ``EDGEBERT_BOARD_EMULATED`` in the board's environment (or ``emulated = true`` in the
build config): every record then says ``emulated: true`` and its wall time goes to
``emulated_wall_ms``, never to ``latency_ms``.
"""

from __future__ import annotations

import json
import shlex
import threading
import uuid
from pathlib import Path
from typing import Any

from ...fsutil import sha256_file, write_json_atomic
from ..registry import Desktop, Device, _failed
from . import probe, provision
from .transport import BoardError, SshTarget, Transport

STATE_SNIPPET = (
    "s() { for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq "
    "/sys/class/thermal/thermal_zone[0-9]*/temp; do "
    "[ -r \"$f\" ] && echo \"state $1 $f $(cat \"$f\" 2>/dev/null)\"; done; }; "
)
RESULT_MARK = "===edgebert-result==="
EMULATED_NOTE = ("wall time on a board that declared itself emulated (EDGEBERT_BOARD_EMULATED or emulated = true): "
                 "NOT device latency")


class BoardDevice(Device):
    """One board (instances are per address or per configured name; see ``registry.get``)."""

    emulated = False   # not one of edgebert's emulated CPUs: its jobs run like the desktop's
    is_board = True
    timeout_s = 3600.0
    emulated_note = EMULATED_NOTE

    def __init__(self, name: str, address: str, *, ssh_config: str | None = None, python: str | None = None,
                 threads: int | str | None = None, emulated: bool = False):
        self.name = name
        self.address = address
        self.target = SshTarget.parse(address, ssh_config)
        self.transport = Transport(self.target)
        self.python = python  # None: $EDGEBERT_BOARD_PYTHON on the board, else python3 on its PATH
        self.declared_emulated = bool(emulated)
        self.threads_setting = threads  # the board's own: an int, or "big" (one per big core); None: check's
        self.description = f"real ARM board over SSH ({address}; provisioned on first use)"
        self.runtimes = dict(Desktop.runtimes)
        self.run_id = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._probe: dict[str, Any] | None = None
        self._env: dict[str, Any] | None = None
        self._error: str | None = None
        self._models: dict[str, str] = {}       # local sha256 -> remote path
        self._pushed: dict[tuple, str] = {}     # (local path, size, mtime) -> remote path
        self._progress = None

    # --- what the board is ------------------------------------------------------------------
    def probe(self) -> dict[str, Any]:
        """The board's architecture, cores, Python, glibc (cached); BoardError when it cannot be used."""
        with self._lock:
            if self._probe is None and self._error is None:
                try:
                    self._probe = self._run_probe()
                except BoardError as exc:
                    self._error = str(exc)
            if self._error:
                raise BoardError(self._error)
            return self._probe

    def _run_probe(self) -> dict[str, Any]:
        proc = self.transport.run(f"{self._python_cmd()} -", "probing the board", stdin=probe.PROBE_SCRIPT.encode(),
                                  check=False, timeout=300)
        if proc.returncode in (126, 127) and b"{" not in proc.stdout:
            raise BoardError(f"the board has no usable {self.python_name} (the shell said: "
                             f"{proc.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:] or ['nothing']}"
                             f"[0][:200]): install Python 3 (e.g. `sudo apt install python3`) or set "
                             f"`python` for this board to its path")
        info = probe.parse(proc.stdout)
        problem = probe.check_supported(info, self.python or "python3")
        if problem:
            raise BoardError(problem)
        return info

    def connect(self) -> dict[str, Any]:
        """Probe and provision once (thread-safe); BoardError with the remembered line afterwards."""
        info = self.probe()
        with self._lock:
            if self._env is None and self._error is None:
                try:
                    self._env = provision.ensure(self.transport, info, self._python_cmd(), self._progress)
                except BoardError as exc:
                    self._error = f"provisioning failed: {exc}"
            if self._error:
                raise BoardError(self._error)
            return self._env

    @property
    def is_emulated(self) -> bool:
        """Declared emulated (config, or the board's EDGEBERT_BOARD_EMULATED, known after the probe)."""
        return self.declared_emulated or bool((self._probe or {}).get("emulated"))

    def wall_time_is_latency(self) -> bool:
        return not self.is_emulated

    def _python_cmd(self) -> str:
        return shlex.quote(self.python) if self.python else f'"${{{probe.PYTHON_ENV}:-python3}}"'

    @property
    def python_name(self) -> str:
        return self.python or f"python3 (or ${probe.PYTHON_ENV})"

    def identity(self) -> dict[str, Any]:
        """What the board is, for build fingerprints (CPU, kernel, Python, glibc, runtime versions)."""
        try:
            info = self.probe()
        except BoardError as exc:
            return {"address": self.address, "unreachable": str(exc)}
        return {"address": self.address, "machine": info.get("machine"), "kernel": info.get("kernel"),
                "os": info.get("os"), "python": info.get("python"), "libc": info.get("libc"),
                "cores": [(c["core"], c["count"]) for c in info.get("clusters", [])],
                "runtimes": provision.wheel_key(info)["versions"], "emulated": self.is_emulated}

    def own_threads(self) -> int | None:
        """The board's own thread count (config ``threads``; ``"big"``: one per core of its biggest cluster,
        1 when it cannot be probed); None when the check's setting applies."""
        if self.threads_setting is None:
            return None
        if self.threads_setting == "big":
            return self.big_core_threads()
        return int(self.threads_setting)

    def big_core_threads(self) -> int:
        """One thread per core of the biggest cluster (``check --threads big``); 1 when it cannot be probed."""
        try:
            return int(self.probe()["clusters"][-1]["count"])
        except (BoardError, IndexError, KeyError):
            return 1

    def has_dotprod(self) -> bool:
        """Whether the board's cores report the dot product (``asimddp``); False when it cannot be probed."""
        try:
            return "asimddp" in self.probe().get("features", [])
        except BoardError:
            return False

    def twin(self) -> str | None:
        """The emulated catalog CPU of the board's biggest core, if edgebert emulates it."""
        from ..arm.catalog import CPU_MODELS

        cores = [c["core"] for c in (self._probe or {}).get("clusters", [])]
        names = {m.name for m in CPU_MODELS}
        return next((c for c in reversed(cores) if c in names), None)

    def board_info(self) -> dict[str, Any]:
        info, env = self._probe or {}, self._env or {}
        out = {"address": self.address, "host": info.get("hostname"), "machine": info.get("machine"),
               "os": info.get("os"), "kernel": info.get("kernel"), "python": info.get("python"),
               "glibc": (info.get("libc") or [None, None])[1], "cores": info.get("clusters"),
               "nproc": info.get("nproc"), "runtimes": env.get("versions"), "board_dir": info.get("board_dir"),
               "env_hash": env.get("env_hash"), "emulated": self.is_emulated, "twin": self.twin()}
        if self.is_emulated:
            out["emulated_by"] = info.get("emulated") or "declared in the build config"
        if self._error:
            out["error"] = self._error
        return out

    def info(self) -> dict[str, Any]:
        return {**super().info(), "emulated": self.is_emulated, "board": self.board_info()}

    def record_fields(self, result: dict[str, Any] | None) -> dict[str, Any]:
        """Fields every record of this board carries: the board, whether it is emulated, the clock state."""
        board = self.board_info()
        if result and result.get("board_state"):
            board["run"] = result["board_state"]
        return {"board": board, "emulated": self.is_emulated}

    # --- running the worker -----------------------------------------------------------------
    def run_worker(self, request: dict[str, Any], request_path: Path) -> dict[str, Any]:
        """Run one request on the board; never raises (a failed result carries one line)."""
        request_path = Path(request_path)
        request_path.write_text(json.dumps(request, indent=1), encoding="utf-8")
        Path(request["result"]).unlink(missing_ok=True)
        try:
            env = self.connect()
            result = self._run(request, env, request_path.name)
        except BoardError as exc:
            return _failed(request, f"board {self.address}: {exc}")
        write_json_atomic(request["result"], result)
        return result

    def _run(self, request: dict[str, Any], env: dict[str, Any], request_name: str) -> dict[str, Any]:
        run_dir = f"{env['root']}/runs/{self.run_id}"
        model = self._push_model(Path(request["model"]), env, run_dir)
        inputs = self._push_file(Path(request["inputs"]), run_dir)
        stem = Path(request["result"]).name
        remote = {**request, "model": model, "inputs": inputs,
                  "outputs": f"{run_dir}/{Path(request['outputs']).name}", "result": f"{run_dir}/{stem}"}
        req = f"{run_dir}/{request_name}"
        q = shlex.quote
        threads = int(request.get("threads") or 1)
        command = (
            f"{STATE_SNIPPET} cat > {q(req)} && rm -f {q(remote['result'])} {q(remote['outputs'])} && s before; "
            f"OMP_NUM_THREADS={threads} PYTHONPATH={q(env['site'])} PYTHONNOUSERSITE=1 ORT_DISABLE_TELEMETRY=1 "
            f"{self._python_cmd()} {q(env['worker'] + '/worker.py')} {q(req)} </dev/null 2>{q(req + '.stderr')}; "
            f"echo \"worker-exit $?\"; s after; echo {RESULT_MARK}; cat {q(remote['result'])} 2>/dev/null; "
            f"echo; echo {RESULT_MARK}; tail -n 3 {q(req + '.stderr')} 2>/dev/null"
        )
        proc = self.transport.run(command, "running the worker on the board", stdin=json.dumps(remote).encode(),
                                  timeout=self.timeout_s, check=False)
        text = proc.stdout.decode("utf-8", "replace")
        head, _, rest = text.partition(RESULT_MARK)
        body, _, stderr_tail = rest.partition(RESULT_MARK)
        exit_line = [ln for ln in head.splitlines() if ln.startswith("worker-exit ")]
        state = board_state([ln for ln in head.splitlines() if ln.startswith("state ")])
        try:
            result = json.loads(body.strip()) if body.strip() else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            code = exit_line[-1].split()[-1] if exit_line else "?"
            tail = [ln.strip() for ln in stderr_tail.splitlines() if ln.strip()]
            how = f"the worker exited with status {code} without a result" + (f": {tail[-1][:300]}" if tail else "")
            raise BoardError(how)
        result = {k: result[k] for k in result if isinstance(k, str)}
        if state:
            result["board_state"] = state
        if result.get("status") == "ok":
            self._pull(remote["outputs"], Path(request["outputs"]))
        return result

    def _pull(self, remote: str, local: Path) -> None:
        data = self.transport.read(remote, "reading the logits back from the board")
        tmp = local.with_name(local.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(local)

    def _push_file(self, local: Path, run_dir: str) -> str:
        st = local.stat()
        key = (str(local), st.st_size, st.st_mtime_ns)
        if key not in self._pushed:
            self.transport.run(f"mkdir -p {shlex.quote(run_dir)}", "preparing the run directory")
            self.transport.push([local], run_dir, f"pushing {local.name} to the board")
            self._pushed[key] = f"{run_dir}/{local.name}"
        return self._pushed[key]

    def _push_model(self, local: Path, env: dict[str, Any], run_dir: str) -> str:
        """The artifact on the board, under ``models/SHA256.EXT`` (pushed once per content)."""
        sha = sha256_file(local)
        if sha in self._models:
            return self._models[sha]
        final = f"{env['root']}/models/{sha}{local.suffix}"
        q = shlex.quote
        have = self.transport.run(f"if [ -f {q(final)} ]; then echo have; fi; mkdir -p {q(run_dir)}",
                                  "looking for the artifact on the board").stdout.decode().split()
        if "have" not in have:
            staged = self._push_file(local, run_dir)
            self.transport.run(f"mv {q(staged)} {q(final)}", "storing the artifact on the board")
            self._pushed = {k: v for k, v in self._pushed.items() if v != staged}
        self._models[sha] = final
        return final

    def close(self) -> None:
        """Remove this run's directory on the board (artifacts and runtimes stay for the next run) and forget
        what this check learnt: the next check (e.g. the next model of a build) probes and verifies again,
        so a board that came back, or changed, is seen as it is now."""
        if self._env is not None:
            try:
                self.transport.run(f"rm -rf {shlex.quote(self._env['root'] + '/runs/' + self.run_id)}",
                                   "cleaning up on the board", timeout=60, check=False)
            except BoardError:
                pass
        with self._lock:
            self._probe = self._env = self._error = None
            self._models.clear()
            self._pushed.clear()
            self.run_id = uuid.uuid4().hex[:12]


def board_state(lines: list[str]) -> dict[str, Any]:
    """Governors, frequencies (MHz) and temperatures (°C) before/after a run, with notes; from ``state`` lines."""
    raw: dict[str, dict[str, dict[str, str]]] = {"before": {}, "after": {}}
    for line in lines:
        parts = line.split(maxsplit=3)
        if len(parts) != 4 or parts[1] not in raw:
            continue
        _, when, path, value = parts
        raw[when][path] = value.strip()
    if not raw["before"] and not raw["after"]:
        return {"note": "the board exposes no cpufreq or thermal state (sysfs): clock and temperature unknown"}

    def pick(when: str, name: str) -> dict[str, str]:
        return {p.split("/")[5]: v for p, v in raw[when].items() if p.endswith("/" + name) and "/cpu/cpu" in p}

    def mhz(values: dict[str, str]) -> dict[str, int]:
        return {k: int(v) // 1000 for k, v in values.items() if v.isdigit()}

    def temps(when: str) -> dict[str, float]:
        return {p.split("/")[4]: round(int(v) / 1000, 1) for p, v in raw[when].items()
                if p.endswith("/temp") and v.lstrip("-").isdigit()}

    governors = sorted(set(pick("before", "scaling_governor").values()))
    out: dict[str, Any] = {"governors": governors,
                           "freq_mhz_before": mhz(pick("before", "scaling_cur_freq")),
                           "freq_mhz_after": mhz(pick("after", "scaling_cur_freq")),
                           "max_mhz": mhz(pick("before", "cpuinfo_max_freq")),
                           "thermal_c_before": temps("before"), "thermal_c_after": temps("after")}
    notes = []
    if governors and governors != ["performance"]:
        notes.append(f"clock governor {'/'.join(governors)}, not performance: latency may include frequency "
                     f"ramp-up (set `performance` for stable numbers)")
    if not governors:
        notes.append("no cpufreq governor exposed: clock policy unknown")
    throttled = [c for c, f in out["freq_mhz_after"].items()
                 if out["max_mhz"].get(c) and f < 0.9 * out["max_mhz"][c] and governors == ["performance"]]
    if throttled:
        notes.append(f"cores {', '.join(throttled)} ran below 90% of their maximum clock after the run under the "
                     f"performance governor: throttled")
    hot = [z for z, t in out["thermal_c_after"].items() if t >= 80]
    if hot:
        notes.append(f"thermal zones {', '.join(hot)} at 80 °C or more after the run: likely throttled")
    out["notes"] = notes
    return out
