"""Emulated ARM devices: the catalog, the worker's inference markers, failures, and real runs under QEMU.

The real runs (``arm_env`` fixture) need the emulated-ARM environment: the fixture runs
``edgebert devices setup`` itself when it is missing (Debian packages and PyPI wheels, ~30 s and
~400 MB on a fresh machine, into the edgebert cache).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgebert import devices
from edgebert.check import CheckSettings, check
from edgebert.cli import main
from edgebert.devices import arm, setup as arm_setup, worker
from edgebert.report import markdown
from support import FAST, by_artifact, make_artifact_dir

REQUIRED = {"cortex-a53": False, "cortex-a55": True, "cortex-a72": False, "cortex-a76": True,
            "cortex-a710": True, "neoverse-n1": True}  # name -> has dotprod


# --- catalog ------------------------------------------------------------------------------------
def test_catalog_registers_every_cpu_model():
    names = devices.names()
    assert names[0] == "desktop" and set(REQUIRED) <= set(names)
    for name, dotprod in REQUIRED.items():
        dev = devices.get(name)
        assert isinstance(dev, arm.ArmDevice) and dev.emulated and dev.counts_instructions
        assert dev.cpu.dotprod is dotprod and dev.cpu.qemu_cpu == name
        assert dev.cpu.stands_for in dev.description and dev.cpu.isa in dev.description
        assert dev.default_threads == 1
        assert dev.runtimes == devices.get("desktop").runtimes  # the same runtimes, the same worker
        assert dev.info()["cpu_model"]["features"] == dev.cpu.features
    assert "i8mm" in devices.get("cortex-a710").cpu.features
    assert "Raspberry Pi 3" in devices.get("cortex-a53").description
    assert "Graviton2" in devices.get("neoverse-n1").description


def test_device_command_and_missing_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    dev = devices.get("cortex-a76")
    cmd = dev.python_command()
    root = tmp_path / "cache" / "arm"
    assert cmd == [str(root / "qemu/qemu-aarch64"), "-cpu", "cortex-a76", "-L", str(root / "sysroot"),
                   str(root / "sysroot/usr/bin/python3.11")]
    assert dev.worker_env()["PYTHONPATH"] == str(root / "site")
    assert "edgebert devices setup" in dev.unavailable_reason()
    counted = dev.count_instructions({"model": "/x.onnx"}, tmp_path)
    assert counted["status"] == "unavailable" and "edgebert devices setup" in counted["error"]


def test_devices_list_shows_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path))
    out = CliRunner().invoke(main, ["devices", "list"]).output
    for name in REQUIRED:
        assert f"\n{name} " in out
    assert "Raspberry Pi 5" in out and "not set up: run `edgebert devices setup`" in out


# --- worker protocol: inference markers ----------------------------------------------------------
def test_marker_requests_run_natively(tmp_path, tiny):
    """A marker syscall number is harmless without the plugin (ENOSYS): same logits as without it."""
    from test_devices import _request

    req = _request(tmp_path, tiny, ["the film was good", "dull"], mark_syscall=arm_setup.MARKER_SYSCALL)
    assert req["mark_syscall"] == arm_setup.MARKER_SYSCALL
    result = devices.get("desktop").run_worker(req, tmp_path / "request.json")
    assert result["status"] == "ok", result["error"]
    assert worker.build_request(runtime="r", model="m", threads=1, inputs="i", outputs="o",
                                result="r")["mark_syscall"] is None
    calls = []
    mark = worker.marker(None)
    assert mark(1, 0) is None and not calls


def test_read_counts(tmp_path):
    f = tmp_path / "counts.txt"
    f.write_text("0 1500\n1 1400\n2 1400\ntotal 99999\n")
    assert arm_setup.read_counts(f) == [(0, 1500), (1, 1400), (2, 1400)]


# --- failures -------------------------------------------------------------------------------------
def _fake_env(root: Path, qemu_script: str) -> None:
    """An environment that looks set up, whose 'QEMU' is a shell script."""
    for step in ("apt", "sysroot", "wheels", "qemu"):
        (root / "arm" / "stamps").mkdir(parents=True, exist_ok=True)
        (root / "arm" / "stamps" / f"{step}.json").write_text(json.dumps({"key": {}}))
    (root / "arm" / "sysroot/usr/bin").mkdir(parents=True)
    (root / "arm" / "sysroot/usr/bin/python3.11").write_text("")
    (root / "arm" / "site").mkdir()
    qemu = root / "arm" / "qemu" / "qemu-aarch64"
    qemu.parent.mkdir()
    qemu.write_text("#!/bin/sh\n" + qemu_script)
    qemu.chmod(0o755)


def test_missing_or_crashing_emulator_fails_that_device_only(tmp_path, tiny, monkeypatch):
    d = make_artifact_dir(tmp_path / "art", tiny)
    _fake_env(tmp_path / "cache", "kill -SEGV $$\n")
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    report = check(d, CheckSettings(devices=("cortex-a53",), limit=6, **FAST))

    assert list(report["devices"]) == ["desktop", "cortex-a53"]  # desktop added: the drift reference
    assert any("desktop added" in n for n in report["dataset"]["notes"])
    recs = {(r["device"], r["artifact"]): r for r in report["records"]}
    assert all(recs[("desktop", a)]["status"] == "ok" for a in ("model.onnx", "model.int8-dynamic.onnx"))
    crashed = recs[("cortex-a53", "model.onnx")]
    assert crashed["status"] == "failed" and crashed["error"] == "worker killed by SIGSEGV without a result"
    assert crashed["latency_ms"] is None and "instructions" not in crashed

    shutil.rmtree(tmp_path / "cache" / "arm" / "qemu")  # the emulator is missing
    report = check(d, CheckSettings(devices=("cortex-a76",), limit=6, **FAST))
    missing = by_artifact([r for r in report["records"] if r["device"] == "cortex-a76"] and
                          {"records": [r for r in report["records"] if r["device"] == "cortex-a76"]})
    assert all(r["status"] == "failed" and "edgebert devices setup" in r["error"] for r in missing.values())
    text = markdown.render(report)
    assert "## cortex-a76" in text and "**failed**" in text


def test_default_limit_for_emulated_devices(tmp_path, tiny, monkeypatch):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "empty"))
    report = check(d, CheckSettings(devices=("desktop", "cortex-a53"), **FAST))
    assert report["dataset"]["limit"] == 200 and report["dataset"]["n"] == 200
    assert any("limit 200" in n for n in report["dataset"]["notes"])


def test_report_shows_emulated_columns():
    def rec(device, artifact, precision, insns, drift, status="ok"):
        return {"artifact": artifact, "format": "onnx", "precision": precision, "device": device,
                "status": status, "error": None, "reference": "model.onnx", "accuracy": 0.8,
                "agreement": 1.0, "max_abs_logit_diff_vs_fp32": 0.0, "emulated": device != "desktop",
                "size_bytes": 4_000_000 if precision == "fp32" else 1_000_000, "threads": 1,
                "latency_ms": None if device != "desktop" else {"p50": 2.0, "p90": 2.5},
                "drift_vs_desktop": drift, "emulated_wall_ms": {"p50": 900.0},
                "instructions": insns}
    report = {"devices": {"desktop": {"emulated": False}, "cortex-a53": {"emulated": True, "description": "a53"}},
              "instructions_definition": "guest instructions", "records": [
                  rec("desktop", "model.onnx", "fp32", None, None),
                  rec("cortex-a53", "model.onnx", "fp32", {"status": "ok", "per_inference": 40_000_000},
                      {"max_abs_logit_diff": 1e-6, "prediction_flips": 0, "n": 10}),
                  rec("cortex-a53", "model.int8-dynamic.onnx", "int8-dynamic",
                      {"status": "unavailable", "error": "no plugin"},
                      {"max_abs_logit_diff": 0.01, "prediction_flips": 1, "n": 10})]}
    text = markdown.render(report)
    a53 = text.split("## cortex-a53")[1]
    assert "Instructions / inference (M)" in a53 and "| 40.00 |" in a53 and "not device latency" in a53
    assert "unavailable" in a53 and "instruction count unavailable: no plugin" in a53
    assert "| 1 |" in a53  # one prediction flip vs desktop
    assert "Instructions / inference" not in text.split("## cortex-a53")[0]  # desktop keeps latency


# --- real emulated runs ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def arm_env():
    """The emulated-ARM environment, built by `devices setup` when missing (CI: a fresh machine)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("emulated ARM devices are set up from Debian amd64 packages: Linux x86-64 only")
    for tool in ("apt-get", "dpkg-deb", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: `edgebert devices setup` needs apt-get, dpkg-deb and gcc")
    env = arm_setup.default_env()
    arm_setup.setup(env)  # idempotent: does nothing when every step's stamp is current
    assert env.missing() is None
    return env


def test_real_check_on_a53_and_a76(tmp_path, tiny, arm_env):
    d = make_artifact_dir(tmp_path / "art", tiny)
    report = check(d, CheckSettings(devices=("cortex-a53", "cortex-a76"), limit=24, **FAST))

    recs = {(r["device"], r["artifact"]): r for r in report["records"]}
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs.values()), \
        [r["error"] for r in recs.values()]
    desktop = recs[("desktop", "model.onnx")]
    counts = {}
    for cpu in ("cortex-a53", "cortex-a76"):
        fp32, int8 = recs[(cpu, "model.onnx")], recs[(cpu, "model.int8-dynamic.onnx")]
        assert fp32["drift_vs_desktop"]["max_abs_logit_diff"] < 1e-4
        assert fp32["drift_vs_desktop"]["n"] == 24 and fp32["accuracy"] == desktop["accuracy"]
        assert fp32["platform"]["machine"] == "aarch64"
        assert fp32["latency_ms"] is None and fp32["emulated_wall_ms"]["p50"] > 0  # wall time is not latency
        for rec in (fp32, int8):
            ins = rec["instructions"]
            assert ins["status"] == "ok", ins
            assert ins["per_inference"] > 100_000 and len(ins["counts"]) == 3 and ins["spread"] < 0.05
        counts[cpu] = int8["instructions"]["per_inference"]
    assert counts["cortex-a53"] != counts["cortex-a76"]  # dotprod changes ORT's int8 kernels
    text = markdown.render(report)
    assert "## cortex-a53" in text and "Drift vs desktop" in text

    # the counts repeat exactly from run to run
    dev = devices.get("cortex-a53")
    work = tmp_path / "again"
    work.mkdir()
    lat = np.zeros((1, FAST["seq_len"]), np.int64)
    lat[0, :9] = [2, 10, 11, 12, 13, 14, 15, 16, 3]
    empty = np.zeros((0, FAST["seq_len"]), np.int64)
    np.savez(work / "in.npz", input_ids=empty, attention_mask=empty, latency_input_ids=lat,
             latency_attention_mask=(lat != 0).astype(np.int64))
    req = worker.build_request(runtime="onnxruntime", model=str(d / "model.int8-dynamic.onnx"), threads=1,
                               inputs=str(work / "in.npz"), outputs=str(work / "o.npz"),
                               result=str(work / "r.json"), warmup=1, runs=2)
    first, second = dev.count_instructions(req, work), dev.count_instructions(req, work)
    assert first["status"] == second["status"] == "ok", (first, second)
    assert first["counts"] == second["counts"]
