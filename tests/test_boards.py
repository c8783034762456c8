"""Real ARM boards over SSH (``edgebert/devices/board/``), tested for real without a board.

A real OpenSSH server on 127.0.0.1 (``loopback_board.py``) stands in for the board; its Python is the
emulated-ARM environment's aarch64 Python under ``qemu-aarch64 -cpu cortex-a76`` (the probe reads the
emulated cpuinfo), the host's Python (an x86_64 board) or nothing. The board declares itself emulated
(EDGEBERT_BOARD_EMULATED), so its wall time must never appear as device latency.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgebert import devices
from edgebert.devices.board import probe, provision
from edgebert.devices.board.device import board_state
from edgebert.devices.board.transport import SshTarget
from edgebert.errors import UsageError
from loopback_board import LoopbackBoard, descendants, missing
from test_arm import arm_env  # noqa: F401  (the emulated-ARM environment: the board's Python)
from support import assert_clean_error, make_artifact_dir, no_temp_files, run_cli

QUICK = ("--limit", "6", "--seq-len", "32", "--warmup", "1", "--runs", "2")


# --- addresses, cores, clock state (no board needed) ------------------------------------------------
def test_board_addresses_parse_and_bad_ones_are_one_usage_line(art_fp32):
    t = SshTarget.parse("ssh://pi@192.168.1.20:2222")
    assert (t.user, t.host, t.port, t.destination) == ("pi", "192.168.1.20", 2222, "pi@192.168.1.20")
    assert SshTarget.parse("ssh:pi5").destination == "pi5" and SshTarget.parse("ssh://h").port is None
    opts = SshTarget.parse("ssh:pi5").options()
    assert "BatchMode=yes" in opts and any(o.startswith("ConnectTimeout=") for o in opts)
    assert not any("StrictHostKeyChecking" in o or "UserKnownHostsFile" in o for o in opts)  # user's policy
    for bad in ("ssh://pi@host:99999", "ssh://pi@host;rm -rf /", "ssh:", "ssh:-oProxyCommand=x"):
        with pytest.raises(UsageError):
            SshTarget.parse(bad)
    result = run_cli("check", art_fp32, "--device", "ssh:-oProxyCommand=touch")
    assert_clean_error(result, 2, "not a board address")


def test_part_numbers_name_cores_and_big_little_clusters_list_big_last():
    assert probe.core_name("0x41", "0xd0b") == "cortex-a76" and probe.core_name("0x41", "0xd03") == "cortex-a53"
    assert probe.core_name("0x41", "0xd0c") == "neoverse-n1" and probe.core_name("0x41", "0xd47") == "cortex-a710"
    assert probe.core_name("0x51", "0x802") == "implementer 0x51 part 0x802"
    # an RK3588 (4x A55 @1.8 GHz + 4x A76 @2.4 GHz), as its kernel lists it
    cpus = [{"processor": str(i), "CPU implementer": "0x41", "CPU part": "0xd05" if i < 4 else "0xd0b",
             "max_khz": "1800000" if i < 4 else "2400000"} for i in range(8)]
    cl = probe.clusters(cpus)
    assert [(c["core"], c["count"], c["max_mhz"]) for c in cl] == [("cortex-a55", 4, 1800), ("cortex-a76", 4, 2400)]


def test_unsupported_boards_get_one_line_saying_how_to_fix():
    ok = {"machine": "aarch64", "bits": 64, "implementation": "CPython", "python": "3.11.2", "libc": ["glibc", "2.36"]}
    assert probe.check_supported(ok, "python3") is None
    assert "32-bit ARM" in probe.check_supported({**ok, "machine": "armv7l"}, "python3")
    assert "not aarch64" in probe.check_supported({**ok, "machine": "x86_64"}, "python3")
    assert "glibc 2.27+" in probe.check_supported({**ok, "libc": ["glibc", "2.24"]}, "python3")
    assert "glibc" in probe.check_supported({**ok, "libc": ["", ""]}, "python3")  # musl: no manylinux wheels
    assert "3.10+" in probe.check_supported({**ok, "python": "3.7.3"}, "python3")
    assert provision.platforms(ok)[-1] == "manylinux_2_36_aarch64" and "manylinux_2_28_aarch64" in provision.platforms(ok)


def test_clock_state_notes_a_non_performance_governor_and_throttling():
    cpu = "/sys/devices/system/cpu/cpu{}/cpufreq/{}"
    lines = [f"state before {cpu.format(0, 'scaling_governor')} ondemand",
             f"state before {cpu.format(0, 'cpuinfo_max_freq')} 2400000",
             f"state after {cpu.format(0, 'scaling_cur_freq')} 1500000",
             "state before /sys/class/thermal/thermal_zone0/temp 51000",
             "state after /sys/class/thermal/thermal_zone0/temp 83500"]
    st = board_state(lines)
    assert st["governors"] == ["ondemand"] and st["freq_mhz_after"] == {"cpu0": 1500}
    assert st["thermal_c_before"] == {"thermal_zone0": 51.0} and st["thermal_c_after"] == {"thermal_zone0": 83.5}
    assert any("not performance" in n for n in st["notes"]) and any("80 °C" in n for n in st["notes"])
    perf = board_state([ln.replace("ondemand", "performance") for ln in lines])
    assert any("throttled" in n and "cpu0" in n for n in perf["notes"])
    assert "unknown" in board_state([])["note"]


def test_devices_list_says_how_to_name_a_board():
    result = run_cli("devices", "list")
    assert result.exit_code == 0 and "ssh://USER@HOST[:PORT]" in result.output and "ssh:ALIAS" in result.output


# --- a real sshd on 127.0.0.1 ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def sshd_tools():
    reason = missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def art(tmp_path_factory, tiny):
    return make_artifact_dir(tmp_path_factory.mktemp("board-art") / "art", tiny)


@pytest.fixture(scope="session")
def emulated_board(tmp_path_factory, sshd_tools, arm_env):
    with LoopbackBoard(tmp_path_factory.mktemp("board"), arm_env=arm_env) as board:
        yield board


def _records(directory: Path) -> dict[tuple[str, str], dict]:
    report = json.loads((directory / "report.json").read_text())
    return {(r["device"], r["artifact"]): r for r in report["records"]}


def _board_check(directory, board, *extra, device=None):
    import os

    old = os.environ.get("EDGEBERT_SSH_CONFIG")
    os.environ["EDGEBERT_SSH_CONFIG"] = str(board.ssh_config)
    try:
        return run_cli("check", directory, "--device", device or board.address, *QUICK, *extra)
    finally:
        if old is None:
            os.environ.pop("EDGEBERT_SSH_CONFIG")
        else:
            os.environ["EDGEBERT_SSH_CONFIG"] = old


def test_real_check_on_a_loopback_board_runs_the_whole_path(art, emulated_board):
    board = emulated_board
    result = _board_check(art, board)
    assert result.exit_code == 0, result.output
    recs = _records(art)
    desk_fp32 = recs[("desktop", "model.onnx")]
    assert desk_fp32["role"] == "drift-reference"  # added for the board's drift, not gated
    for name in ("model.onnx", "model.int8-dynamic.onnx"):
        rec = recs[(board.address, name)]
        assert rec["status"] == "ok", rec["error"]
        # CPU detection from inside the board's python: the emulated cpuinfo names the core
        assert rec["platform"]["machine"] == "aarch64" and "CPU part 0xd0b" in rec["platform"]["cpu"]
        b = rec["board"]
        assert b["machine"] == "aarch64" and {c["core"] for c in b["cores"]} == {"cortex-a76"}
        assert b["twin"] == "cortex-a76" and b["python"].startswith("3.11") and b["glibc"]
        assert b["runtimes"]["onnxruntime"] == rec["runtime"]["version"] and b["runtimes"]["numpy"]
        # declared emulated: every record says so and its wall time is never device latency
        assert rec["emulated"] is True and b["emulated"] is True and "cortex-a76" in b["emulated_by"]
        assert rec["latency_ms"] is None and rec["emulated_wall_ms"]["p50"] > 0
        assert "NOT device latency" in rec["emulated_wall_ms"]["note"] and rec["emulated_wall_ms"]["runs"] == 2
        assert rec["n_samples"] == 6 and rec["accuracy_ci95"] and rec["threads"] == 1
        assert rec["drift_vs_desktop"]["n"] == 6 and rec["peak_rss_mb"] > 0
        assert b["run"]  # the clock/thermal state, or a note that the board exposes none
    fp32 = recs[(board.address, "model.onnx")]
    assert fp32["drift_vs_desktop"]["max_abs_logit_diff"] < 1e-4 and fp32["accuracy"] == desk_fp32["accuracy"]
    assert recs[(board.address, "model.int8-dynamic.onnx")]["agreement"] is not None
    assert no_temp_files(art) and not list(art.glob("*.part"))
    # installed once into the board's edgebert directory, by content hash
    envs = list((board.board_dir / "envs").iterdir())
    assert len(envs) == 1 and (envs[0] / ".complete").is_file() and (envs[0] / "site" / "onnxruntime").is_dir()
    assert not list((board.board_dir / "runs").iterdir())  # the run's directory is removed at the end


def test_real_board_by_ssh_config_alias_reuses_the_installed_runtimes(tmp_path, tiny, emulated_board):
    board = emulated_board
    env_dir = next((board.board_dir / "envs").iterdir()) if (board.board_dir / "envs").is_dir() else None
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    result = _board_check(d, board, "--threads", "big", device="ssh:board")
    assert result.exit_code == 0, result.output
    recs = _records(d)
    rec = recs[("ssh:board", "model.onnx")]
    assert rec["status"] == "ok" and rec["board"]["cores"][0]["core"] == "cortex-a76"
    # --threads big: one per core of the board's biggest cluster (the desktop reference keeps its default)
    assert rec["threads"] == rec["board"]["cores"][-1]["count"] >= 1 and recs[("desktop", "model.onnx")]["threads"] == 1
    if env_dir is not None:  # the environment of the first test was reused, not reinstalled
        assert [p.name for p in (board.board_dir / "envs").iterdir()] == [env_dir.name]
        assert rec["board"]["env_hash"] == env_dir.name


def test_real_board_connection_killed_mid_run_fails_that_record_and_a_rerun_completes(tmp_path, tiny,
                                                                                    emulated_board):
    board = emulated_board
    d = make_artifact_dir(tmp_path / "art", tiny)
    killed: list[int] = []

    def kill_first_worker_session():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for session in board.sessions():
                procs = descendants(session)
                if any(b"worker.py" in _cmdline(p) for p in procs):
                    time.sleep(1.0)  # mid-run: the worker has started
                    for p in [session, *procs]:  # the session's sshd, then what it started
                        _kill(p)
                    killed.append(session)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_first_worker_session)
    killer.start()
    result = _board_check(d, board)
    killer.join()
    assert killed, "no worker session was seen to kill"
    assert result.exit_code == 1  # a failed record: exit 1 with its line
    recs = _records(d)
    failed = [r for r in recs.values() if r["status"] != "ok"]
    assert len(failed) == 1 and failed[0]["device"] == board.address, [r["error"] for r in failed]
    assert "connection to" in failed[0]["error"] and "lost" in failed[0]["error"]
    assert "\n" not in failed[0]["error"] and "Traceback" not in result.output
    assert all(r["status"] == "ok" for k, r in recs.items() if k[0] == "desktop")
    assert no_temp_files(d)
    again = _board_check(d, board)
    assert again.exit_code == 0, again.output
    assert all(r["status"] == "ok" for r in _records(d).values())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _kill(pid: int) -> None:
    import os

    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


# --- boards edgebert cannot use: one line each, the desktop still completes ---------------------------
@pytest.fixture(scope="session")
def art_fp32(tmp_path_factory, tiny):
    return make_artifact_dir(tmp_path_factory.mktemp("board-art1") / "art", tiny, artifacts=("fp32",))


@pytest.mark.parametrize("python, expected", [("host", "x86_64, not aarch64"), ("none", "no usable")])
def test_a_board_without_an_aarch64_python_fails_with_one_line(tmp_path, art_fp32, sshd_tools, python, expected):
    with LoopbackBoard(tmp_path / "board", python=python) as board:
        result = _board_check(art_fp32, board, "--device", "desktop")
    assert result.exit_code == 1 and "Traceback" not in result.output
    recs = _records(art_fp32)
    rec = recs[(board.address, "model.onnx")]
    assert rec["status"] == "failed" and expected in rec["error"] and "\n" not in rec["error"]
    assert recs[("desktop", "model.onnx")]["status"] == "ok" and recs[("desktop", "model.onnx")]["latency_ms"]
    assert not (board.board_dir / "envs").exists()  # nothing installed on a board that cannot run it


def test_a_board_with_a_full_disk_fails_with_one_line_and_keeps_nothing(tmp_path, art_fp32, sshd_tools, arm_env):
    import subprocess

    board = LoopbackBoard(tmp_path / "board", arm_env=arm_env)
    board.board_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(board.board_dir)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"a small tmpfs stands in for a full disk (needs root): {mounted.stderr}"
    try:
        with board:
            result = _board_check(art_fp32, board)
        rec = _records(art_fp32)[(board.address, "model.onnx")]
        assert result.exit_code == 1 and rec["status"] == "failed"
        assert "MB free in" in rec["error"] and "EDGEBERT_BOARD_DIR" in rec["error"] and "\n" not in rec["error"]
        assert not list((board.board_dir / "envs").iterdir()) and not list((board.board_dir / "incoming").iterdir())
    finally:
        subprocess.run(["umount", str(board.board_dir)], check=False)


@pytest.mark.parametrize("case, expected", [("port", "unreachable"), ("key", "authentication"),
                                            ("host_key", "not trusted")])
def test_unreachable_refused_and_untrusted_boards_fail_with_one_line(tmp_path, art_fp32, sshd_tools, case, expected):
    with LoopbackBoard(tmp_path / "board", python="host") as board:
        address = board.address
        if case == "port":
            with LoopbackBoard(tmp_path / "closed", python="host") as other:
                closed = other.port
            address = f"ssh://{board.user}@127.0.0.1:{closed}"  # nothing listens there any more
        elif case == "key":
            board.write_client_config("stranger")  # a key the board does not accept
        else:
            (board.root / "known_hosts").write_text("")  # a host key nobody vouched for: never accepted
        start = time.time()
        result = _board_check(art_fp32, board, device=address)
    assert result.exit_code == 1 and "Traceback" not in result.output
    rec = _records(art_fp32)[(address, "model.onnx")]
    assert rec["status"] == "failed" and expected in rec["error"] and "\n" not in rec["error"], rec["error"]
    assert time.time() - start < 60


# --- boards in a build config -----------------------------------------------------------------------
def test_a_board_in_a_build_config_is_checked_and_bad_board_tables_are_one_line(tmp_path):
    from edgebert.pipeline.config import parse

    cfg = parse('[devices]\nnames = ["desktop", "pi5", "ssh://pi@10.0.0.7"]\n'
                '[devices.boards.pi5]\naddress = "ssh://pi@10.0.0.5:2222"\npython = "/usr/bin/python3.11"\n'
                'threads = 2\n')
    assert cfg.devices.names == ("desktop", "pi5", "ssh://pi@10.0.0.7")
    assert cfg.devices.boards[0].address == "ssh://pi@10.0.0.5:2222"
    dev = devices.get("pi5")
    assert dev.is_board and dev.python == "/usr/bin/python3.11" and dev.target.port == 2222
    assert devices.get("pi5") is dev  # one instance per board: its probe and provisioning are shared
    assert dev.own_threads() == 2
    for text, match in (
            ('[devices.boards.pi5]\naddress = "http://x"\n', "not a board address"),
            ('[devices.boards.pi5]\nadress = "ssh:pi5"\n', "unknown key"),
            ('[devices.boards.desktop]\naddress = "ssh:x"\n', "taken"),
            ('[devices]\nnames = ["pi9"]\n', "unknown device 'pi9'"),
            ('[devices.boards.pi5]\naddress = "ssh:pi5"\nemulated = "yes"\n', "true or false"),
            ('[devices.boards.pi5]\naddress = "ssh:pi5"\nthreads = "all"\n', "one per big core")):
        with pytest.raises(UsageError, match=match):
            parse(text)


def test_real_build_with_a_board_shows_it_next_to_its_emulated_twin_and_reuses_on_rerun(tmp_path, emulated_board):
    from support import save_tiny_hf_dir, tiny_build_toml

    board = emulated_board
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    config = tmp_path / "edgebert.toml"
    config.write_text(tiny_build_toml(src, ["desktop", "cortex-a76", "loop"], limit=6, emulated_limit=6, probe=2,
                                      probe_fp32=1, runs=2)
                      + f'[devices.boards.loop]\naddress = "{board.address}"\nssh_config = "{board.ssh_config}"\n')
    result = run_cli("build", config, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Boards next to their emulated twins" in md
    twin_rows = [ln for ln in md.splitlines() if ln.startswith("| loop | cortex-a76 |")]
    assert len(twin_rows) == 2 and all("emulated: not latency" in ln for ln in twin_rows), md
    assert "Declared emulated" in md and "cortex-a76×" in md
    model_dir = next(p for p in (tmp_path / "out").iterdir() if (p / "manifest.json").is_file())
    recs = _records(model_dir)
    assert recs[("loop", "model.onnx")]["board"]["twin"] == "cortex-a76"
    fingerprint = json.loads((model_dir / "manifest.json").read_text())["build"]["check"]["inputs"]["devices"]
    assert fingerprint["loop"]["cores"] == [["cortex-a76", 2]] or fingerprint["loop"]["cores"][0][0] == "cortex-a76"
    assert fingerprint["loop"]["runtimes"]["onnxruntime"] and fingerprint["loop"]["kernel"]
    assert [p.name for p in (tmp_path / "out").rglob(".*")] == [".edgebert-build.lock"]  # no temp files
    assert not list((tmp_path / "out").rglob("*.part"))
    again = run_cli("build", config, "-o", tmp_path / "out")
    assert again.exit_code == 0 and "check: reused" in again.output, again.output


def test_the_example_board_config_parses_and_names_its_board():
    from edgebert.pipeline.config import load

    cfg = load(Path(__file__).parents[1] / "examples" / "edgebert-board.toml")
    assert "pi5" in cfg.devices.names and cfg.devices.boards[0].address == "ssh:pi5"
    assert devices.get("pi5").is_board and not devices.get("pi5").declared_emulated


def test_report_pairs_each_board_record_with_its_emulated_twin_and_shows_real_latency():
    from edgebert.report import markdown
    from edgebert.report.tables import twin_pairs

    def rec(device, artifact, **extra):
        return {"artifact": artifact, "format": "onnx", "precision": "int8-dynamic", "device": device,
                "status": "ok", "error": None, "reference": None, "accuracy": 0.8, "accuracy_ci95": [0.7, 0.9],
                "n_samples": 100, "accuracy_method": "measured", "threads": 1, "size_bytes": 1_000_000,
                "runtime": {"name": "onnxruntime", "version": "1.32.0"}, "latency_ms": None, **extra}

    board = {"address": "ssh:pi5", "machine": "aarch64", "twin": "cortex-a76", "emulated": False,
             "cores": [{"core": "cortex-a55", "count": 4}, {"core": "cortex-a76", "count": 4, "max_mhz": 2400}],
             "python": "3.11.2", "glibc": "2.36", "run": {"notes": ["clock governor ondemand, not performance"]}}
    estimate = {"kind": "estimate", "status": "ok", "ms": 30.0, "seq_len": 128, "error_band_pct": 50.0,
                "label": "estimated ms (cycle model, neoverse-n1 as cortex-a76, 2.4 GHz)"}
    records = [rec("cortex-a76", "m.onnx", emulated=True, instructions={"status": "ok", "per_inference": 2.5e8},
                   drift_vs_desktop={"max_abs_logit_diff": 0.02, "prediction_flips": 1, "n": 100},
                   estimated_latency=estimate),
               rec("pi5", "m.onnx", board=board, emulated=False,
                   latency_ms={"p50": 41.5, "p90": 44.0, "seq_len": 128},
                   drift_vs_desktop={"max_abs_logit_diff": 0.03, "prediction_flips": 2, "n": 100,
                                     "flip_rate_upper95": 0.06}),
               rec("pi5", "other.onnx", board=board, emulated=False)]
    pairs = twin_pairs(records)
    assert [(b["artifact"], t and t["device"]) for b, t in pairs] == [("m.onnx", "cortex-a76"), ("other.onnx", None)]
    report = {"records": records, "devices": {"cortex-a76": {"emulated": True}, "pi5": {"board": board}}}
    md = markdown.render(report)
    row = next(ln for ln in md.splitlines() if ln.startswith("| pi5 | cortex-a76 | `m.onnx`"))
    assert "41.50 / 44.00 (1)" in row and "250.00" in row and "0.03, 2/100" in row and "0.02, 1/100" in row
    # the twin's estimate next to the board's measured p50: (30 - 41.5) / 41.5 = -27.7%, inside its ±50% band
    assert "| ~30 | -27.7% (within ±50%) |" in row
    assert "cortex-a55×4 + cortex-a76×4 @ 2400 MHz" in md and "Clock: clock governor ondemand" in md
    assert "not checked" in next(ln for ln in md.splitlines() if ln.startswith("| pi5 | cortex-a76 | `other.onnx`"))
    from edgebert.report import html
    page = html.render(report)  # the same table in the HTML report, estimate and error included
    assert "<h2>Boards next to their emulated twins</h2>" in page
    assert "<td>~30</td><td>-27.7% (within ±50%)</td>" in page and "<td>41.50 / 44.00 (1)</td>" in page
