"""Markdown rendering of report.json (header, one table per device, failures with reasons)."""

from __future__ import annotations

from typing import Any

from ..gate_result import fmt_value, limit_text
from . import compare_view, phases, recipe as recipe_mod
from .tables import BASELINE_FIGURES, DeviceTable, Row, device_tables, side_by_side, twin_rows

COLUMNS = ("Artifact", "Format", "Precision", "Accuracy (95% CI, n)", "Δ acc vs fp32 (pts)", "Agreement",
           "Max abs Δlogit", "Latency p50 / p90 ms (threads)", "Speed-up vs fp32", "Size MB",
           "Size ratio", "Peak RSS MB")
DASH = "—"
EMULATED_COLUMNS = ("Artifact", "Format", "Precision", "Accuracy (95% CI, n)", "Δ acc vs fp32 (pts)",
                    "Agreement", "Emulated examples", "Drift vs desktop: max abs Δlogit",
                    "Flips vs desktop (95% upper bound)", "Instructions / inference (M)", "Instr. ratio vs fp32",
                    "Estimated ms (cycle model, ± error band; not measured)", "Size MB",
                    "Emulator ms / example (not latency)")
BOARD_COLUMNS = (*COLUMNS, "Drift vs desktop: max abs Δlogit", "Flips vs desktop (95% upper bound)")
METHOD_MARK = {"margin-screened": "ˢ", "all emulated": "", "measured": ""}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return DASH if value is None else f"{value:{fmt}}{suffix}"


def accuracy_text(row: Row, short: bool = False) -> str:
    """An accuracy with its n and 95% interval; never a bare percentage."""
    if row.accuracy is None:
        return DASH
    mark = METHOD_MARK.get(row.accuracy_method or "", "")
    if row.accuracy_ci95 is None:
        return f"{row.accuracy * 100:.2f}%{mark} (n={row.n})"
    lo, hi = row.accuracy_ci95
    if short:
        return f"{row.accuracy * 100:.1f}%{mark} [{lo * 100:.1f}, {hi * 100:.1f}]"
    return f"{row.accuracy * 100:.2f}%{mark} [{lo * 100:.1f}, {hi * 100:.1f}] n={row.n}"


def agreement_text(row: Row) -> str:
    """Agreement with fp32 (same device, same examples) with its 95% interval."""
    if row.agreement is None:
        return DASH
    if row.agreement_ci95 is None:
        return f"{row.agreement * 100:.2f}% (n={row.n})"
    lo, hi = row.agreement_ci95
    return f"{row.agreement * 100:.2f}% [{lo * 100:.1f}, {hi * 100:.1f}]"


def _board_row(row: Row, emulated: bool) -> list[str]:
    """A board's row: the desktop's columns (latency only where it is device time) plus drift vs desktop."""
    cells = _row(row)
    if emulated and row.status == "ok":
        cells[7] = "emulated: not latency"
    return [*cells, _num(row.drift_max_abs, ".3g") if row.status == "ok" else DASH,
            flips_text(row) if row.status == "ok" else DASH]


def _row(row: Row) -> list[str]:
    if row.status != "ok":
        return [f"`{row.artifact}`", row.format, row.precision, "**failed**", DASH, DASH, DASH, DASH, DASH,
                _num(row.size_mb, ".2f"), _num(row.size_ratio, ".2f", "×"), DASH]
    latency = (f"{row.p50_ms:.2f} / {row.p90_ms:.2f} ({row.threads})"
               if row.p50_ms is not None and row.p90_ms is not None else DASH)
    if row.role == "drift-reference":
        latency = "not measured (drift reference)"
    return [f"`{row.artifact}`", row.format, row.precision, accuracy_text(row),
            _num(row.delta_accuracy_points, "+.2f"), agreement_text(row),
            _num(row.max_abs_logit_diff, ".3g"), latency, _num(row.speedup, ".2f", "×"),
            _num(row.size_mb, ".2f"), _num(row.size_ratio, ".2f", "×"), _num(row.peak_rss_mb, ".0f")]


