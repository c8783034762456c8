"""Sharded builds (`edgebert build CONFIG --shard K/N`, `edgebert build merge OUT PART_DIR...`): the
assignment, a real 2-shard build of a tiny model (desktop + one emulated cortex-a53) merged and compared
with the unsharded build, merges refused with one line, and the example workflow's commands."""

from __future__ import annotations

import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import assert_clean_error, run_cli, save_tiny_hf_dir

from edgebert.errors import UsageError
from edgebert.pipeline import build, load_config, parse_config, steps
from edgebert.pipeline import shard as shard_mod

ROOT = Path(__file__).resolve().parents[1]

# --- assignment ----------------------------------------------------------------------------------
def test_shard_spec_parses_k_of_n_and_refuses_anything_else():
    assert shard_mod.parse("2/3") == shard_mod.ShardSpec(2, 3) and str(shard_mod.parse(" 1 / 1 ")) == "1/1"
    for bad, match in (("0/2", "between 1 and N"), ("3/2", "between 1 and N"), ("1/0", "between 1 and N"),
                       ("2", "expected K/N"), ("a/b", "expected K/N"), ("-1/2", "expected K/N")):
        with pytest.raises(UsageError, match=match):
            shard_mod.parse(bad)


@pytest.mark.parametrize("n_items", [0, 1, 5, 6, 7, 12])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 8])
def test_blocks_cover_every_item_once_contiguously_and_balanced(n_items, count):
    work = list(range(n_items))
    parts = shard_mod.blocks(work, count)
    assert len(parts) == count and [x for p in parts for x in p] == work  # in order: contiguous, no overlap, no gap
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


CONFIG_2x3 = """\
[build]
models = [{name = "a", source = "distilbert"}, {name = "b", source = "squeezebert"}]
[devices]
names = ["desktop", "cortex-a53", "cortex-a76"]
"""


def test_assignment_keeps_a_models_devices_together():
    config = parse_config(CONFIG_2x3)
    assert shard_mod.items(config)[:3] == [("a", "desktop"), ("a", "cortex-a53"), ("a", "cortex-a76")]
    two = [shard_mod.Share(config, shard_mod.ShardSpec(k, 2)) for k in (1, 2)]
    assert [s.owned for s in two] == [{"a": ("desktop", "cortex-a53", "cortex-a76")},
                                      {"b": ("desktop", "cortex-a53", "cortex-a76")}]
    assert [m.name for m in two[1].models()] == ["b"]  # shard 2 never exports a
    four = [shard_mod.Share(config, shard_mod.ShardSpec(k, 4)) for k in (1, 2, 3, 4)]
    assert [s.items for s in four] == [[("a", "desktop")], [("a", "cortex-a53"), ("a", "cortex-a76")],
                                       [("b", "desktop")], [("b", "cortex-a53"), ("b", "cortex-a76")]]
    work = four[1].work(steps.work_items(config))  # the hook on the build's work list
    assert {i.model for i in work} == {"a"} and [i.devices for i in work if i.kind == "check"] == [
        ("cortex-a53", "cortex-a76")]
    whole = {"sha256": "x", "inputs": {"step": "check", "artifacts": {}}}
    mine = four[0].check_fingerprint("a", whole)
    assert mine["inputs"]["shard"] == {"spec": "1/4", "devices": ["desktop"]} and mine["sha256"] != "x"
    # more shards than pairs: the extra shards have nothing to do (and still make a valid, empty part)
    eight = [shard_mod.Share(config, shard_mod.ShardSpec(k, 8)) for k in range(1, 9)]
    assert sum(len(s.items) for s in eight) == 6 and sum(not s.items for s in eight) == 2


