"""benchmarks/bench_build.py: a real `edgebert build` in a subprocess (a tiny local model, desktop only),
timed, with its phase table, total wall, CPU, peak RSS and the machine printed, on its own cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support import save_tiny_hf_dir

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_build.py"

CONFIG = """\
[build]
models = [{{name = "tiny", source = "{src}"}}]
formats = ["onnx"]
precisions = ["fp32", "int8-dynamic"]
seq_len = 32

[evaluation]
limit = 40
runs = 3
warmup = 1

[devices]
names = ["desktop"]

[gates]
min_accuracy = 0.1
"""


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)


def test_bench_build_times_a_real_build_on_its_own_cache(tmp_path):
    src = save_tiny_hf_dir(tmp_path / "tiny", "distilbert")
    config = tmp_path / "edgebert.toml"
    config.write_text(CONFIG.format(src=src), encoding="utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = bench("--config", str(config), "--out", str(out), "--cache", str(cache))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    # the build ran, on this cache, into this output directory
    assert (out / "summary.json").is_file() and (out / "tiny" / "model.int8-dynamic.onnx").is_file()
    assert f"- cache: {cache.resolve()} (fresh: empty cache (kept))" in text
    assert f"EDGEBERT_CACHE={cache.resolve()} python -m edgebert build {config.resolve()} -o {out.resolve()}" in text
    assert "exit code: 0 (passed:" in text
    # the machine and the date the figures belong to
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    if model:
        assert model.group(1).strip() in text
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    # the phase table from summary.json: every row of the build's own table, then the whole build
    assert "| Phase | Model | What | Wall s | CPU s | Reused | Note |" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "Phase" not in line]
    phases = [row.split(" | ")[0].lstrip("| ") for row in table]
    assert phases[0] == "devices setup" and phases[-1] == "whole build"
    assert {"export", "quantize", "check", "desktop accuracy", "desktop latency (alone)"} <= set(phases)
    wall = float(re.search(r"^- total wall: ([\d.]+) s \(the build's own summary: ([\d.]+) s\)", text, re.M).group(1))
    own = float(re.search(r"the build's own summary: ([\d.]+) s", text).group(1))
    assert 0 < own <= wall  # measured around the subprocess: the build's own time plus start-up
    assert float(re.search(r"^- CPU: ([\d.]+) s", text, re.M).group(1)) > 0
    assert 0.05 < float(re.search(r"^- peak RSS: ([\d.]+) GB", text, re.M).group(1)) < 64

    # a timing needs a fresh output directory: a used one is refused before anything runs
    again = bench("--config", str(config), "--out", str(out))
    assert again.returncode == 2 and "is not empty" in again.stderr