def _side_by_side(table: DeviceTable) -> list[str]:
    """Formats next to each other per precision (accuracy, p50 latency, size), when there are several."""
    view = side_by_side(table)
    if view is None:
        return []
    def p50(r: Row) -> str:  # a latency at another length than the rest of its row says which
        text = _num(r.p50_ms, ".2f")
        if r.p50_ms is not None and not view.latency_comparable(r.precision):
            text += f" ({r.latency_seq_len} tok)†"
        return text

    metrics = (("Accuracy", lambda r: accuracy_text(r, short=True)),
               ("p50 ms", p50),
               ("Speed-up", lambda r: _num(r.speedup, ".2f", "×")),
               ("Size MB", lambda r: _num(r.size_mb, ".2f")))
    if table.emulated:  # emulator wall time is not latency: compare accuracy and size only
        metrics = (metrics[0], metrics[3])
    header = ["Precision"] + [f"{name} {fmt}" for name, _ in metrics for fmt in view.formats]
    lines = ["", "Formats side by side:", "", "| " + " | ".join(header) + " |",
             "|---|" + "|".join("---:" for _ in header[1:]) + "|"]
    for precision in view.precisions:
        cells = [precision]
        for _, fn in metrics:
            for fmt in view.formats:
                row = view.cells.get((precision, fmt))
                cells.append(DASH if row is None else ("failed" if row.status != "ok" else fn(row)))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if view.mixed_lengths and not table.emulated:
        lines += ["", ("† latency at a different sequence length than the other format's in its row "
                       "(a fixed-shape TFLite signature): not comparable.")]
    return lines


def _emulated_row(row: Row) -> list[str]:
    if row.status != "ok":
        return [f"`{row.artifact}`", row.format, row.precision, "**failed**", *[DASH] * 8,
                _num(row.size_mb, ".2f"), DASH]
    return [f"`{row.artifact}`", row.format, row.precision, accuracy_text(row),
            _num(row.delta_accuracy_points, "+.2f"), agreement_text(row),
            DASH if row.n_emulated is None else f"{row.n_emulated} of {row.n}",
            _num(row.drift_max_abs, ".3g"), flips_text(row), instructions_text(row),
            _num(row.instructions_ratio, ".2f", "×"), estimate_text(row), _num(row.size_mb, ".2f"),
            _num(row.emulated_ms_per_example, ".0f")]


def estimate_text(row: Row) -> str:
    """"~40.7 ±50%": the estimate with its error band (a dash when there is none)."""
    if row.estimated_ms is None:
        return DASH
    band = "" if row.estimate_band_pct is None else f" ±{row.estimate_band_pct:.0f}%"
    return f"~{row.estimated_ms:.3g}{band}"


def estimate_labels(table: DeviceTable) -> list[str]:
    """The qualifier(s) of a device's estimates, said once under its table."""
    labels = list(dict.fromkeys(r.estimate_label for r in table.rows if r.estimate_label))
    notes = [r for r in table.rows if r.estimate_note and r.status == "ok"]
    out = [f"Estimated ms: {lab}; batch 1 at seq_len, 1 thread; an estimate, not a measurement." for lab in labels]
    return out + [f"`{r.artifact}`: {r.estimate_note}" for r in notes]


def flips_text(row: Row) -> str:
    """Flips as count/n with the 95% upper bound of the rate."""
    if row.drift_flips is None:
        return DASH
    bound = "" if row.flip_rate_upper95 is None else f" (≤ {row.flip_rate_upper95 * 100:.2f}%)"
    return f"{row.drift_flips}/{row.n}{bound}"


def instructions_text(row: Row) -> str:
    if row.instructions is None:
        return "unavailable"
    spread = "" if row.instructions_spread is None else f" ±{row.instructions_spread * 100:.2g}%"
    return f"{row.instructions / 1e6:.2f}{spread}{CARRIED_MARK if row.instructions_carried else ''}"


CARRIED_MARK = "ᶜ"  # the count is another core's, carried over (the notes under the table say from where and why)