# --- a real sharded build --------------------------------------------------------------------------
CONFIG = """\
[build]
models = [{{name = "tiny", source = "{src}"}}]
formats = ["onnx"]
precisions = ["fp32", "int8-dynamic"]
seq_len = 32

[evaluation]
limit = 40
emulated_limit = 8
emulated_probe = 4
emulated_probe_fp32 = 2
runs = 3
warmup = 1
profile = false

[devices]
names = ["desktop", "cortex-a53"]
setup = false

[gates]
min_accuracy = 0.05
max_size_mb = 10
max_latency_p90_ms = 500
max_flips_vs_desktop = 2
"""

# Fields that are measurements or timings (they differ between any two runs, sharded or not) or paths.
NOISY = {"started", "finished", "seconds", "phases", "output", "directory", "path", "model_seconds", "created",
         "latency_ms", "load_ms", "rss_mb", "peak_rss_mb", "job_seconds", "emulated_wall", "emulated_wall_ms",
         "instructions", "instructions_per_inference", "estimated_latency", "estimated_ms", "stamped", "updated",
         "checked", "cpu_seconds", "model_cpu_seconds", "model_beside_emulation", "beside_emulation", "parts",
         "torch_threads", "model_torch_threads",
         "phase_table"}
LATENCY_GATES = {"max_latency_p90_ms"}


def stripped(value):
    if isinstance(value, dict):
        out = {k: stripped(v) for k, v in value.items() if k not in NOISY}
        if out.get("gate") in LATENCY_GATES:
            out.pop("value", None)
        return out
    if isinstance(value, list):
        return [stripped(v) for v in value]
    return value


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One unsharded build and its two shards (shard 1: tiny on desktop; 2: tiny on cortex-a53)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("emulated ARM devices are set up from Debian amd64 packages: Linux x86-64 only")
    from edgebert.devices.arm import setup as arm_setup

    env = arm_setup.default_env()
    arm_setup.setup(env)  # idempotent: does nothing when every step's stamp is current
    root = tmp_path_factory.mktemp("shard")
    src = save_tiny_hf_dir(root / "src", "distilbert")
    cfg = root / "edgebert.toml"
    cfg.write_text(CONFIG.format(src=src), encoding="utf-8")
    whole = build(load_config(cfg), root / "whole")
    assert whole["status"] == "passed", whole["gates"]
    for k in (1, 2):
        result = run_cli("build", cfg, "--shard", f"{k}/2", "-o", root / f"part-{k}")
        assert result.exit_code == 0, result.output
        assert f"shard {k}/2: 1 (model, device) pairs" in result.output
    return root, cfg


def test_each_shard_does_only_its_share(builds):
    root, _ = builds
    p1, p2 = load(root / "part-1" / "summary.json"), load(root / "part-2" / "summary.json")
    assert p1["shard"]["items"] == [["tiny", "desktop"]] and p2["shard"]["items"] == [["tiny", "cortex-a53"]]
    r1, r2 = load(root / "part-1/tiny/report.json"), load(root / "part-2/tiny/report.json")
    assert {r["device"] for r in r1["records"]} == {"desktop"}
    assert {r["device"] for r in r2["records"]} == {"cortex-a53"}  # its desktop drift-reference pass is dropped
    assert all(r["drift_vs_desktop"] for r in r2["records"])
    assert {g["device"] for g in p2["models"][0]["gates"]} == {"cortex-a53"}
    # the check fingerprint names the share: a part's check is never reused for another share
    f1, f2 = (load(root / p / "tiny/manifest.json")["build"]["check"]["fingerprint"] for p in ("part-1", "part-2"))
    assert f1 != f2


