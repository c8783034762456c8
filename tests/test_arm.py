"""Emulated ARM devices: the catalog, the worker's inference markers, failures, and real runs under QEMU.

The real runs (``arm_env`` fixture) need the emulated-ARM environment: the fixture runs
``edgebert devices setup`` itself when it is missing (Debian packages and PyPI wheels, ~30 s and
~400 MB on a fresh machine, into the edgebert cache).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgebert import devices
from edgebert.check import CheckSettings, check
from edgebert.cli import main
from edgebert.devices import arm, worker
from edgebert.devices.arm import environment as arm_environment, setup as arm_setup
from edgebert.check.runner import prepare
from edgebert.check.screening import ScreeningSettings
from edgebert.manifest import Manifest
from edgebert.report import markdown
from support import FAST, make_artifact_dir, run_cli, save_tiny_hf_dir, tiny_build_toml

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
        assert dev.counting_expected()  # the counting QEMU built by `devices setup` has every catalog model
        assert dev.runtimes == devices.get("desktop").runtimes  # the same runtimes, the same worker
        assert dev.info()["cpu_model"]["features"] == dev.cpu.features
    assert "i8mm" in devices.get("cortex-a710").cpu.features
    assert "Raspberry Pi 3" in devices.get("cortex-a53").description
    assert "Graviton2" in devices.get("neoverse-n1").description


def test_running_an_arm_device_never_imports_the_installer():
    """The catalog, environment and device modules do not need ``devices setup``'s code (no import cycle)."""
    code = ("import sys; from edgebert import devices; d = devices.get('cortex-a76'); d.python_command(); d.worker_env();"
            "print(sorted(m for m in sys.modules if m.startswith('edgebert.devices.arm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert eval(out.stdout.strip().splitlines()[-1]) == [
        "edgebert.devices.arm", "edgebert.devices.arm.catalog", "edgebert.devices.arm.device",
        "edgebert.devices.arm.environment"]


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
    """A marker syscall number is harmless without the plugin (ENOSYS): the same logits as without it."""
    from test_devices import _request

    texts = ["the film was good", "dull", "not bad at all , very funny"]
    logits = {}
    for mark in (None, arm_environment.MARKER_SYSCALL):
        d = tmp_path / str(mark)
        d.mkdir()
        req = _request(d, tiny, texts, mark_syscall=mark)
        assert req["mark_syscall"] == mark
        result = devices.get("desktop").run_worker(req, d / "request.json")
        assert result["status"] == "ok", result["error"]
        with np.load(req["outputs"]) as z:
            logits[mark] = z["logits"]
    np.testing.assert_array_equal(logits[None], logits[arm_environment.MARKER_SYSCALL])
    assert logits[None].shape == (3, 2)


def test_read_counts(tmp_path):
    f = tmp_path / "counts.txt"
    f.write_text("0 1500\n1 1400\n2 1400\ntotal 99999\n")
    assert arm_environment.read_counts(f) == [(0, 1500), (1, 1400), (2, 1400)]
    f.write_text("0 1500 dotprod=500 i8mm=0 sve=0 fp_fma=100 simd_other=300 scalar=600 bogus=7\ntotal 9\n")
    assert arm_environment.read_class_counts(f) == [(0, 1500, {"dotprod": 500, "i8mm": 0, "sve": 0, "fp_fma": 100,
                                                          "simd_other": 300, "scalar": 600})]
    fields = arm.class_fields(arm_environment.read_class_counts(f)[0][2], 1500)
    assert fields["class_shares"]["dotprod"] == pytest.approx(1 / 3, abs=1e-4)
    assert fields["classes"]["scalar"] == 600 and arm.class_fields({}, 1500) == {}


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
    assert report["devices"]["desktop"]["role"] == "drift-reference"
    assert any("drift reference" in n for n in report["dataset"]["notes"])
    recs = {(r["device"], r["artifact"]): r for r in report["records"]}
    ref = recs[("desktop", "model.onnx")]
    assert ref["status"] == "ok" and ref["role"] == "drift-reference" and ref["latency_ms"] is None
    crashed = recs[("cortex-a53", "model.onnx")]
    assert crashed["status"] == "failed" and "worker killed by SIGSEGV" in crashed["error"]
    assert crashed["latency_ms"] is None and crashed["accuracy"] is None

    shutil.rmtree(tmp_path / "cache" / "arm" / "qemu")  # the emulator is missing
    report = check(d, CheckSettings(devices=("cortex-a76",), limit=6, **FAST))
    missing = [r for r in report["records"] if r["device"] == "cortex-a76"]
    assert len(missing) == 2
    assert all(r["status"] == "failed" and "edgebert devices setup" in r["error"] for r in missing)
    text = markdown.render(report)
    assert "## cortex-a76" in text and "**failed**" in text
    assert "not measured (drift reference)" in text.split("## cortex-a76")[0]


