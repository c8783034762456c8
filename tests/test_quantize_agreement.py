"""The int8 vs fp32 agreement check on a user's own model: their texts, near-ties apart from confident flips.

Two real tiny 5-label grouped SqueezeBERTs (topic labels, not the built-in sentiment ones), exported with
edgebert's exporter and quantized for real:

- **low-confidence**: classifier bias centred on the user's texts, so the five logits nearly tie on every
  text (like the user's model of issue 25: agreement ~0.85 overall with max |Δlogit| ~0.02). int8 noise
  flips near-ties only: it must pass.
- **saturated**: larger init (fp32 picks a topic by a median margin of ~3.7 logits), plus a constant pooler
  unit whose ±300 classifier weight is cancelled by the bias (fp32 unchanged) but sets each per-channel
  int8 scale, so the real classifier weights round away and int8 flips ~98% of the texts. It must fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebert.data import load_builtin
from edgebert.manifest import Manifest
from edgebert.quantize import near_ties
from support import assert_clean_error, run_cli
from trained_tiny import write_vocab_tokenizer

TOPICS = ["sports", "politics", "science", "business", "arts"]
SEQ = 64


def user_texts() -> tuple[str, ...]:
    return load_builtin("test").texts[:200]


def build_model(directory: Path, *, init: float, centred: bool, outlier: float = 0.0) -> Path:
    """A local HF directory of a tiny grouped SqueezeBERT with 5 topic labels (random init, real weights)."""
    from transformers import AutoTokenizer

    from edgebert.models import get

    write_vocab_tokenizer(directory)
    tok = AutoTokenizer.from_pretrained(str(directory))
    arch = get("squeezebert")
    torch.manual_seed(0)
    config = arch.tiny_config(num_labels=5, vocab_size=len(tok), initializer_range=init)
    config.id2label, config.label2id = dict(enumerate(TOPICS)), {t: i for i, t in enumerate(TOPICS)}
    model = arch.model_class(config).eval()
    with torch.no_grad():
        if centred:  # every topic's mean logit over the user's texts -> 0: the topics nearly tie
            logits = torch.cat([model(**tok([t], return_tensors="pt", truncation=True, max_length=SEQ)).logits
                                for t in user_texts()])
            model.classifier.bias -= logits.mean(0)
        if outlier:  # pooler unit 0 is tanh(-20) = -1 on every text; its ±300 weight is cancelled by the bias
            pooler = model.transformer.pooler.dense
            pooler.weight[0] = 0
            pooler.bias[0] = -20
            big = outlier * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
            model.classifier.weight[:, 0] = big
            model.classifier.bias += big
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from edgebert.export import ExportSettings, export

    root = tmp_path_factory.mktemp("agreement")
    data = root / "topics.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{TOPICS[i % 5]}\n' for i, t in enumerate(user_texts())),
                    encoding="utf-8")
    out = {"data": data}
    for key, kw in (("low", dict(init=0.12, centred=True)), ("saturated", dict(init=0.5, centred=False, outlier=300))):
        # the saturated model's ±300 terms cancel to ~1e-4 in float32 re-association: export tolerance 1e-3
        export(str(build_model(root / f"src-{key}", **kw)), root / key,
               ExportSettings(formats=("onnx",), seq_len=SEQ, atol=1e-3 if kw.get("outlier") else 1e-4))
        out[key] = root / key
    return out


def fresh(models, key: str, tmp_path: Path) -> Path:
    d = tmp_path / key
    shutil.copytree(models[key], d)
    return d


def onnx_logits(path: Path, tokenizer_dir: Path, texts) -> np.ndarray:
    """Each text alone at batch 1, its own length, straight through ONNX Runtime (independent of edgebert)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = []
    for t in texts:
        enc = tok([t], return_tensors="np", truncation=True, max_length=SEQ)
        rows.append(sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                    "attention_mask": enc["attention_mask"].astype(np.int64)})[0])
    return np.concatenate(rows)


