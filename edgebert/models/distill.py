"""Knowledge distillation of a grouped student from its dense teacher, on the built-in train split.

After the least-squares start (0.76 held-out on the built-in) the student is trained end to end on the
teacher's logits (KL at temperature T), the labels (cross-entropy) and the teacher's last hidden state
(MSE, scaled by its variance: it carries far more signal per text than two logits). The embeddings stay
frozen (the student shares the teacher's table; Adam over 11.7 M embedding rows would be most of each
step) and dropout is off: a fixed, short budget converges faster without it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..cores import rebalance


@dataclass(frozen=True)
class DistillRecipe:
    """How the grouped built-in is trained from its teacher (part of its cache key)."""

    least_squares_texts: int = 1500
    epochs: int = 2
    batch_size: int = 32
    max_length: int = 64
    lr: float = 2e-4
    temperature: float = 1.0
    logit_weight: float = 0.9  # of the KL term; the rest goes to the labels' cross-entropy
    hidden_weight: float = 1.0
    seed: int = 0
    version: int = 1


class GivenHiddenStates(torch.nn.Module):
    """Stands in for the embeddings: the encoder starts from given (cached) hidden states."""

    def forward(self, input_ids=None, inputs_embeds=None, *_, **__):
        return inputs_embeds


@torch.no_grad()
def teacher_targets(teacher, batches, top_layers: int = 0, below=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The teacher's logits and last hidden state for every batch (computed once).

    ``below``: per batch ``(hidden, attention_mask, labels)`` outputs of the teacher's layers under its
    top ``top_layers``, computed for the same batches by another build; used (top layers + head only)
    when every mask matches, else the teacher runs whole.
    """
    teacher.eval()
    layers = teacher.base_model.encoder.layers
    usable = (below is not None and top_layers > 0 and len(below) == len(batches)
              and all(torch.equal(m, enc["attention_mask"]) for (_, m, _), (enc, _) in zip(below, batches)))
    out = []
    if usable:
        all_layers, embeddings = list(layers), teacher.base_model.embeddings
        try:
            del layers[:len(all_layers) - top_layers]
            teacher.base_model.embeddings = GivenHiddenStates()
            for hidden, mask, _ in below:
                rebalance()
                o = teacher(inputs_embeds=hidden, attention_mask=mask, output_hidden_states=True)
                out.append((o.logits, o.hidden_states[-1]))
        finally:
            del layers[:]
            layers.extend(all_layers)
            teacher.base_model.embeddings = embeddings
        return out
    for enc, _ in batches:
        rebalance()
        o = teacher(**enc, output_hidden_states=True)
        out.append((o.logits, o.hidden_states[-1]))
    return out


def distill(student, batches, targets, recipe: DistillRecipe = DistillRecipe(), progress=None) -> float:
    """Train ``student`` in place for ``recipe.epochs`` over ``batches``; returns the last loss."""
    from ..progress import maybe_track

    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for p in student.base_model.embeddings.parameters():
        p.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    rng = random.Random(recipe.seed)
    steps = [i for _ in range(recipe.epochs) for i in rng.sample(range(len(batches)), len(batches))]
    kl = torch.nn.KLDivLoss(reduction="batchmean")
    temp = recipe.temperature
    student.train()
    loss_value = 0.0
    for step, i in enumerate(maybe_track(progress, steps, len(steps), "Distilling the grouped student")):
        rebalance()  # torch's threads follow the background emulated jobs (cores.py)
        for group in opt.param_groups:  # linear decay to 5%
            group["lr"] = recipe.lr * max(0.05, 1 - step / len(steps))
        (enc, labels), (t_logits, t_hidden) = batches[i], targets[i]
        out = student(**enc, output_hidden_states=recipe.hidden_weight > 0)
        loss = recipe.logit_weight * kl(torch.log_softmax(out.logits / temp, -1),
                                        torch.softmax(t_logits / temp, -1)) * temp * temp
        loss = loss + (1 - recipe.logit_weight) * torch.nn.functional.cross_entropy(out.logits, labels)
        if recipe.hidden_weight > 0:
            mask = enc["attention_mask"].bool()
            real = t_hidden[mask]
            loss = loss + recipe.hidden_weight * ((out.hidden_states[-1][mask] - real) ** 2).mean() / real.var()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = loss.detach().item()
    student.eval()
    for p in student.parameters():
        p.requires_grad_(True)
    return loss_value