def test_default_limit_for_emulated_devices(tmp_path, tiny, monkeypatch):
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "empty"))
    report = check(d, CheckSettings(devices=("desktop", "cortex-a53"), **FAST))
    assert report["dataset"]["limit"] == 1000 and report["dataset"]["n"] == 1000
    assert any("limit 1000" in n for n in report["dataset"]["notes"])


def test_a_count_missing_where_the_cpu_model_has_one_fails_the_record():
    from edgebert.check.emulated import finish_emulated

    def rec(ins):
        return {"status": "ok", "error": None, "instructions": ins}

    for cpu in ("cortex-a53", "cortex-a76"):  # the counting QEMU has these models: a count is required
        for ins in ({"status": "failed", "error": "plugin crashed"}, {"status": "unavailable", "error": "no plugin"},
                    None):
            r = rec(ins)
            finish_emulated(r, devices.get(cpu))
            assert r["status"] == "failed" and r["error"].startswith("instruction count"), (cpu, ins, r)
        r = rec({"status": "ok", "per_inference": 10})
        finish_emulated(r, devices.get(cpu))
        assert r["status"] == "ok"


def test_counts_are_carried_over_only_where_the_same_kernels_must_run(tmp_path, tiny, monkeypatch):
    """``count_sharing``: an fp32 ONNX graph, one thread, cores alike in SVE/SME, the same counting QEMU."""
    from edgebert.check import count_sharing
    from edgebert.devices.arm.environment import ArmEnv

    monkeypatch.setattr(ArmEnv, "counting_qemu", lambda self, cpu: "qemu10" if cpu == "cortex-a55" else "qemu72")
    d = make_artifact_dir(tmp_path / "art", tiny)
    manifest = Manifest.load(d)
    a53, a55, a76, a710 = (devices.get(n) for n in ("cortex-a53", "cortex-a55", "cortex-a76", "cortex-a710"))

    def source(name, device, before, threads=1):
        return count_sharing.count_source(manifest.artifacts[name], manifest.artifact_path(name), device, before,
                                          threads)

    assert source("model.onnx", a76, [a53]) is a53
    assert source("model.onnx", a76, []) is None                     # nothing counted before it
    assert source("model.onnx", a76, [a53], threads=2) is None       # other threads' work in the count
    assert source("model.int8-dynamic.onnx", a76, [a53]) is None     # int8: dot product on the A76 only
    assert source("model.onnx", a710, [a53]) is None                 # SVE2: MLAS has SVE kernels
    assert source("model.onnx", a55, [a53]) is None                  # counted by another QEMU
    assert count_sharing.float_graph(d / "model.onnx")
    assert not count_sharing.float_graph(d / "model.int8-dynamic.onnx")  # the graph, not only the manifest
    tflite = {**manifest.artifacts["model.onnx"], "format": "tflite"}  # XNNPACK picks kernels per core
    assert count_sharing.count_source(tflite, d / "model.onnx", a76, [a53], 1) is None


