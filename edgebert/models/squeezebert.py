"""SqueezeBERT entry: stock SqueezeBertForSequenceClassification, grouped 1x1 Conv1d layers.

Its Conv1d layers export as ONNX ``Conv``; ONNX Runtime's int8 quantizer turns those into
``ConvInteger``, which is slow or unimplemented (FIELD_NOTES §1). A 1x1 Conv1d is a (grouped)
MatMul, so int8 recipes first apply the ``conv1x1_to_matmul`` rewrite named here. TFLite converts a
channels-last equivalent module instead (``export/squeezebert_channels_last.py``).
"""

from __future__ import annotations

import torch
from transformers import SqueezeBertConfig, SqueezeBertForSequenceClassification

from .registry import Architecture, register


def tiny_config(num_labels: int = 2, vocab_size: int = 30522, **overrides) -> SqueezeBertConfig:
    """Small, but keeps SqueezeBERT's default grouped convolutions (q/k/v, intermediate, output: 4)."""
    kw = dict(vocab_size=vocab_size, hidden_size=32, embedding_size=32, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=64, max_position_embeddings=256,
              num_labels=num_labels)
    kw.update(overrides)
    return SqueezeBertConfig(**kw)


def bert_config(bert: dict, num_labels: int) -> SqueezeBertConfig:
    """A SqueezeBERT with every ``*_groups=1`` is exactly BERT with Conv1d(k=1) for each Linear."""
    return SqueezeBertConfig(
        vocab_size=bert["vocab_size"], hidden_size=bert["hidden_size"],
        embedding_size=bert["hidden_size"], num_hidden_layers=bert["num_hidden_layers"],
        num_attention_heads=bert["num_attention_heads"], intermediate_size=bert["intermediate_size"],
        max_position_embeddings=bert["max_position_embeddings"], type_vocab_size=bert["type_vocab_size"],
        hidden_act="gelu", layer_norm_eps=bert.get("layer_norm_eps", 1e-12),
        q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1,
        output_groups=1, num_labels=num_labels, pad_token_id=bert.get("pad_token_id", 0),
    )


def from_bert(sd: dict[str, torch.Tensor], config: SqueezeBertConfig) -> dict[str, torch.Tensor]:
    """BERT -> SqueezeBERT(groups=1): each Linear weight W becomes the Conv1d weight W[..., None]."""
    p = "transformer."
    out = {p + k: v for k, v in sd.items() if k.startswith("embeddings.") and "position_ids" not in k}
    names = {
        "attention.self.query": ("attention.query", True), "attention.self.key": ("attention.key", True),
        "attention.self.value": ("attention.value", True),
        "attention.output.dense": ("post_attention.conv1d", True),
        "attention.output.LayerNorm": ("post_attention.layernorm", False),
        "intermediate.dense": ("intermediate.conv1d", True),
        "output.dense": ("output.conv1d", True), "output.LayerNorm": ("output.layernorm", False),
    }
    for i in range(config.num_hidden_layers):
        for src, (dst, is_conv) in names.items():
            w = sd[f"encoder.layer.{i}.{src}.weight"]
            out[f"{p}encoder.layers.{i}.{dst}.weight"] = w[..., None] if is_conv else w
            out[f"{p}encoder.layers.{i}.{dst}.bias"] = sd[f"encoder.layer.{i}.{src}.bias"]
    return out


SQUEEZEBERT = register(Architecture(
    name="squeezebert",
    model_type="squeezebert",
    model_class=SqueezeBertForSequenceClassification,
    config_class=SqueezeBertConfig,
    description="SqueezeBERT (grouped 1x1 Conv1d; rewritten to MatMul before int8)",
    tiny_config=tiny_config,
    bert_config=bert_config,
    from_bert=from_bert,
    layers=lambda model: model.transformer.encoder.layers,
    onnx_rewrites=("conv1x1_to_matmul",),
    quantize_notes={"conv": "1x1 Conv1d rewritten to MatMul so int8 MatMul kernels run (no ConvInteger)"},
    size_fields=("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "q_groups", "k_groups", "v_groups", "post_attention_groups",
                 "intermediate_groups", "output_groups"),
))