def carried_notes(table: DeviceTable) -> list[str]:
    """One line per carried-over count: which core's, and why the same kernels ran."""
    return [f"{CARRIED_MARK} `{row.artifact}`: instructions {row.instructions_carried}"
            for row in table.rows if row.instructions_carried]


CLASS_LABELS = {"dotprod": "dot product (SDOT/UDOT)", "i8mm": "int8 matmul (SMMLA/UMMLA)", "sve": "other SVE",
                "fp_fma": "vector FP multiply-add", "simd_other": "other SIMD/FP", "scalar": "scalar"}


def kernel_path_text(row: Row) -> str:
    """The instruction classes that ran, e.g. "dot product (SDOT/UDOT) 49% · other SIMD/FP 30% · ..."."""
    return " · ".join(f"{CLASS_LABELS.get(k, k)} {share * 100:.1f}%" for k, share in row.instruction_shares
                      if share > 0)


def _kernel_paths(table: DeviceTable) -> list[str]:
    rows = [r for r in table.rows if r.instruction_shares]
    if not rows:
        return []
    return ["", "Kernel path (instruction classes of the counted inference, share of its instructions):", ""] + [
        f"- `{row.artifact}`: {_cell(kernel_path_text(row))}" for row in rows]


def _emulation_notes(table: DeviceTable) -> list[str]:
    """How each emulated accuracy was obtained: what ran under emulation and the bound relied on."""
    rows = [r for r in table.rows if r.emulation]
    if not rows:
        return []
    lines = ["", "How the accuracies above were obtained (ˢ = margin-screened):", ""]
    for row in rows:
        em = row.emulation
        if em.get("method") == "all":
            lines.append(f"- `{row.artifact}`: all {em['n']} examples ran under emulation.")
            continue
        bound = em.get("bound") or {}
        probe = em.get("probe_flips") or {}
        lines.append(
            f"- `{row.artifact}`: {em['n_emulated']} of {em['n']} examples ran under emulation "
            f"({em['n_probe']} random probe + {em['n_screened']} screened, {bound.get('rounds', 0)} round(s)); "
            f"{em['n_carried_over']} carried over from the desktop. Max drift measured "
            f"{em['max_drift_emulated']:.3g}; relied on: {_cell(bound.get('assumption', '?'))}. "
            f"Probe alone (no assumption): {probe.get('k', 0)}/{probe.get('n', 0)} flips "
            f"(≤ {100 * (probe.get('upper95') or 0):.1f}%).")
    return lines


def _profile(table: DeviceTable, top: int = 3) -> list[str]:
    """The slowest operator types of each profiled artifact (``check --profile``)."""
    rows = [r for r in table.rows if r.top_ops or r.profile_note]
    if not rows or table.emulated:
        return []
    lines = ["", f"Slowest operators (per-op profile, batch 1, top {top} by kernel time):", ""]
    for row in rows:
        if row.top_ops:
            ops = ", ".join(f"{op} {ms:.2f} ms ({share * 100:.0f}%)" for op, ms, share in row.top_ops[:top])
            lines.append(f"- `{row.artifact}`: {_cell(ops)}")
        else:
            lines.append(f"- `{row.artifact}`: {_cell(row.profile_note)}")
    return lines


RECIPES_INTRO = ("What ran in each int8 artifact (op types counted in the quantized graph; elementwise "
                 "arithmetic and data movement not counted):")


def recipe_lines(recipes: list[recipe_mod.Recipe], prefix: str = "") -> list[str]:
    """One list item per int8 artifact: its op groups with counts (``report/recipe.py``)."""
    return [f"- {prefix}`{r.artifact}` ({r.format} {r.precision}): {_cell(recipe_mod.text(r))}" for r in recipes]


def _source(source: Any) -> str:
    if not isinstance(source, dict):
        return str(source) if source else "unknown"
    kind = source.get("kind", "unknown")
    detail = source.get("id") or source.get("name") or source.get("path")
    return f"{kind} `{detail}`" if detail else str(kind)


