"""ONNX export of tiny real models of both architectures, validated against PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebert.errors import ValidationError
from edgebert.export import ExportSettings, export
from edgebert.manifest import Manifest
from support import load_tokenizer, random_texts, save_tiny_hf_dir


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_export_validates_and_records(tmp_path, arch_name):
    src = save_tiny_hf_dir(tmp_path / "src", arch_name)
    out = tmp_path / "out"
    manifest = export(str(src), out, ExportSettings(seq_len=64))
    rec = manifest.artifacts["model.onnx"]
    assert rec["validation"]["max_abs_diff"] < 1e-4
    assert {c["batch"] for c in rec["validation"]["cases"]} == {1, 4}
    assert {c["padded"] for c in rec["validation"]["cases"]} == {True, False}
    assert len({c["seq_len"] for c in rec["validation"]["cases"]}) >= 2
    # the exporter picked by measurement (TorchScript, opset 18) and why, in the manifest
    assert rec["exporter"]["dynamo"] is False and rec["exporter"]["opset"] == 18 and "measured" in rec["exporter"]["why"]
    assert rec["sha256"] and rec["size_bytes"] > 0
    assert Manifest.load(out).model["architecture"] == arch_name
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    # dynamic axes: a batch and length never seen during export still match PyTorch
    tok = load_tokenizer(out / "tokenizer")
    enc = tok(random_texts(3, seed=7), padding=True, truncation=True, max_length=50, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    from edgebert.models import load_classifier

    model = load_classifier(str(src)).model
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_failed_validation_leaves_no_file(tmp_path):
    src = save_tiny_hf_dir(tmp_path / "src", "distilbert")
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match="tolerance 1e-12"):
        export(str(src), out, ExportSettings(seq_len=32, atol=1e-12))
    assert not (out / "model.onnx").exists()
    assert Manifest.load(out).artifacts == {}  # the manifest never points at a file that is not there
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_dynamo_exporter_still_validates(tmp_path):
    """The other exporter stays usable (the benchmark compares the two): same validation, recorded as dynamo."""
    from edgebert.export.onnx import export_onnx
    from edgebert.models import load_classifier

    loaded = load_classifier(str(save_tiny_hf_dir(tmp_path / "src", "distilbert")))
    rec = export_onnx(loaded.model, loaded.tokenizer, tmp_path / "m.onnx", 32, 1e-4, exporter="dynamo")
    assert rec["exporter"]["dynamo"] is True and rec["exporter"]["opset"] >= 18
    assert rec["validation"]["max_abs_diff"] < 1e-4 and (tmp_path / "m.onnx").is_file()
