"""The grouped SqueezeBERT built from a dense one: alignment keeps the function, least squares is exact
where an exact answer exists, and the MAC count matches what the convolutions really do."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgebert.models import get
from edgebert.models import grouped

DENSE = dict(q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1, output_groups=1)


def _dense(seed=0):
    torch.manual_seed(seed)
    cfg = get("squeezebert").tiny_config(vocab_size=50, **DENSE)
    return get("squeezebert").model_class(cfg).eval()


def _batches(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, 50, (8, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[:4, 9:] = 0  # some padding, which the fit must ignore
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _diagonal_share(model, groups=4):
    """Share of the squared weight of every to-be-grouped conv that sits in its diagonal blocks."""
    inside = total = 0.0
    for layer in model.transformer.encoder.layers:
        for conv in (layer.attention.query, layer.attention.key, layer.attention.value,
                     layer.intermediate.conv1d, layer.output.conv1d):
            w = conv.weight[:, :, 0].detach() ** 2
            o, i = w.shape[0] // groups, w.shape[1] // groups
            inside += sum(float(w[g * o:(g + 1) * o, g * i:(g + 1) * i].sum()) for g in range(groups))
            total += float(w.sum())
    return inside / total


def test_align_channels_keeps_the_function_and_gathers_weight_on_the_diagonal():
    model = _dense()
    # plant structure: each head / intermediate channel reads one input block only, in scrambled order
    with torch.no_grad():
        for layer in model.transformer.encoder.layers:
            for conv in (layer.attention.query, layer.attention.key, layer.attention.value, layer.intermediate.conv1d):
                w = conv.weight[:, :, 0]
                rows_per_head = w.shape[0] // 4
                for r in range(w.shape[0]):
                    keep = (r // rows_per_head * 3 + 1) % 4  # row group g reads block 3g+1 mod 4, not g
                    mask = torch.zeros(w.shape[1])
                    mask[keep * 8:(keep + 1) * 8] = 1
                    w[r] *= mask
    before = _diagonal_share(model)
    batch = _batches(1)[0]
    with torch.no_grad():
        want = model(**batch).logits
    grouped.align_channels(model)
    with torch.no_grad():
        got = model(**batch).logits
    assert torch.allclose(want, got, atol=1e-5), (want - got).abs().max()
    after = _diagonal_share(model)
    assert after > before + 0.3 and after > 0.5, (before, after)


def test_least_squares_recovers_a_grouped_function_exactly():
    """A teacher whose dense weights are already block-diagonal is a grouped model: the fit finds it."""
    teacher = _dense()
    student = get("squeezebert").model_class(grouped.grouped_config(teacher.config)).eval()
    grouped.block_diagonal_copy(student, teacher)
    with torch.no_grad():  # teacher := the student's function, written densely
        dense = teacher.state_dict()
        for name, value in student.state_dict().items():
            if dense[name].shape != value.shape:
                dense[name].zero_()
                out_ch, per_in, _ = value.shape
                groups = dense[name].shape[1] // per_in
                per_out = out_ch // groups
                for g in range(groups):
                    dense[name][g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = \
                        value[g * per_out:(g + 1) * per_out]
        for p in student.transformer.encoder.parameters():  # then damage every student weight
            p.add_(torch.randn_like(p) * 0.3)
    batches = _batches()
    with torch.no_grad():
        before = float((student(**batches[0]).logits - teacher(**batches[0]).logits).abs().max())
    errors = grouped.fit_least_squares(student, teacher, batches, ridge=1e-9)
    # LayerNorm parameters were damaged too and are not fitted: only the projections are; so restore them
    assert len(errors) == teacher.config.num_hidden_layers and all(e >= 0 for e in errors)
    fixed = copy.deepcopy(student)
    with torch.no_grad():
        for (n, p), (_, q) in zip(fixed.named_parameters(), teacher.named_parameters()):
            if "layernorm" in n:
                p.copy_(q)
    grouped.fit_least_squares(fixed, teacher, batches, ridge=1e-9)
    with torch.no_grad():
        after = float((fixed(**batches[0]).logits - teacher(**batches[0]).logits).abs().max())
    assert before > 1e-2 and after < 1e-3, (before, after)


def test_least_squares_beats_the_diagonal_copy_on_a_dense_teacher():
    teacher = _dense(3)
    grouped.align_channels(teacher)
    student = get("squeezebert").model_class(grouped.grouped_config(teacher.config)).eval()
    grouped.block_diagonal_copy(student, teacher)
    batches = _batches(8)

    def hidden_error():
        with torch.no_grad():
            return sum(float(((student.transformer(**b).last_hidden_state - teacher.transformer(**b).last_hidden_state)
                              [b["attention_mask"].bool()] ** 2).sum()) for b in batches)

    copied = hidden_error()
    grouped.fit_least_squares(student, teacher, batches)
    assert hidden_error() < 0.7 * copied


@pytest.mark.parametrize("groups", [DENSE, grouped.PAPER_GROUPS])
def test_encoder_macs_match_the_convolutions_that_run(groups):
    cfg = get("squeezebert").tiny_config(vocab_size=50, **groups)
    model = get("squeezebert").model_class(cfg).eval()
    counted = []

    def hook(module, inputs, output):
        counted.append(output.shape[1] * module.in_channels // module.groups * output.shape[2])

    for m in model.transformer.encoder.modules():
        if isinstance(m, torch.nn.Conv1d):
            m.register_forward_hook(hook)
    length = 16
    with torch.no_grad():
        model(input_ids=torch.randint(5, 50, (1, length)))
    attention = 2 * length * length * cfg.hidden_size * cfg.num_hidden_layers  # QK^T and PV
    assert grouped.encoder_macs_per_token(cfg, length) == (sum(counted) + attention) // length


def test_distilbert_macs_equal_a_dense_squeezebert_of_the_same_geometry():
    sq = get("squeezebert").tiny_config(vocab_size=50, **DENSE)
    db = get("distilbert").tiny_config(vocab_size=50)
    assert (db.dim, db.hidden_dim, db.n_layers) == (sq.hidden_size, sq.intermediate_size, sq.num_hidden_layers)
    assert grouped.encoder_macs_per_token(db, 128) == grouped.encoder_macs_per_token(sq, 128)
    paper = grouped.encoder_macs_per_token(grouped.grouped_config(sq), 16)
    assert paper < 0.6 * grouped.encoder_macs_per_token(sq, 16)


def test_teacher_targets_from_shared_lower_layer_outputs_equal_the_full_teacher():
    from edgebert.models.distill import teacher_targets

    teacher = _dense(5)
    batches = [(b, torch.zeros(8, dtype=torch.long)) for b in _batches(3)]
    with torch.no_grad():
        below = [(teacher.transformer(**b, output_hidden_states=True).hidden_states[-2], b["attention_mask"], y)
                 for b, y in batches]
    full = teacher_targets(teacher, batches)
    top = teacher_targets(teacher, batches, 1, below)
    assert len(teacher.transformer.encoder.layers) == teacher.config.num_hidden_layers  # restored
    for (fl, fh), (tl, th) in zip(full, top):
        assert torch.allclose(fl, tl, atol=1e-5) and torch.allclose(fh, th, atol=1e-5)
    # outputs computed for other batches (a mask differs) are not used: the full teacher runs instead
    other = [(h * 0, m.clone(), y) for h, m, y in below]
    other[-1][1][0, 0] = 0
    assert all(torch.allclose(a[0], b[0], atol=1e-5) for a, b in zip(full, teacher_targets(teacher, batches, 1, other)))
    wrong_top = teacher_targets(teacher, batches, 2, below)  # below is layer n-1's input, not n-2's
    assert not all(torch.allclose(a[1], b[1], atol=1e-3) for a, b in zip(full, wrong_top))