def test_two_shards_merged_equal_the_unsharded_build(builds):
    root, cfg = builds
    out = root / "merged"
    result = run_cli("build", "merge", out, root / "part-2", root / "part-1")  # any order
    assert result.exit_code == 0, result.output
    assert "merged 2 parts: 1/2" in result.output and "PASSED" in result.output
    whole, merged = load(root / "whole/summary.json"), load(out / "summary.json")
    assert merged["merged"]["parts"][0]["shard"] == "1/2" and "shard" not in merged
    merged.pop("merged")
    assert stripped(merged) == stripped(whole)
    assert merged["gates"] == {**whole["gates"], "failures": []} and merged["gates"]["checked"] >= 8
    gates = [(g["artifact"], g["device"], g["gate"], g["passed"]) for g in merged["models"][0]["gates"]]
    assert gates == [(g["artifact"], g["device"], g["gate"], g["passed"]) for g in whole["models"][0]["gates"]]
    assert {g[1] for g in gates} == {"desktop", "cortex-a53"}

    rw, rm = load(root / "whole/tiny/report.json"), load(out / "tiny/report.json")
    assert [(r["device"], r["artifact"]) for r in rm["records"]] == [(r["device"], r["artifact"]) for r in rw["records"]]
    assert stripped(rm) == stripped(rw)
    for a, b in zip(rw["records"], rm["records"]):  # instruction counts: measured again, same within 1%
        if a["emulated"]:
            assert b["instructions"]["status"] == "ok"
            assert abs(b["instructions"]["per_inference"] / a["instructions"]["per_inference"] - 1) < 0.01
            # the cycle-model estimate comes from those re-measured blocks: the same label, close in ms
            ea, eb = a["estimated_latency"], b["estimated_latency"]
            assert ea["status"] == eb["status"] == "ok" and ea["label"] == eb["label"]
            assert abs(eb["ms"] / ea["ms"] - 1) < 0.05
    mw, mm = load(root / "whole/tiny/manifest.json"), load(out / "tiny/manifest.json")
    for name, rec in mw["artifacts"].items():  # every device's metrics, as the unsharded manifest has them
        assert list(mm["artifacts"][name]["metrics"]) == list(rec["metrics"]) == ["desktop", "cortex-a53"]
        assert stripped(mm["artifacts"][name]["metrics"]) == stripped(rec["metrics"])
    assert mm["build"]["check"]["fingerprint"] == mw["build"]["check"]["fingerprint"]
    md = (out / "report.md").read_text()
    assert md.startswith("# edgebert build: ✅ passed") and "cortex-a53" in md and (out / "report.html").is_file()
    # where the time went: each shard's own phase rows, named by shard; CPU of both
    p1, p2 = load(root / "part-1" / "summary.json"), load(root / "part-2" / "summary.json")
    assert [r["phase"] for r in merged["phase_table"]] == (
        [f"shard 1/2: {r['phase']}" for r in p1["phase_table"]] + [f"shard 2/2: {r['phase']}" for r in p2["phase_table"]])
    assert merged["cpu_seconds"] == pytest.approx(p1["cpu_seconds"] + p2["cpu_seconds"], abs=0.11)
    assert "| shard 2/2: emulated instruction counts |" in md and "merged shards: wall = the slowest shard" in md
    assert (out / "tiny/report.md").is_file() and (out / "tiny/model.onnx").is_file()
    assert not [p for p in out.rglob(".*") if p.name != ".edgebert-build.lock"]  # no temp files left

    # the merged directory is an unsharded build's: building there reuses every step
    again = run_cli("build", cfg, "-o", out, "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output[again.output.index("{"):])
    assert summary["reused"] is True and "shard" not in summary


def copy_part(root: Path, k: int, name: str) -> Path:
    dst = root / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(root / f"part-{k}", dst)
    return dst


def edit_summary(part: Path, change) -> None:
    data = load(part / "summary.json")
    change(data)
    (part / "summary.json").write_text(json.dumps(data), encoding="utf-8")


def test_build_phase_table_splits_emulated_accuracy_from_counts(builds):
    """The unsharded build's "where the time went": the emulated accuracy and instruction-count rows are
    the job-seconds of their own jobs (from report.json), and the emulated span's CPU is QEMU's."""
    root, _ = builds
    summary = load(root / "whole/summary.json")
    emulated = [r for r in load(root / "whole/tiny/report.json")["records"] if r["emulated"]]
    by = {r["phase"]: r for r in summary["phase_table"]}
    spent = {}
    for kind, phase in (("accuracy", "emulated accuracy"), ("instructions", "emulated instruction counts")):
        spent[kind] = sum(r["job_seconds"].get(kind, 0) for r in emulated)
        assert spent[kind] > 0 and by[phase]["seconds"] == pytest.approx(spent[kind], abs=0.02), (kind, by[phase])
        assert by[phase]["cpu_seconds"] is None  # one process: not separable per job, and said so
    span = by["emulated checks (first job to last)"]
    # the build process only waits for the emulators here: CPU shows only if reaped QEMU processes count
    assert span["seconds"] > 0 and span["cpu_seconds"] >= 0.3 * span["seconds"], span
    md = (root / "whole/report.md").read_text(encoding="utf-8")
    assert f"| emulated accuracy | — | — | {by['emulated accuracy']['seconds']:.1f} | — |" in md
    assert f"| emulated instruction counts | — | — | {by['emulated instruction counts']['seconds']:.1f} | — |" in md


def test_merge_refuses_a_missing_repeated_or_inconsistent_part(builds):
    root, cfg = builds
    out = root / "refused"
    p1, p2 = root / "part-1", root / "part-2"
    cases = [
        ((p1,), "shard 2/2 is missing (given: 1/2)"),
        ((p1, p1, p2), "are both shard 1/2"),
        ((p1, root / "whole"), "not a sharded build"),
        ((p1, root / "nowhere"), "no such directory"),
    ]
    other = copy_part(root, 2, "other-config")
    edit_summary(other, lambda d: d["config"]["evaluation"].update(limit=41))
    cases.append(((p1, other), "was built from a different config than"))
    older = copy_part(root, 2, "other-version")
    edit_summary(older, lambda d: d["shard"]["versions"].update(edgebert="0.0.1"))
    cases.append(((p1, older), "was built with edgebert 0.0.1"))
    qemu = copy_part(root, 2, "other-qemu")
    edit_summary(qemu, lambda d: d["shard"]["devices"]["cortex-a53"].update(description="another"))
    cases.append(((p1, qemu), "different device fingerprints (cortex-a53.description differs)"))
    host = copy_part(root, 2, "other-host")
    edit_summary(host, lambda d: d["shard"]["devices"]["desktop"]["cpu"].update(model="Intel Xeon 8370C"))
    cases.append(((p1, host), "ran on another host CPU than"))
    overlap = copy_part(root, 2, "overlap")
    edit_summary(overlap, lambda d: d["shard"].update(items=[["tiny", "desktop"], ["tiny", "cortex-a53"]]))
    cases.append(((p1, overlap), "both did tiny on desktop: the parts overlap"))
    three = copy_part(root, 2, "three-way")
    edit_summary(three, lambda d: d["shard"].update(count=3))
    cases.append(((p1, three), "3-way split"))
    changed = copy_part(root, 2, "changed-report")
    report = load(changed / "tiny/report.json")
    report["records"][0]["accuracy"] = 1.0
    (changed / "tiny/report.json").write_text(json.dumps(report), encoding="utf-8")
    cases.append(((p1, changed), "changed since shard 2/2 wrote it"))
    for parts, match in cases:
        assert_clean_error(run_cli("build", "merge", out, *parts), 2, match)
        assert not (out / "summary.json").exists()
    assert_clean_error(run_cli("build", "merge", p1 / "inside", p1, p2), 2, "overlaps part")
    assert_clean_error(run_cli("build", cfg, "--shard", "3/2"), 2, "K must be between 1 and N")


# --- CLI and the example workflow ----------------------------------------------------------------------
def test_build_still_takes_config_and_documents_merge():
    result = run_cli("build", "--help")
    assert result.exit_code == 0 and "--shard K/N" in result.output and "edgebert build merge OUT" in result.output
    result = run_cli("build", "merge", "--help")
    assert result.exit_code == 0 and "PART_DIR..." in result.output
    assert_clean_error(run_cli("build", "merge"), 2, "Missing argument 'OUT'")
    assert_clean_error(run_cli("build", "no-such.toml"), 2, "no-such.toml: no such config file")


def _edgebert_commands(workflow: dict) -> list[list[str]]:
    out = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                line = line.strip()
                if "edgebert " in line and not line.startswith("#"):
                    command = line.split("$(", 1)[-1].split("|", 1)[0]  # `$(edgebert --version | awk ...)`
                    words = shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "X", command))
                    out.append(words[words.index("edgebert"):])
    return out


