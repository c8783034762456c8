"""A grouped SqueezeBERT from a dense one: the paper's layout, initialised by least squares.

SqueezeBERT's point is grouped 1x1 convolutions (paper: q/k/v, intermediate and output with 4 groups,
post-attention dense). A grouped layer can only see its own block of input channels, so copying the
dense weights' diagonal blocks loses most of the function (0.56 held-out accuracy on the built-in).
Three function-preserving or closed-form steps get it back before any training:

1. ``align_channels``: in the dense teacher, assign attention heads and intermediate channels to
   groups so that each group's rows draw most of their weight from that group's input block (a
   balanced assignment per layer); permuting heads (q, k, v rows and the post-attention columns
   together) and intermediate channels does not change the teacher's function.
2. ``block_diagonal_copy``: the student starts from the aligned teacher's diagonal blocks.
3. ``fit_least_squares``: layer by layer, each grouped projection is solved per group (ridge) to
   reproduce the teacher's projection output from the *student's own* inputs, so errors of earlier
   layers are corrected rather than compounded; the residual paths are folded into the targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: The paper's layout (SqueezeBERT, Iandola et al. 2020, Table 1: "SqueezeBERT"): groups per projection.
PAPER_GROUPS = {"q_groups": 4, "k_groups": 4, "v_groups": 4, "post_attention_groups": 1,
                "intermediate_groups": 4, "output_groups": 4}


def grouped_config(dense_config, groups: dict[str, int] = PAPER_GROUPS):
    """The dense SqueezeBERT config with the grouped layout (everything else unchanged)."""
    return type(dense_config)(**{**dense_config.to_dict(), **groups})


def _balanced_assignment(score: np.ndarray, groups: int) -> np.ndarray:
    """Group of each item maximising the summed score, every group the same size."""
    from scipy.optimize import linear_sum_assignment

    per = score.shape[0] // groups
    rows, cols = linear_sum_assignment(-np.repeat(score, per, axis=1))
    return cols[np.argsort(rows)] // per


def _block_share(weight: torch.Tensor, block: slice, axis: int) -> np.ndarray:
    """Share of each row's (axis=1) or column's (axis=0) squared weight inside ``block``."""
    w2 = weight.double() ** 2
    inside = w2[:, block].sum(1) if axis == 1 else w2[block, :].sum(0)
    return (inside / w2.sum(axis).clamp_min(1e-30)).numpy()


@torch.no_grad()
def align_channels(teacher, groups: int = 4) -> None:
    """Permute heads and intermediate channels of the dense ``teacher`` in place (same function)."""
    cfg = teacher.config
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    head_dim, block = hidden // heads, hidden // groups
    blocks = [slice(g * block, (g + 1) * block) for g in range(groups)]
    for layer in teacher.transformer.encoder.layers:
        att = layer.attention
        convs = (att.query, att.key, att.value)
        score = np.zeros((heads, groups))
        for g, cols in enumerate(blocks):
            for conv in convs:
                share = _block_share(conv.weight[:, :, 0], cols, axis=1)
                score[:, g] += share.reshape(heads, head_dim).mean(1)
        order = np.argsort(_balanced_assignment(score, groups), kind="stable")
        perm = torch.as_tensor(np.concatenate([np.arange(h * head_dim, (h + 1) * head_dim) for h in order]))
        for conv in convs:
            conv.weight.copy_(conv.weight[perm])
            conv.bias.copy_(conv.bias[perm])
        post = layer.post_attention.conv1d
        post.weight.copy_(post.weight[:, perm])

        inter, out = layer.intermediate.conv1d, layer.output.conv1d
        score = np.stack([_block_share(inter.weight[:, :, 0], cols, axis=1)
                          + _block_share(out.weight[:, :, 0], cols, axis=0) for cols in blocks], axis=1)
        perm = torch.as_tensor(np.argsort(_balanced_assignment(score, groups), kind="stable"))
        inter.weight.copy_(inter.weight[perm])
        inter.bias.copy_(inter.bias[perm])
        out.weight.copy_(out.weight[:, perm])


@torch.no_grad()
def block_diagonal_copy(student, teacher) -> None:
    """Every tensor of the same shape is copied; a grouped conv takes the dense one's diagonal blocks."""
    dense = teacher.state_dict()
    for name, value in student.state_dict().items():
        source = dense[name]
        if source.shape == value.shape:
            value.copy_(source)
            continue
        out_ch, in_per_group, _ = value.shape
        groups = source.shape[1] // in_per_group
        per = out_ch // groups
        for g in range(groups):
            value[g * per:(g + 1) * per] = source[g * per:(g + 1) * per, g * in_per_group:(g + 1) * in_per_group]


