"""Device registry and the measurement worker protocol, on a real tiny ONNX model."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebert import devices
from edgebert.cpu_clock import live_children
from edgebert.data.tokenize import encode
from edgebert.devices import host_cpu, runtimes, worker
from edgebert.errors import UsageError

from support import load_tokenizer, random_texts

SEQ = 24


def test_registry():
    assert "desktop" in devices.names()
    desktop = devices.get("desktop")
    assert desktop.name == "desktop" and desktop.emulated is False and desktop.description
    assert desktop.runtime_for("onnx") == "onnxruntime"
    assert desktop.runtime_for("tflite") == "litert"
    assert desktop.info()["runtimes"] == {"onnx": "onnxruntime", "tflite": "litert"}
    assert "onnxruntime" in runtimes.names() and runtimes.get("onnxruntime").formats == ("onnx",)
    with pytest.raises(UsageError, match="unknown device 'pixel'.*desktop"):
        devices.get("pixel")


def _request(tmp: Path, tiny, texts, model: Path | None = None, runtime="onnxruntime", **kw):
    enc = encode(load_tokenizer(tiny.tokenizer_dir), texts, SEQ, pad_to_max=True)
    lat = encode(load_tokenizer(tiny.tokenizer_dir), texts[:1], SEQ, pad_to_max=True)
    np.savez(tmp / "inputs.npz", input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
             latency_input_ids=lat["input_ids"], latency_attention_mask=lat["attention_mask"])
    opts = {"batch_size": 4, "warmup": 1, "runs": 3, **kw}
    return worker.build_request(runtime=runtime, model=str(model or tiny.fp32), threads=1,
                                inputs=str(tmp / "inputs.npz"), outputs=str(tmp / "out.npz"),
                                result=str(tmp / "result.json"), **opts)


def test_worker_round_trip_matches_torch(tmp_path, tiny):
    texts = random_texts(10, seed=1)
    req = _request(tmp_path, tiny, texts)
    result = devices.get("desktop").run_worker(req, tmp_path / "request.json")

    assert result["status"] == "ok", result["error"]
    assert result["protocol"] == worker.PROTOCOL_VERSION
    assert result["runtime"]["name"] == "onnxruntime" and result["runtime"]["version"]
    assert len(result["latency"]["samples_ms"]) == 3 and min(result["latency"]["samples_ms"]) > 0
    assert result["latency"]["seq_len"] == SEQ and result["latency"]["batch"] == 1
    assert result["accuracy_pass"] == {**result["accuracy_pass"], "n": 10, "batches": 3, "trimmed": True}
    assert set(result["rss_mb"]) == {"after_import", "after_load", "after_latency", "after_accuracy"}
    assert result["peak_rss_mb"] == result["rss_mb"]["after_latency"] > 0
    assert result["platform"]["machine"]
    with np.load(req["outputs"]) as z:
        logits = z["logits"]
    np.testing.assert_allclose(logits, tiny.torch_logits(texts, SEQ), atol=1e-4)

    # the same request through `python -m` gives the same logits
    again = {**req, "outputs": str(tmp_path / "out2.npz"), "result": str(tmp_path / "result2.json")}
    (tmp_path / "request2.json").write_text(json.dumps(again))
    proc = subprocess.run([sys.executable, "-m", "edgebert.devices.worker", str(tmp_path / "request2.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with np.load(again["outputs"]) as z:
        np.testing.assert_array_equal(z["logits"], logits)


def test_a_pooled_worker_serves_the_next_job_without_the_last_model(tmp_path, tiny):
    """``SessionPool``: a job's started worker is kept (released: no model) and lent to the next job."""
    texts = random_texts(4, seed=2)
    req = {**_request(tmp_path, tiny, texts), "warmup": 0, "runs": 0}
    pool = devices.SessionPool(devices.get("desktop"))
    with pool.lend() as session:
        first = session.run(req, tmp_path / "r1.json")
        again = session.run(req, tmp_path / "r1b.json")  # within one job the model stays loaded
        pid = session.proc.pid
    assert first["status"] == "ok" and again.get("reused_model") is True
    with np.load(req["outputs"]) as z:
        logits = z["logits"]
    with pool.lend() as session:
        assert session.proc is not None and session.proc.pid == pid  # the same process, started once
        second = session.run(req, tmp_path / "r2.json")
    assert second["status"] == "ok" and "reused_model" not in second  # released: loaded anew
    with np.load(req["outputs"]) as z:
        np.testing.assert_array_equal(z["logits"], logits)
    with pool.lend() as a, pool.lend() as b:  # two jobs at once: two workers
        assert a is session and b is not a
        b.run(req, tmp_path / "r3.json")
    assert a.proc is None and b.proc is not None  # one stays idle (``keep``), the other is ended
    proc = b.proc
    assert proc.pid in live_children()  # an idle worker stays alive (its CPU counted live: ``cpu_clock``)
    pool.close()
    assert proc.wait(timeout=30) == 0 and b.proc is None and proc.pid not in live_children()


