"""HTML rendering of reports: one self-contained file (inline CSS, inline SVG plots drawn here).

Nothing is fetched at view time: no script, no font, no image file. Per device: a table of artifacts
(accuracy, drop, agreement, latency or guest instructions, size, gate status, slowest ops) and two
scatter plots (accuracy vs size; accuracy vs latency p50, or vs instructions on emulated devices),
each point coloured by its gate status. Rows come from ``tables.py``, as for Markdown.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from ..gate_result import fmt_value, limit_text
from . import compare_view, phases, recipe as recipe_mod
from .markdown import (
    RECIPES_INTRO,
    TWIN_HEADERS,
    TWIN_INTRO,
    TWIN_TITLE,
    twin_cells,
    accuracy_text,
    agreement_text,
    build_recipes,
    flips_text,
    format_delta,
    estimate_labels,
    estimate_text,
    carried_notes,
    instructions_text,
    kernel_path_text,
)
from ..vocabulary import PRECISIONS
from .tables import BASELINE_FIGURES, DeviceTable, Row, device_tables

PASS, FAIL, NONE = "#1a7f37", "#cf222e", "#6e7781"
SHAPES = ("circle", "square", "triangle", "diamond")
PRECISION_SHORT = {p: p.replace("dynamic", "dyn").replace("static", "st") for p in PRECISIONS}  # plot labels

CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;
margin:0;background:#f6f8fa}
main{max-width:1320px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 8px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.banner{padding:12px 16px;border-radius:6px;color:#fff;font-weight:600;font-size:16px;margin:12px 0}
.banner.pass{background:#1a7f37}.banner.fail{background:#cf222e}
.facts{color:#57606a;margin:4px 0 0;padding-left:18px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d8dee4;padding:5px 6px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;position:sticky;top:0;white-space:normal;vertical-align:bottom}
td.l,th.l{text-align:left}td.ops{white-space:normal;text-align:left;color:#57606a;font-size:12px;min-width:200px;max-width:300px}
tr.fail td{background:#ffebe9}tr.failed td{background:#fff8c5}
.tag{display:inline-block;padding:1px 7px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.tag.pass{background:#1a7f37}.tag.fail{background:#cf222e}.tag.none{background:#6e7781}
.why{color:#cf222e;font-size:12px;white-space:normal;text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plots svg{background:#fff;border:1px solid #d0d7de;border-radius:6px}
.note{color:#57606a;font-size:12.5px;margin:6px 0}
.sub{display:block;color:#57606a;font-size:11px}
ul.ops{color:#57606a;font-size:12.5px;margin:4px 0;padding-left:18px}
ul.recipes{margin:4px 0;padding-left:18px;font-size:13px}ul.recipes li{margin:3px 0;overflow-wrap:anywhere}
ul.recipes .grp{font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eff1f3;padding:1px 4px;border-radius:4px}
"""


# --- SVG ---------------------------------------------------------------------------------------
def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 0.1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, v = [], start
    while True:  # through the first tick at or above hi: every point inside the plot
        out.append(round(v, 10))
        if v >= hi - step * 1e-9:
            return out
        v += step


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _marker(shape: str, x: float, y: float, color: str, r: float = 6.0) -> str:
    common = f'fill="{color}" fill-opacity="0.85" stroke="#fff" stroke-width="1.2"'
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" {common}/>'
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - r * 1.15:.1f} {x - r:.1f},{y + r * 0.85:.1f} '
                f'{x + r:.1f},{y + r * 0.85:.1f}" {common}/>')
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - r * 1.2:.1f} {x + r * 1.2:.1f},{y:.1f} {x:.1f},{y + r * 1.2:.1f} '
                f'{x - r * 1.2:.1f},{y:.1f}" {common}/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {common}/>'


