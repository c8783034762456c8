"""Renderer-independent view of report.json: per-device tables with the derived columns.

Derived numbers (Δ accuracy, speed-up, size ratio) are computed here once, against the fp32 artifact
of the same format on the same device; renderers (markdown now, HTML later) only format them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..vocabulary import PRECISIONS


@dataclass(frozen=True)
class Row:
    artifact: str
    format: str
    precision: str
    status: str
    error: str | None
    accuracy: float | None
    accuracy_ci95: tuple[float, float] | None
    delta_accuracy_points: float | None      # (accuracy - fp32 accuracy) * 100
    agreement: float | None
    agreement_ci95: tuple[float, float] | None
    max_abs_logit_diff: float | None
    p50_ms: float | None
    p90_ms: float | None
    threads: int | None
    speedup: float | None                    # fp32 p50 / this p50
    size_mb: float | None                    # 10^6 bytes
    size_ratio: float | None                 # this size / fp32 size
    peak_rss_mb: float | None
    runtime: str | None
    # emulated devices (ARM under QEMU): drift vs the desktop run of the same artifact, guest instructions
    drift_max_abs: float | None = None        # max |logit diff| vs desktop
    drift_flips: int | None = None            # predictions that differ from desktop's
    instructions: int | None = None           # guest instructions per batch-1 inference
    instructions_ratio: float | None = None   # this / fp32 of the same format on the same device
    instructions_note: str | None = None      # why there is no count (never replaced by wall time)
    instructions_carried: str | None = None   # the count is another core's, carried over: why (``count_sharing``)
    emulated_ms_per_example: float | None = None  # emulator wall ms per emulated example: NOT device latency
    # per-op profile (``check --profile``): slowest operator types, or why there is none
    top_ops: tuple[tuple[str, float, float], ...] = ()  # (op type, ms per inference, share of kernel time)
    profile_note: str | None = None
    top_op_nodes: tuple[tuple[str, int], ...] = ()  # (op type, nodes of that type that ran) where recorded
    n: int | None = None                      # examples the accuracy is over
    accuracy_method: str | None = None        # "measured" | "margin-screened" | "all emulated"
    role: str = "measured"                    # "drift-reference": a desktop run that only serves the emulated ones
    n_emulated: int | None = None             # emulated devices: examples that really ran under emulation
    flip_rate_upper95: float | None = None    # emulated: 95% upper bound of the flip rate vs desktop
    instructions_spread: float | None = None  # (max - min) / median of the counted runs
    emulation: dict | None = None             # emulated: the record's ``emulation`` summary (method, counts, bound)
    instruction_shares: tuple[tuple[str, float], ...] = ()  # emulated: (class, share of the median counted run)
    cpu_has_int8_dot: bool = False            # emulated: the CPU model has dot product or i8mm instructions
    int8_kernel_share: float | None = None    # emulated: share of SDOT/UDOT + SMMLA/UMMLA/USMMLA/USDOT instructions
    latency_seq_len: int | None = None        # the sequence length the latency input ran at (fixed shapes differ)
    # emulated: the cycle model's estimate (``estimated_latency``): never measured latency, never in p50_ms
    estimated_ms: float | None = None
    estimate_band_pct: float | None = None    # the estimator's error band for this kind of core
    estimate_label: str | None = None         # "estimated ms (cycle model, <model> as <core>, <clock> GHz)"
    estimate_note: str | None = None          # why there is no estimate


@dataclass(frozen=True)
class DeviceTable:
    device: str
    description: str
    emulated: bool
    runtimes: tuple[str, ...]                # "onnxruntime 1.32.0", one per runtime seen
    cpu: str | None
    rows: tuple[Row, ...] = field(default_factory=tuple)
    board: dict | None = None                # a real board: what it is (cores, Python, glibc, emulated or not)
    clock_notes: tuple[str, ...] = ()        # a board: governor / throttling notes of its runs

    @property
    def failed(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.status != "ok")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def _instructions(rec: dict[str, Any] | None) -> int | None:
    ins = (rec or {}).get("instructions") or {}
    return ins.get("per_inference") if ins.get("status") == "ok" else None


INT8_DOT_FEATURES = ("dotprod", "i8mm")
INT8_DOT_CLASSES = ("dotprod", "i8mm")


def _emulated_fields(r: dict[str, Any], ref: dict[str, Any] | None,
                     cpu_features: tuple[str, ...] = ()) -> dict[str, Any]:
    """Row fields of an emulated record: drift vs desktop, instructions (or why none), wall time."""
    if not r.get("emulated"):
        return {}
    ok = r["status"] == "ok"
    drift = (r.get("drift_vs_desktop") or {}) if ok else {}
    ins = r.get("instructions") or {}
    note = None
    if ok and ins.get("status") != "ok" and not r.get("board"):  # a board does not count instructions
        note = f"instruction count {ins.get('status', 'missing')}: {ins.get('error') or 'not measured'}"
    wall = r.get("emulated_wall") or {}
    return {"drift_max_abs": drift.get("max_abs_logit_diff"), "drift_flips": drift.get("prediction_flips"),
            "n_emulated": drift.get("n_emulated"), "flip_rate_upper95": drift.get("flip_rate_upper95"),
            "emulation": {k: v for k, v in (r.get("emulation") or {}).items() if k != "emulated_examples"} or None
            if ok else None,
            "instructions_spread": ins.get("spread") if ok and ins.get("status") == "ok" else None,
            "instructions": _instructions(r) if ok else None,
            "instructions_ratio": _ratio(_instructions(r), _instructions(ref)) if ok else None,
            "instructions_note": note,
            "instructions_carried": ins.get("carried_why") if ok and ins.get("status") == "ok" else None,
            "emulated_ms_per_example": wall.get("ms_per_example") if ok else None,
            "instruction_shares": _shares(ins) if ok and ins.get("status") == "ok" else (),
            "cpu_has_int8_dot": any(f in cpu_features for f in INT8_DOT_FEATURES),
            "int8_kernel_share": _int8_kernel_share(ins) if ok else None}


def _estimate_fields(r: dict[str, Any]) -> dict[str, Any]:
    """Row fields of a record's ``estimated_latency`` (emulated devices), or why there is none."""
    est = r.get("estimated_latency")
    if not r.get("emulated") or r.get("status") != "ok" or est is None:
        return {}
    if est.get("status") != "ok":
        return {"estimate_note": f"estimate {est.get('status', 'missing')}: {est.get('error') or 'no reason given'}"}
    return {"estimated_ms": est.get("ms"), "estimate_band_pct": est.get("error_band_pct"),
            "estimate_label": est.get("label")}