def _extended_mask(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _real_tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N, C, W] activations -> [real tokens, C] (padding carries no signal to fit)."""
    return x.permute(0, 2, 1)[mask]


@torch.no_grad()
def _solve(conv: torch.nn.Conv1d, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], ridge: float) -> None:
    """Per group: ``y_g ~ W_g x_g + b_g`` by ridge-regularised normal equations (float64)."""
    out_ch, in_per_group, _ = conv.weight.shape
    groups = conv.groups
    per = out_ch // groups
    xtx = torch.zeros(groups, in_per_group + 1, in_per_group + 1, dtype=torch.float64)
    xty = torch.zeros(groups, in_per_group + 1, per, dtype=torch.float64)
    for x, y in zip(xs, ys):
        x, y = x.double(), y.double()
        ones = torch.ones(len(x), 1, dtype=torch.float64)
        for g in range(groups):
            xg = torch.cat([x[:, g * in_per_group:(g + 1) * in_per_group], ones], 1)
            xtx[g] += xg.T @ xg
            xty[g] += xg.T @ y[:, g * per:(g + 1) * per]
    for g in range(groups):
        a = xtx[g]
        lam = ridge * a.diagonal().mean()
        sol = torch.linalg.solve(a + lam * torch.eye(len(a), dtype=a.dtype), xty[g])
        conv.weight[g * per:(g + 1) * per, :, 0] = sol[:-1].T.float()
        conv.bias[g * per:(g + 1) * per] = sol[-1].float()


@torch.no_grad()
def fit_least_squares(student, teacher, batches: Sequence[dict], ridge: float = 1e-3, progress=None) -> list[float]:
    """Fit the student's projections layer by layer; returns each layer's relative output error."""
    from ..cores import rebalance
    from ..progress import maybe_track

    masks = [b["attention_mask"].bool() for b in batches]
    ext = [_extended_mask(b["attention_mask"]) for b in batches]
    h_t = [teacher.transformer.embeddings(input_ids=b["input_ids"]).permute(0, 2, 1) for b in batches]
    h_s = [student.transformer.embeddings(input_ids=b["input_ids"]).permute(0, 2, 1) for b in batches]

    def tokens(xs):
        return [_real_tokens(x, m) for x, m in zip(xs, masks)]

    errors = []
    pairs = list(zip(teacher.transformer.encoder.layers, student.transformer.encoder.layers))
    for lt, ls in maybe_track(progress, pairs, len(pairs), "Fitting grouped layers (least squares)"):
        rebalance()  # torch's threads follow the background emulated jobs (cores.py)
        for name in ("query", "key", "value"):
            target = getattr(lt.attention, name)
            _solve(getattr(ls.attention, name), tokens(h_s), tokens([target(h) for h in h_t]), ridge)
        ctx_t = [lt.attention(h, e, False)["context_layer"] for h, e in zip(h_t, ext)]
        ctx_s = [ls.attention(h, e, False)["context_layer"] for h, e in zip(h_s, ext)]
        # conv(ctx_s) + h_s should equal conv_t(ctx_t) + h_t before the LayerNorm
        _solve(ls.post_attention.conv1d, tokens(ctx_s),
               tokens([lt.post_attention.conv1d(c) + a - b for c, a, b in zip(ctx_t, h_t, h_s)]), ridge)
        p_t = [lt.post_attention(c, h) for c, h in zip(ctx_t, h_t)]
        p_s = [ls.post_attention(c, h) for c, h in zip(ctx_s, h_s)]
        _solve(ls.intermediate.conv1d, tokens(p_s), tokens([lt.intermediate.conv1d(p) for p in p_t]), ridge)
        i_t = [lt.intermediate(p) for p in p_t]
        i_s = [ls.intermediate(p) for p in p_s]
        _solve(ls.output.conv1d, tokens(i_s),
               tokens([lt.output.conv1d(i) + a - b for i, a, b in zip(i_t, p_t, p_s)]), ridge)
        h_t = [lt.output(i, p) for i, p in zip(i_t, p_t)]
        h_s = [ls.output(i, p) for i, p in zip(i_s, p_s)]
        num = sum(float(((a - b) ** 2).sum()) for a, b in zip(h_t, h_s))
        errors.append(num / sum(float((a ** 2).sum()) for a in h_t))
    return errors


def encoder_macs_per_token(config, length: int) -> int:
    """Multiply-accumulates per token of the encoder at ``length`` tokens (projections + attention)."""
    h, layers = config.hidden_size, config.num_hidden_layers  # DistilBERT maps these names to dim/n_layers
    i = getattr(config, "intermediate_size", None) or config.hidden_dim
    g = {k: getattr(config, k, 1) or 1 for k in PAPER_GROUPS}  # dense models: every projection one group
    projections = (h * h / g["q_groups"] + h * h / g["k_groups"] + h * h / g["v_groups"]
                   + h * h / g["post_attention_groups"] + h * i / g["intermediate_groups"] + i * h / g["output_groups"])
    attention = 2 * length * h  # scores and context: each token against ``length`` keys, all heads
    return int(layers * (projections + attention))