def _table(table: DeviceTable) -> list[str]:
    title = f"## {table.device}" + (f" — {table.description}" if table.description else "")
    lines = [title, ""]
    facts = []
    if table.runtimes:
        facts.append("runtime " + ", ".join(table.runtimes))
    if table.cpu:
        facts.append(f"CPU: {table.cpu}")
    if facts:
        lines += [" · ".join(_cell(f) for f in facts), ""]
    lines += _board_lines(table)
    columns, row_cells = COLUMNS, _row
    if table.board:
        columns, row_cells = BOARD_COLUMNS, lambda row: _board_row(row, table.emulated)
    elif table.emulated:
        lines += ["> Emulated: cost is guest instructions per batch-1 inference at seq_len (deterministic, "
                  "relative to the other artifacts on this CPU model; ± is the spread of the counted runs), "
                  "not time. Emulator wall time is shown only as such and is not device latency. Drift and "
                  "flips compare with the desktop run of the same artifact on the same examples.", ""]
        columns, row_cells = EMULATED_COLUMNS, _emulated_row
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row_cells(row)) + " |" for row in table.rows]
    notes = [row for row in table.rows if row.instructions_note]
    if notes:
        lines += [""] + [f"- `{row.artifact}`: {_cell(row.instructions_note)}" for row in notes]
    if carried := carried_notes(table):
        lines += [""] + [f"- {_cell(line)}" for line in carried]
    if table.emulated and not table.board:
        est = estimate_labels(table)
        if est:
            lines += [""] + [f"- {_cell(line)}" for line in est]
        lines += _kernel_paths(table)
        lines += _emulation_notes(table)
    lines += _side_by_side(table)
    lines += _profile(table)
    if table.failed:
        lines += ["", "Failed:", ""]
        lines += [f"- `{row.artifact}`: {_cell(row.error or 'no reason given')}" for row in table.failed]
    return lines + [""]


def _board_lines(table: DeviceTable) -> list[str]:
    """What a board is (cores, Python, glibc, runtimes), whether it is emulated, and its clock notes."""
    b = table.board
    if not b:
        return []
    cores = " + ".join(f"{c['core']}×{c['count']}" + (f" @ {c['max_mhz']} MHz" if c.get("max_mhz") else "")
                       for c in b.get("cores") or ())
    runtimes = ", ".join(f"{k} {v}" for k, v in (b.get("runtimes") or {}).items() if isinstance(v, str))
    facts = [f"Board {b.get('host') or b.get('address')}: {b.get('machine') or '?'}", cores or None,
             f"Python {b['python']}" if b.get("python") else None, f"glibc {b['glibc']}" if b.get("glibc") else None,
             b.get("os"), f"kernel {b['kernel']}" if b.get("kernel") else None, runtimes or None]
    lines = [" · ".join(_cell(f) for f in facts if f), ""]
    if b.get("emulated"):
        lines += [f"> Declared emulated ({_cell(b.get('emulated_by') or 'config')}): its wall time is emulator time, "
                  "shown only as such and never as device latency.", ""]
    if table.clock_notes:
        lines += [f"- Clock: {_cell(n)}" for n in table.clock_notes] + [""]
    return lines


TWIN_TITLE = "Boards next to their emulated twins"
TWIN_INTRO = ("Same artifact, same core name: the board measured for real, the twin under QEMU. Drift and flips are "
              "against the desktop run on the same examples.")
TWIN_HEADERS = ("Board", "Core", "Artifact", "Accuracy on the board", "Accuracy on the twin",
                "Board drift (max abs Δlogit, flips)", "Twin drift (max abs Δlogit, flips)",
                "Twin instructions / inference (M)", "Board latency p50 / p90 ms (threads)",
                "Twin estimated ms (cycle model)", "Estimate error vs board p50")


