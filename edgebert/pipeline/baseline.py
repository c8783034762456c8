"""Regression baselines for ``edgebert build``: write one, load and validate one, compare a build with it.

A baseline is a small JSON file meant to be committed next to the config: per (model, artifact, device)
the figures a pull request may change by accident: accuracy, guest instructions per inference
(emulated devices; deterministic), the cycle model's estimated ms (emulated devices; as deterministic
as the count, for one LLVM version), size in bytes and desktop latency p50 (noisy on shared runners, so
information only unless a limit is configured). Keys are sorted and figures rounded, so the same build
always gives the same bytes and a reviewer sees only real changes in the diff.

The file comes from elsewhere (a branch, a pull request): it is parsed as JSON only and every key and
type is checked; anything unexpected is a :class:`UsageError` naming the problem (exit 2).

Comparison results are ordinary gate results (``edgebert/gate_result.py``) so they reach summary.json, the verdict and
the reports' failed-gates list. An artifact the baseline does not know is "new" (not failed); one the
baseline has but the build did not make is "missing" (information).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .. import gate_result
from ..errors import UsageError
from ..fsutil import write_text_atomic
from ..report.tables import BASELINE_FIGURES as FIGURES
from ..report.tables import device_tables
from .config import BaselineConfig

KIND = "edgebert-baseline"
SCHEMA_VERSION = 1
MAX_BYTES = 10_000_000          # a baseline is a few KB; refuse anything absurd before parsing it
Key = tuple[str, str, str]      # (model, artifact, device)


# --- figures of a build ---------------------------------------------------------------------------
def figures(models: list[dict[str, Any]], reports: dict[str, dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The baseline figures of a build, from its models (summary) and their report.json."""
    out: dict[Key, dict[str, Any]] = {}
    for m in models:
        if m.get("status") != "ok" or m["name"] not in reports:
            continue
        sizes = {a["name"]: a["size_bytes"] for a in m.get("artifacts", ())}
        for table in device_tables(reports[m["name"]]):
            for row in table.rows:
                if row.status != "ok" or row.role == "drift-reference":
                    continue
                out[(m["name"], row.artifact, table.device)] = {
                    "accuracy": None if row.accuracy is None else round(float(row.accuracy), 6),
                    "instructions_per_inference": None if row.instructions is None else int(row.instructions),
                    "estimated_ms": None if row.estimated_ms is None else round(float(row.estimated_ms), 3),
                    "size_bytes": sizes.get(row.artifact),
                    "latency_p50_ms": None if table.emulated or row.p50_ms is None else round(float(row.p50_ms), 2),
                }
    return out


def dumps(figs: dict[Key, dict[str, Any]]) -> str:
    """The baseline file's text: nested model -> artifact -> device, sorted keys, indented."""
    records: dict[str, Any] = {}
    for (model, artifact, device), f in figs.items():
        records.setdefault(model, {}).setdefault(artifact, {})[device] = {k: f.get(k) for k in FIGURES}
    doc = {"kind": KIND, "schema_version": SCHEMA_VERSION, "records": records}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: str | Path, figs: dict[Key, dict[str, Any]]) -> None:
    """Write the baseline atomically (temp file + rename)."""
    write_text_atomic(path, dumps(figs))


# --- loading (untrusted) ------------------------------------------------------------------------
def _check_figure(where: str, key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a number or null, got {value!r}")
    if key == "accuracy" and not 0 <= value <= 1:
        raise UsageError(f"{where}: accuracy is a fraction between 0 and 1, got {value!r}")
    if key != "accuracy" and value <= 0:
        raise UsageError(f"{where}: {key} must be positive, got {value!r}")


_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")  # model, artifact and device names as edgebert makes them


def _name(where: str, value: Any) -> str:
    """Names reach the reports' tables: only the characters edgebert's own names use (no markup)."""
    if not _NAME.fullmatch(value):
        raise UsageError(f"{where}: {value[:60]!r} is not a model, artifact or device name "
                         "(letters, digits, '.', '_', '-'; at most 200)")
    return value


def load(path: str | Path) -> dict[Key, dict[str, Any]]:
    """The figures of a baseline file, validated; any problem is one :class:`UsageError` line."""
    path = Path(path)
    where = f"baseline {path}"
    if not path.is_file():
        raise UsageError(f"{where}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise UsageError(f"{where}: {path.stat().st_size} bytes; a baseline is at most {MAX_BYTES} bytes")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise UsageError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: must be a JSON object, got {type(doc).__name__}")
    if doc.get("kind") != KIND:
        raise UsageError(f"{where}: not an edgebert baseline (kind {doc.get('kind')!r}, expected {KIND!r})")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"{where}: schema_version {doc.get('schema_version')!r} is not supported "
                         f"(expected {SCHEMA_VERSION}); rewrite it with --write-baseline")
    extra = sorted(set(doc) - {"kind", "schema_version", "records"})
    if extra:
        raise UsageError(f"{where}: unknown key {extra[0]!r} (allowed: kind, records, schema_version)")
    records = doc.get("records")
    if not isinstance(records, dict):
        raise UsageError(f"{where}: records must be an object of model -> artifact -> device -> figures")
    out: dict[Key, dict[str, Any]] = {}
    for model, artifacts in records.items():
        _name(where, model)
        if not isinstance(artifacts, dict):
            raise UsageError(f"{where}: records.{model} must be an object of artifact -> device -> figures")
        for artifact, devices in artifacts.items():
            _name(where, artifact)
            if not isinstance(devices, dict):
                raise UsageError(f"{where}: records.{model}.{artifact} must be an object of device -> figures")
            for device, figs in devices.items():
                _name(where, device)
                at = f"{where}: records.{model}.{artifact}.{device}"
                if not isinstance(figs, dict):
                    raise UsageError(f"{at} must be an object of figures ({', '.join(FIGURES)})")
                unknown = sorted(set(figs) - set(FIGURES))
                if unknown:
                    raise UsageError(f"{at}: unknown figure {unknown[0]!r} (allowed: {', '.join(FIGURES)})")
                for key in FIGURES:
                    _check_figure(at, key, figs.get(key))
                out[(model, artifact, device)] = {k: figs.get(k) for k in FIGURES}
    return out


