"""Damaged inputs: one clean line and no artifact, never a silently broken one.

A model directory without its tokenizer files used to export with exit 0 and a 5-token vocabulary
(every word ``[UNK]``): export validation passed because PyTorch and the artifact saw the same ids.
"""

from __future__ import annotations

import json
import shutil

import pytest

from edgebert.data import tokenizer_fit
from edgebert.manifest import Manifest
from support import (VOCAB, assert_clean_error, load_tokenizer, make_artifact_dir, no_temp_files, run_cli,
                     save_tiny_hf_dir)

TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_tiny_hf_dir(tmp_path_factory.mktemp("faults") / "model", "distilbert")


def copy_without_tokenizer(src, dst):
    shutil.copytree(src, dst)
    for name in TOKENIZER_FILES:
        (dst / name).unlink(missing_ok=True)
    return dst


def test_a_model_dir_without_tokenizer_files_is_refused(hf_dir, tmp_path):
    src = copy_without_tokenizer(hf_dir, tmp_path / "no-tokenizer")
    out = tmp_path / "out"
    result = run_cli("export", src, "-o", out)
    assert_clean_error(result, 2, f"{src}: the tokenizer cannot serve this model")
    assert "tokenizer files" in result.output and "becomes the unknown token" in result.output
    assert not out.exists()  # refused before anything was written


def test_a_vocabulary_beyond_the_embedding_table_is_refused(hf_dir, tmp_path):
    src = tmp_path / "big-vocab"
    shutil.copytree(hf_dir, src)
    (src / "vocab.txt").write_text("\n".join(VOCAB + [f"w{i}" for i in range(10)]) + "\n", encoding="utf-8")
    result = run_cli("export", src, "-o", tmp_path / "out")
    assert_clean_error(result, 2, f"token id {len(VOCAB) + 9} is outside the model's embedding table "
                                  f"({len(VOCAB)} rows)")


