"""SqueezeBERT with channels-last activations, used only as the module litert-torch converts.

Why: the stock HF SqueezeBERT keeps activations channels-first ``[N, C, W]``; its grouped 1x1 Conv1d
becomes TFLite CONV_2D (NHWC), so litert-torch wraps every conv and every LayerNorm in TRANSPOSE ops
(102 TRANSPOSE nodes in the built-in 6-layer model: 12% of the fp32 kernel time and 25% of the
int8-static time on desktop XNNPACK, where int8-static ran no faster than the dense DistilBERT despite
0.35x the MACs). This module computes the same function with ``[B, L, C]`` activations end to end:
each 1x1 conv is a Linear (grouped: one Linear per group on its channel slice, or one batched matmul
over groups), LayerNorm normalises the last axis, and attention runs in ``[B, heads, L, d]`` as in
BERT. The embeddings, pooler and classifier are the stock model's own modules (shared, not copied), and
the attention mask is built by the same HF helper, so padding behaves identically.

The ONNX export keeps the stock module (its graph rewrites are ONNX-level); TFLite validation still
compares the converted file against the *stock* PyTorch model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

#: "linear": per-group Linear (TFLite FULLY_CONNECTED on channel slices, concatenated);
#: "bmm": one batched matmul over groups (TFLite BATCH_MATMUL with a [G, Cin/G, Cout/G] weight);
#: "qkv": as "linear", but q, k and v of a group are one Linear (3x wider output, a third of the nodes),
#: split into heads by one reshape/transpose (needs q/k/v groups equal and whole heads per group).
FORMS = ("linear", "bmm", "qkv")
WHY = ("stock SqueezeBERT is channels-first: litert-torch wrapped each grouped 1x1 conv (CONV_2D) and LayerNorm "
       "in TRANSPOSE ops (102 per signature in the built-in model); converted channels-last instead, 1x1 convs "
       "as Linear layers (built-in, desktop LiteRT, 1 thread, 128 tokens: 24 TRANSPOSE, fp32 13.4 -> 10.7 ms, "
       "int8-static 6.8 -> 6.1 ms; docs/export.md)")


def is_squeezebert(model: nn.Module) -> bool:
    """A HF SqueezeBERT classifier (``config.model_type`` and the ``transformer`` body this module reuses)."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "squeezebert" and hasattr(model, "transformer")


def _per_group(x: torch.Tensor, cin: int, weights: nn.ParameterList, biases: nn.ParameterList) -> torch.Tensor:
    """One Linear per group on its ``cin``-channel slice of ``x``, concatenated (TFLite: SLICE + FULLY_CONNECTED)."""
    return torch.cat([F.linear(x[..., g * cin:(g + 1) * cin], w, b) for g, (w, b) in enumerate(zip(weights, biases))],
                     dim=-1)