def expected_split(d: Path, texts) -> dict:
    """The rule recomputed here from the two models' logits: eps, near-ties, flips on confident texts."""
    ref = onnx_logits(d / "model.onnx", d / "tokenizer", texts)
    out = onnx_logits(d / "model.int8-dynamic.onnx", d / "tokenizer", texts)
    eps = np.sort(np.abs(ref - out).max(1))[int(np.ceil(0.5 * (len(ref) - 1)))]  # the median, observed
    top2 = np.sort(ref, 1)[:, -2:]
    tie = top2[:, 1] - top2[:, 0] <= 2 * eps
    agree = ref.argmax(1) == out.argmax(1)
    return {"eps": eps, "ties": int(tie.sum()), "tie_flips": int((~agree & tie).sum()),
            "confident": int((~tie).sum()), "confident_agree": int((agree & ~tie).sum())}


def test_low_confidence_model_passes_on_the_users_texts(models, tmp_path):
    d = fresh(models, "low", tmp_path)
    result = run_cli("quantize", d, "--mode", "dynamic", "--seq-len", SEQ, "--data", models["data"])
    assert result.exit_code == 0, result.output
    v = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["validation"]
    assert v["source"] == str(models["data"]) and v["origin"] == "--data" and v["texts"] == 200
    assert v["texts_label"] == "200 texts of topics.csv" and "hint" not in v
    rec = v["agreement"]
    # the old rule (all texts) refuses this model; the near-ties are what it disagrees on
    assert v["prediction_agreement"] < 0.9 and rec["overall"]["rate"] == v["prediction_agreement"]
    assert rec["near_ties"]["n"] >= 20 and rec["near_ties"]["disagree"]["k"] >= 10
    assert rec["confident"]["n"] >= 20 and rec["confident"]["rate"] >= 0.9 and rec["confident_flips"] <= 1
    lo, hi = rec["confident"]["ci95"]
    assert 0 < lo < rec["confident"]["rate"] <= hi <= 1 and rec["near_ties"]["disagree"]["ci95"][0] > 0
    # the counts are those of the rule recomputed from the two models run independently
    exp = expected_split(d, user_texts())
    assert rec["noise"]["eps"] == pytest.approx(exp["eps"], rel=1e-3, abs=1e-7)
    assert (rec["near_ties"]["n"], rec["near_ties"]["disagree"]["k"]) == (exp["ties"], exp["tie_flips"])
    assert (rec["confident"]["n"], rec["confident"]["k"]) == (exp["confident"], exp["confident_agree"])
    assert rec["overall"]["n"] == rec["confident"]["n"] + rec["near_ties"]["n"] == 200
    # the printed line names the texts, the gated rate with its n and interval, and the near-ties
    line = next(ln for ln in result.output.splitlines() if "agreement with fp32" in ln)
    assert "on confident texts" in line and "200 texts of topics.csv" in line and "95% CI" in line
    assert f"{rec['near_ties']['n']} near-ties" in line and "n=200" in line


def test_without_user_texts_the_builtin_ones_are_named_and_data_suggested(models, tmp_path):
    d = fresh(models, "low", tmp_path)
    result = run_cli("quantize", d, "--mode", "dynamic", "--seq-len", SEQ, "--min-agreement", "0")
    assert result.exit_code == 0, result.output
    v = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["validation"]
    assert v["source"] == "builtin:rt-snippets/validation" and v["texts_label"] == "200 built-in validation texts"
    assert "sports, politics" in v["hint"] and "--data" in v["hint"]
    assert "200 built-in validation texts" in result.output and "pass --data" in result.output


def test_calibration_file_is_used_when_there_is_no_data(models, tmp_path):
    d = fresh(models, "low", tmp_path)
    cal = tmp_path / "cal.jsonl"
    cal.write_text("".join(f'{{"body": "{t}"}}\n' for t in user_texts()[:50]), encoding="utf-8")
    result = run_cli("quantize", d, "--mode", "static", "--seq-len", SEQ, "--calibration", cal,
                     "--text-column", "body", "--samples", "16", "--min-agreement", "0")
    assert result.exit_code == 0, result.output
    v = Manifest.load(d).artifacts["model.int8-static.onnx"]["validation"]
    assert v["origin"] == "--calibration" and v["texts"] == 50 and v["texts_label"] == "50 texts of cal.jsonl"
    assert v["overlaps_calibration"] is True and "hint" not in v