LABEL_H = 12.0          # px: a 10.5 px label's line box
CHAR_W = 6.1            # px: a generous average glyph width at 10.5 px (labels are short ASCII)
MARKER_R = 7.0


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(points: list[tuple[float, float, str]], area: tuple[float, float, float, float]
                 ) -> list[tuple[float, float, float, str, bool]]:
    """A position for each point's label that overlaps no other label and no marker.

    Tries the eight places around the point (right first), then slides further away vertically with
    a leader line. Returns ``(x, y_top, width, text, leader)`` per point, in input order. Greedy,
    deterministic (points taken from the top of the plot down), good for the ~12-24 points a
    device's plot has.
    """
    x0, y0, x1, y1 = area
    taken = [(x - MARKER_R, y - MARKER_R, x + MARKER_R, y + MARKER_R) for x, y, _ in points]
    out: list = [None] * len(points)
    for i in sorted(range(len(points)), key=lambda k: (points[k][1], points[k][0])):
        x, y, text = points[i]
        w, h = CHAR_W * len(text) + 2, LABEL_H
        near = [(x + 9, y - h / 2), (x - 9 - w, y - h / 2), (x - w / 2, y - 9 - h), (x - w / 2, y + 9),
                (x + 6, y - 6 - h), (x + 6, y + 6), (x - 6 - w, y - 6 - h), (x - 6 - w, y + 6)]
        far = [(x + 14, y - h / 2 + d) for k in range(1, 12) for d in (-k * h, k * h)]
        far += [(x - 14 - w, y - h / 2 + d) for k in range(1, 12) for d in (-k * h, k * h)]
        choice = None
        for j, (lx, ly) in enumerate(near + far):
            box = (lx, ly, lx + w, ly + h)
            if box[0] < x0 + 1 or box[2] > x1 - 1 or box[1] < y0 + 1 or box[3] > y1 - 1:
                continue
            if not any(_overlaps(box, t) for t in taken):
                choice = (lx, ly, j >= len(near))
                break
        if choice is None:  # nowhere free: right of the point, clipped to the area
            choice = (min(x + 9, x1 - w - 1), max(y0 + 1, min(y - h / 2, y1 - h - 1)), False)
        lx, ly, leader = choice
        taken.append((lx, ly, lx + w, ly + h))
        out[i] = (lx, ly, w, text, leader)
    return out


