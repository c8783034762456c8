#!/usr/bin/env bash
# Render an edgebert report.html headless with Chromium and save a PNG screenshot to look at.
#   scripts/render_check.sh edgebert-build/report.html /tmp/report.png [WIDTHxHEIGHT]
# Exit 0 with the PNG written; 77 (skip) when no chromium is installed; 1 when rendering failed.
# No network: the report is self-contained, and Chromium's background networking is off.
set -euo pipefail
html="${1:?usage: render_check.sh REPORT.html OUT.png [WIDTHxHEIGHT]}"
png="${2:?usage: render_check.sh REPORT.html OUT.png [WIDTHxHEIGHT]}"
size="${3:-1400x2000}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "render_check: no chromium found (apt-get install -y chromium); skipped" >&2
  exit 77
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --hide-scrollbars --screenshot="$png" --window-size="${size/x/,}" "file://$(realpath "$html")" \
  >/dev/null 2>&1 || true
if [ ! -s "$png" ]; then
  echo "render_check: chromium wrote no screenshot for $html" >&2
  exit 1
fi
echo "$png"
