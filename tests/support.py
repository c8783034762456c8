"""Shared test support: a tiny real vocabulary tokenizer, tiny real models, artifact directories.

Everything is real (transformers models from small configs, torch's ONNX exporter, ONNX Runtime);
sizes are small so the suite stays fast. Fixtures live in conftest.py and use these helpers.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgebert.data.tokenize import encode
from edgebert.manifest import Manifest

WORDS = ("the a an movie film story acting plot is was it this and of not very too good bad great "
         "boring funny dull fresh , . !").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
MODEL = {"architecture": "distilbert", "num_labels": 2, "id2label": {"0": "negative", "1": "positive"},
         "label2id": {"negative": 0, "positive": 1}, "source": {"kind": "test"}}
FAST = dict(seq_len=32, threads=1, warmup=2, runs=5)


def write_tokenizer(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}), encoding="utf-8")


def load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 45))) for _ in range(n)]  # some > seq_len


@dataclass
class Tiny:
    """A tiny random DistilBERT, its fp32 and dynamic-int8 ONNX exports and its tokenizer."""

    model: torch.nn.Module
    fp32: Path
    int8: Path
    tokenizer_dir: Path

    def torch_logits(self, texts, seq_len: int) -> np.ndarray:
        enc = encode(load_tokenizer(self.tokenizer_dir), texts, seq_len, pad_to_max=True)
        with torch.no_grad():
            return self.model(torch.from_numpy(enc["input_ids"]),
                              attention_mask=torch.from_numpy(enc["attention_mask"])).logits.numpy()


def build_tiny(root: Path) -> Tiny:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch.export import Dim

    from edgebert.models import get

    write_tokenizer(root / "tokenizer")
    tok = load_tokenizer(root / "tokenizer")
    ids = tok("the movie was not good !")["input_ids"]
    assert len(ids) == 8 and 1 not in ids, ids  # a real vocabulary, not an empty one (all [UNK])
    torch.manual_seed(0)
    arch = get("distilbert")
    model = arch.model_class(arch.tiny_config(vocab_size=len(VOCAB))).eval()
    x = torch.randint(5, len(VOCAB), (2, 16))
    dims = {0: Dim("batch"), 1: Dim("sequence")}
    torch.onnx.export(model, (x, torch.ones_like(x)), str(root / "model.onnx"), dynamo=True,
                      external_data=False, input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], dynamic_shapes={"input_ids": dims, "attention_mask": dims},
                      verbose=False)
    quantize_dynamic(str(root / "model.onnx"), str(root / "model.int8-dynamic.onnx"), weight_type=QuantType.QInt8)
    return Tiny(model, root / "model.onnx", root / "model.int8-dynamic.onnx", root / "tokenizer")


def make_artifact_dir(directory: Path, tiny: Tiny, artifacts=("fp32", "int8")) -> Path:
    """An artifact directory with a manifest, the tokenizer and the chosen artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny.tokenizer_dir, directory / "tokenizer", dirs_exist_ok=True)
    man = Manifest.create(directory, model=dict(MODEL), tokenizer={"path": "tokenizer"})
    if "fp32" in artifacts:
        shutil.copy(tiny.fp32, directory / "model.onnx")
        man.add_artifact("model.onnx", {"path": "model.onnx", "format": "onnx", "precision": "fp32"})
    if "int8" in artifacts:
        shutil.copy(tiny.int8, directory / "model.int8-dynamic.onnx")
        man.add_artifact("model.int8-dynamic.onnx",
                         {"path": "model.int8-dynamic.onnx", "format": "onnx", "precision": "int8-dynamic"})
    man.save()
    return directory


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def by_artifact(report) -> dict[str, dict]:
    return {r["artifact"]: r for r in report["records"]}




def save_tiny_hf_dir(directory: Path, arch_name: str, **config_overrides) -> Path:
    """A local Hugging Face model directory (config.json + safetensors + tokenizer) of a tiny model."""
    from edgebert.models import get

    arch = get(arch_name)
    torch.manual_seed(0)
    config = arch.tiny_config(vocab_size=len(VOCAB), **config_overrides)
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    model = arch.model_class(config).eval()
    model.save_pretrained(directory)
    write_tokenizer(directory)
    return directory


def run_cli(*args):
    """Run the edgebert CLI in-process (Click's runner); arguments may be paths."""
    from click.testing import CliRunner

    from edgebert.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_clean_error(result, code: int, match: str) -> None:
    """One ``Error:`` line containing ``match``, exit ``code``, and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and match in lines[0], result.output


def no_temp_files(directory: Path) -> bool:
    """No hidden temp files or dirs (atomic writes clean up after themselves)."""
    return not [p for p in directory.rglob(".*") if p.is_file() or p.is_dir()]


def tiny_build_toml(src: Path, devices: list[str], *, limit: int, emulated_limit: int, probe: int, probe_fp32: int,
                    runs: int, warmup: int = 1) -> str:
    """A build config for a tiny model dir: ONNX fp32 + int8-dynamic at seq_len 32, no profile, on ``devices``
    (append more tables, e.g. gates or boards, to the text)."""
    names = ", ".join(f'"{d}"' for d in devices)
    return f"""
[build]
models = ["{src}"]
formats = ["onnx"]
precisions = ["fp32", "int8-dynamic"]
seq_len = 32
[evaluation]
limit = {limit}
emulated_limit = {emulated_limit}
emulated_probe = {probe}
emulated_probe_fp32 = {probe_fp32}
runs = {runs}
warmup = {warmup}
profile = false
[devices]
names = [{names}]
"""


def restore_exporter_mask(model) -> int:
    """Put the exporter's ``finfo(float32).min`` back into every constant ``export/masked_scores.py`` set to
    its ``MASK_VALUE`` (the stock graph, as another tool writes it); returns how many."""
    from onnx import TensorProto, numpy_helper

    from edgebert.export import masked_scores

    changed = [n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"
               if n.attribute[0].t.data_type == TensorProto.FLOAT
               and np.all(numpy_helper.to_array(n.attribute[0].t) == masked_scores.MASK_VALUE)]
    for t in changed:
        t.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(t), np.finfo(np.float32).min), t.name))
    return len(changed)