def scatter(points: list[dict[str, Any]], *, title: str, xlabel: str, ylabel: str, width: int = 620,
            height: int = 380) -> str:
    """An inline SVG scatter plot. ``points``: dicts with x, y, label, color, shape, tooltip."""
    left, right, top, bottom = 64, 20, 36, 52
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="22" font-size="14" font-weight="600" fill="#1f2328">{escape(title)}</text>']
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None]
    if not pts:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#6e7781" '
                     f'font-size="13">no measured points</text></svg>')
        return "".join(parts)
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    xpad = (max(xs) - min(xs)) * 0.08 or max(abs(max(xs)) * 0.1, 1e-6)
    ypad = (max(ys) - min(ys)) * 0.12 or max(abs(max(ys)) * 0.02, 0.005)
    xt = _ticks(max(0.0, min(xs) - xpad), max(xs) + xpad)
    ytop = max(ys) + ypad
    if max(ys) <= 100 < ytop and "%" in ylabel:  # accuracy: no axis above 100 %
        ytop = 100.0
    yt = _ticks(min(ys) - ypad, ytop)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(v: float) -> float:
        return left + (v - x0) / ((x1 - x0) or 1) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / ((y1 - y0) or 1) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfcfd" stroke="#d0d7de"/>')
    for v in xt:
        parts.append(f'<line x1="{sx(v):.1f}" y1="{top}" x2="{sx(v):.1f}" y2="{top + ph}" stroke="#eaeef2"/>'
                     f'<text x="{sx(v):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11" '
                     f'fill="#57606a">{_fmt_tick(v)}</text>')
    for v in yt:
        parts.append(f'<line x1="{left}" y1="{sy(v):.1f}" x2="{left + pw}" y2="{sy(v):.1f}" stroke="#eaeef2"/>'
                     f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#57606a">{_fmt_tick(v)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle" font-size="12" '
                 f'fill="#1f2328">{escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle" '
                 f'font-size="12" fill="#1f2328">{escape(ylabel)}</text>')
    xy = [(sx(p["x"]), sy(p["y"])) for p in pts]
    labels = place_labels([(x, y, p["label"]) for (x, y), p in zip(xy, pts)], (left, top, left + pw, top + ph))
    for (x, y), p in zip(xy, pts):
        parts.append(f'<g><title>{escape(p.get("tooltip") or p["label"])}</title>'
                     f'{_marker(p.get("shape", "circle"), x, y, p["color"])}</g>')
    for (x, y), (lx, ly, _w, text, leader) in zip(xy, labels):
        if leader:
            parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{lx:.1f}" y2="{ly + LABEL_H / 2:.1f}" '
                         f'stroke="#8c959f" stroke-width="0.7"/>')
        parts.append(f'<text class="lbl" x="{lx:.1f}" y="{ly + LABEL_H - 3:.1f}" font-size="10.5" '
                     f'fill="#57606a">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- tables ------------------------------------------------------------------------------------
def _two(text: str) -> str:
    """A figure and its qualifier (interval, n, bound) on two lines, to keep columns narrow."""
    for sep in (" [", " (", " ±"):
        if sep in text:
            main, rest = text.split(sep, 1)
            return f'{escape(main)}<span class="sub">{escape(sep.strip() + rest)}</span>'
    return escape(text)


def _n(v: float | None, fmt: str, suffix: str = "") -> str:
    return "—" if v is None else f"{v:{fmt}}{suffix}"


def _gate_cell(results: list[dict[str, Any]]) -> tuple[str, str]:
    """(status class, html) for one record's gate results."""
    if not results:
        return "none", '<span class="tag none">no gate</span>'
    bad = [g for g in results if not g["passed"]]
    if not bad:
        return "pass", f'<span class="tag pass">pass ({len(results)})</span>'
    why = "; ".join(
        f"{g['gate']}: {fmt_value(g['value'], g['unit'])} vs {limit_text(g)}"
        if g["value"] is not None and g["limit"] is not None else f"{g['gate']}: {g.get('detail')}"
        for g in bad)
    return "fail", f'<span class="tag fail">FAIL</span><div class="why">{escape(why)}</div>'


def _device_section(device: str, items: list[tuple[str, DeviceTable, Row]], gate_results: dict,
                    models: list[str]) -> str:
    table = items[0][1]
    emulated = table.emulated
    shape_of = {m: SHAPES[i % len(SHAPES)] for i, m in enumerate(models)}
    multi = len(models) > 1
    head = ["Model"] if multi else []
    head += ["Artifact", "Format", "Precision", "Accuracy", "Δ acc (pts)", "Agreement"]
    head += (["Emulated", "Drift max |Δlogit|", "Flips (95% bound)", "Instr. (M)", "vs fp32",
              "Est. ms"]  # estimated, not measured: the qualifier is under the table and in each cell's title
             if emulated
             else ["p50 ms", "p90 ms", "Speed-up"])
    head += ["Size MB", "Size ratio", "Gates"]
    rows_html, size_pts, cost_pts, slowest, paths = [], [], [], [], []
    notes: dict[str, list[str]] = {}
    for model, _, row in items:
        results = gate_results.get((model, row.artifact, device), [])
        status, gate_html = _gate_cell(results)
        color = {"pass": PASS, "fail": FAIL}.get(status, NONE)
        cls = "failed" if row.status != "ok" else ("fail" if status == "fail" else "")
        cells = [f'<td class="l">{escape(model)}</td>'] if multi else []
        cells += [f'<td class="l"><code>{escape(row.artifact)}</code></td>', f'<td class="l">{row.format}</td>',
                  f'<td class="l">{row.precision}</td>']
        if row.status != "ok":
            span = len(head) - len(cells) - 1
            cells.append(f'<td class="l why" colspan="{span}">failed: {escape(row.error or "no reason given")}</td>')
            cells.append(f"<td>{gate_html}</td>")
            rows_html.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
            continue
        cells += [f"<td>{_two(accuracy_text(row))}</td>",
                  f"<td>{_n(row.delta_accuracy_points, '+.2f')}</td>",
                  f"<td>{_two(agreement_text(row))}</td>"]
        if emulated:
            insns = (_n(None if row.instructions is None else row.instructions / 1e6, ",.1f")
                     if row.instructions is not None else f'<span title="{escape(row.instructions_note or "")}">'
                                                            f'unavailable</span>')
            if row.instructions is not None:
                insns = _two(instructions_text(row).replace(" ±", " ±", 1))
            em = row.emulation or {}
            how = (f"{em.get('n_probe')} probe + {em.get('n_screened')} screened; "
                   f"{(em.get('bound') or {}).get('assumption', 'every example emulated')}")
            cells += [f'<td title="{escape(how)}">{"—" if row.n_emulated is None else f"{row.n_emulated}/{row.n}"}</td>',
                      f"<td>{_n(row.drift_max_abs, '.3g')}</td>", f"<td>{_two(flips_text(row))}</td>",
                      f"<td>{insns}</td>", f"<td>{_n(row.instructions_ratio, '.2f', '×')}</td>",
                      f'<td title="{escape(row.estimate_label or row.estimate_note or "")}">'
                      f'{_two(estimate_text(row))}</td>']
        else:
            cells += [f"<td>{_n(row.p50_ms, '.2f')}</td>", f"<td>{_n(row.p90_ms, '.2f')}</td>",
                      f"<td>{_n(row.speedup, '.2f', '×')}</td>"]
        cells += [f"<td>{_n(row.size_mb, '.2f')}</td>", f"<td>{_n(row.size_ratio, '.2f', '×')}</td>",
                  f"<td>{gate_html}</td>"]
        if emulated and row.instruction_shares:  # kernel path: a list below the table, like slowest ops
            paths.append(f"<li>{escape((model + '/') if multi else '')}<code>{escape(row.artifact)}</code>: "
                         f"{escape(kernel_path_text(row))}</li>")
        if not emulated:  # slowest operators: a list below the table (a column made it 1,800 px wide)
            ops = ", ".join(f"{op} {ms:.1f} ms ({share * 100:.0f}%)" for op, ms, share in row.top_ops[:3])
            if ops:
                slowest.append(f"<li>{escape((model + '/') if multi else '')}<code>{escape(row.artifact)}</code>: "
                               f"{escape(ops)}</li>")
            elif row.profile_note:  # the reason once, not in every row
                notes.setdefault(row.profile_note, []).append(row.artifact)
        rows_html.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
        label = (f"{model[:4]} " if multi else "") + f"{row.format} {PRECISION_SHORT.get(row.precision, row.precision)}"
        acc = None if row.accuracy is None else row.accuracy * 100
        tip = f"{model}/{row.artifact} on {device}: {status}"
        point = {"y": acc, "label": label, "color": color, "shape": shape_of[model], "tooltip": tip}
        size_pts.append({**point, "x": row.size_mb})
        cost = (None if row.instructions is None else row.instructions / 1e6) if emulated else row.p50_ms
        cost_pts.append({**point, "x": cost})
    th = "".join(f'<th class="{"l" if i < (4 if multi else 3) else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    cost_label = "guest instructions per inference (millions)" if emulated else "latency p50, ms (batch 1)"
    title = f"{device}" + (f" — {table.description}" if table.description else "")
    note = ("Emulated under QEMU: cost is guest instructions per batch-1 inference (deterministic, relative; "
            "± = spread of the counted runs), not time; drift and flips compare with the desktop run of the same "
            "artifact on the same examples. ˢ = margin-screened accuracy: the examples a bounded drift could "
            "flip ran under emulation, the rest kept the desktop prediction (hover 'Emulated examples')."
            if emulated else "Latency: batch 1; Δ accuracy, agreement, speed-up and size ratio against the fp32 "
                             "artifact of the same format on this device.")
    legend = " ".join(f'<span class="tag {c}">{t}</span>' for c, t in (("pass", "gates pass"), ("fail", "a gate fails"),
                                                                       ("none", "no gate")))
    if multi:
        legend += " · markers: " + ", ".join(f"{escape(m)} = {shape_of[m]}" for m in models)
    return (f'<h2 id="{escape(device)}">{escape(title)}</h2><p class="note">{escape(note)}</p>'
            f'<div class="card" style="overflow-x:auto"><table><thead><tr>{th}</tr></thead><tbody>'
            f'{"".join(rows_html)}</tbody></table></div>'
            + (f'<p class="note">Slowest operators (per-op profile, batch 1, top 3 by kernel time):</p>'
               f'<ul class="ops">{"".join(slowest)}</ul>' if slowest else "")
            + (f'<p class="note">Kernel path (instruction classes of the counted inference, share of its '
               f'instructions):</p><ul class="ops">{"".join(paths)}</ul>' if paths else "")
            + "".join(f'<p class="note">{escape(n)} ({escape(", ".join(sorted(set(a))))})</p>'
                      for n, a in notes.items() if n != "—")
            + "".join(f'<p class="note">{escape(line)}</p>' for line in (carried_notes(table) if emulated else ()))
            + "".join(f'<p class="note">{escape(line)}</p>' for line in (estimate_labels(table) if emulated else ()))
            + f'<p class="note">{legend}</p><div class="plots">'
            + scatter(size_pts, title=f"Accuracy vs size — {device}", xlabel="size (MB)", ylabel="accuracy (%)")
            + scatter(cost_pts, title=f"Accuracy vs {'instructions' if emulated else 'latency'} — {device}",
                      xlabel=cost_label, ylabel="accuracy (%)")
            + "</div>")


def _recipes_section(items: list[tuple[str, recipe_mod.Recipe]]) -> str:
    """The "Recipes" card: per int8 artifact, which op groups ran static/dynamic int8, weights-only or float."""
    if not items:
        return ""
    lis = []
    for prefix, r in items:
        groups = " · ".join(f'<span class="grp">{escape(g.name)}</span>: {escape(recipe_mod.ops_text(g))}'
                            for g in r.groups)
        extra = "".join(f"; {escape(e)}" for e in recipe_mod.extras(r))
        lis.append(f'<li title="{escape(r.description or "")}">{escape(prefix)}<code>{escape(r.artifact)}</code> '
                   f"({escape(r.format)} {escape(r.precision)}): {groups}{extra}</li>")
    return (f'<h2 id="recipes">Recipes</h2><div class="card"><p class="note">{escape(RECIPES_INTRO)}</p>'
            f'<ul class="recipes">{"".join(lis)}</ul></div>')


def _by_device(reports: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, DeviceTable, Row]]]:
    out: dict[str, list[tuple[str, DeviceTable, Row]]] = {}
    for model, report in reports.items():
        for table in device_tables(report):
            for row in table.rows:
                out.setdefault(table.device, []).append((model, table, row))
    return out


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main>{body}</main></body></html>\n")