def test_worker_imports_only_numpy_and_the_runtime(tmp_path, tiny):
    req = _request(tmp_path, tiny, random_texts(3))
    (tmp_path / "request.json").write_text(json.dumps(req))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import worker; rc = worker.main([sys.argv[2]]);"
        "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(devices.WORKER_FILE.parent), str(tmp_path / "request.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    third_party = set(eval(proc.stdout.strip().splitlines()[-1]))
    from edgebert.devices.board.provision import WORKER_MODULES  # the worker's own files (pushed to boards too)

    own = {name.removesuffix(".py") for name in WORKER_MODULES}
    assert own >= {"worker", "runtimes", "ort_session", "litert"}
    third_party -= own | {"__main__", "_distutils_hack"} | {m for m in third_party if "editable" in m}
    assert third_party == {"numpy", "onnxruntime"}


def test_worker_failures_are_one_line_results(tmp_path, tiny):
    desktop = devices.get("desktop")
    texts = random_texts(2)
    res = desktop.run_worker(_request(tmp_path, tiny, texts, runtime="tvm"), tmp_path / "r1.json")
    assert res["status"] == "failed" and "unknown runtime 'tvm'" in res["error"]

    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x08\x01garbage")
    res = desktop.run_worker(_request(tmp_path, tiny, texts, model=garbage), tmp_path / "r2.json")
    assert res["status"] == "failed" and res["error"].startswith("load failed") and "\n" not in res["error"]
    assert res["runtime"]["version"]  # the runtime was imported before the load failed
    assert not (tmp_path / "out.npz").exists()  # no logits from a failed run


def test_worker_that_dies_is_reported(tmp_path, tiny):
    class Crashing(devices.Device):  # no name: not registered
        runtimes = {"onnx": "onnxruntime"}

        def python_command(self):
            return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]

    res = Crashing().run_worker(_request(tmp_path, tiny, random_texts(2)), tmp_path / "r.json")
    assert res["status"] == "failed" and res["error"] == "worker killed by SIGKILL without a result"
    assert "" not in devices.names()


# --- one ONNX Runtime session factory, used by check, export and quantize validation -----------------
def test_every_onnx_runtime_session_comes_from_the_factory(tiny):
    """Export and quantize validation run the Runtime ``check`` measures with, with its session options."""
    import onnx
    import onnxruntime as ort

    from edgebert.devices import ort_session
    from edgebert.export.validate import runtime_runner
    from edgebert.quantize import validate as qvalidate

    edgebert_dir = Path(devices.__file__).parents[1]
    creators = sorted(str(p.relative_to(edgebert_dir)) for p in edgebert_dir.rglob("*.py")
                      if "InferenceSession(" in p.read_text(encoding="utf-8"))
    assert creators == ["devices/ort_session.py"]

    ids = np.array([[5, 17, 30, 9, 0, 0], [7, 8, 9, 10, 11, 12]], np.int64)  # the tiny vocabulary has 32 tokens
    mask = (ids != 0).astype(np.int64)
    from_path = runtimes.get("onnxruntime")(str(tiny.fp32), threads=2)
    from_bytes = runtimes.get("onnxruntime")(tiny.fp32.read_bytes(), threads=1)
    quantize_check = qvalidate.onnx_runner(onnx.load(str(tiny.fp32)))
    export_check = runtime_runner(from_bytes)
    expected = from_path.run(ids, mask)
    assert expected.shape == (2, 2) and expected.dtype == np.float32
    np.testing.assert_allclose(from_bytes.run(ids, mask), expected, atol=1e-5)
    np.testing.assert_array_equal(quantize_check(ids, mask), from_bytes.run(ids, mask))
    np.testing.assert_array_equal(export_check({"input_ids": ids, "attention_mask": mask}), from_bytes.run(ids, mask))
    for runtime, threads in ((from_path, 2), (from_bytes, 1), (quantize_check.__self__, 1)):
        so = runtime.session.get_session_options()
        assert so.intra_op_num_threads == threads and so.inter_op_num_threads == 1
        assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL and so.log_severity_level == 3
        assert runtime.settings() == {"providers": ["CPUExecutionProvider"], "intra_op_num_threads": threads,
                                      **ort_session.SETTINGS}