def test_problems_name_each_fault(hf_dir, tmp_path):
    tok = load_tokenizer(hf_dir)
    assert tokenizer_fit.problems(tok, len(VOCAB)) == []
    assert tokenizer_fit.problems(tok, None) == []
    # an embedding table far larger than the vocabulary: not this model's tokenizer
    assert tokenizer_fit.problems(tok, 200) == [
        f"its vocabulary has {len(VOCAB)} tokens but the model's embedding table has 200 rows "
        f"(not the vocabulary it was trained with)"]
    assert tokenizer_fit.problems(tok, len(VOCAB) + 1)  # one row more than a vocabulary of 32 is no padding
    assert tokenizer_fit.problems(tok, 64)  # half the table unused: a lost tail, not padding
    # alignment padding is not a fault (SqueezeBERT: 30522 tokens, 30528 rows)
    big = tmp_path / "big"
    big.mkdir()
    (big / "vocab.txt").write_text("\n".join(VOCAB + [f"w{i}" for i in range(30522 - len(VOCAB))]) + "\n")
    (big / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    big_tok = load_tokenizer(big)
    assert [tokenizer_fit.problems(big_tok, rows) == [] for rows in (30522, 30528, 30592, 30523, 30530)] == \
        [True, True, True, False, False]
    # a vocabulary without [CLS]/[SEP]: transformers appends them after the last word, past the rows the
    # model was trained with
    words = tmp_path / "no-specials"
    words.mkdir()
    lines = ["[PAD]", "[UNK]"] + VOCAB[5:]
    (words / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (words / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    found = tokenizer_fit.problems(load_tokenizer(words), len(lines))
    assert found and found[0].startswith(f"token id {len(lines) + 2} is outside the model's embedding table "
                                         f"({len(lines)} rows)"), found


def test_an_artifact_dir_with_a_crippled_tokenizer_is_refused_by_every_command(tiny, tmp_path):
    art = make_artifact_dir(tmp_path / "art", tiny)
    man = Manifest.load(art)
    man.data["model"]["vocab_size"] = len(VOCAB)
    man.save()
    assert run_cli("check", art, "--limit", "8", "--runs", "2", "--warmup", "1", "--seq-len", "32").exit_code == 0
    (art / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    for args in (("check", art), ("quantize", art, "--mode", "static", "--samples", "8")):
        result = run_cli(*args)
        assert_clean_error(result, 2, f"{art / 'tokenizer'}: the tokenizer cannot serve this model")
        assert "re-run `edgebert export`" in result.output


# --- damaged model files and config values: one line naming the file, exit 2 -------------------------
def edit_config(key, value):
    def apply(d):
        cfg = json.loads((d / "config.json").read_text())
        if value is DELETE:
            cfg.pop(key, None)
        else:
            cfg[key] = value
        (d / "config.json").write_text(json.dumps(cfg))
    return apply


DELETE = object()
DAMAGES = {
    "truncated weights": (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:999]),
                          "cannot load distilbert weights (SafetensorError"),
    "garbled weights header": (lambda d: (d / "model.safetensors").write_bytes(
        b"\xff" * 16 + (d / "model.safetensors").read_bytes()[16:]), "cannot load distilbert weights"),
    "wrong-type value": (edit_config("dim", "abc"), "config.json: invalid config (Validation error for field 'dim'"),
    "negative layer count": (edit_config("n_layers", -1), "config.json: invalid config (n_layers = -1 (expected a "
                                                          "positive integer))"),
    "more layers than weights": (edit_config("n_layers", 3), "the weights do not match config.json: 16 tensor(s) "
                                                             "missing from the weights (distilbert.transformer.layer.2"),
    "fewer layers than weights": (edit_config("n_layers", 1), "16 tensor(s) not in the model"),
    "shape mismatch": (edit_config("hidden_dim", 48), "tensor(s) of the wrong shape (distilbert.transformer.layer.0"),
    "labels inconsistent": (edit_config("num_labels", 3), "2 tensor(s) of the wrong shape (classifier.bias, "
                                                          "classifier.weight)"),
    "config not an object": (lambda d: (d / "config.json").write_text("[1, 2]"), "expected a JSON object, found list"),
    "config not UTF-8": (lambda d: (d / "config.json").write_bytes(b'{"model_type": "distil\xff"}'), "not UTF-8"),
}


@pytest.mark.parametrize("case", list(DAMAGES))
def test_every_damaged_model_file_is_one_line(hf_dir, tmp_path, case):
    damage, expected = DAMAGES[case]
    src = tmp_path / "model"
    shutil.copytree(hf_dir, src)
    damage(src)
    result = run_cli("export", src, "-o", tmp_path / "out")
    assert_clean_error(result, 2, expected)
    assert str(src) in result.output  # the file or directory is named
    assert not (tmp_path / "out").exists()


# --- the machine's own faults: one line naming the path and the cause, exit 1, nothing half-written ---
@pytest.fixture
def small_fs(tmp_path):
    """A real 1 MB filesystem (tmpfs; CI runs as root), unmounted afterwards."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_is_one_line_and_a_rerun_after_freeing_space_succeeds(hf_dir, small_fs):
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 100 * 1024))  # room for the tokenizer and manifest, not the ONNX
    out = small_fs / "out"
    result = run_cli("export", hf_dir, "-o", out, "--format", "onnx", "--format", "tflite", "--seq-len", "32")
    assert_clean_error(result, 1, f"{out}: No space left on device; free space there and rerun")
    assert no_temp_files(out)
    assert not (out / "model.onnx").exists() and not (out / "model.tflite").exists()
    assert Manifest.load(out).artifacts == {}  # the manifest lists nothing incomplete
    filler.unlink()
    result = run_cli("export", hf_dir, "-o", out, "--format", "onnx", "--format", "tflite", "--seq-len", "32")
    assert result.exit_code == 0, result.output
    assert set(Manifest.load(out).artifacts) == {"model.onnx", "model.tflite"} and no_temp_files(out)


def test_a_read_only_or_impossible_output_location_is_one_line(hf_dir, small_fs):
    import subprocess

    assert_clean_error(run_cli("export", hf_dir, "-o", "/proc/edgebert-x"), 1,
                       "/proc/edgebert-x: No such file or directory")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    assert_clean_error(run_cli("export", hf_dir, "-o", small_fs / "out"), 1,
                       f"{small_fs / 'out'}: Read-only file system; the location is read-only")


def test_a_file_where_the_output_directory_should_be(tiny, tmp_path):
    art = make_artifact_dir(tmp_path / "art", tiny, artifacts=("fp32",))
    (art / "report.json").mkdir()  # a directory where check writes a file
    result = run_cli("check", art, "--limit", "4", "--runs", "1", "--warmup", "0", "--seq-len", "16")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1 and "report.json" in line[0] and "Is a directory" in line[0], result.output


# --- random damage: a clean refusal, or an artifact that predicts exactly like the undamaged model ---
PROBE_TEXTS = ["the movie was good", "a dull , boring film !", "not bad . the acting was great",
               "it is too funny and very fresh", "the plot was not good"]
FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")
BAD_VALUES = ("abc", 1.5, None, [], {}, 0, -3)


def predictions(art) -> list[int]:
    from edgebert.data.tokenize import encode
    from edgebert.devices import ort_session

    session = ort_session.create(str(art / "model.onnx"), threads=1)
    enc = encode(load_tokenizer(art / "tokenizer"), PROBE_TEXTS, 32)
    return session.run(["logits"], enc)[0].argmax(-1).tolist()


@pytest.fixture(scope="module")
def reference(hf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    assert run_cli("export", hf_dir, "-o", out, "--seq-len", "32").exit_code == 0
    return predictions(out)


def damage_strategy():
    from hypothesis import strategies as st

    files = st.tuples(st.sampled_from(FILES), st.sampled_from(("delete", "truncate", "garble")),
                      st.floats(0, 0.999), st.binary(min_size=1, max_size=8))
    config = st.tuples(st.just("config.json"), st.just("edit"),
                       st.sampled_from(("dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings",
                                        "vocab_size", "num_labels", "id2label", "model_type")),
                       st.sampled_from(BAD_VALUES + (DELETE,)))
    return st.one_of(files, config)


def apply_damage(d, damage) -> None:
    """Delete, truncate, garble or edit one file of a model directory.

    Garbling writes bytes >= 0x80 (never valid inside JSON or a vocabulary's ASCII text) into text files and
    into the safetensors header; the tensor data itself is left alone: safetensors has no checksum, so garbled
    weights are indistinguishable from other weights (the cache's content hashes cover what edgebert builds).
    Config edits use values no working config has (wrong types, zero, negative, removed keys).
    """
    name, op, a, b = damage
    path = d / name
    data = path.read_bytes()
    if op == "delete":
        path.unlink()
    elif op == "truncate":
        path.write_bytes(data[:int(a * len(data))])
    elif op == "garble":
        end = 8 + int.from_bytes(data[:8], "little") if name == "model.safetensors" else len(data)
        start = int(a * max(end - len(b), 0))
        path.write_bytes(data[:start] + bytes(0x80 | x for x in b) + data[start + len(b):])
    else:
        edit_config(a, b)(d)


def test_random_damage_is_refused_cleanly_or_harmless(hf_dir, reference, tmp_path_factory):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=14, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(damage_strategy())
    def check(damage):
        root = tmp_path_factory.mktemp("damaged")
        src = root / "model"
        shutil.copytree(hf_dir, src)
        apply_damage(src, damage)
        result = run_cli("export", src, "-o", root / "out", "--seq-len", "32")
        assert "Traceback" not in result.output, (damage, result.output)
        if result.exit_code == 0:
            assert predictions(root / "out") == reference, damage
        else:
            errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
            assert result.exit_code in (1, 2) and len(errors) == 1, (damage, result.output)

    check()


def test_a_worker_killed_mid_check_fails_only_its_record(tiny, tmp_path):
    """SIGKILL the real worker process while it measures the int8 artifact: that record fails with the
    signal named, the fp32 record is complete, the command exits 1 with one line."""
    import os
    import signal
    import threading
    import time

    art = make_artifact_dir(tmp_path / "art", tiny)
    mine = str(art / "model.int8-dynamic.onnx").encode()
    stop = threading.Event()
    killed = []

    def killer():
        while not stop.is_set() and not killed:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                    request = next((c for c in cmd if c.endswith(b".json")), b"")
                    body = open(request, "rb").read() if request else b""
                    if any(c.endswith(b"worker.py") for c in cmd) and mine in body:  # this test's int8 worker only
                        os.kill(int(pid), signal.SIGKILL)
                        killed.append(pid)
                except (OSError, ValueError):
                    continue
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = run_cli("check", art, "--limit", "8", "--runs", "20000", "--warmup", "1", "--seq-len", "32")
    finally:
        stop.set()
        thread.join()
    assert killed, "the int8 worker was never seen"
    report = json.loads((art / "report.json").read_text())
    recs = {r["artifact"]: r for r in report["records"] if r["device"] == "desktop"}
    assert recs["model.onnx"]["status"] == "ok" and recs["model.onnx"]["latency_ms"]["p50"] > 0
    assert recs["model.int8-dynamic.onnx"]["status"] == "failed", (killed, json.dumps(recs["model.int8-dynamic.onnx"])[:1500])
    assert "killed by SIGKILL" in recs["model.int8-dynamic.onnx"]["error"]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output


# --- the cache heals itself ------------------------------------------------------------------------
def test_a_damaged_builtin_cache_entry_is_rebuilt_never_loaded(tmp_path, monkeypatch):
    """The entry records every file's sha256; a truncated, missing or unrecorded entry is rebuilt with one
    line saying why. The (3-minute) trainer is replaced by a tiny real model builder: what is tested here
    is the cache, and tests/test_e2e_builtin.py builds the real entries."""
    from edgebert.models import builtin
    from edgebert.progress import Progress

    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    builds = []

    def tiny_build(arch, out, progress=None, recipe=builtin.RECIPE):
        builds.append(arch.name)
        save_tiny_hf_dir(out, arch.name)
        return {"architecture": arch.name, "recipe": {"tiny": True}, "test_accuracy": 0.5, "data": "tiny",
                "build_seconds": 0.0, "torch_threads": 1}  # the fields the model card reads

    monkeypatch.setattr(builtin, "build", tiny_build)
    infos = []
    progress = Progress()
    monkeypatch.setattr(progress, "info", infos.append)
    target = builtin.builtin_dir("distilbert", progress=progress)
    record = json.loads((target / builtin.BUILD_RECORD).read_text())
    assert builds == ["distilbert"] and set(record["files"]) >= {"config.json", "model.safetensors", "vocab.txt"}
    assert builtin.damage(target) is None and builtin.builtin_dir("distilbert", progress=progress) == target
    assert builds == ["distilbert"] and infos == []  # a sound entry is reused

    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated in place
    assert builtin.damage(target) == "model.safetensors changed since it was built (sha256 mismatch)"
    builtin.builtin_dir("distilbert", progress=progress)
    assert builds == ["distilbert"] * 2 and len(infos) == 1
    assert "cache entry" in infos[0] and "damaged (model.safetensors changed" in infos[0] and "rebuilding" in infos[0]
    assert builtin.damage(target) is None

    (target / "vocab.txt").unlink()
    assert builtin.damage(target) == "vocab.txt missing"
    record.pop("files")
    (target / builtin.BUILD_RECORD).write_text(json.dumps(record))
    assert "records no content hashes" in builtin.damage(target)
    (target / builtin.BUILD_RECORD).unlink()
    assert "missing (an interrupted or partial entry)" in builtin.damage(target)
    assert run_cli("export", "distilbert", "-o", tmp_path / "out", "--seq-len", "16").exit_code == 0
    assert builds == ["distilbert"] * 3 and builtin.damage(target) is None


def test_a_damaged_arm_environment_is_named_before_use_and_rebuilt_by_setup(tmp_path, monkeypatch):
    """Setup stamps each step's content; a truncated file is caught by the quick check before any emulated
    run and by every setup run (which rebuilds the step, saying so); a same-size change needs the full sha256
    check of `edgebert devices setup`. The step here is a small real one (the real ones download ~400 MB;
    tests/test_arm.py runs them)."""
    from edgebert.devices.arm import environment, setup
    from edgebert.devices.arm.environment import ArmEnv
    from edgebert.progress import Progress

    runs = []

    def toy(ctx, key):
        runs.append(1)
        tree = ctx.env.root / "toy"
        tree.mkdir(exist_ok=True)
        (tree / "tool.bin").write_bytes(bytes(range(256)) * 40)
        (tree / "__pycache__").mkdir(exist_ok=True)
        return {}

    monkeypatch.setattr(setup, "steps", lambda: [setup.Step("toy", "Making the toy step", toy, lambda: {"v": 1},
                                                            owns=("toy",))])
    env = ArmEnv(tmp_path / "arm")
    infos = []
    progress = Progress()
    monkeypatch.setattr(progress, "info", infos.append)
    assert setup.setup(env, progress=progress)["ran"] == ["toy"]
    assert setup.setup(env, progress=progress)["ran"] == [] and infos == []
    (env.root / "toy" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")  # written by the guest
    assert setup.setup(env, progress=progress)["ran"] == []
    tool = env.root / "toy" / "tool.bin"
    tool.write_bytes(tool.read_bytes()[:100])
    assert setup.setup(env, progress=progress)["ran"] == ["toy"] and len(runs) == 2
    assert infos == ["The emulated-ARM environment's toy is damaged (files under toy were changed, truncated, "
                     "added or removed since setup); rebuilding it"]
    tool.write_bytes(b"\xff" + tool.read_bytes()[1:])  # same size
    assert setup.setup(env)["ran"] == []               # the quick check cannot see it...
    assert setup.setup(env, verify=True)["ran"] == ["toy"]  # ...the full one can
    # a stamp from before content records is completed, not rebuilt
    stamp = env.stamp("toy")
    stamp.pop("content")
    (env.stamps / "toy.json").write_text(json.dumps(stamp))
    assert setup.setup(env)["ran"] == [] and env.stamp("toy")["content"]["dirs"] == ["toy"]

    # before use: the accuracy environment's steps are checked once per process
    for step, rel in (("sysroot", "sysroot/usr/bin/python3.11"), ("wheels", "site/numpy/core.so"),
                      ("qemu", "qemu/qemu-aarch64")):
        (env.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (env.root / rel).write_bytes(b"x" * 1000)
        (env.stamps / f"{step}.json").write_text(json.dumps(
            {"key": {}, "content": setup.content.record(env.root, (rel.split("/")[0],))}))
    environment._content_problem.cache_clear()
    assert env.missing() is None
    (env.root / "site" / "numpy" / "core.so").write_bytes(b"x" * 10)
    environment._content_problem.cache_clear()
    assert env.missing() == ("the emulated-ARM environment is damaged (wheels: files under site were changed, "
                             "truncated, added or removed since setup); run `edgebert devices setup` to rebuild it")