def twin_cells(report: dict[str, Any]) -> list[list[str]]:
    """Each board next to its emulated twin (same core, same artifact) as plain-text cells (Markdown and HTML)."""
    out = []
    for p in twin_rows(report):
        b, t = p.board_row, p.twin_row

        def drift(row: Row | None) -> str:
            if row is None or row.drift_max_abs is None:
                return DASH
            return f"{row.drift_max_abs:.3g}, {flips_text(row)}"

        if p.board_emulated:
            latency = "emulated: not latency"
        elif b.p50_ms is not None:
            latency = f"{b.p50_ms:.2f} / {b.p90_ms:.2f} ({b.threads})"
        else:
            latency = DASH
        twin_acc = accuracy_text(t, short=True) if t is not None else "not checked"
        estimate = DASH if p.twin_estimated_ms is None else f"~{p.twin_estimated_ms:.4g}"
        check = p.estimate
        error = DASH if check is None else (f"{check.error_pct:+.1f}%" + (
            "" if check.band_pct is None else f" ({'within' if check.within_band else 'OUTSIDE'} ±{check.band_pct:g}%)"))
        out.append([p.board, p.core, b.artifact, accuracy_text(b, short=True) if b.status == "ok" else "failed",
                    twin_acc, drift(b), drift(t), instructions_text(t) if t is not None else DASH, latency, estimate,
                    error])
    return out


def _twin_section(report: dict[str, Any]) -> list[str]:
    """Each board next to its emulated twin (same core, same artifact): how the emulated model compares."""
    cells = twin_cells(report)
    if not cells:
        return []
    lines = [f"## {TWIN_TITLE}", "", TWIN_INTRO, "", "| " + " | ".join(TWIN_HEADERS) + " |",
             "|---|---|---|" + "---:|" * (len(TWIN_HEADERS) - 3)]
    for c in cells:
        c = [*c[:2], f"`{c[2]}`", "**failed**" if c[3] == "failed" else c[3], *c[4:]]
        lines.append("| " + " | ".join(_cell(x) for x in c) + " |")
    return lines + [""]


def render(report: dict[str, Any], manifest: dict[str, Any] | None = None) -> str:
    """Markdown for a report.json dict (``manifest``: the manifest data, for facts the report lacks)."""
    model = {**((manifest or {}).get("model") or {}), **{k: v for k, v in report.get("model", {}).items() if v}}
    dataset, settings = report.get("dataset", {}), report.get("settings", {})
    versions = report.get("versions", {})
    version_text = ", ".join(f"{k} {versions[k]}" for k in ("edgebert", "python", "onnxruntime", "ai-edge-litert")
                             if k in versions)
    lines = [
        f"# edgebert report: {model.get('architecture', 'model')}",
        "",
        f"- Model: {model.get('architecture', 'unknown')} from {_source(model.get('source'))}",
        f"- Dataset: `{dataset.get('name', '?')}`, n = {dataset.get('n', '?')}"
        + (f" (first {dataset['limit']})" if dataset.get("limit") else "")
        + "".join(f"; {note}" for note in dataset.get("notes") or ()),
        f"- Settings: seq_len {settings.get('seq_len')}, threads {settings.get('threads')}, "
        f"{settings.get('warmup')} warm-up + {settings.get('runs')} timed runs at batch 1; accuracy "
        f"{'at batch 1, each example at its own length' if settings.get('batch_size') == 1 else 'in length-sorted batches of ' + str(settings.get('batch_size'))}",
        f"- Created {report.get('created', '?')} with {version_text}",
        "",
        f"Accuracy: {report.get('accuracy_definition', 'fraction of examples classified correctly')}. "
        "Δ accuracy, agreement, max abs Δlogit, "
        "speed-up and size ratio are relative to the fp32 artifact of the same format on the same device. "
        "Size MB = 10^6 bytes.",
        "",
    ]
    latency = report.get("latency_input", {}).get("definition")
    if latency:
        lines += [f"Latency: {latency}.", ""]
    if report.get("peak_rss_definition"):
        lines += [f"Peak RSS: {report['peak_rss_definition']}.", ""]
    if report.get("instructions_definition"):
        lines += [f"Instructions (emulated devices): {report['instructions_definition']}.", ""]
    if report.get("estimated_latency_definition"):
        lines += [f"Estimated ms (emulated devices): {report['estimated_latency_definition']}.", ""]
    if report.get("emulated_wall_definition"):
        lines += [f"Emulated wall time: {report['emulated_wall_definition']}.", ""]
    if report.get("emulation_definition"):
        lines += [f"Emulated accuracy: {report['emulation_definition']}.", ""]
    lines += _goal_lines(manifest)
    recipes = recipe_lines(recipe_mod.recipes(manifest))
    if recipes:
        lines += ["## Recipes", "", RECIPES_INTRO, "", *recipes, ""]
    for table in device_tables(report):
        lines += _table(table)
    lines += _twin_section(report)
    return "\n".join(lines).rstrip() + "\n"