def test_fixed_shape_rows_are_fitted_one_way():
    """Rows are right-padded with [PAD]=0 (mask 0) or cut to a signature's length: runtime and export validation."""
    from edgebert.devices.litert import fit_length

    a = np.array([[1, 2, 3], [4, 5, 0]], np.int64)
    np.testing.assert_array_equal(fit_length(a, 5), [[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    np.testing.assert_array_equal(fit_length(a, 2), [[1, 2], [4, 5]])
    np.testing.assert_array_equal(fit_length(a, 3), a)


# --- the desktop's fingerprint follows the host CPU (issue 9 item 7) ------------------------------------
X86_CPUINFO = """processor\t: {i}
vendor_id\t: GenuineIntel
model name\t: {model}
cpu MHz\t\t: {mhz}
flags\t\t: fpu sse2 ht pni avx avx2 fma f16c{extra}
bogomips\t: {bogo}

"""


def _cpuinfo(path: Path, model="Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz", extra=" avx512f avx512_vnni",
             mhz=2793.4, bogo=5586.8) -> Path:
    path.write_text("".join(X86_CPUINFO.format(i=i, model=model, extra=extra, mhz=mhz + i, bogo=bogo)
                            for i in range(2)))
    return path


def _desktop_fingerprint(cpuinfo: Path) -> str:
    from edgebert.pipeline.fingerprint import digest

    desktop = devices.get("desktop")
    desktop.cpuinfo = cpuinfo
    return digest(desktop.info())


def test_desktop_fingerprint_changes_with_cpu_model_or_kernel_flags(tmp_path):
    """A build cache restored on another runner (other CPU model or ISA) must not reuse its latency."""
    from edgebert.pipeline.steps import _device_fingerprint

    base = _desktop_fingerprint(_cpuinfo(tmp_path / "base"))
    assert _desktop_fingerprint(_cpuinfo(tmp_path / "same")) == base
    # clock, bogomips and flags no kernel looks at vary between boots of the same CPU: same fingerprint
    assert _desktop_fingerprint(_cpuinfo(tmp_path / "reclocked", mhz=3500.0, bogo=7000.0,
                                         extra=" avx512f avx512_vnni constant_tsc")) == base
    assert _desktop_fingerprint(_cpuinfo(tmp_path / "epyc", model="AMD EPYC 7763 64-Core Processor")) != base
    no_vnni = _desktop_fingerprint(_cpuinfo(tmp_path / "novnni", extra=" avx512f"))
    no_avx512 = _desktop_fingerprint(_cpuinfo(tmp_path / "avx2", extra=""))
    assert len({base, no_vnni, no_avx512}) == 3
    desktop = devices.get("desktop")
    desktop.cpuinfo = tmp_path / "novnni"
    assert desktop.info()["cpu"] == {"machine": platform.machine(), "model": "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz",
                                     "isa": ["avx", "avx2", "avx512f", "f16c", "fma"]}
    # the build fingerprints exactly this record, read from this machine's /proc/cpuinfo
    real = _device_fingerprint(("desktop",))["desktop"]
    assert real == devices.get("desktop").info() and real["cpu"]["machine"] == platform.machine()
    assert real["cpu"] == host_cpu.read().fingerprint()


def test_host_cpu_reads_aarch64_and_missing_cpuinfo(tmp_path):
    """aarch64 has ``Features`` and CPU part ids instead of ``flags``/model name; big.LITTLE lists both cores."""
    arm = tmp_path / "arm"
    arm.write_text("".join(f"processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes crc32 asimdhp "
                           f"asimddp{' i8mm sve' if i else ''}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                           f"CPU variant\t: 0x{i}\nCPU part\t: {part}\nCPU revision\t: 0\n\n"
                           for i, part in enumerate(("0xd05", "0xd0b"))))
    cpu = host_cpu.read(arm, machine="aarch64")
    assert cpu.models == ("ARM implementer 0x41, part 0xd05, variant 0x0, revision 0",
                          "ARM implementer 0x41, part 0xd0b, variant 0x1, revision 0")
    assert cpu.kernel_isa == ("asimd", "asimddp", "asimdhp")  # the first processor's features
    missing = host_cpu.read(tmp_path / "absent", machine="x86_64")
    assert missing.flags == frozenset() and missing.fingerprint()["isa"] == []
    # reduce_range reads the same flags (quantize/host_isa.py keeps its behaviour)
    from edgebert.quantize.host_isa import cpu_flags, reduce_range_choice

    text = _cpuinfo(tmp_path / "x").read_text()
    assert cpu_flags(text) == set(host_cpu.parse(text).flags) and "avx512_vnni" in cpu_flags(text)
    assert reduce_range_choice("x86_64", cpu_flags(text))[0] is False
    assert reduce_range_choice("x86_64", cpu_flags(_cpuinfo(tmp_path / "y", extra="").read_text()))[0] is True
