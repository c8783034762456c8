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
from support import VOCAB, assert_clean_error, load_tokenizer, make_artifact_dir, run_cli, save_tiny_hf_dir

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
    # alignment padding is not a fault (SqueezeBERT: 30522 tokens, 30528 rows)
    assert len(VOCAB) == 32 and tokenizer_fit.problems(tok, 64) == [] and tokenizer_fit.problems(tok, 128) == []
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