class GroupedLinear(nn.Module):
    """A 1x1 ``Conv1d`` (any ``groups``) applied to ``[..., Cin]`` channels-last input."""

    def __init__(self, conv: nn.Conv1d, form: str):
        super().__init__()
        if form not in FORMS:
            raise UsageError(f"unknown channels-last form {form!r}; use one of {', '.join(FORMS)}")
        form = "linear" if form == "qkv" else form  # a single projection: qkv is linear
        if conv.kernel_size != (1,) or conv.stride != (1,) or conv.padding != (0,) or conv.dilation != (1,):
            raise UsageError(f"channels-last rewrite needs 1x1 Conv1d layers, got {conv}")
        self.groups, self.form = int(conv.groups), form
        w = conv.weight.detach()[:, :, 0]  # [Cout, Cin/G]
        b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        self.cin = w.shape[1]
        per = w.shape[0] // self.groups
        if self.groups == 1:
            self.weight = nn.Parameter(w.clone().contiguous(), requires_grad=False)
            self.bias = nn.Parameter(b.clone(), requires_grad=False)
        elif form == "linear":
            self.weights = nn.ParameterList(nn.Parameter(w[g * per:(g + 1) * per].clone().contiguous(),
                                                         requires_grad=False) for g in range(self.groups))
            self.biases = nn.ParameterList(nn.Parameter(b[g * per:(g + 1) * per].clone(), requires_grad=False)
                                           for g in range(self.groups))
        else:  # bmm: [G, Cin/G, Cout/G]
            self.weight = nn.Parameter(w.reshape(self.groups, per, self.cin).transpose(1, 2).contiguous(),
                                       requires_grad=False)
            self.bias = nn.Parameter(b.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return F.linear(x, self.weight, self.bias)
        if self.form == "linear":
            return _per_group(x, self.cin, self.weights, self.biases)
        batch, length, _ = x.shape
        xg = x.reshape(batch * length, self.groups, self.cin).transpose(0, 1)  # [G, B*L, Cin/G]
        y = torch.bmm(xg, self.weight).transpose(0, 1).reshape(batch, length, -1)
        return y + self.bias


class FusedQKV(nn.Module):
    """q, k and v (1x1 convs with the same groups) as one Linear per group: ``[B, L, C]`` -> three
    ``[B, H, L, d]`` tensors. Group g's output channels are heads ``g*H/G ... (g+1)*H/G - 1`` of each."""

    def __init__(self, convs: tuple[nn.Conv1d, ...], heads: int):
        super().__init__()
        self.groups = int(convs[0].groups)
        self.heads, self.cin = heads, convs[0].weight.shape[1]
        per = convs[0].weight.shape[0] // self.groups
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for g in range(self.groups):
            rows = slice(g * per, (g + 1) * per)
            self.weights.append(nn.Parameter(torch.cat([c.weight.detach()[rows, :, 0] for c in convs]).contiguous(),
                                             requires_grad=False))
            self.biases.append(nn.Parameter(torch.cat([c.bias.detach()[rows] for c in convs]), requires_grad=False))

    @staticmethod
    def applies(convs, heads: int) -> bool:
        groups = {int(c.groups) for c in convs}
        return len(groups) == 1 and heads % next(iter(groups)) == 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, _ = x.shape
        if self.groups == 1:
            y = F.linear(x, self.weights[0], self.biases[0])
        else:
            y = _per_group(x, self.cin, self.weights, self.biases)
        hpg = self.heads // self.groups
        y = y.view(batch, length, self.groups, 3, hpg, -1).permute(3, 0, 2, 4, 1, 5)  # [3, B, G, H/G, L, d]
        y = y.reshape(3, batch, self.heads, length, y.shape[-1])
        return y[0], y[1], y[2]


class _Layer(nn.Module):
    """One ``SqueezeBertModule`` in ``[B, L, C]``; same operations in the same order as the stock one."""

    def __init__(self, stock, form: str):
        super().__init__()
        att = stock.attention
        self.heads, self.head_size = att.num_attention_heads, att.attention_head_size
        convs = (att.query, att.key, att.value)
        self.qkv = FusedQKV(convs, self.heads) if form == "qkv" and FusedQKV.applies(convs, self.heads) else None
        if self.qkv is None:
            self.query, self.key, self.value = (GroupedLinear(c, form) for c in convs)
        self.post = GroupedLinear(stock.post_attention.conv1d, form)
        self.post_norm = stock.post_attention.layernorm  # an nn.LayerNorm subclass: call the base forward
        self.inter = GroupedLinear(stock.intermediate.conv1d, form)
        self.act = stock.intermediate.act
        self.out = GroupedLinear(stock.output.conv1d, form)
        self.out_norm = stock.output.layernorm

    @staticmethod
    def _norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, _ = x.shape
        shape = (batch, length, self.heads, self.head_size)
        if self.qkv is not None:
            q, k, v = self.qkv(x)
            k = k.transpose(-1, -2)
        else:
            q = self.query(x).view(shape).transpose(1, 2)         # [B, H, L, d]
            k = self.key(x).view(shape).permute(0, 2, 3, 1)       # [B, H, d, L]
            v = self.value(x).view(shape).transpose(1, 2)         # [B, H, L, d]
        score = torch.matmul(q, k) / math.sqrt(self.head_size)
        if mask is not None:
            score = score + mask
        context = torch.matmul(torch.softmax(score, dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, length, self.heads * self.head_size)
        h = self._norm(self.post_norm, self.post(context) + x)
        return self._norm(self.out_norm, self.out(self.act(self.inter(h))) + h)


class _Output:
    def __init__(self, logits):
        self.logits = logits


class ChannelsLastSqueezeBert(nn.Module):
    """``SqueezeBertForSequenceClassification`` (eval) as a channels-last module; returns ``.logits``."""

    def __init__(self, stock: nn.Module, form: str = "linear"):
        super().__init__()
        if not is_squeezebert(stock):
            raise UsageError(f"channels-last rewrite is for SqueezeBERT classifiers, got {type(stock).__name__}")
        self.config = stock.config
        self.embeddings = stock.transformer.embeddings
        self.pooler = stock.transformer.pooler
        self.classifier = stock.classifier
        self.layers = nn.ModuleList(_Layer(layer, form) for layer in stock.transformer.encoder.layers)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> _Output:
        from transformers.masking_utils import create_bidirectional_mask

        if attention_mask is None:
            attention_mask = torch.ones(input_ids.shape, device=input_ids.device)
        h = self.embeddings(input_ids=input_ids,
                            token_type_ids=torch.zeros(input_ids.shape, dtype=torch.long, device=input_ids.device))
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=attention_mask)
        for layer in self.layers:
            h = layer(h, mask)
        return _Output(self.classifier(self.pooler(h)))


def rewritten_projections(module: nn.Module) -> int:
    """The 1x1 projections the rewrite turned into Linear layers: the manifest's ``count``."""
    return (sum(isinstance(m, GroupedLinear) for m in module.modules())
            + 3 * sum(isinstance(m, FusedQKV) for m in module.modules()))
