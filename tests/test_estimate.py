"""Estimated latency (cycle model): the executed blocks the plugin records, llvm-mca's cycles, the ms.

Real parts: a tiny real model, run under the real counting QEMU with the real plugin, costed by the
real llvm-mca that `edgebert devices setup` unpacks (the ``arm_env`` fixture runs it when missing).
The assertions are the ones that go red when the estimator breaks: block counts ignored, the clock
applied twice, the 99% cut dropping hot blocks, the core model not mattering.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebert import devices
from edgebert.check import CheckSettings, check
from edgebert.check.estimate import estimate_emulated, label, to_ms
from edgebert.check.screening import ScreeningSettings
from edgebert.devices.estimate import HOT_CUT, Block, LlvmTools, Target, cycles, hot, read_blocks
from edgebert.report import html, markdown
from edgebert.report.tables import device_tables, estimate_vs_measured
from support import FAST, make_artifact_dir
from test_arm import _count_request, arm_env  # noqa: F401  (the session fixture that runs `devices setup`)


# --- bookkeeping (no tools) ------------------------------------------------------------------------
def test_blocks_merge_by_bytes_and_the_cut_keeps_the_hottest(tmp_path):
    f = tmp_path / "blocks.txt"
    f.write_text("b 1 1000 aa000000,bb000000\nx 0 1 5\n"
                 "b 2 2000 aa000000,bb000000\nx 0 2 7\n"          # the same code translated twice: merged
                 "b 3 3000 cc000000\nx 0 3 1000\nx 1 3 4\n"      # inference 1 is not inference 0
                 "b 4 4000 dd000000,dd000000,dd000000\nx 0 4 1\n"
                 "e 0 lost=0\ne 1 lost=2\n")
    rec = read_blocks(f, 0)
    assert [(b.insns, b.executions) for b in rec.blocks] == [
        (("cc000000",), 1000), (("aa000000", "bb000000"), 12), (("dd000000",) * 3, 1)]
    assert rec.instructions == 1000 + 24 + 3 and rec.lost == 0 and read_blocks(f, 1).lost == 2
    assert hot(rec.blocks, 0.97) == rec.blocks[:1]        # 1000 / 1027 = 97.4%
    assert hot(rec.blocks, 0.99) == rec.blocks[:2]        # the next hottest, never a colder one
    assert hot(rec.blocks, 1.0) == rec.blocks
    with pytest.raises(ValueError, match="no blocks recorded for marked inference 7"):
        read_blocks(f, 7)


def test_ms_is_cycles_over_the_clock_once_with_the_memory_floor():
    breakdown = {"cycles": 240_000_000}
    est = to_ms(breakdown, core_model="neoverse-n1", core="cortex-a76", clock_ghz=2.4, reference_device="Pi 5",
                error_band_pct=35.0, dram_gbps=9.0, bytes_streamed=9_000_000, seq_len=128)
    assert est["ms"] == pytest.approx(100.0) and est["bound"] == "compute"  # 240 M cycles at 2.4 GHz
    assert est["memory_floor_ms"] == pytest.approx(1.0) and est["kind"] == "estimate"
    assert est["label"] == label("neoverse-n1", "cortex-a76", 2.4) == \
        "estimated ms (cycle model, neoverse-n1 as cortex-a76, 2.4 GHz)"
    slow = to_ms(breakdown, core_model="neoverse-n1", core="cortex-a76", clock_ghz=1.2, reference_device="x",
                 error_band_pct=35.0, dram_gbps=9.0, bytes_streamed=None, seq_len=128)
    assert slow["ms"] == pytest.approx(200.0)  # half the clock, twice the time
    floor = to_ms({"cycles": 1000}, core_model="m", core="c", clock_ghz=2.0, reference_device="x",
                  error_band_pct=35.0, dram_gbps=2.0, bytes_streamed=20_000_000, seq_len=8)
    assert floor["ms"] == pytest.approx(10.0) and floor["bound"] == "memory"  # 20 MB at 2 GB/s


# --- real: QEMU + plugin + llvm-mca ------------------------------------------------------------------
def _counted(tmp_path: Path, tiny, cpu: str, seq_len: int) -> dict:
    work = tmp_path / f"{cpu}-{seq_len}"
    work.mkdir()
    d = make_artifact_dir(work / "art", tiny, artifacts=("int8",))
    req = _count_request(work, d / "model.int8-dynamic.onnx", "onnxruntime", seq_len, warmup=1, runs=1)
    counted = devices.get(cpu).count_instructions(req, work)
    assert counted["status"] == "ok", counted
    return counted


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny, arm_env):  # noqa: F811
    tmp = tmp_path_factory.mktemp("estimate")
    return {(cpu, n): _counted(tmp, tiny, cpu, n) for cpu in ("cortex-a76", "cortex-a53") for n in (16, 64)}


def test_the_plugin_records_every_executed_instruction(runs):
    for counted in runs.values():
        rec = read_blocks(Path(counted["blocks_file"]), counted["blocks_inference"])
        assert rec.lost == 0 and len(rec.blocks) > 50
        assert rec.instructions == counted["per_inference"]  # executions x block length adds up exactly


def test_real_estimate_exists_scales_with_length_and_core(runs):
    est = {k: estimate_emulated(devices.get(k[0]), c, k[1], 1_000_000) for k, c in runs.items()}
    for (cpu, n), e in est.items():
        assert e["status"] == "ok", e
        timing = devices.get(cpu).cpu.timing
        b = e["breakdown"]
        assert e["kind"] == "estimate" and e["ms"] > 0 and e["seq_len"] == n and e["threads"] == 1
        assert e["core_model"] == timing.mca_cpu and e["clock_ghz"] == timing.clock_ghz
        assert e["label"] == f"estimated ms (cycle model, {timing.mca_cpu} as {cpu}, {timing.clock_ghz:g} GHz)"
        assert e["error_band_pct"] == timing.error_band_pct and e["llvm_version"].startswith("19.")
        # the clock is applied once: ms = cycles / clock (compute-bound here: 1 MB is < 0.5 ms of DRAM)
        assert e["ms"] == pytest.approx(b["cycles"] / (timing.clock_ghz * 1e6), rel=1e-3)
        # block counts matter: no core retires more than 8 instructions per cycle, none takes 20 cycles each
        ins = runs[(cpu, n)]["per_inference"]
        assert ins / 8 < b["cycles"] < ins * 20, (cpu, n, b)
        # the cut keeps the hottest blocks holding >= 99% (the figure, not the module's constant) of the
        # instructions: exactly as many as hottest-first takes, and llvm-mca costs them
        assert HOT_CUT == b["hot_cut"] == 0.99 and b["hot_share"] >= 0.99 and b["modeled_share"] >= 0.985
        rec = read_blocks(Path(runs[(cpu, n)]["blocks_file"]), runs[(cpu, n)]["blocks_inference"])
        sizes, covered, k = sorted((x.instructions for x in rec.blocks), reverse=True), 0, 0
        while covered < 0.99 * rec.instructions:
            covered, k = covered + sizes[k], k + 1
        assert b["hot_blocks"] == k and b["blocks"] == len(rec.blocks)
        assert b["costed_blocks"] == b["hot_blocks"] and b["unrecorded_instructions"] == 0
    for cpu in ("cortex-a76", "cortex-a53"):
        assert est[(cpu, 64)]["ms"] > 1.5 * est[(cpu, 16)]["ms"]  # 4x the tokens: more work
    assert est[("cortex-a53", 64)]["ms"] > est[("cortex-a76", 64)]["ms"]  # in-order, no dot product, 1.2 GHz


def test_the_same_blocks_cost_more_on_the_in_order_a53_model(runs):
    counted = runs[("cortex-a76", 64)]
    rec = read_blocks(Path(counted["blocks_file"]), counted["blocks_inference"])
    tools = LlvmTools(devices.get("cortex-a76").env().llvm)
    n1, a53 = (cycles(rec, counted["per_inference"], tools, Target("aarch64", cpu, "+all"))
               for cpu in ("neoverse-n1", "cortex-a53"))
    assert a53["cycles"] > 1.5 * n1["cycles"]
    # sum(executions x cycles): doubling every block's executions doubles the modeled cycles
    doubled = type(rec)(tuple(Block(b.insns, 2 * b.executions) for b in rec.blocks), rec.lost)
    twice = cycles(doubled, 2 * counted["per_inference"], tools, Target("aarch64", "neoverse-n1", "+all"))
    assert twice["modeled_cycles"] == pytest.approx(2 * n1["modeled_cycles"], rel=1e-6)
    # the hottest block alone: its executions x its cycles are part of the total
    top = rec.blocks[0]
    one = cycles(type(rec)((top,), 0), top.instructions, tools, Target("aarch64", "neoverse-n1", "+all"))
    assert n1["modeled_cycles"] >= one["modeled_cycles"] > top.executions * 0.2


def test_real_check_reports_the_estimate_apart_from_latency(tmp_path, tiny, arm_env):  # noqa: F811
    d = make_artifact_dir(tmp_path / "art", tiny, artifacts=("int8",))
    report = check(d, CheckSettings(devices=("desktop", "cortex-a76"), limit=8, **FAST,
                                    emulated=ScreeningSettings(probe=4), clock_ghz=(("cortex-a76", 1.2),)))
    recs = {r["device"]: r for r in report["records"]}
    a76, desk = recs["cortex-a76"], recs["desktop"]
    assert a76["status"] == "ok", a76["error"]
    est = a76["estimated_latency"]
    assert est["status"] == "ok" and est["clock_ghz"] == 1.2 and "clock overridden" in est["reference_device"]
    assert a76["latency_ms"] is None and desk.get("estimated_latency") is None  # never mixed
    assert "estimated_latency_definition" in report
    text = markdown.render(report)
    a76_text = text.split("## cortex-a76")[1]
    assert "Estimated ms (cycle model, ± error band; not measured)" in a76_text
    assert f"~{est['ms']:.3g} ±{est['error_band_pct']:.0f}%" in a76_text
    assert "estimated ms (cycle model, neoverse-n1 as cortex-a76, 1.2 GHz)" in a76_text
    assert "Estimated ms" not in text.split("## cortex-a76")[0].split("## desktop")[1]  # desktop: measured only
    page = html.render(report)
    assert ">Est. ms</th>" in page and "estimated ms (cycle model, neoverse-n1 as cortex-a76, 1.2 GHz)" in page
    row = next(r for t in device_tables(report) if t.device == "cortex-a76" for r in t.rows)
    assert row.estimated_ms == est["ms"] and row.p50_ms is None
    # a real board of the same core pairs with the emulated twin's estimate (the board here: the desktop record)
    pairs = estimate_vs_measured(report["records"], {"desktop": "cortex-a76"})
    assert len(pairs) == 1 and pairs[0].estimated_ms == est["ms"]
    assert pairs[0].measured_p50_ms == desk["latency_ms"]["p50"]
    assert pairs[0].error_pct == pytest.approx((est["ms"] - desk["latency_ms"]["p50"]) / desk["latency_ms"]["p50"] * 100,
                                               abs=0.06)


def test_a_counter_built_from_an_older_source_is_not_used(tmp_path):
    """A cache whose plugin predates block recording asks for `devices setup` (a build then runs it)."""
    import json

    from edgebert.devices.arm.environment import ArmEnv, counter_digest

    env = ArmEnv(tmp_path / "arm")
    (env.prefix("cortex-a76") / "proc").mkdir(parents=True)
    (env.prefix("cortex-a76") / "proc" / "cpuinfo").write_text("CPU part : 0xd0b\n")
    env.counting_root("qemu72").mkdir(parents=True)
    (env.counting_root("qemu72") / "libinsn_count.so").write_bytes(b"")
    env.stamps.mkdir()
    for sha, stale in (("0123456789abcdef", True), (counter_digest(), False)):
        (env.stamps / "plugin-qemu.json").write_text(json.dumps(
            {"key": {"source_sha": sha}, "info": {"plugin_qemu72_cpus": ["cortex-a76"]}}))
        reason = env.counting_missing("cortex-a76")
        assert (reason is not None and "older insn_count.c" in reason and "edgebert devices setup" in reason) is stale
