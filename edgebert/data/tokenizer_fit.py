"""Refuse a tokenizer that cannot serve its model, before anything is exported or measured with it.

A Hugging Face directory without tokenizer files still "loads": transformers builds a default
tokenizer with only its special tokens, every word becomes ``[UNK]``, and export validation passes
because PyTorch and the artifact see the same useless ids. No tokenizer is better than a wrong one,
so a tokenizer is accepted only if its ids fit the embedding table, that table is its vocabulary's
size (up to alignment padding), its special tokens exist, and a few ordinary words are not all unknown.
"""

from __future__ import annotations

from ..errors import UsageError

# Ordinary words in the language of the built-in data; any real vocabulary has some of them.
PROBE = "the movie was good and not bad"
# Embedding tables are the vocabulary's size, or that size rounded up to one of these multiples (e.g.
# SqueezeBERT's 30528 rows for its 30522 tokens); any other size is another tokenizer's.
TABLE_ALIGNMENTS = (1, 8, 32, 64, 128)
MAX_PADDING = 0.01  # padding rows are a sliver of the table; a vocabulary missing more lost its tail
# The special tokens a BERT-family classifier input needs (encode() adds [CLS]/[SEP] and pads).
REQUIRED_SPECIAL = ("cls_token", "sep_token", "pad_token", "unk_token")
HOW_TO_FIX = ("a Hugging Face model directory needs the tokenizer files it was trained with next to "
              "config.json (tokenizer.json, or vocab.txt with tokenizer_config.json)")


def problems(tokenizer, vocab_size: int | None) -> list[str]:
    """What makes ``tokenizer`` unfit for a model with ``vocab_size`` embedding rows (None: unknown)."""
    out: list[str] = []
    vocab = tokenizer.get_vocab()
    size = len(vocab)
    if vocab_size is not None:
        largest = max(vocab.values(), default=-1)
        if largest >= vocab_size:
            out.append(f"token id {largest} is outside the model's embedding table ({vocab_size} rows)")
        elif vocab_size not in {-(-size // a) * a for a in TABLE_ALIGNMENTS} or vocab_size - size > MAX_PADDING * vocab_size:
            out.append(f"its vocabulary has {size} tokens but the model's embedding table has {vocab_size} rows "
                       f"(not the vocabulary it was trained with)")
    missing = [name for name in REQUIRED_SPECIAL if getattr(tokenizer, name, None) not in vocab]
    if missing:
        out.append("no " + ", ".join(name.removesuffix("_token") for name in missing) + " token")
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    if not ids or all(i == unk for i in ids):
        out.append(f"every word of {PROBE!r} becomes the unknown token")
    return out


REEXPORT = "re-run `edgebert export` from a model directory that has its tokenizer files"


def check(tokenizer, vocab_size: int | None, where: str, fix: str = HOW_TO_FIX) -> None:
    """One usage error naming ``where`` and every problem found, with how to fix it; else nothing."""
    found = problems(tokenizer, vocab_size)
    if found:
        raise UsageError(f"{where}: the tokenizer cannot serve this model: {'; '.join(found)}; {fix}")


def load_artifact_tokenizer(manifest):
    """The tokenizer an artifact directory's manifest records: inside the directory, no remote code, and
    checked against the model's embedding table (recorded at export; older manifests lack it)."""
    from ..hf_safe import load_tokenizer

    path = manifest.tokenizer_dir()
    if not path.is_dir():
        raise UsageError(f"{path}: tokenizer directory missing; re-run `edgebert export`")
    try:
        tokenizer = load_tokenizer(path, within=manifest.directory)
    except UsageError as exc:
        raise UsageError(f"{exc}; re-run `edgebert export`") from None
    check(tokenizer, manifest.model.get("vocab_size"), str(path), fix=REEXPORT)
    return tokenizer