# --- comparison ---------------------------------------------------------------------------------
#: (gate name, figure, unit, description, threshold attribute, delta kind)
CHECKS = (
    ("baseline_instructions", "instructions_per_inference", "fraction",
     "increase of guest instructions per inference vs the baseline", "max_instructions_increase", "relative"),
    ("baseline_estimated_ms", "estimated_ms", "fraction", "increase of the estimated ms (cycle model) vs the baseline",
     "max_estimated_increase", "relative"),
    ("baseline_accuracy", "accuracy", "points", "accuracy drop vs the baseline", "max_accuracy_drop", "points"),
    ("baseline_size", "size_bytes", "fraction", "size increase vs the baseline", "max_size_increase", "relative"),
    ("baseline_latency_p50", "latency_p50_ms", "fraction", "desktop latency p50 increase vs the baseline",
     "max_latency_increase", "relative"),
)


def _delta(kind: str, new: float, old: float) -> float:
    return (old - new) * 100 if kind == "points" else (new - old) / old


def compare(baseline: dict[Key, dict[str, Any]], current: dict[Key, dict[str, Any]],
            limits: BaselineConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Gate results (like ``gates.evaluate``'s) and the deltas of every record vs the baseline.

    Gates are on records present in both; a figure the baseline has but the build did not measure
    fails (it would hide a regression). Latency is gated only when ``max_latency_increase`` is set.
    Deltas: accuracy in points (new - old), the others as fractions (new / old - 1).
    """
    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for key in sorted(current):
        model, artifact, device = key
        new = current[key]
        old = baseline.get(key)
        row: dict[str, Any] = {"model": model, "artifact": artifact, "device": device,
                               "status": "new" if old is None else "compared"}
        if old is None:
            rows.append(row)
            continue
        for gate, figure, unit, description, attr, kind in CHECKS:
            o, n = old.get(figure), new.get(figure)
            delta = None if o is None or n is None else _delta(kind, float(n), float(o))
            row[figure] = {"baseline": o, "value": n,
                           "delta": None if delta is None else (-delta if kind == "points" else delta)}
            limit = getattr(limits, attr)
            if limit is None or o is None:
                continue
            base = {"model": model, "artifact": artifact, "device": device}
            result = gate_result.result(base, gate, delta, limit, unit, gate_result.AT_MOST, tolerance=1e-12,
                                        detail=f"{description}: {n} vs {o}",
                                        not_measured=f"{description}: not measured (baseline {o})", baseline=o)
            if delta is not None:
                result["value"] = round(delta, 6)  # judged unrounded, recorded rounded
            results.append(result)
        rows.append(row)
    missing = [{"model": m, "artifact": a, "device": d} for (m, a, d) in sorted(set(baseline) - set(current))]
    return results, {"records": rows, "missing": missing}


__all__ = ["compare", "dumps", "figures", "load", "write"]


def gate(models: list[dict[str, Any]], reports: dict[str, dict[str, Any]], previous: dict[Key, dict[str, Any]] | None,
         path: str | Path | None, limits: BaselineConfig) -> tuple[dict[Key, dict[str, Any]], dict[str, Any] | None]:
    """A build's (or merged build's) figures, with its regressions vs ``previous`` added to each model's gates.

    Returns (figures, the summary's ``vs_baseline`` record or None without a baseline).
    """
    import dataclasses

    figs = figures(models, reports)
    if previous is None:
        return figs, None
    regressions, vs_baseline = compare(previous, figs, limits)
    for m in models:
        m["gates"] += [g for g in regressions if g["model"] == m["name"]]
    return figs, {"file": str(Path(path).resolve()), "limits": dataclasses.asdict(limits), **vs_baseline}
