"""Build the grouped built-in SqueezeBERT from its dense teacher (offline, deterministic recipe).

Steps and their measured effect on the built-in test split (2,000 texts): diagonal copy 0.56; after
``align_channels`` + least squares 0.76; after distillation see the model's ``edgebert_builtin.json``.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..check.stats import rate
from ..data.datasets import load_builtin
from ..progress import maybe_step
from . import grouped
from .distill import DistillRecipe, distill, teacher_targets
from .heldout import evaluate


def _batches(tokenizer, data, order, size: int, max_length: int, with_labels: bool):
    out = []
    for start in range(0, len(order), size):
        idx = order[start:start + size]
        enc = dict(tokenizer([data.texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                             return_tensors="pt"))
        out.append((enc, torch.tensor([data.labels[i] for i in idx])) if with_labels else enc)
    return out


def build_grouped(teacher_dir: Path, out: Path, recipe: DistillRecipe, progress=None, frozen=(0, None)) -> dict:
    """Align, copy, fit and distil a grouped student of the dense SqueezeBERT in ``teacher_dir``.

    ``frozen``: (top layers trained, outputs of the layers below them for the train split's length-sorted
    batches) when a dense built-in of this process computed them; the teacher then runs only its top.
    """
    from transformers import SqueezeBertForSequenceClassification

    from ..hf_safe import load_tokenizer

    start = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - start - sum(phases.values()), 1)

    torch.manual_seed(recipe.seed)
    teacher = SqueezeBertForSequenceClassification.from_pretrained(teacher_dir, use_safetensors=True).eval()
    tokenizer = load_tokenizer(teacher_dir)
    train = load_builtin("train")
    grouped.align_channels(teacher)
    student = SqueezeBertForSequenceClassification(grouped.grouped_config(teacher.config)).eval()
    grouped.block_diagonal_copy(student, teacher)

    rng = random.Random(recipe.seed)
    sample = sorted(rng.sample(range(len(train)), recipe.least_squares_texts), key=lambda i: len(train.texts[i]))
    fit_batches = _batches(tokenizer, train, sample, 64, recipe.max_length, with_labels=False)
    lap("load_align_copy")
    errors = grouped.fit_least_squares(student, teacher, fit_batches, progress=progress)
    del fit_batches
    lap("least_squares")

    order = sorted(range(len(train)), key=lambda i: len(train.texts[i]))  # length-sorted: little padding
    batches = _batches(tokenizer, train, order, recipe.batch_size, recipe.max_length, with_labels=True)
    with maybe_step(progress, "Teacher outputs on the train split"):
        targets = teacher_targets(teacher, batches, *frozen)
    lap("teacher_outputs")
    last_loss = distill(student, batches, targets, recipe, progress=progress)
    del batches, targets
    lap("distillation")

    test = load_builtin("test")
    with maybe_step(progress, "Measuring held-out accuracy"):
        accuracy = evaluate(student, tokenizer, test)
    lap("held_out_accuracy")
    student.save_pretrained(out)
    tokenizer.save_pretrained(out)
    correct = round(accuracy * len(test))
    cfg = student.config
    return {
        "architecture": "squeezebert", "layout": {k: getattr(cfg, k) for k in grouped.PAPER_GROUPS},
        "teacher": teacher_dir.name, "recipe": asdict(recipe),
        "test_accuracy": accuracy, "test_accuracy_rate": rate(correct, len(test)),
        "least_squares_relative_error_per_layer": [round(e, 4) for e in errors], "final_loss": last_loss,
        "encoder_macs_per_token_at_128": grouped.encoder_macs_per_token(cfg, 128),
        "teacher_encoder_macs_per_token_at_128": grouped.encoder_macs_per_token(teacher.config, 128),
        "teacher_outputs_from": "shared frozen-layer outputs + teacher top" if frozen[1] else "full teacher",
        "data": "builtin:rt-snippets/train", "build_seconds": round(time.perf_counter() - start, 1),
        "phase_seconds": phases, "torch_threads": torch.get_num_threads(),
    }
