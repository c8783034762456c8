"""Gates: the limits a build enforces on every (model, artifact, device) record of its reports.

Each gate is one registered :class:`Gate`: which records it applies to, the measured value, the
limit and which way it goes (``upper``). A record that failed to run fails the ``runs`` gate (always
on). Results are made by ``edgebert/gate_result.py`` and carry their comparison, so nothing else
re-derives it; they are plain dicts that go straight into summary.json and the reports::

    {"model": "distilbert", "artifact": "model.int8-static.onnx", "device": "desktop",
     "gate": "max_accuracy_drop", "value": 1.2, "limit": 2.0, "unit": "points", "comparison": "<=",
     "passed": true, "detail": null}

Accuracy gates apply on every device whose records carry an accuracy over the evaluation examples:
native devices, and emulated ARM devices, whose accuracy covers ``emulated_limit`` examples through
the stated method (``check/screening.py``). Emulated devices are also gated on agreeing with the
desktop run of the same artifact (drift, flip-rate bound), on instructions per inference and on the
cycle model's estimated ms (``max_estimated_ms``: the estimate, never a measured latency). A
desktop run that only serves as the emulated devices' drift reference is never gated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import gate_result
from ..report.tables import Row, device_tables
from .config import GatesConfig


@dataclass(frozen=True)
class Gate:
    name: str
    description: str
    unit: str
    applies: Callable[[Row, bool], bool]            # (row, emulated) -> applies
    value: Callable[[Row], float | None]
    limit: Callable[[GatesConfig, str], float | None]  # (gates, device) -> limit or None (off)
    upper: bool = True                              # value must be <= limit (False: >=)


def _native(row: Row, emulated: bool) -> bool:
    return not emulated


def _emulated(row: Row, emulated: bool) -> bool:
    return emulated


def _vs_desktop(row: Row, emulated: bool) -> bool:
    """Emulated devices and boards: both are compared with the desktop run (a board's drift is in its row)."""
    return emulated or row.drift_max_abs is not None


def _any(row: Row, emulated: bool) -> bool:
    return True


GATES: tuple[Gate, ...] = (
    Gate("max_accuracy_drop", "accuracy drop vs fp32 of the same format on the same device and examples",
         "points", lambda r, e: r.precision != "fp32",
         lambda r: None if r.delta_accuracy_points is None else max(0.0, -r.delta_accuracy_points),
         lambda g, d: g.max_accuracy_drop),
    Gate("min_accuracy", "accuracy on the evaluation data", "fraction", _any,
         lambda r: r.accuracy, lambda g, d: g.min_accuracy, upper=False),
    Gate("max_size_mb", "artifact size", "MB", lambda r, e: True, lambda r: r.size_mb,
         lambda g, d: g.max_size_mb),
    Gate("max_latency_p90_ms", "batch-1 latency p90", "ms", _native, lambda r: r.p90_ms,
         lambda g, d: g.max_latency_p90_ms),
    Gate("max_drift_vs_desktop", "max |logit diff| vs the desktop run of the same artifact", "logit",
         _vs_desktop, lambda r: r.drift_max_abs, lambda g, d: g.max_drift_vs_desktop),
    Gate("max_flips_vs_desktop", "predictions that differ from the desktop run", "examples", _vs_desktop,
         lambda r: None if r.drift_flips is None else float(r.drift_flips), lambda g, d: g.max_flips_vs_desktop),
    Gate("max_flip_rate", "95% upper bound of the rate of predictions that differ from the desktop run",
         "fraction", _vs_desktop, lambda r: r.flip_rate_upper95, lambda g, d: g.max_flip_rate),
    Gate("min_int8_kernel_share", "share of dot-product / int8-matmul instructions (SDOT/UDOT/SMMLA/UMMLA/"
         "USMMLA/USDOT) in the counted inference, for int8 artifacts on CPU models that have them", "fraction",
         lambda r, e: e and r.precision != "fp32" and r.cpu_has_int8_dot, lambda r: r.int8_kernel_share,
         lambda g, d: g.min_int8_kernel_share, upper=False),
    Gate("max_instructions", "guest instructions per inference", "instructions", _emulated,
         lambda r: None if r.instructions is None else float(r.instructions),
         lambda g, d: g.instructions_limit(d)),
    Gate("max_estimated_ms", "estimated ms per inference (cycle model, at the device's stated clock; an estimate, "
         "not a measurement)", gate_result.ESTIMATED_MS, _emulated, lambda r: r.estimated_ms, lambda g, d: g.estimated_ms_limit(d)),
)


def evaluate(model: str, report: dict[str, Any], gates: GatesConfig) -> list[dict[str, Any]]:
    """Every gate result for one model's report.json (failed records fail the ``runs`` gate)."""
    results = []
    for table in device_tables(report):
        for row in table.rows:
            base = {"model": model, "artifact": row.artifact, "format": row.format, "precision": row.precision,
                    "device": table.device}
            if row.status != "ok":
                results.append(gate_result.did_not_run(base, row.error or "failed without a reason"))
                continue
            if row.role == "drift-reference":  # accuracy-only desktop run serving the emulated devices
                continue
            for gate in GATES:
                limit = gate.limit(gates, table.device)
                if limit is None or not gate.applies(row, table.emulated):
                    continue
                results.append(gate_result.result(base, gate.name, gate.value(row), limit, gate.unit,
                                                  gate_result.comparison(gate.upper),
                                                  not_measured=f"{gate.description}: not measured"))
    return results