def _baseline_section(vs: dict[str, Any]) -> str:
    """The "vs baseline" card: deltas per (model, artifact, device); new and missing records said so."""
    figs = BASELINE_FIGURES
    gated = vs.get("limits", {}).get("max_latency_increase") is not None
    rows = []
    for r in vs["records"]:
        cells = ["—"] * len(figs) if r["status"] == "new" else [format_delta(r.get(f), f) for f in figs]
        rows.append((r, cells, "new" if r["status"] == "new" else ""))
    rows += [(r, ["—"] * len(figs), "missing (in the baseline, not built)") for r in vs.get("missing", ())]
    body = "".join(
        f'<tr><td class="l">{escape(r["model"])}</td><td class="l"><code>{escape(r["artifact"])}</code></td>'
        f'<td class="l">{escape(r["device"])}</td>' + "".join(f"<td>{escape(c)}</td>" for c in cells)
        + f'<td class="l">{escape(note)}</td></tr>'
        for r, cells, note in rows)
    return (f'<h2>vs baseline</h2><div class="card"><p>Baseline <code>{escape(vs["file"])}</code>; accuracy in '
            f'points, the others new / baseline − 1{"" if gated else "; p50 is information only"}.</p>'
            '<table><tr><th class="l">Model</th><th class="l">Artifact</th><th class="l">Device</th>'
            "<th>Accuracy Δ</th><th>Instructions Δ</th><th>Estimated ms Δ</th>"
            f"<th>Size Δ</th><th>p50 Δ</th><th></th></tr>{body}</table></div>")


