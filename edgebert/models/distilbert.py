"""DistilBERT entry: stock DistilBertForSequenceClassification, Linear layers (MatMul in ONNX)."""

from __future__ import annotations

import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from .registry import Architecture, register


def tiny_config(num_labels: int = 2, vocab_size: int = 30522, **overrides) -> DistilBertConfig:
    kw = dict(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
              max_position_embeddings=256, num_labels=num_labels)
    kw.update(overrides)
    return DistilBertConfig(**kw)


def bert_config(bert: dict, num_labels: int) -> DistilBertConfig:
    return DistilBertConfig(
        vocab_size=bert["vocab_size"], dim=bert["hidden_size"], n_layers=bert["num_hidden_layers"],
        n_heads=bert["num_attention_heads"], hidden_dim=bert["intermediate_size"],
        max_position_embeddings=bert["max_position_embeddings"], activation="gelu",
        num_labels=num_labels, pad_token_id=bert.get("pad_token_id", 0),
    )


def from_bert(sd: dict[str, torch.Tensor], config: DistilBertConfig) -> dict[str, torch.Tensor]:
    """BERT -> DistilBERT: token-type 0 folds into the position embeddings; names change."""
    p = "distilbert."
    out = {
        p + "embeddings.word_embeddings.weight": sd["embeddings.word_embeddings.weight"],
        p + "embeddings.position_embeddings.weight":
            sd["embeddings.position_embeddings.weight"] + sd["embeddings.token_type_embeddings.weight"][0],
        p + "embeddings.LayerNorm.weight": sd["embeddings.LayerNorm.weight"],
        p + "embeddings.LayerNorm.bias": sd["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm",
    }
    for i in range(config.n_layers):
        for src, dst in names.items():
            for t in ("weight", "bias"):
                out[f"{p}transformer.layer.{i}.{dst}.{t}"] = sd[f"encoder.layer.{i}.{src}.{t}"]
    return out


DISTILBERT = register(Architecture(
    name="distilbert",
    model_type="distilbert",
    model_class=DistilBertForSequenceClassification,
    config_class=DistilBertConfig,
    description="DistilBERT (Linear layers; MatMul in ONNX)",
    tiny_config=tiny_config,
    bert_config=bert_config,
    from_bert=from_bert,
    layers=lambda model: model.distilbert.transformer.layer,
    size_fields=("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings"),
))
