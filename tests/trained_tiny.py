"""A tiny classifier that actually classifies: trained for a few seconds on the built-in train split.

Random tiny models give nearly the same logits for every text (std ~1e-3 across the validation texts),
so int8 noise alone decides their predictions and "agreement with fp32" says nothing. This one is
trained (about 70% accuracy, both classes predicted), so a quantization that breaks the model shows up
as lost agreement. Real transformers model, real WordPiece tokenizer over the most common train words.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import torch

from edgebert.data import load_builtin
from edgebert.models import get

VOCAB_WORDS = 2000
STEPS = 300
BATCH = 32
MAX_LENGTH = 48


def write_vocab_tokenizer(directory: Path) -> None:
    texts = load_builtin("train").texts
    words = collections.Counter(w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(VOCAB_WORDS)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}), encoding="utf-8")


def train_tiny_classifier(directory: Path, arch_name: str, steps: int = STEPS, **config_overrides) -> Path:
    """A local Hugging Face directory (config, safetensors, tokenizer) of a trained tiny ``arch_name``."""
    from transformers import AutoTokenizer

    write_vocab_tokenizer(directory)
    tok = AutoTokenizer.from_pretrained(str(directory))
    arch = get(arch_name)
    torch.manual_seed(0)
    config = arch.tiny_config(vocab_size=len(tok), **config_overrides)
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    model = arch.model_class(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: 2 threads on a busy 2-core machine ran 20x slower
    try:
        _train(model, tok, opt, steps)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(directory)
    return directory


def _train(model, tok, opt, steps: int) -> None:
    train = load_builtin("train")
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(train), (BATCH,), generator=gen).tolist()
        enc = tok([train.texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_LENGTH,
                  return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([train.labels[i] for i in idx])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def with_dead_unit_outlier(src: Path, dst: Path) -> Path:
    """A copy of a trained tiny DistilBERT that computes the same logits but that int8 cannot represent.

    Unit 0 of ``pre_classifier`` is made dead (bias -1e4: ReLU gives 0 for every input) and carries a
    classifier weight of ±1e4. In fp32 that weight multiplies 0; in int8 it sets the scale of each of the
    classifier's output channels, so every real classifier weight rounds to 0 and the logits become the
    bias: predictions no longer depend on the text (a real outlier-weight failure of int8, no mock).
    """
    import shutil

    from transformers import DistilBertForSequenceClassification

    shutil.copytree(src, dst)
    model = DistilBertForSequenceClassification.from_pretrained(str(dst)).eval()
    with torch.no_grad():
        model.pre_classifier.bias[0] = -1e4
        model.classifier.weight[:, 0] = torch.tensor([1e4, -1e4])
    model.save_pretrained(dst)
    return dst