def test_a_job_waits_only_for_a_result_a_submitted_job_will_share(tmp_path, tiny):
    plan = prepare(make_artifact_dir(tmp_path / "art", tiny), CheckSettings(devices=("desktop",), limit=4, **FAST))
    try:
        assert plan.shared_result(("count", "x"), timeout=0.01) is None  # no provider submitted: count yourself
        plan.expect(("count", "y"))
        assert plan.shared_result(("count", "y"), timeout=0.01) is None  # provider still running: gives up in time
        plan.share(("count", "y"), {"status": "ok"})
        plan.share(("count", "y"), {"status": "later"})  # once
        assert plan.shared_result(("count", "y"), timeout=0.01) == {"status": "ok"}
    finally:
        plan.close()


def test_a_counting_job_takes_the_part_its_early_count_made(tmp_path, tiny):
    """The check's counting job takes the early count's part and job seconds (``emulated.early_counts``);
    it counts itself when that count failed, and ignores it when the artifact's bytes changed since."""
    from concurrent.futures import Future

    from edgebert.check import emulated
    from edgebert.check.plan import SECONDS_SPENT_EARLIER, Job
    from edgebert.check.runner import run_jobs

    plan = prepare(make_artifact_dir(tmp_path / "art", tiny), CheckSettings(devices=("desktop",), limit=4, **FAST))
    try:
        ran = []

        def count_here():
            ran.append(1)
            return {"instructions": {"status": "ok", "per_inference": 7}}, None

        job = Job(plan, ("desktop", "model.onnx"), count_here, "instructions", provides=("count", "desktop", "model.onnx"))
        sha = plan.manifest.artifacts["model.onnx"]["sha256"]

        def early(part, seconds):
            future = Future()
            future.set_result((part, seconds))
            return future

        plan.early_counts = {job.key: (sha, early({"instructions": {"status": "ok", "per_inference": 5}}, 12.5))}
        taken = emulated._taking_early_count(job)
        assert taken.waits_for is not None  # scheduled after the jobs that still emulate
        run_jobs([taken])
        record = plan.records[job.key]
        assert record["instructions"]["per_inference"] == 5 and not ran
        assert record["job_seconds"]["instructions"] == 12.5 and SECONDS_SPENT_EARLIER not in record
        assert plan.shared_result(job.provides, timeout=0.01) is None  # a waiter here counts for itself

        plan.early_counts = {job.key: (sha, early({"instructions": {"status": "failed", "error": "x"}}, 3.0))}
        part, _ = emulated._taking_early_count(job).run()
        assert part["instructions"]["per_inference"] == 7 and ran == [1]  # failed early: counted again
        plan.early_counts = {job.key: ("0" * 64, early({"instructions": {"status": "ok"}}, 1.0))}
        assert emulated._taking_early_count(job) is job  # other bytes than were counted: its own job
    finally:
        plan.close()