def test_saturated_model_fails(models, tmp_path):
    """fp32 picks a topic by ~3.7 logits (median margin); int8 moves every text by more than its margin."""
    d = fresh(models, "saturated", tmp_path)
    before = (d / "manifest.json").read_bytes()
    result = run_cli("quantize", d, "--mode", "dynamic", "--seq-len", SEQ, "--data", models["data"])
    assert_clean_error(result, 1, "model.int8-dynamic.onnx: on 200 texts of topics.csv no fp32 prediction is "
                                  "confident beyond the int8 noise")
    assert "no file was kept" in result.output and "pass --data" not in result.output
    assert not (d / "model.int8-dynamic.onnx").exists() and (d / "manifest.json").read_bytes() == before
    # kept with the gate off: the flips are real (overall agreement near 0), not a near-tie artefact
    assert run_cli("quantize", d, "--mode", "dynamic", "--seq-len", SEQ, "--data", models["data"],
                   "--min-agreement", "0").exit_code == 0
    v = Manifest.load(d).artifacts["model.int8-dynamic.onnx"]["validation"]
    assert v["prediction_agreement"] < 0.2 and v["max_abs_logit_diff"] > 2
    exp = expected_split(d, user_texts())
    assert v["agreement"]["confident"]["n"] == exp["confident"] == 0
    # on the built-in texts the error names them and suggests --data (topic labels, not sentiment)
    result = run_cli("quantize", d, "--mode", "dynamic", "--seq-len", SEQ)
    assert_clean_error(result, 1, "200 built-in validation texts")
    assert "pass --data YOUR.csv" in result.output


def test_bad_agreement_texts_are_usage_errors(models, tmp_path):
    d = models["low"]
    assert_clean_error(run_cli("quantize", d, "--mode", "dynamic", "--data", tmp_path / "missing.csv"), 2,
                       "no such dataset file")
    (tmp_path / "t.csv").write_text("body,label\nhello,sports\n", encoding="utf-8")
    assert_clean_error(run_cli("quantize", d, "--mode", "dynamic", "--data", tmp_path / "t.csv"), 2,
                       "no column 'text'")


def test_the_rule_on_known_logits():
    """eps is the median of per-text max |Δlogit|; margins <= 2*eps are near-ties; no text confident fails."""
    ref = np.array([[0.0, 0.001]] * 10 + [[0.0, 5.0]] * 90)          # 10 near-ties, 90 confident
    out = ref + np.array([[0.002, 0.0]] * 100)                       # eps = 0.002: flips the 10 near-ties only
    rec = near_ties.split(ref, out)
    assert rec["noise"]["eps"] == pytest.approx(0.002) and rec["noise"]["tie_margin"] == pytest.approx(0.004)
    assert rec["near_ties"]["n"] == 10 and rec["near_ties"]["disagree"]["k"] == 10
    assert (rec["confident"]["k"], rec["confident"]["n"], rec["confident_flips"]) == (90, 90, 0)
    assert rec["overall"]["rate"] == 0.9 and near_ties.passes(rec, 0.95)
    out[10:14] = ref[10:14][:, ::-1]                                 # 4 confident texts flipped (eps, the median, unchanged)
    rec = near_ties.split(ref, out)
    assert rec["noise"]["eps"] == pytest.approx(0.002) and rec["confident_flips"] == 4
    assert rec["confident"]["rate"] == pytest.approx(86 / 90) and rec["confident"]["ci95"][0] < 86 / 90
    assert near_ties.passes(rec, 0.95) and not near_ties.passes(rec, 0.96) and near_ties.passes(rec, 0)
    all_ties = near_ties.split(ref[:10], ref[:10] + [[1.0, 0.0]])  # noise larger than every margin
    assert all_ties["confident"]["n"] == 0 and not near_ties.passes(all_ties, 0.9)