_LEFT = ' class="l"'


def _comparison_section(comp: dict[str, Any] | None) -> str:
    """"Which model on each device" (``compare.py``): a table per device and its sentence."""
    if not comp or not comp.get("devices"):
        return ""
    parts = [f"<h2>{escape(compare_view.TITLE)}</h2>", '<div class="card">',
             *(f'<p class="note">{escape(t.replace("**", ""))}</p>' for t in compare_view.intro(comp))]
    for d in comp["devices"]:
        head = compare_view.headers(d)
        parts.append(f"<h3>{escape(compare_view.device_title(d))}</h3><table><tr>"
                     + "".join(f'<th{_LEFT if i < 2 else ""}>{escape(h)}</th>' for i, h in enumerate(head))
                     + "</tr>" + "".join("<tr>" + "".join(f'<td{_LEFT if i < 2 else ""}>{escape(c)}</td>'
                                                         for i, c in enumerate(r)) + "</tr>"
                                         for r in compare_view.rows(d, comp))
                     + f'</table><p class="sentence"><strong>{escape(d["sentence"])}</strong></p>')
        slower = compare_view.not_cheaper(d)
        if slower:
            parts.append(f'<p class="note">{escape(compare_view.NOT_CHEAPER)} on {escape(d["device"])}:</p><ul>'
                         + "".join(f"<li>{escape(t)}</li>" for t in slower) + "</ul>")
    return "".join(parts) + "</div>"