def _subcommand(words: list[str]) -> list[str]:
    """The command chain of ``edgebert ...`` words, from the Click tree (``build merge`` included)."""
    import click

    from edgebert.cli import build_merge, main

    cmd, chain = main, []
    for w in words[1:]:
        nxt = (cmd.commands.get(w) if isinstance(cmd, click.Group)
               else build_merge if cmd.name == "build" and w == "merge" else None)
        if nxt is None:
            break
        cmd, chain = nxt, [*chain, w]
    return chain


@pytest.mark.parametrize("name", ["edgebert.yml", "edgebert-sharded.yml"])
def test_example_workflows_parse_and_run_real_edgebert_commands_and_options(name):
    import yaml

    workflow = yaml.safe_load((ROOT / "examples/github" / name).read_text(encoding="utf-8"))
    assert workflow["jobs"] and all(job.get("steps") for job in workflow["jobs"].values())
    commands = _edgebert_commands(workflow)
    assert commands
    for words in commands:
        sub = _subcommand(words)
        help_text = run_cli(*sub, "--help")
        assert help_text.exit_code == 0 and (sub or words[1].startswith("--")), words
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in help_text.output, f"{' '.join(words)}: {option} is not an option of {' '.join(sub)}"
    if name == "edgebert-sharded.yml":
        uses = {s.get("uses", "").split("@")[0] for j in workflow["jobs"].values() for s in j["steps"]}
        assert {"actions/upload-artifact", "actions/download-artifact", "actions/cache"} <= uses
        assert workflow["jobs"]["merge"]["needs"] == "shard" and workflow["jobs"]["shard"]["strategy"]["matrix"]
        cache = next(s for s in workflow["jobs"]["shard"]["steps"] if s.get("uses", "").startswith("actions/cache"))
        assert "~/.cache/edgebert/arm" in cache["with"]["path"] and "hashFiles('edgebert.toml')" in cache["with"]["key"]
        assert [w[:3] for w in commands if w[1] == "build"] == [["edgebert", "build", "$EDGEBERT_CONFIG"],
                                                                 ["edgebert", "build", "merge"]]


