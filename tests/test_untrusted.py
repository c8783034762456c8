"""An artifact directory is untrusted input: a crafted manifest.json never reaches outside it.

Every command is run through the real CLI on a real artifact directory (tiny model, real check) whose
manifest was crafted; the files outside the directory must keep their content and mtime, and the
command must exit 2 with one ``Error:`` line naming the manifest key. A property test throws random
and mutated manifests at ``Manifest.load``, the functions that resolve and remove manifest paths, and
``edgebert report``. Model loading never runs code from a model or tokenizer directory.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgebert.pipeline.runner import _drop_unwanted
from edgebert.pipeline.steps import reusable as _reusable
from edgebert.check import CheckSettings, check
from edgebert.check.runner import _file_problem
from edgebert.errors import UsageError
from edgebert.export import ExportSettings, _clear_previous, export
from edgebert.fsutil import sha256_file
from edgebert.manifest import Manifest
from edgebert.quantize import QuantizeSettings, quantize
from support import FAST, assert_clean_error, run_cli, save_tiny_hf_dir

FAST_CHECK = ["--limit", "5", "--runs", "1", "--warmup", "0", "--seq-len", "16"]
FINGERPRINT = "f" * 64  # a build fingerprint that "matches", so _reusable goes on to the file


# --- a sandbox: <root>/ci/art is the artifact directory; everything else is "outside" ----------
@dataclass
class Sandbox:
    root: Path

    @property
    def ci(self) -> Path:
        return self.root / "ci"

    @property
    def art(self) -> Path:
        return self.ci / "art"

    @property
    def victim(self) -> Path:      # next to the artifact directory: reached by ../victim.txt
        return self.ci / "victim.txt"

    @property
    def victim_dir(self) -> Path:  # a directory outside: reached by a symlinked tokenizer dir
        return self.ci / "victim_dir"

    @property
    def passwd(self) -> Path:      # two levels up: reached by ../../passwd (an /etc/passwd stand-in)
        return self.root / "passwd"

    def outside_files(self) -> list[Path]:
        return [self.victim, self.passwd, *sorted(self.victim_dir.iterdir())]

    def snapshot(self) -> dict[str, tuple[bytes, int] | str]:
        """Every entry under the sandbox root outside the artifact directory: content and mtime (files),
        target (links). The build's lock file is the one thing a refused build may create."""
        out: dict[str, tuple[bytes, int] | str] = {}
        for base, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if Path(base, d) != self.art]
            for name in dirs + files:
                p = Path(base, name)
                if p.name == ".edgebert-build.lock":
                    continue
                out[str(p)] = os.readlink(p) if p.is_symlink() else (
                    (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "dir")
        return out

    def manifest(self) -> dict:
        return json.loads((self.art / "manifest.json").read_text(encoding="utf-8"))

    def write_manifest(self, data) -> None:
        (self.art / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


def make_sandbox(root: Path, base: Path) -> Sandbox:
    sb = Sandbox(root)
    sb.ci.mkdir(parents=True)
    shutil.copytree(base, sb.art, symlinks=True)
    sb.victim.write_text("precious: not edgebert's\n")
    sb.passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    sb.victim_dir.mkdir()
    (sb.victim_dir / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    old = 1_600_000_000_000_000_000  # a fixed past mtime: any write would move it
    for p in sb.outside_files():
        os.utime(p, ns=(old, old))
    return sb


def assert_untouched(sb: Sandbox, before: dict) -> None:
    assert sb.snapshot() == before, "a file outside the artifact directory changed"


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return save_tiny_hf_dir(tmp_path_factory.mktemp("untrusted-src") / "tiny", "distilbert")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, src) -> Path:
    """A real artifact directory made by export + quantize + check (fp32 and int8 ONNX, tokenizer,
    metrics, report.json): the manifest every crafted one starts from."""
    d = tmp_path_factory.mktemp("untrusted") / "art"
    export(str(src), d, ExportSettings(seq_len=16))
    quantize(d, QuantizeSettings(mode="dynamic", seq_len=16))
    check(d, CheckSettings(limit=8, **{**FAST, "seq_len": 16}))
    assert set(Manifest.load(d).artifacts) == {"model.onnx", "model.int8-dynamic.onnx"}  # and valid
    return d


@pytest.fixture
def sandbox(tmp_path, base_dir) -> Sandbox:
    return make_sandbox(tmp_path, base_dir)


# --- crafted manifests ------------------------------------------------------------------------
def _artifact(path: str, target: Path) -> dict:
    """An int8 record pointing at ``path`` with the real hash and size of ``target`` (so only the
    path check, not the hash check, can stop a removal)."""
    return {"path": path, "format": "onnx", "precision": "int8-dynamic", "parent": "model.onnx",
            "sha256": sha256_file(target), "size_bytes": target.stat().st_size,
            "build": {"step": "quantize", "fingerprint": FINGERPRINT}}


def plant_delete_dotdot(sb: Sandbox) -> str:
    data = sb.manifest()
    data["artifacts"]["stolen.onnx"] = _artifact("../victim.txt", sb.victim)
    sb.write_manifest(data)
    return 'artifacts["stolen.onnx"].path'


def plant_read_dotdot(sb: Sandbox) -> str:
    data = sb.manifest()
    data["artifacts"]["model.onnx"]["path"] = "../../passwd"
    sb.write_manifest(data)
    return 'artifacts["model.onnx"].path'


def plant_symlink_out(sb: Sandbox) -> str:
    (sb.art / "evil.onnx").symlink_to(sb.victim)
    data = sb.manifest()
    data["artifacts"]["evil.onnx"] = _artifact("evil.onnx", sb.victim)
    sb.write_manifest(data)
    return 'artifacts["evil.onnx"].path'


def plant_absolute(sb: Sandbox) -> str:
    data = sb.manifest()
    data["artifacts"]["abs.onnx"] = _artifact(str(sb.victim), sb.victim)
    sb.write_manifest(data)
    return 'artifacts["abs.onnx"].path'


def plant_tokenizer_symlink(sb: Sandbox) -> str:
    (sb.art / "tok").symlink_to(sb.victim_dir, target_is_directory=True)
    data = sb.manifest()
    data["tokenizer"]["path"] = "tok"
    sb.write_manifest(data)
    return "tokenizer.path"


PLANTS = {"delete-dotdot": plant_delete_dotdot, "read-dotdot": plant_read_dotdot,
          "symlink-out": plant_symlink_out, "absolute": plant_absolute,
          "tokenizer-symlink": plant_tokenizer_symlink}

BUILD_CONFIG = """\
[build]
models = [{{name = "art", source = "{src}"}}]
formats = ["onnx"]
precisions = ["fp32"]
seq_len = 16

[evaluation]
limit = 5
runs = 1
warmup = 0
profile = false

[devices]
names = ["desktop"]
"""


def _command(name: str, sb: Sandbox, src: Path) -> list:
    if name == "build":
        cfg = sb.root / "edgebert.toml"
        cfg.write_text(BUILD_CONFIG.format(src=src), encoding="utf-8")
        return ["build", cfg, "-o", sb.ci]  # the model's directory is <output>/art
    return {"export": ["export", src, "-o", sb.art, "--seq-len", "16"],
            "quantize": ["quantize", sb.art, "--mode", "dynamic", "--seq-len", "16"],
            "check": ["check", sb.art, *FAST_CHECK],
            "report": ["report", sb.art]}[name]


@pytest.mark.parametrize("command", ["export", "quantize", "check", "report", "build"])
@pytest.mark.parametrize("plant", list(PLANTS))
def test_crafted_manifest_never_reaches_outside(sandbox, src, command, plant):
    key = PLANTS[plant](sandbox)
    args = _command(command, sandbox, src)
    manifest_before = (sandbox.art / "manifest.json").read_bytes()
    inside_before = sorted(p.name for p in sandbox.art.iterdir())
    before = sandbox.snapshot()
    result = run_cli(*args)
    assert_clean_error(result, 2, key)
    assert "manifest.json" in result.output
    assert_untouched(sandbox, before)
    # refused before anything was written or removed inside the directory either
    assert (sandbox.art / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in sandbox.art.iterdir()) == inside_before


def test_issue_message_for_an_unknown_precision(sandbox):
    data = sandbox.manifest()
    data["artifacts"]["model.onnx"]["precision"] = "int4"
    sandbox.write_manifest(data)
    result = run_cli("report", sandbox.art)
    assert_clean_error(result, 2, f'{sandbox.art / "manifest.json"}: artifacts["model.onnx"].precision: unknown '
                                  "value 'int4' (expected one of fp32, int8-dynamic, int8-static)")


@pytest.mark.parametrize("edit, key", [
    (lambda d: d["artifacts"]["model.onnx"].pop("sha256"), 'artifacts["model.onnx"].sha256: missing'),
    (lambda d: d["artifacts"]["model.onnx"].update(format="coreml"), 'artifacts["model.onnx"].format: unknown'),
    (lambda d: d["artifacts"]["model.onnx"].update(size_bytes="big"), 'artifacts["model.onnx"].size_bytes: expected'),
    (lambda d: d["artifacts"]["model.onnx"].update(parent="../x"), 'artifacts["model.onnx"].parent'),
    (lambda d: d["artifacts"].update({"../up.onnx": d["artifacts"]["model.onnx"]}), 'artifacts["../up.onnx"]'),
    (lambda d: d.update(schema_version=2), "schema_version: unsupported value 2"),
    (lambda d: d.pop("tokenizer"), "tokenizer: missing"),
    (lambda d: d["model"].update(label2id={"negative": "zero"}), 'model.label2id["negative"]: expected an integer'),
    (lambda d: d["model"].update(num_labels=10 ** 40), "model.num_labels: out of range"),
    (lambda d: d["tokenizer"].update(path="."), "tokenizer.path: '.' names the artifact directory itself"),
    (lambda d: d["artifacts"]["model.onnx"].update(path="a/../../x"), "contains '..'"),
    (lambda d: d["artifacts"]["model.onnx"].update(path="manifest.json"), "is the manifest itself"),
    (lambda d: d["artifacts"]["model.onnx"].update(metrics=[]), 'artifacts["model.onnx"].metrics: expected an object'),
    (lambda d: d.update(build={"check": "yes"}), "build.check: expected an object"),
])
def test_damaged_or_hand_edited_manifest_is_one_line_naming_the_key(sandbox, edit, key):
    data = sandbox.manifest()
    edit(data)
    sandbox.write_manifest(data)
    assert_clean_error(run_cli("check", sandbox.art, *FAST_CHECK), 2, key)


@pytest.mark.parametrize("raw, match", [
    (b'{"schema_version": 1,', "not valid JSON"),
    (b"\xff\xfe not utf-8", "not valid JSON"),
    (b'{"schema_version": ' + b"1" * 5000 + b"}", "not valid JSON"),     # longer than Python's int limit
    (b"[" * 200_000 + b"]" * 200_000, "not valid JSON (nested too deeply)"),
    (b"[1, 2]", "expected a JSON object at the top level"),
])
def test_unparsable_manifest_is_one_line(sandbox, raw, match):
    (sandbox.art / "manifest.json").write_bytes(raw)
    assert_clean_error(run_cli("report", sandbox.art), 2, match)


def test_manifest_symlink_out_is_not_read(sandbox):
    real = sandbox.ci / "elsewhere.json"
    shutil.move(sandbox.art / "manifest.json", real)
    (sandbox.art / "manifest.json").symlink_to(real)
    assert_clean_error(run_cli("report", sandbox.art), 2, "manifest.json: leaves the artifact directory")


# --- removal is the narrowest possible ---------------------------------------------------------
def test_reexport_removes_only_files_it_made(sandbox, src):
    """A recorded artifact whose file changed, or that is a symlink, is kept; a matching one goes."""
    art = sandbox.art
    shutil.copy(art / "model.int8-dynamic.onnx", art / "old.int8-static.onnx")
    man = Manifest.load(art)
    man.add_artifact("old.int8-static.onnx", {"path": "old.int8-static.onnx", "format": "onnx",
                                              "precision": "int8-static", "parent": "model.onnx"})
    man.save()
    with open(art / "model.int8-dynamic.onnx", "ab") as f:
        f.write(b"\0")  # changed after it was recorded: no longer provably edgebert's
    (art / "report.md").unlink(missing_ok=True)
    (art / "report.md").symlink_to(sandbox.victim)  # a derived file's name, but a link: left alone
    before = sandbox.snapshot()
    result = run_cli("export", src, "-o", art, "--seq-len", "16")
    assert result.exit_code == 0, result.output
    assert not (art / "old.int8-static.onnx").exists()       # recorded, same sha256: removed
    assert (art / "model.int8-dynamic.onnx").is_file()       # recorded, sha256 differs: kept
    assert "Kept model.int8-dynamic.onnx: left alone: changed since edgebert recorded it" in result.output
    assert (art / "report.md").is_symlink()
    assert not (art / "report.json").exists()                 # derived from the old export: removed
    assert set(Manifest.load(art).artifacts) == {"model.onnx"}
    assert (art / "tokenizer" / "tokenizer.json").is_file()    # the recorded tokenizer dir was replaced
    assert_untouched(sandbox, before)


@pytest.mark.parametrize("kind", ["symlink", "foreign-dir"])
def test_export_never_replaces_a_tokenizer_dir_it_did_not_make(tmp_path, src, kind):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "mine"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine")
    if kind == "symlink":
        (out / "tokenizer").symlink_to(outside, target_is_directory=True)
        keep = outside / "notes.txt"
    else:
        (out / "tokenizer").mkdir()
        keep = out / "tokenizer" / "notes.txt"
        keep.write_text("mine")
    result = run_cli("export", src, "-o", out, "--seq-len", "16")
    assert_clean_error(result, 2, f"{out / 'tokenizer'}: exists and is")
    assert keep.read_text() == "mine" and (outside / "notes.txt").read_text() == "mine"
    assert not (out / "manifest.json").exists()


def test_drop_unwanted_removes_only_provably_own_files(sandbox):
    art = sandbox.art
    shutil.copy(art / "model.onnx", art / "a.onnx")
    shutil.copy(art / "model.onnx", art / "b.onnx")
    man = Manifest.load(art)
    for name in ("a.onnx", "b.onnx"):
        man.add_artifact(name, {"path": name, "format": "onnx", "precision": "int8-static"})
    man.save()
    (art / "b.onnx").write_bytes(b"edited by someone")
    notes: list[str] = []
    dropped = _drop_unwanted(art, {"model.onnx"}, notes.append)
    assert sorted(dropped) == ["a.onnx", "b.onnx", "model.int8-dynamic.onnx"]
    assert not (art / "a.onnx").exists() and not (art / "model.int8-dynamic.onnx").exists()
    assert (art / "b.onnx").read_bytes() == b"edited by someone"
    assert notes == ["art: dropped from the manifest but kept b.onnx: left alone: changed since edgebert "
                     "recorded it (sha256 differs)"]
    assert set(Manifest.load(art).artifacts) == {"model.onnx"}


@pytest.mark.parametrize("plant", ["delete-dotdot", "symlink-out", "absolute"])
def test_build_helpers_refuse_crafted_manifests(sandbox, plant):
    key = PLANTS[plant](sandbox)
    before = sandbox.snapshot()
    with pytest.raises(UsageError, match=key.replace("[", r"\[").replace("]", r"\]")):
        _drop_unwanted(sandbox.art, {"model.onnx"})
    # a Manifest built around unchecked data (not through load) is still checked on every path use
    unchecked = Manifest(sandbox.art, sandbox.manifest())
    name = key.split('"')[1]
    with pytest.raises(UsageError, match="leaves|absolute|'..'"):
        _reusable(unchecked, [name], FINGERPRINT)
    with pytest.raises(UsageError):
        unchecked.artifact_path(name)
    assert unchecked.remove_artifact_file(name).outcome == "kept"
    assert_untouched(sandbox, before)


def test_symlink_planted_after_load_is_refused_on_use(sandbox):
    man = Manifest.load(sandbox.art)
    (sandbox.art / "model.onnx").unlink()
    (sandbox.art / "model.onnx").symlink_to(sandbox.passwd)
    with pytest.raises(UsageError, match="leaves the artifact directory through a symlink"):
        _file_problem(man, "model.onnx")
    assert man.remove_artifact_file("model.onnx").outcome == "kept"
    assert sandbox.passwd.is_file()


@pytest.mark.parametrize("name", ["..", "."])
def test_build_model_named_dot_or_dotdot_is_refused(name):
    from edgebert.pipeline import parse_config

    with pytest.raises(UsageError, match=f"build.models: .*name '{re.escape(name)}' is not a directory name"):
        parse_config(f'[build]\nmodels = [{{name = "{name}", source = "distilbert"}}]\n')


# --- model and tokenizer loading never runs code -----------------------------------------------
class _Payload:
    """Unpickling this runs a command (what a malicious pytorch_model.bin does)."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_bin(path: Path, marker: Path) -> None:
    _Payload.marker = str(marker)
    with open(path, "wb") as f:
        pickle.dump({"distilbert.embeddings.word_embeddings.weight": _Payload()}, f)


def test_pickle_weights_never_execute(tmp_path, src):
    model = tmp_path / "model"
    shutil.copytree(src, model)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    _malicious_bin(model / "pytorch_model.bin", marker)
    result = run_cli("export", model, "-o", tmp_path / "out", "--seq-len", "16")
    assert_clean_error(result, 2, "refusing to load pytorch_model.bin")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_safetensors_preferred_over_pickle_and_plain_pickle_weights_load(tmp_path, src):
    import numpy as np
    import torch

    from edgebert.models import load_classifier

    both = tmp_path / "both"
    shutil.copytree(src, both)
    marker = tmp_path / "PWNED"
    _malicious_bin(both / "pytorch_model.bin", marker)
    reference = load_classifier(str(both)).model  # safetensors chosen: the pickle is never opened
    assert not marker.exists()

    plain = tmp_path / "plain"
    shutil.copytree(src, plain)
    (plain / "model.safetensors").unlink()
    torch.save(reference.state_dict(), plain / "pytorch_model.bin")  # tensors only: weights_only accepts it
    loaded = load_classifier(str(plain)).model
    x = torch.randint(5, 20, (2, 7))
    with torch.no_grad():
        assert np.allclose(loaded(x).logits.numpy(), reference(x).logits.numpy())


def test_tokenizer_custom_code_never_runs(sandbox):
    from edgebert.hf_safe import load_tokenizer

    tok = sandbox.art / "tokenizer"
    marker = sandbox.root / "PWNED"
    config = json.loads((tok / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    config.pop("tokenizer_class", None)
    (tok / "tokenizer_config.json").write_text(json.dumps(config))
    (tok / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
                                 "from transformers import BertTokenizer as EvilTokenizer\n")
    try:
        load_tokenizer(tok, within=sandbox.art)
    except UsageError:
        pass  # refusing is fine too; running evil.py is not
    assert not marker.exists()


def test_tokenizer_file_symlinked_outside_is_refused(sandbox):
    vocab = sandbox.art / "tokenizer" / "tokenizer.json"
    vocab.unlink()
    vocab.symlink_to(sandbox.victim_dir / "vocab.txt")
    before = sandbox.snapshot()
    result = run_cli("check", sandbox.art, *FAST_CHECK)
    assert_clean_error(result, 2, "tokenizer.json is a symlink leading outside")
    assert_untouched(sandbox, before)


# --- property: random and mutated manifests -----------------------------------------------------
INJECTED = ["..", "../victim.txt", "/abs", "/etc/passwd", "a/../../x", "./model.onnx", "model.onnx/",
            "tokenizer/../../victim.txt", "link_out", "link_out/x", "linkdir_out/vocab.txt", "loop",
            "link_in", "tokenizer", "manifest.json", "", ".", "a\x00b", "a\\..\\b", " model.onnx",
            "modèle.onnx", "\u2028x", "\ud800x", "\U0001f4a5", "x" * 3000, "report.json", "model.int8-dynamic.onnx"]
HUGE = st.sampled_from([2 ** 63, 2 ** 64 + 1, -(2 ** 63) - 1, 10 ** 100, 10 ** 4000, -1, 0])
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), HUGE, st.floats(), st.text(max_size=12),
                 st.sampled_from(INJECTED))
JSON = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["path", "sha256", "format"]),
                                      inner, max_size=3), max_leaves=8)


def _key_paths(data, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _key_paths(v, prefix + (k,))
    return out


def _mutate(data: dict, ops) -> object:
    for op, path, value in ops:
        if not path:
            return value  # the whole manifest replaced (often not an object)
        parent = data
        for k in path[:-1]:
            if not isinstance(parent, dict) or k not in parent:
                break
            parent = parent[k]
        else:
            if isinstance(parent, dict):
                if op == "delete":
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = value
    return data


RAW = st.sampled_from([b"", b"null", b"[]", b'"x"', b"{", b"\xef\xbb\xbf{}", b"\xc3\x28",
                       b'{"schema_version": 1e999}', b"NaN", b"[" * 50_000,
                       b'{"schema_version": ' + b"9" * 5000 + b"}"])


def _check_everything(sb: Sandbox) -> None:
    """Load, then every function that resolves or removes manifest paths, then `edgebert report`."""
    try:
        man = Manifest.load(sb.art)
    except UsageError as exc:
        assert len(str(exc).splitlines()) == 1
        event("refused at load")
        man = None
    else:
        event("loaded")
        for name in list(man.artifacts):
            _file_problem(man, name)
            man.artifact_path(name)
        man.tokenizer_dir()
        man.reference_artifact("onnx")
        _reusable(man, list(man.artifacts), FINGERPRINT)
    result = run_cli("report", sb.art)
    assert result.exit_code in (0, 2), result.output
    event(f"report exit {result.exit_code}")
    if result.exit_code == 2:
        assert_clean_error(result, 2, "")
    if man is not None:  # the removals last (they take report.json away)
        _clear_previous(sb.art, man)
        _drop_unwanted(sb.art, {"model.onnx"})


PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _sandboxed(base_dir: Path):
    tmp = tempfile.TemporaryDirectory(prefix="edgebert-untrusted-")
    sb = make_sandbox(Path(tmp.name), base_dir)
    (sb.art / "link_out").symlink_to("../victim.txt")
    (sb.art / "linkdir_out").symlink_to("../victim_dir", target_is_directory=True)
    (sb.art / "loop").symlink_to("loop")
    (sb.art / "link_in").symlink_to("model.onnx")
    return tmp, sb


@PROPERTY
@given(data=st.data())
def test_property_mutated_manifests_end_cleanly_and_stay_inside(base_dir, data):
    base = json.loads((base_dir / "manifest.json").read_text())
    paths = _key_paths(base) + [("artifacts", "x.onnx"), ("artifacts", "model.onnx", "path"), ()]
    op = st.tuples(st.sampled_from(["set", "delete"]), st.sampled_from(paths), JSON)
    ops = data.draw(st.lists(op, max_size=3))
    if data.draw(st.booleans()):  # a path-like value injected where paths live
        target = data.draw(st.sampled_from([("artifacts", "model.onnx", "path"), ("tokenizer", "path"),
                                            ("artifacts", "model.int8-dynamic.onnx", "parent")]))
        ops.append(("set", target, data.draw(st.sampled_from(INJECTED))))
    mutated = _mutate(copy.deepcopy(base), ops)
    tmp, sb = _sandboxed(base_dir)
    with tmp:
        (sb.art / "manifest.json").write_text(json.dumps(mutated), encoding="utf-8")
        before = sb.snapshot()
        _check_everything(sb)
        assert_untouched(sb, before)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=RAW, cut=st.integers(min_value=0, max_value=4000))
def test_property_raw_bytes_end_cleanly(base_dir, raw, cut):
    real = (base_dir / "manifest.json").read_bytes()
    tmp, sb = _sandboxed(base_dir)
    with tmp:
        (sb.art / "manifest.json").write_bytes(raw if cut % 2 else real[:cut] + raw)
        before = sb.snapshot()
        _check_everything(sb)
        assert_untouched(sb, before)