def _phase_section(summary: dict[str, Any]) -> str:
    """"Where the time went": the build's phase table (``report/phases.py``); nothing without one."""
    rows = phases.table(summary)
    if not rows:
        return ""
    left, wrap = {0, 1, 5}, {2, 6}  # text columns (the long ones wrap); the seconds are right-aligned

    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="l"' if i in left else ' class="ops"' if i in wrap and tag == "td" else \
            ' class="l"' if i in wrap else ""
        return f"<{tag}{cls}>{escape(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(phases.HEADERS))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<h2>Where the time went</h2><div class="card"><p>{escape(phases.INTRO)}</p>'
            f'<table class="phases"><tr>{head}</tr>{body}</table></div>')


def render_build(summary: dict[str, Any], reports: dict[str, dict[str, Any]],
                 manifests: dict[str, dict[str, Any]] | None = None) -> str:
    """The build report: verdict, failed gates, the int8 recipes (from ``manifests``, model name -> manifest
    data), then per device a table and two plots (all models)."""
    gate_results: dict[tuple[str, str, str], list] = {}
    for m in summary["models"]:
        for g in m["gates"]:
            gate_results.setdefault((g["model"], g["artifact"], g["device"]), []).append(g)
    cfg = summary["config"]
    passed = summary["status"] == "passed"
    gates = summary["gates"]
    body = ["<h1>edgebert build</h1>",
            f'<div class="banner {"pass" if passed else "fail"}">'
            f'{"All gates pass" if passed else "Build FAILED"}: {gates["checked"]} gate checks, '
            f'{gates["failed"]} failed</div>',
            '<ul class="facts">',
            f"<li>Config: {escape(str(cfg.get('source')))}; output <code>{escape(summary['output'])}</code></li>",
            f"<li>Models: {escape(', '.join(m['name'] for m in summary['models']))}; formats "
            f"{escape(', '.join(cfg['formats']))}; precisions {escape(', '.join(cfg['precisions']))}</li>",
            f"<li>Devices: {escape(', '.join(cfg['devices']['names']))}; threads {cfg['devices']['threads']}; "
            f"finished {escape(summary['finished'])} in {summary['seconds']:.0f} s"
            f"{' (everything reused)' if summary.get('reused') else ''}</li>"]
    for model, report in reports.items():
        ds = report.get("dataset", {})
        notes = "; ".join(ds.get("notes") or ())
        body.append(f"<li>{escape(model)}: data <code>{escape(str(ds.get('name')))}</code>, n = {ds.get('n')}"
                    f"{escape('; ' + notes) if notes else ''}</li>")
    body.append("</ul>")
    for m in summary["models"]:
        if m["status"] != "ok":
            body.append(f'<div class="card why">{escape(m["name"])} failed to build: {escape(m.get("error") or "")}</div>')
    if gates["failures"]:
        body.append('<h2>Failed gates</h2><div class="card"><ul>' + "".join(
            f"<li>{escape(f['message'])}</li>" for f in gates["failures"]) + "</ul></div>")
    body.append(_comparison_section(summary.get("comparison")))
    if summary.get("baseline"):
        body.append(_baseline_section(summary["baseline"]))
    body.append(_phase_section(summary))
    multi = len(summary["models"]) > 1
    body.append(_recipes_section([(f"{m['name']} " if multi else "", r) for m in summary["models"]
                                  for r in build_recipes(m, manifests)]))
    models = list(reports)
    for device, items in _by_device(reports).items():
        body.append(_device_section(device, items, gate_results, models))
    return _page("edgebert build report", "".join(body))