def estimated_ms(rec: dict[str, Any] | None) -> float | None:
    """A record's estimated ms (None unless its estimate is ok)."""
    est = (rec or {}).get("estimated_latency") or {}
    return est.get("ms") if est.get("status") == "ok" and est.get("kind") == "estimate" else None


@dataclass(frozen=True)
class EstimateCheck:
    """An emulated core's estimate next to a real board's measurement of the same artifact."""

    artifact: str
    core: str                 # the emulated device (core model)
    board: str                # the real device
    estimated_ms: float
    measured_p50_ms: float
    error_pct: float          # (estimate - measured) / measured x 100
    band_pct: float | None    # the estimate's declared error band
    within_band: bool | None


def estimate_vs_measured(records: list[dict[str, Any]], board_cores: dict[str, str]) -> list[EstimateCheck]:
    """Pairs each real board's measured p50 with the estimate of its emulated twin, per artifact.

    ``board_cores``: real device name -> the emulated device of the same core (e.g. a Pi 5 board ->
    "cortex-a76"). Only records with both an ok estimate and a measured p50 at the same length pair up.
    """
    est = {(r["artifact"], r["device"]): r for r in records if estimated_ms(r) is not None}
    out = []
    for r in records:
        core = board_cores.get(r["device"])
        lat = r.get("latency_ms") or {}
        twin = est.get((r.get("artifact"), core)) if core else None
        if twin is None or r.get("status") != "ok" or not lat.get("p50"):
            continue
        e = twin["estimated_latency"]
        if lat.get("seq_len") not in (None, e.get("seq_len")):
            continue
        err = (e["ms"] - lat["p50"]) / lat["p50"] * 100
        band = e.get("error_band_pct")
        out.append(EstimateCheck(r["artifact"], core, r["device"], e["ms"], lat["p50"], round(err, 1), band,
                                 None if band is None else abs(err) <= band))
    return out