def test_report_shows_emulated_columns():
    def rec(device, artifact, precision, insns, drift, status="ok", emulation=None):
        return {"artifact": artifact, "format": "onnx", "precision": precision, "device": device,
                "status": status, "error": None, "reference": "model.onnx", "accuracy": 0.8,
                "accuracy_ci95": [0.7, 0.9], "accuracy_method": "margin-screened" if emulation else "measured",
                "n_samples": 500 if emulation else 1000,
                "agreement": 1.0, "agreement_ci95": [0.996, 1.0], "max_abs_logit_diff_vs_fp32": 0.0,
                "emulated": device != "desktop",
                "size_bytes": 4_000_000 if precision == "fp32" else 1_000_000, "threads": 1,
                "latency_ms": None if device != "desktop" else {"p50": 2.0, "p90": 2.5},
                "drift_vs_desktop": drift, "emulated_wall": {"ms_per_example": 900.0}, "instructions": insns,
                "emulation": emulation}
    emulation = {"method": "screened", "n": 500, "n_emulated": 61, "n_probe": 32, "n_screened": 29,
                 "n_carried_over": 439, "max_drift_emulated": 0.21, "bound": {"rounds": 2, "assumption": "ASSUMED"},
                 "probe_flips": {"k": 0, "n": 32, "upper95": 0.0893}}
    report = {"devices": {"desktop": {"emulated": False}, "cortex-a53": {"emulated": True, "description": "a53"}},
              "instructions_definition": "guest instructions", "records": [
                  rec("desktop", "model.onnx", "fp32", None, None),
                  rec("cortex-a53", "model.onnx", "fp32", {"status": "ok", "per_inference": 40_000_000, "spread": 2e-5},
                      {"max_abs_logit_diff": 1e-6, "prediction_flips": 0, "n": 500, "n_emulated": 4,
                       "flip_rate_upper95": 0.006}, emulation=emulation),
                  rec("cortex-a53", "model.int8-dynamic.onnx", "int8-dynamic",
                      {"status": "unavailable", "error": "no plugin"},
                      {"max_abs_logit_diff": 0.01, "prediction_flips": 3, "n": 500, "n_emulated": 61,
                       "flip_rate_upper95": 0.0174}, emulation=emulation)]}
    text = markdown.render(report)
    a53 = text.split("## cortex-a53")[1]
    assert "Instructions / inference (M)" in a53 and "| 40.00 ±0.002% |" in a53 and "not device latency" in a53
    assert "unavailable" in a53 and "instruction count unavailable: no plugin" in a53
    assert "| 3/500 (≤ 1.74%) |" in a53 and "| 61 of 500 |" in a53  # flips with their bound, what was emulated
    assert "80.00%ˢ [70.0, 90.0] n=500" in a53 and "ASSUMED" in a53 and "439 carried over" in a53
    assert "80.00% [70.0, 90.0] n=1000" in text.split("## cortex-a53")[0]
    assert "Instructions / inference" not in text.split("## cortex-a53")[0]  # desktop keeps latency
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    assert len(rows) == 3 and not any(re.search(r"(?<!≤ )\b\d+\.\d\d%(?!ˢ? \[)", r) for r in rows)  # no bare rate


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


def _count_request(work: Path, model: Path, runtime: str, seq_len: int, warmup=1, runs=2) -> dict:
    lat = np.zeros((1, seq_len), np.int64)
    lat[0, :9] = [2, 10, 11, 12, 13, 14, 15, 16, 3]
    empty = np.zeros((0, seq_len), np.int64)
    np.savez(work / "in.npz", input_ids=empty, attention_mask=empty, latency_input_ids=lat,
             latency_attention_mask=(lat != 0).astype(np.int64))
    return worker.build_request(runtime=runtime, model=str(model), threads=1, inputs=str(work / "in.npz"),
                                outputs=str(work / "o.npz"), result=str(work / "r.json"), warmup=warmup, runs=runs)


