"""Reports from report.json (the source of truth written by ``edgebert check``).

``tables.py`` derives the per-device rows, ``recipe.py`` each int8 artifact's recipe (from the manifest);
``markdown.py`` and ``html.py`` (self-contained, inline SVG
plots) format them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fsutil import write_text_atomic
from ..manifest import Manifest
from . import html, markdown

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
#: Files derived from a check, in the order they are made (an export of new artifacts removes them).
DERIVED_FILES = (REPORT_JSON, REPORT_MD, REPORT_HTML)


def load_report(directory: str | Path) -> dict[str, Any]:
    """report.json of an artifact directory; a usage error when there is none yet."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory")
    path = directory / REPORT_JSON
    if not path.is_file():
        raise UsageError(f"{directory}: no {REPORT_JSON}; run `edgebert check {directory}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}); re-run `edgebert check {directory}`") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise UsageError(f"{path}: not an edgebert report; re-run `edgebert check {directory}`")
    return data


def _manifest_data(directory: Path) -> dict[str, Any] | None:
    manifest = Manifest.load_existing(directory)  # validated: a crafted manifest is a usage error
    return manifest.data if manifest else None


def build_manifests(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each built model's manifest data (by model name), for the recipes in the build's reports."""
    out = {}
    for m in summary["models"]:
        data = _manifest_data(Path(m["directory"])) if m["status"] == "ok" and m.get("directory") else None
        if data is not None:
            out[m["name"]] = data
    return out


def render_markdown(directory: str | Path) -> str:
    directory = Path(directory)
    manifest = _manifest_data(directory)
    return markdown.render(load_report(directory), manifest)


def write_report(directory: str | Path, html_too: bool = False) -> list[Path]:
    """Write report.md (and with ``html_too`` report.html), atomically, from report.json; returns the paths."""
    directory = Path(directory)
    manifest, report = _manifest_data(directory), load_report(directory)
    path = directory / REPORT_MD
    write_text_atomic(path, markdown.render(report, manifest))
    if not html_too:
        return [path]
    write_text_atomic(directory / REPORT_HTML, html.render(report, manifest))
    return [path, directory / REPORT_HTML]