def _int8_kernel_share(ins: dict[str, Any]) -> float | None:
    """Share of the dot-product and int8-matmul classes (None when the count has no classes)."""
    shares = ins.get("class_shares") if ins.get("status") == "ok" else None
    return sum(float(shares.get(c, 0.0)) for c in INT8_DOT_CLASSES) if shares else None


def _shares(ins: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """Instruction classes of the counted run, largest first (empty for a counter without classes)."""
    shares = ins.get("class_shares") or {}
    return tuple(sorted(((k, float(v)) for k, v in shares.items()), key=lambda kv: (-kv[1], kv[0])))


def _profile_fields(r: dict[str, Any]) -> dict[str, Any]:
    prof = r.get("profile")
    if not prof or r["status"] != "ok":
        return {}
    if prof.get("status") != "ok":
        return {"profile_note": f"profile {prof.get('status', 'missing')}: {prof.get('reason') or 'no reason given'}"}
    ops = prof.get("top_ops") or ()
    return {"top_ops": tuple((o["op"], float(o["ms"]), float(o["share"])) for o in ops),
            "top_op_nodes": tuple((o["op"], int(o["nodes"])) for o in ops if o.get("nodes") is not None)}


def _board_fields(r: dict[str, Any]) -> dict[str, Any]:
    """Drift vs the desktop of a board record (a real board's; an emulated one's come with its emulated fields)."""
    if not r.get("board") or r.get("emulated") or r["status"] != "ok":
        return {}
    drift = r.get("drift_vs_desktop") or {}
    return {"drift_max_abs": drift.get("max_abs_logit_diff"), "drift_flips": drift.get("prediction_flips"),
            "flip_rate_upper95": drift.get("flip_rate_upper95")}


def device_tables(report: dict[str, Any]) -> list[DeviceTable]:
    records = report.get("records", [])
    order = list(report.get("devices", {}))
    order += [r["device"] for r in records if r["device"] not in order]
    tables = []
    for device in dict.fromkeys(order):
        recs = [r for r in records if r["device"] == device]
        by_name = {r["artifact"]: r for r in recs}
        rows = []
        info = report.get("devices", {}).get(device, {})
        features = tuple((info.get("cpu_model") or {}).get("features") or ())
        for r in recs:
            ref = by_name.get(r.get("reference") or "")
            ref_ok = ref is not None and ref["status"] == "ok"
            ok = r["status"] == "ok"
            lat, ref_lat = r.get("latency_ms") or {}, (ref or {}).get("latency_ms") or {}
            size, ref_size = r.get("size_bytes"), (ref or {}).get("size_bytes")
            rows.append(Row(
                artifact=r["artifact"], format=r["format"], precision=r["precision"], status=r["status"],
                error=r.get("error"), accuracy=r.get("accuracy") if ok else None,
                accuracy_ci95=tuple(r["accuracy_ci95"]) if ok and r.get("accuracy_ci95") else None,
                n=r.get("n_samples"), accuracy_method=r.get("accuracy_method"), role=r.get("role") or "measured",
                delta_accuracy_points=(r["accuracy"] - ref["accuracy"]) * 100 if ok and ref_ok else None,
                agreement=r.get("agreement") if ok else None,
                agreement_ci95=tuple(r["agreement_ci95"]) if ok and r.get("agreement_ci95") else None,
                max_abs_logit_diff=r.get("max_abs_logit_diff_vs_fp32") if ok else None,
                p50_ms=lat.get("p50") if ok else None, p90_ms=lat.get("p90") if ok else None,
                latency_seq_len=lat.get("seq_len") if ok else None,
                threads=r.get("threads"),
                speedup=_ratio(ref_lat.get("p50"), lat.get("p50")) if ok and ref_ok else None,
                size_mb=size / 1e6 if size is not None else None,
                size_ratio=_ratio(size, ref_size) if ref is not None else None,
                peak_rss_mb=r.get("peak_rss_mb") if ok else None,
                runtime=" ".join(x for x in ((r.get("runtime") or {}).get("name"),
                                             (r.get("runtime") or {}).get("version")) if x) or None,
                **_emulated_fields(r, ref, features), **_estimate_fields(r),
                **_board_fields(r),
                **_profile_fields(r),
            ))
        cpus = [((r.get("platform") or {}).get("cpu")) for r in recs if r.get("platform")]
        board = info.get("board") or next((r["board"] for r in recs if r.get("board")), None)
        notes = tuple(dict.fromkeys(n for r in recs for n in ((r.get("board") or {}).get("run") or {}).get("notes", ())))
        tables.append(DeviceTable(
            device=device, description=info.get("description", ""),
            emulated=bool(info.get("emulated", any(r.get("emulated") for r in recs))),
            runtimes=tuple(dict.fromkeys(row.runtime for row in rows if row.runtime and row.status == "ok")),
            cpu=cpus[0] if cpus else None, rows=tuple(rows), board=board, clock_notes=notes))
    return tables


def twin_pairs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each board record with its emulated twin's record: the catalog CPU of the board's core, same artifact.

    The one place boards and emulated CPUs are paired (None: the twin was not checked in this report), so
    that any comparison of a board with its emulated model (accuracy, drift, instructions, estimated vs
    measured time) uses the same pairs.
    """
    by_key = {(r["device"], r["artifact"]): r for r in records}
    return [(r, by_key.get((r["board"]["twin"], r["artifact"])))
            for r in records if (r.get("board") or {}).get("twin")]


@dataclass(frozen=True)
class TwinRow:
    """A board's row next to the row of its emulated twin (same core name, same artifact)."""

    board: str                     # the board's device name
    core: str                      # the twin's CPU model (e.g. cortex-a76)
    board_emulated: bool           # the board declared itself emulated: its wall time is not latency
    board_row: Row
    twin_row: Row | None
    twin_estimated_ms: float | None = None  # the twin's cycle-model estimate (an estimate, never measured)
    estimate: EstimateCheck | None = None    # that estimate against the board's measured p50, with the error


def twin_rows(report: dict[str, Any]) -> list[TwinRow]:
    """:func:`twin_pairs` of ``report`` as table rows (for renderers), each with its estimate-vs-measured check."""
    records = report.get("records", [])
    rows = {(t.device, r.artifact): r for t in device_tables(report) for r in t.rows}
    pairs = twin_pairs(records)
    checks = {(c.board, c.artifact): c for c in estimate_vs_measured(
        records, {b["device"]: b["board"]["twin"] for b, _ in pairs if not b.get("emulated")})}
    return [TwinRow(board=b["device"], core=b["board"]["twin"], board_emulated=bool(b.get("emulated")),
                    board_row=rows[(b["device"], b["artifact"])],
                    twin_row=rows.get((t["device"], t["artifact"])) if t else None,
                    twin_estimated_ms=estimated_ms(t), estimate=checks.get((b["device"], b["artifact"])))
            for b, t in pairs]


PRECISION_ORDER = PRECISIONS
#: The figures a regression baseline keeps per record (``pipeline/baseline.py``), in report column order.
BASELINE_FIGURES = ("accuracy", "instructions_per_inference", "estimated_ms", "size_bytes", "latency_p50_ms")


@dataclass(frozen=True)
class SideBySide:
    """One device's artifacts pivoted to precision x format (e.g. ONNX and TFLite next to each other)."""

    formats: tuple[str, ...]
    precisions: tuple[str, ...]
    cells: dict[tuple[str, str], Row]        # (precision, format) -> row
    mixed_lengths: frozenset[str] = frozenset()  # precisions whose latencies ran at different seq lengths

    def latency_comparable(self, precision: str) -> bool:
        """False when this precision's latency cells ran at different sequence lengths (not comparable)."""
        return precision not in self.mixed_lengths


def side_by_side(table: DeviceTable) -> SideBySide | None:
    """The rows of ``table`` by (precision, format); None when the device saw only one format."""
    formats = tuple(dict.fromkeys(r.format for r in table.rows))
    if len(formats) < 2:
        return None
    seen = {r.precision for r in table.rows}
    precisions = tuple(p for p in PRECISION_ORDER if p in seen) + tuple(sorted(seen - set(PRECISION_ORDER)))
    cells = {(r.precision, r.format): r for r in table.rows}
    mixed = frozenset(p for p in precisions
                      if len({r.latency_seq_len for (q, _), r in cells.items()
                              if q == p and r.p50_ms is not None and r.latency_seq_len is not None}) > 1)
    return SideBySide(formats, precisions, cells, mixed)
