"""Model registry and loading: weight mapping from BERT, local dirs, and the errors users hit."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from edgebert.errors import UsageError
from edgebert.models import get, load_classifier, names
from support import save_tiny_hf_dir


def test_registry_lists_both_architectures():
    assert names() == ("distilbert", "squeezebert")
    assert get("squeezebert").onnx_rewrites == ("conv1x1_to_matmul",)
    with pytest.raises(UsageError, match="distilbert, squeezebert"):
        get("bert")


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_bert_weights_map_exactly(arch_name):
    """The mapping the built-in models rely on reproduces BERT's hidden states (here on a small BERT)."""
    torch.manual_seed(0)
    bert_cfg = BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=96, max_position_embeddings=64)
    bert = BertModel(bert_cfg).eval()
    arch = get(arch_name)
    config = arch.bert_config(bert_cfg.to_dict(), num_labels=2)
    model = arch.model_class(config).eval()
    missing, unexpected = model.load_state_dict(arch.from_bert(bert.state_dict(), config), strict=False)
    assert not unexpected and not [k for k in missing if ".layer" in k or "embeddings" in k]
    ids = torch.randint(1, 100, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        ref = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (got - ref)[mask.bool()].abs().max().item() < 1e-5


@pytest.mark.parametrize("arch_name", ["distilbert", "squeezebert"])
def test_load_local_dir(tmp_path, arch_name):
    d = save_tiny_hf_dir(tmp_path / arch_name, arch_name)
    loaded = load_classifier(str(d))
    assert loaded.arch.name == arch_name
    assert loaded.source["kind"] == "local" and "config.json" in loaded.source["sha256"]
    assert loaded.id2label == {0: "negative", 1: "positive"}
    assert len(loaded.tokenizer("the movie was good")["input_ids"]) == 6


def test_squeezebert_tiny_config_keeps_grouped_convs():
    cfg = get("squeezebert").tiny_config()
    assert (cfg.q_groups, cfg.intermediate_groups, cfg.output_groups) == (4, 4, 4)


def test_load_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="no such directory"):
        load_classifier(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no config.json"):
        load_classifier(str(tmp_path / "empty"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UsageError, match="unsupported architecture 'bert'.*distilbert and squeezebert"):
        load_classifier(str(tmp_path / "bert"))
    with pytest.raises(UsageError, match="could not be fetched from the Hugging Face hub"):
        load_classifier("someone/some-model")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        load_classifier(str(tmp_path / "file.txt"))