def _actionlint() -> str:
    """actionlint from the test extra (the venv's bin, which need not be on PATH), else from PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert found, "actionlint is missing: pip install -e '.[test]' installs it (pyproject.toml, test extra)"
    return found


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", "-oneline", *map(str, paths)], capture_output=True,
                          text=True, timeout=120)


def test_example_workflows_pass_actionlint(tmp_path):
    """The examples run on today's GitHub: actionlint (syntax, expressions, action inputs and the
    runtimes of the actions used: node20 is deprecated) has nothing to say about them. The same linter
    on the examples pinned back to the node20 majors must object, or this test proves nothing."""
    examples = sorted((ROOT / "examples/github").glob("*.yml"))
    assert [p.name for p in examples] == ["edgebert-sharded.yml", "edgebert.yml"]
    result = _lint(*examples)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    old = {"checkout": "v4", "setup-python": "v5", "cache": "v4", "upload-artifact": "v4", "download-artifact": "v4"}
    for path in examples:
        text = re.sub(r"actions/([a-z-]+)@v\d+", lambda m: f"actions/{m[1]}@{old[m[1]]}", path.read_text("utf-8"))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    stale = _lint(*sorted(tmp_path.glob("*.yml")))
    assert stale.returncode == 1 and stale.stdout.count("node20") == 12, stale.stdout + stale.stderr
