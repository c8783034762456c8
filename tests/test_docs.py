"""The documentation (README.md and docs/*.md): every CLI option is documented, every relative link
resolves (to a file, and to a heading when it names an anchor, by GitHub's slug rules), the front page
stays short, and its screenshot stays small."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import click

from edgebert import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links in code are not links)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed (keeping word
    characters, spaces and hyphens), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # `, *, ., /, (, ), |, ...; unicode letters and _ are kept
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_github_slug_rules():
    assert github_slug("`edgebert devices list`") == "edgebert-devices-list"
    assert github_slug("Accuracy goal (`--max-drop POINTS`, `[quantize] max_drop`)") == \
        "accuracy-goal---max-drop-points-quantize-max_drop"
    assert github_slug("How long a build takes: `benchmarks/bench_build.py`") == \
        "how-long-a-build-takes-benchmarksbench_buildpy"
    assert github_slug('Emulated "boards"') == "emulated-boards"


def _options(command: click.Command, path: str):
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                if name.startswith("--"):
                    yield path, name
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}")


def _commands():
    """Every command: the group walked from ``main``, and ``build merge`` (``build``'s first argument)."""
    yield from _options(cli.main, "edgebert")
    yield from _options(cli.build_merge, "edgebert build merge")


def test_every_cli_option_is_in_the_docs():
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    found = list(_commands())
    assert len(found) > 40 and ("edgebert check", "--emulated-limit") in found
    missing = [f"{cmd} {opt}" for cmd, opt in found
               if opt not in ("--help", "--version") and not re.search(re.escape(opt) + r"(?![\w-])", text)]
    assert not missing, f"options not documented in README.md or docs/*.md: {missing}"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        text = _prose(page.read_text(encoding="utf-8"))
        for target in LINK.findall(text) + IMAGE.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # http(s), mailto: not relative
            path, _, anchor = target.partition("#")
            dest = (page.parent / unquote(path)).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading with that anchor in "
                              f"{dest.relative_to(ROOT)})")
    assert not broken, "\n".join(broken)


def test_the_front_page_is_short_and_its_pages_exist():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)
    for name in ("models-and-data", "export", "quantization", "checking-and-devices", "emulated-arm",
                 "builds-and-ci", "reports", "trust-and-errors"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name


def test_the_readme_screenshot_is_a_small_png():
    images = IMAGE.findall(_prose(README.read_text(encoding="utf-8")))
    pngs = [ROOT / p for p in images if p.endswith(".png")]
    assert pngs, "the README shows a screenshot of the HTML report"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size <= 300_000, png


def test_no_hand_written_timing_of_the_default_build():
    """The default build's timing is quoted from benchmarks/bench_build.py, never typed in by hand."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    assert "bench_build.py" in README.read_text(encoding="utf-8")
    for stale in ("13 min 43 s", "817 s", "1,183 s", "~1,180 s", "~3 minutes each"):
        assert stale not in text, stale
