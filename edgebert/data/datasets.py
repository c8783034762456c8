"""Labelled text datasets: the built-in Rotten Tomatoes splits, and users' CSV/TSV/JSONL files."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import UsageError

BUILTIN_FILE = Path(__file__).parent / "builtin" / "rt_snippets.jsonl.gz"
BUILTIN_NAME = "builtin:rt-snippets"
BUILTIN_LABELS = {0: "negative", 1: "positive"}
SPLITS = ("train", "validation", "calibration", "test")
#: Rows of the stored train split that form ``validation``: the ones whose text has the smallest sha256.
VALIDATION_SIZE = 500


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with integer labels (label ids of the model), and where they came from."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, limit: int | None) -> "LabelledTexts":
        """The first ``limit`` examples (datasets are stored shuffled, so this is a fair sample)."""
        if limit is None or limit >= len(self):
            return self
        return LabelledTexts(f"{self.name}[:{limit}]", self.texts[:limit], self.labels[:limit])


def load_builtin(split: str) -> LabelledTexts:
    """One split of the built-in sentiment data (shipped with the package, shuffled once).

    ``validation`` is carved from the stored train split: the ``VALIDATION_SIZE`` rows whose text has the
    smallest sha256 (fixed on every machine, no seed involved); ``train`` is the rest. Quantization makes
    its choices and checks on ``validation``, so ``test`` stays for reporting only.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    stored = "train" if split == "validation" else split
    rows = []
    with gzip.open(BUILTIN_FILE, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["split"] == stored:
                rows.append((row["text"], int(row["label"])))
    if stored == "train":
        held_out = _validation_texts([text for text, _ in rows])
        rows = [r for r in rows if (r[0] in held_out) == (split == "validation")]
    return LabelledTexts(f"{BUILTIN_NAME}/{split}", tuple(t for t, _ in rows), tuple(y for _, y in rows))


def _validation_texts(train_texts: Sequence[str]) -> set[str]:
    digest = {t: hashlib.sha256(t.encode("utf-8")).hexdigest() for t in train_texts}
    return set(sorted(digest, key=digest.__getitem__)[:VALIDATION_SIZE])


def _read_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            with path.open(encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise UsageError(f"{path}:{i}: not a JSON object ({exc.msg})") from None
                        if not isinstance(row, dict):
                            raise UsageError(f"{path}:{i}: each JSONL line must be an object")
                        rows.append(row)
            return rows
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    raise UsageError(f"{path}: unsupported dataset format {suffix or '(none)'}; use .csv, .tsv or .jsonl")


def _label_id(value, label2id: Mapping[str, int], num_labels: int, where: str) -> int:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < num_labels:
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit() and 0 <= int(text) < num_labels:
        return int(text)
    lowered = {k.lower(): v for k, v in label2id.items()}
    if text.lower() in lowered:
        return lowered[text.lower()]
    known = ", ".join(f"{v}={k}" for k, v in sorted(label2id.items(), key=lambda kv: kv[1]))
    raise UsageError(f"{where}: label {value!r} is not one the model knows ({known})")


def load_dataset(
    path: str | Path,
    label2id: Mapping[str, int],
    text_column: str = "text",
    label_column: str = "label",
) -> LabelledTexts:
    """Read a labelled CSV/TSV/JSONL file; labels may be ids or the model's label names."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such dataset file")
    rows = _read_rows(path)
    if not rows:
        raise UsageError(f"{path}: the dataset is empty")
    columns = set(rows[0].keys())
    for col, opt in ((text_column, "--text-column"), (label_column, "--label-column")):
        if col not in columns:
            raise UsageError(
                f"{path}: no column {col!r} (columns: {', '.join(sorted(map(str, columns)))}); set {opt}"
            )
    num_labels = len(label2id)
    texts, labels = [], []
    for i, row in enumerate(rows, 1):
        text, label = row.get(text_column), row.get(label_column)
        if text is None or str(text).strip() == "":
            raise UsageError(f"{path}: row {i} has an empty {text_column!r}")
        if label is None or str(label).strip() == "":
            raise UsageError(f"{path}: row {i} has no {label_column!r} (the dataset must be labelled)")
        texts.append(str(text))
        labels.append(_label_id(label, label2id, num_labels, f"{path}: row {i}"))
    return LabelledTexts(str(path), tuple(texts), tuple(labels))


def load_texts(path: str | Path, text_column: str = "text") -> Sequence[str]:
    """Texts only (labels optional): what calibration needs."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such dataset file")
    rows = _read_rows(path)
    if not rows:
        raise UsageError(f"{path}: the dataset is empty")
    if text_column not in rows[0]:
        raise UsageError(f"{path}: no column {text_column!r}; set --text-column")
    texts = [str(r[text_column]) for r in rows if r.get(text_column) not in (None, "")]
    if not texts:
        raise UsageError(f"{path}: no non-empty {text_column!r} values")
    return texts