def test_real_check_on_a53_and_a76(tmp_path, tiny, arm_env):
    d = make_artifact_dir(tmp_path / "art", tiny)
    report = check(d, CheckSettings(devices=("cortex-a53", "cortex-a76"), limit=40, **FAST,
                                    emulated=ScreeningSettings(probe=12, probe_fp32=3)))

    recs = {(r["device"], r["artifact"]): r for r in report["records"]}
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs.values()), \
        [r["error"] for r in recs.values()]
    desktop = recs[("desktop", "model.onnx")]
    counts = {}
    for cpu in ("cortex-a53", "cortex-a76"):
        fp32, int8 = recs[(cpu, "model.onnx")], recs[(cpu, "model.int8-dynamic.onnx")]
        assert fp32["drift_vs_desktop"]["max_abs_logit_diff"] < 1e-4
        assert fp32["n_samples"] == 40 and fp32["emulation"]["n_probe"] == 3
        assert fp32["accuracy_method"] == "margin-screened" and fp32["accuracy"] == desktop["accuracy"]
        assert int8["emulation"]["n_emulated"] >= 12 and int8["emulation"]["n_probe"] == 12
        assert fp32["platform"]["machine"] == "aarch64" and "CPU part" in fp32["platform"]["cpu"]
        assert fp32["latency_ms"] is None  # wall time is not latency
        for rec in (fp32, int8):
            ins = rec["instructions"]
            assert ins["status"] == "ok", ins
            # a tiny model's inference is ~1.5 M instructions, so the ~10 k of Python/allocator jitter per
            # call shows (built-in models: 2e-5); the spread is stated in every record
            runs = 1 if rec is fp32 else 2  # fp32 inferences are the costly ones to emulate: one counted run
            assert ins["per_inference"] > 100_000 and len(ins["counts"]) == runs
            assert (ins["spread"] is None) if runs == 1 else ins["spread"] < 0.02
        counts[cpu] = int8["instructions"]["per_inference"]
    assert counts["cortex-a53"] != counts["cortex-a76"]  # dotprod changes ORT's int8 kernels
    # kernel-path evidence: the classes add up to the count; int8 GEMMs ran SDOT/UDOT on the A76, none on
    # the A53 (no dot product there); fp32 GEMMs ran vector FMLA on both
    for cpu in ("cortex-a53", "cortex-a76"):
        for art in ("model.onnx", "model.int8-dynamic.onnx"):
            ins = recs[(cpu, art)]["instructions"]
            assert sum(ins["classes"].values()) == ins["per_inference"], ins
            assert abs(sum(ins["class_shares"].values()) - 1) < 1e-3
        assert recs[(cpu, "model.onnx")]["instructions"]["classes"]["fp_fma"] > 0
    assert recs[("cortex-a76", "model.int8-dynamic.onnx")]["instructions"]["classes"]["dotprod"] > 1000
    assert recs[("cortex-a53", "model.int8-dynamic.onnx")]["instructions"]["classes"]["dotprod"] == 0
    # the fp32 ONNX count ran once: the A76 carries the A53's over (the same MLAS kernels: check/count_sharing.py),
    # says so, and costs it with its own cycle model; the int8 one (dot product on the A76 only) is never carried
    a53_fp32, a76_fp32 = recs[("cortex-a53", "model.onnx")], recs[("cortex-a76", "model.onnx")]
    assert a53_fp32["emulated_wall_ms"]["p50"] > 0 and "carried_from" not in a53_fp32["instructions"]
    assert a76_fp32["instructions"]["carried_from"] == "cortex-a53" and "emulated_wall_ms" not in a76_fp32
    assert a76_fp32["instructions"]["per_inference"] == a53_fp32["instructions"]["per_inference"]
    assert a76_fp32["estimated_latency"]["blocks_from"] == "cortex-a53"
    assert a76_fp32["estimated_latency"]["core_model"] != a53_fp32["estimated_latency"]["core_model"]
    assert a76_fp32["estimated_latency"]["ms"] != a53_fp32["estimated_latency"]["ms"]
    assert "carried_from" not in recs[("cortex-a76", "model.int8-dynamic.onnx")]["instructions"]
    assert a76_fp32["job_seconds"]["instructions"] < a53_fp32["job_seconds"]["instructions"]
    # ... and that is what the A76 counts itself: the same vector FMA (the kernels), totals within 2% (scalar
    # code such as glibc's string functions, chosen per CPU; 0.004% on the built-in models)
    own_dir = tmp_path / "a76-own"
    own_dir.mkdir()
    own = devices.get("cortex-a76").count_instructions(
        _count_request(own_dir, d / "model.onnx", "onnxruntime", FAST["seq_len"], warmup=1, runs=1), own_dir)
    assert own["status"] == "ok", own
    for cls in ("fp_fma", "dotprod", "i8mm", "sve"):
        assert own["classes"][cls] == a53_fp32["instructions"]["classes"][cls], cls
    assert abs(own["per_inference"] / a53_fp32["instructions"]["per_inference"] - 1) < 0.02
    text = markdown.render(report)
    assert "## cortex-a53" in text and "Drift vs desktop" in text
    a53_text, a76_text = text.split("## cortex-a76")[0].split("## cortex-a53")[1], text.split("## cortex-a76")[1]
    assert "Kernel path" in a76_text and "dot product (SDOT/UDOT)" in a76_text
    assert "dot product (SDOT/UDOT)" not in a53_text  # a 0% class is not listed
    assert "ᶜ `model.onnx`: instructions carried over from cortex-a53" in a76_text and "ᶜ" not in a53_text

    # the counts repeat across processes: a second count of the same artifact agrees within 0.1%
    dev = devices.get("cortex-a53")
    work = tmp_path / "again"
    work.mkdir()
    req = _count_request(work, d / "model.int8-dynamic.onnx", "onnxruntime", FAST["seq_len"], warmup=1, runs=3)
    first, second = dev.count_instructions(req, work), dev.count_instructions(req, work)
    assert first["status"] == second["status"] == "ok", (first, second)
    assert abs(first["per_inference"] - second["per_inference"]) <= 1e-3 * first["per_inference"]
    assert all(abs(a - b) <= 1e-3 * a for a, b in zip(first["counts"], second["counts"]))