def render(report: dict[str, Any], manifest: dict[str, Any] | None = None) -> str:
    """One artifact directory's report.json as HTML (same per-device sections, no gates)."""
    model = (report.get("model") or {}).get("architecture") or "model"
    ds = report.get("dataset", {})
    body = [f"<h1>edgebert report: {escape(model)}</h1>",
            f'<ul class="facts"><li>Data <code>{escape(str(ds.get("name")))}</code>, n = {ds.get("n")}'
            f'{escape("; " + "; ".join(ds.get("notes") or ())) if ds.get("notes") else ""}</li>'
            f'<li>Created {escape(str(report.get("created")))}</li></ul>',
            _goal_list(manifest), _recipes_section([("", r) for r in recipe_mod.recipes(manifest)])]
    for device, items in _by_device({model: report}).items():
        body.append(_device_section(device, items, {}, [model]))
    body.append(_twin_section(report))
    return _page(f"edgebert report: {model}", "".join(body))


def _twin_section(report: dict[str, Any]) -> str:
    """Each board next to its emulated twin, with the twin's estimate against the board's measured p50."""
    cells = twin_cells(report)
    if not cells:
        return ""
    head = "".join(f'<th{_LEFT if i < 3 else ""}>{escape(h)}</th>' for i, h in enumerate(TWIN_HEADERS))
    rows = "".join("<tr>" + "".join(f'<td{_LEFT if i < 3 else ""}>{escape(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in cells)
    return (f'<h2>{escape(TWIN_TITLE)}</h2><div class="card"><p class="note">{escape(TWIN_INTRO)}</p>'
            f"<table><tr>{head}</tr>{rows}</table></div>")


def _goal_list(manifest: dict[str, Any] | None) -> str:
    """Artifacts quantized with an accuracy goal: drops before/after, layers kept float, size cost."""
    from ..goal_summary import report_lines

    goals = report_lines(manifest)
    if not goals:
        return ""
    items = "".join(f"<li><code>{escape(name)}</code>: {escape(text)}"
                    + (f"; float: {', '.join(f'<code>{escape(layer)}</code>' for layer in layers)}" if layers else "")
                    + "</li>" for name, text, layers in goals)
    return f'<h2>Accuracy goals</h2><ul class="facts">{items}</ul>'

