"""The build's phase table: where the wall and CPU seconds went, one row per phase, in summary.json.

``summary["phases"]`` keeps the wall seconds by phase (one number each, as before); this table is
what the reports show: every row has wall and CPU seconds (``cpu_clock.py``: this process and its
workers and QEMU, live or reaped), whether the step was reused from an earlier build, and whether it ran
beside the background emulated jobs (its CPU then holds theirs: the counters are process-wide).
Quantization is split per recipe and format, and the emulated checks into accuracy and instruction
counting; those two are job-seconds (each job's wall time, summed over jobs that run
``devices.emulated_jobs`` at a time), without CPU: the jobs share one process, so their CPU cannot
be told apart.
"""

from __future__ import annotations

from typing import Any

from .steps import CHECK, EXPORT, QUANTIZE

JOB_SECONDS_NOTE = ("job-seconds: each emulated job's wall time, summed (jobs run in parallel); "
                    "no CPU per job, they share one process")


def row(phase: str, seconds: float | None, cpu: float | None, *, model: str | None = None,
        detail: str | None = None, reused: bool | None = None, beside: bool = False,
        note: str | None = None) -> dict[str, Any]:
    r = lambda v: None if v is None else round(float(v), 2)  # noqa: E731
    return {"phase": phase, "model": model, "detail": detail, "seconds": r(seconds), "cpu_seconds": r(cpu),
            "reused": reused, "beside_emulation": beside, "note": note}


def threads_note(threads: list[int] | None) -> str | None:
    """What capped torch thread counts (``cores.py``) look like in the table's note column."""
    if not threads:
        return None
    counts = "–".join(str(n) for n in (threads if len(threads) < 3 else (threads[0], threads[-1])))
    return (f"torch on {counts} thread{'s' if threads != [1] else ''}: fewer while emulated jobs ran "
            f"(they had the other cores)")


def _model_rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    name, out = m["name"], []
    if m.get("model_seconds") is not None:
        out.append(row("model inputs (a built-in model is made on first use)", m["model_seconds"], m.get("model_cpu_seconds"),
                       model=name, beside=bool(m.get("model_beside_emulation")),
                       note=threads_note(m.get("model_torch_threads"))))
    for s in m.get("steps", []):
        kind = s["step"].split(":", 1)[0]
        beside = bool(s.get("beside_emulation"))
        threads = threads_note(s.get("torch_threads"))
        if kind == EXPORT:
            out.append(row("export", s["seconds"], s.get("cpu_seconds"), model=name,
                           detail=", ".join(s.get("artifacts") or ()), reused=s["reused"], beside=beside,
                           note=threads))
        elif kind == QUANTIZE and s.get("parts"):
            out += [row("quantize", p["seconds"], p["cpu_seconds"], model=name,
                        detail=f"{p['recipe']} ({p['format']}): {p['artifact']}", reused=False, beside=beside,
                        note=threads)
                    for p in s["parts"]]
        elif kind == QUANTIZE:
            out.append(row("quantize", s["seconds"], s.get("cpu_seconds"), model=name,
                           detail=f"{s['step'].split(':', 1)[1]}: {', '.join(s.get('artifacts') or ())}",
                           reused=s["reused"], beside=beside,
                           note="reused: inputs unchanged, outputs match their hashes" if s["reused"] else threads))
        elif kind == CHECK:
            out.append(row("check", None, None, model=name, reused=s["reused"],
                           note="reused: report.json kept (artifacts, data, settings, devices unchanged)"
                           if s["reused"] else "its phases are the build-wide rows below"))
    return out


def _job_seconds(models: list[dict[str, Any]], reports: dict[str, dict[str, Any]], kind: str) -> float:
    """Summed job wall seconds of ``kind`` over the emulated records of the checks that ran now."""
    ran = {m["name"] for m in models if any(s["step"] == CHECK and not s["reused"] for s in m.get("steps", []))}
    return sum(float((rec.get("job_seconds") or {}).get(kind) or 0)
               for name in ran for rec in (reports.get(name) or {}).get("records", []) if rec.get("emulated"))


def rows(models: list[dict[str, Any]], reports: dict[str, dict[str, Any]], *,
         setup: tuple[float, float, bool], checks: tuple[dict[str, float], dict[str, float], dict[str, bool]]
         ) -> list[dict[str, Any]]:
    """Every row, in the order the build ran them. ``setup``: (wall, CPU, reused) of the device setup;
    ``checks``: wall, CPU and beside-emulation by build-wide check phase (``runner._Checks``)."""
    wall, cpu, beside = checks
    out = [row("devices setup", setup[0], setup[1], reused=setup[2],
               note="ARM environment already set up (or none needed)" if setup[2] else None)]
    for m in models:
        if m["status"] == "ok":
            out += _model_rows(m)
    if not any(r["phase"] == "check" and r["reused"] is False for r in out):
        return out
    out.append(row("desktop accuracy", wall["desktop_accuracy"], cpu["desktop_accuracy"],
                   beside=beside["desktop_accuracy"]))
    if wall["emulated_wall"]:
        overlapped = any(r["beside_emulation"] for r in out)
        out.append(row("emulated checks (first job to last)", wall["emulated_wall"], cpu["emulated_wall"],
                       beside=overlapped, note="overlaps the rows marked beside emulation" if overlapped else None))
        out.append(row("emulated checks after the last model", wall["emulated_after_last_model"],
                       cpu["emulated_after_last_model"]))
        for kind, label in (("accuracy", "emulated accuracy"), ("instructions", "emulated instruction counts")):
            out.append(row(label, _job_seconds(models, reports, kind), None, note=JOB_SECONDS_NOTE))
    out.append(row("desktop latency (alone)", wall["desktop_latency"], cpu["desktop_latency"]))
    return out