def test_real_counts_on_a55_and_a710_show_their_int8_kernels(tmp_path, tiny, arm_env):
    """The counting QEMU built by `devices setup` has every catalog model: the A55 runs dot products,
    the A710 int8 matrix multiplies (i8mm), for the same int8 artifact."""
    d = make_artifact_dir(tmp_path / "art", tiny)
    classes = {}
    for cpu in ("cortex-a55", "cortex-a710"):
        work = tmp_path / cpu
        work.mkdir()
        req = _count_request(work, d / "model.int8-dynamic.onnx", "onnxruntime", FAST["seq_len"], warmup=1, runs=1)
        ins = devices.get(cpu).count_instructions(req, work)
        assert ins["status"] == "ok", ins
        classes[cpu] = ins["classes"]
    assert classes["cortex-a55"]["dotprod"] > 1000 and classes["cortex-a55"]["i8mm"] == 0
    assert classes["cortex-a710"]["i8mm"] > 1000


def test_real_flips_are_counted_against_the_desktop(tmp_path, tiny, arm_env):
    """A desktop reference whose predictions are all inverted: every emulated example flips."""
    from edgebert.check.emulated import emulated_jobs
    from edgebert.check.runner import finish, native_jobs, prepare, run_jobs
    from edgebert.pipeline.config import GatesConfig
    from edgebert.pipeline.gates import evaluate

    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("int8",))
    plan = prepare(d, CheckSettings(devices=("cortex-a76",), limit=20, **FAST,
                                    emulated=ScreeningSettings(probe=6)))
    run_jobs(native_jobs(plan, "accuracy"))
    key = ("desktop", "model.int8-dynamic.onnx")
    plan.logits[key] = -plan.logits[key]  # the reference now predicts the other class everywhere
    run_jobs(emulated_jobs(plan), 2)
    report = finish(plan)
    rec = next(r for r in report["records"] if r["device"] == "cortex-a76")
    em = rec["emulation"]
    assert em["flips"]["k"] == em["n_emulated"] == rec["drift_vs_desktop"]["prediction_flips"] > 0
    assert rec["drift_vs_desktop"]["flip_rate_upper95"] >= em["flips"]["k"] / em["n"]
    gates = evaluate("tiny", report, GatesConfig(max_flip_rate=0.05))
    assert [g["passed"] for g in gates if g["gate"] == "max_flip_rate"] == [False]