def _goal_lines(manifest: dict[str, Any] | None) -> list[str]:
    """Artifacts quantized with an accuracy goal (``--max-drop``): drops, layers kept float, size cost."""
    from ..goal_summary import report_lines

    goals = report_lines(manifest)
    if not goals:
        return []
    lines = ["Accuracy goals (int8 vs fp32 on the goal texts, at quantization):", ""]
    for name, text, layers in goals:
        kept = f"; float: {', '.join(f'`{_cell(layer)}`' for layer in layers)}" if layers else ""
        lines.append(f"- `{_cell(name)}`: {_cell(text)}{kept}")
    return lines + [""]


# --- build-level report (``edgebert build``) ---------------------------------------------------
def format_delta(entry: dict[str, Any] | None, figure: str) -> str:
    """One baseline delta: "+0.40 pts" (accuracy), "-1.20%" (the others), or a dash."""
    delta = (entry or {}).get("delta")
    if delta is None:
        return DASH
    if figure == "accuracy":
        return f"{delta:+.2f} pts"
    return f"{delta * 100:+.2f}%"


def _gate_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| Status | Model | Artifact | Device | Gate | Measured | Limit |", "|---|---|---|---|---|---:|---:|"]
    for g in results:
        measured = fmt_value(g["value"], g["unit"]) if g["value"] is not None else _cell(g.get("detail") or DASH)
        limit = limit_text(g)
        lines.append(f"| {'✅ pass' if g['passed'] else '❌ **FAIL**'} | {g['model']} | `{g['artifact']}` | "
                     f"{g['device']} | {g['gate']} | {measured} | {limit} |")
    return lines