def test_real_tflite_under_qemu_with_instruction_count(tmp_path, arm_env):
    """A TFLite artifact (two signatures) checked on cortex-a76: accuracy runs on seq32, counts repeat."""
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    out = tmp_path / "out"
    assert run_cli("export", src, "-o", out, "--format", "tflite", "--seq-len", "64").exit_code == 0
    assert run_cli("quantize", out, "--mode", "dynamic").exit_code == 0
    report = check(out, CheckSettings(devices=("cortex-a76",), limit=16, seq_len=64, threads=1, warmup=1, runs=2,
                                      emulated=ScreeningSettings(probe=8, probe_fp32=2)))
    recs = {(r["device"], r["artifact"]): r for r in report["records"]}
    assert all(r["status"] == "ok" for r in recs.values()), [r["error"] for r in recs.values()]
    for name in ("model.tflite", "model.int8-dynamic.tflite"):
        rec = recs[("cortex-a76", name)]
        assert rec["runtime"]["name"] == "litert" and rec["platform"]["machine"] == "aarch64"
        ins = rec["instructions"]
        assert ins["status"] == "ok" and len(ins["counts"]) == (1 if name == "model.tflite" else 2), ins
        ran = rec["emulation"]["passes"][0]["rows_by_input_length"]
        assert set(ran) <= {"32", "64"} and ran.get("32", 0) > 0  # short texts ran on the seq32 signature
    assert recs[("cortex-a76", "model.tflite")]["drift_vs_desktop"]["max_abs_logit_diff"] < 1e-4
    fp32, int8 = (recs[("cortex-a76", n)]["instructions"]["per_inference"]
                  for n in ("model.tflite", "model.int8-dynamic.tflite"))
    assert int8 != fp32


def test_real_build_with_an_emulated_device(tmp_path, arm_env):
    """`edgebert build` end to end on a tiny model with cortex-a76: gated, reported, and a gate that fails."""
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    config = tmp_path / "edgebert.toml"
    base = tiny_build_toml(src, ["desktop", "cortex-a76"], limit=40, emulated_limit=30, probe=8, probe_fp32=2,
                           runs=3) + "[gates]\nmax_flip_rate = 0.5\n"
    config.write_text(base + "[gates.max_instructions]\ncortex-a76 = 1e9\n[gates.max_estimated_ms]\ncortex-a76 = 1e4\n")
    result = run_cli("build", config, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    # the fp32 counts started right after export, beside quantization; the check took them with their time
    assert "counting instructions of model.onnx in the background" in result.output
    report = json.loads((tmp_path / "out" / summary["models"][0]["name"] / "report.json").read_text())
    for rec in report["records"]:
        if rec["device"] == "cortex-a76":
            assert rec["instructions"]["status"] == "ok" and rec["job_seconds"]["instructions"] > 0.5, rec["artifact"]
    gates = summary["models"][0]["gates"]
    names = {(g["gate"], g["device"]) for g in gates}
    assert {("max_instructions", "cortex-a76"), ("max_flip_rate", "cortex-a76"), ("max_estimated_ms", "cortex-a76")} <= names
    assert all(g["passed"] for g in gates)
    estimated = [g for g in gates if g["gate"] == "max_estimated_ms"]
    assert len(estimated) == 2 and all(0 < g["value"] < 1e4 and g["unit"] == "estimated ms" for g in estimated)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## cortex-a76" in md and " of 30 |" in md and "ˢ" in md
    assert "estimated ms (cycle model, neoverse-n1 as cortex-a76, 2.4 GHz)" in md
    # the same build with an instruction limit below the measured count: exit 1, naming device and limit
    config.write_text(base + "[gates.max_instructions]\ncortex-a76 = 1000\n[gates.max_estimated_ms]\ncortex-a76 = 0.001\n")
    result = run_cli("build", config, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "on cortex-a76: max_instructions FAILED" in result.output and "0.0 M instructions" in result.output
    assert "on cortex-a76: max_estimated_ms FAILED: estimated ~" in result.output  # never "measured"