def _baseline_table(vs: dict[str, Any]) -> list[str]:
    """The "vs baseline" section: one row per (model, artifact, device), deltas (p50: information)."""
    gated = vs.get("limits", {}).get("max_latency_increase") is not None
    lines = ["## vs baseline", "", f"Baseline `{vs['file']}`; accuracy in points, the others new / baseline - 1"
             f"{'' if gated else '; p50 is information only'}.", "",
             "| Model | Artifact | Device | Accuracy Δ | Instructions Δ | Estimated ms Δ | Size Δ | p50 Δ | |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in vs["records"]:
        cells = [format_delta(r.get(f), f) for f in BASELINE_FIGURES]
        if r["status"] == "new":
            cells = [DASH] * len(BASELINE_FIGURES)
        lines.append(f"| {r['model']} | `{r['artifact']}` | {r['device']} | " + " | ".join(cells)
                     + f" | {'new' if r['status'] == 'new' else ''} |")
    lines += [f"| {r['model']} | `{r['artifact']}` | {r['device']} | " + " | ".join([DASH] * len(BASELINE_FIGURES))
              + " | missing (in the baseline, not built) |" for r in vs.get("missing", ())]
    return lines + [""]


def build_recipes(model: dict[str, Any], manifests: dict[str, dict[str, Any]] | None) -> list[recipe_mod.Recipe]:
    """The recipes of the artifacts a build lists for ``model`` (a summary entry), from its manifest."""
    names = {a["name"] for a in model.get("artifacts", ())}
    return [r for r in recipe_mod.recipes((manifests or {}).get(model["name"])) if r.artifact in names]


def _comparison_lines(comp: dict[str, Any] | None) -> list[str]:
    """"Which model on each device": per device each model's best artifact and one sentence (``compare.py``)."""
    if not comp or not comp.get("devices"):
        return []
    lines = [f"## {compare_view.TITLE}", "", *(f"{t}\n" for t in compare_view.intro(comp))]
    for d in comp["devices"]:
        head = compare_view.headers(d)
        lines += [f"### {_cell(compare_view.device_title(d))}", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
                  *("| " + " | ".join(_cell(c) for c in r) + " |" for r in compare_view.rows(d, comp)),
                  "", f"**{_cell(d['sentence'])}**", ""]
        slower = compare_view.not_cheaper(d)
        if slower:
            lines += [f"{compare_view.NOT_CHEAPER} on {d['device']}:", "", *(f"- {_cell(t)}" for t in slower), ""]
    return lines


def _phase_lines(summary: dict[str, Any]) -> list[str]:
    """"Where the time went": the build's phase table (``report/phases.py``)."""
    rows = phases.table(summary)
    if not rows:
        return []
    head = "| " + " | ".join(phases.HEADERS) + " |"
    align = "|---|---|---|---:|---:|---|---|"
    return ["## Where the time went", "", phases.INTRO, "", head, align,
            *("| " + " | ".join(_cell(c) for c in r) + " |" for r in rows), ""]


def render_build(summary: dict[str, Any], reports: dict[str, dict[str, Any]],
                 manifests: dict[str, dict[str, Any]] | None = None) -> str:
    """Markdown for a build: verdict, gate failures, artifacts (reused or built) and their recipes (from
    ``manifests``, model name -> manifest data), then each model's report."""
    gates = summary["gates"]
    verdict = "✅ passed" if summary["status"] == "passed" else "❌ FAILED"
    cfg = summary["config"]
    lines = [f"# edgebert build: {verdict}", "",
             f"- Config: {cfg.get('source')}; output `{summary['output']}`",
             f"- Matrix: {', '.join(m['name'] for m in summary['models'])} × {', '.join(cfg['formats'])} × "
             f"{', '.join(cfg['precisions'])}; devices {', '.join(cfg['devices']['names'])}",
             f"- Gates: {gates['checked']} checked, {gates['failed']} failed; "
             f"{summary['seconds']:.0f} s ({'everything reused' if summary.get('reused') else 'built ' + summary['finished']})",
             ""]
    failed_models = [m for m in summary["models"] if m["status"] != "ok"]
    if failed_models:
        lines += ["## Models that failed to build", ""]
        lines += [f"- **{m['name']}** (`{m['source']}`): {_cell(m.get('error'))}" for m in failed_models] + [""]
    all_gates = [g for m in summary["models"] for g in m["gates"]]
    if gates["failed"]:
        lines += ["## Failed gates", ""] + _gate_table([g for g in all_gates if not g["passed"]]) + [""]
    lines += _comparison_lines(summary.get("comparison"))
    if summary.get("baseline"):
        lines += _baseline_table(summary["baseline"])
    lines += _phase_lines(summary)
    lines += ["## Artifacts", "", "| Model | Artifact | Format | Precision | Size MB | Gates | Built |",
              "|---|---|---|---|---:|---|---|"]
    for m in summary["models"]:
        for a in m.get("artifacts", []):
            mine = [g for g in m["gates"] if g["artifact"] == a["name"]]
            bad = sum(not g["passed"] for g in mine)
            status = DASH if not mine else ("❌ " + f"{bad} failed" if bad else f"✅ {len(mine)} passed")
            lines.append(f"| {m['name']} | `{a['name']}` | {a['format']} | {a['precision']} | "
                         f"{a['size_bytes'] / 1e6:.2f} | {status} | {'reused' if a['reused'] else 'built'} |")
    multi = len(summary["models"]) > 1
    recipes = [line for m in summary["models"] for line in recipe_lines(
        build_recipes(m, manifests), f"{m['name']} " if multi else "")]
    if recipes:
        lines += ["", RECIPES_INTRO, "", *recipes]
    lines.append("")
    for m in summary["models"]:
        if m["name"] in reports:
            body = render(reports[m["name"]])
            lines += [f"## Model `{m['name']}`", ""]
            lines += [("#" + ln if ln.startswith("#") else ln) for ln in body.splitlines()[1:]][1:]
            lines.append("")
    if all_gates:
        lines += ["<details><summary>Every gate</summary>", "", *_gate_table(all_gates), "", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
